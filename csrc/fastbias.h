/* C kernels of fastbias, compiled by cffi into the extension module fastbias._cext.
 *
 * This header is both #included by the C sources and passed verbatim to ffi.cdef(), so it
 * holds plain declarations only: no #include, no macros, no include guard.
 *
 * Return codes of every fb_ kernel (translated to Python in fastbias.kernels._c):
 *    0  all steps ran;
 *    1  the run diverged: *fail_step is the step whose iterate failed the divergence test;
 *   -1  bad sizes (N < 1, d < 1, K < 0 or n_steps < 0) or a required pointer is NULL;
 *   -2  unknown loss code;
 *   -3  unknown step-rule code;
 *   -4  out of memory for the work arrays.
 */

int fb_gd_linear_ld(const long double *Z, long double *w, long long N, long long d,
                    long double lr, int loss, int rule, long long step0, long long n_steps,
                    const long long *rec_steps, long long K, long double *rec_w,
                    long double s_floor, long long *fail_step);

/* The same run in float64 (csrc/fb_linear_f64.c): SIMD exp, and OpenMP threads for large
 * problems. n_threads: 1 serial; > 1 that many threads (at most one per group of 256 samples);
 * 0 automatic (threads only when the problem is large enough to pay for them); < 0 gives -1.
 * Iterates agree with the reference to round-off, not bit for bit; they do not depend on
 * n_threads, and chunked calls reproduce one long call bit for bit.
 * Unlike the reference, a run whose last step leaves a non-finite iterate returns 1 with
 * *fail_step = step0 + n_steps. Also returns -5 if this build has no kernel (it needs the
 * vector extensions of GCC or clang). lo: NULL, or d doubles holding the compensation term of
 * w: the updates are then summed with Neumaier compensation (precision="compensated"). */
int fb_gd_linear_f64(const double *Z, double *w, long long N, long long d, double lr,
                     int loss, int rule, long long step0, long long n_steps,
                     const long long *rec_steps, long long K, double *rec_w, double s_floor,
                     long long *fail_step, int n_threads, double *lo);

/* A linear tensor network (csrc/fb_deep_ld.c) in long double: theta (P) holds the layers;
 * nonzero e of the data tensor adds vals[e] * prod_l theta[pos[e * L + l]] to beta[jidx[e]].
 * Same return codes (-1 also for an index out of range or data outside the double range). */
int fb_gd_tensor_ld(const long double *Z, long double *theta, long long N, long long d,
                    long long P, long long nnz, long long L, const long long *jidx,
                    const long long *pos, const long double *vals, long double lr, int loss,
                    int rule, long long step0, long long n_steps, const long long *rec_steps,
                    long long K, long double *rec_theta, long double s_floor,
                    long long *fail_step);

/* Deep linear models in float64 (csrc/fb_deep_f64.c): the same runs as the numba kernels of
 * kernels/_numba_models.py (diagonal, fully connected), _numba_tensor.py and _numba_conv.py
 * (full-width layers only) up to round-off, for the exponential and logistic losses (not the
 * logistic loss with rule 2: -6). Return code 2: the parameters' norm passed 2^16 after step
 * *fail_step - 1 (recorded); the caller continues from step *fail_step with the numba kernel,
 * which carries theta = 2^e theta_s from there. Fully connected: L layers, dims[0] = d, layer
 * l < L-1 is a dims[l] x dims[l+1] matrix at offsets[l], the last a vector. Tensor: nonzero e
 * adds vals[e] prod_l theta[pos[e L + l]] to beta[jidx[e]]. Convolutional: ZF is the (d, N)
 * matrix of the data's real Fourier rows (kernels/_fft.real_fourier_rows), spec (L, 2, d/2+1)
 * the half spectra of the filters (computed from theta unless use_spec; kept between calls);
 * theta (L d) receives the time-domain filters on return. */
int fb_gd_diagonal_f64(const double *Z, double *theta, long long N, long long d, long long L,
                       double lr, int loss, int rule, long long step0, long long n_steps,
                       const long long *rec_steps, long long K, double *rec_theta,
                       double s_floor, long long *fail_step);
int fb_gd_fc_f64(const double *Z, double *theta, long long N, long long d, long long L,
                 const long long *dims, const long long *offsets, double lr, int loss, int rule,
                 long long step0, long long n_steps, const long long *rec_steps, long long K,
                 double *rec_theta, double s_floor, long long *fail_step);
int fb_gd_tensor_f64(const double *Z, double *theta, long long N, long long d, long long P,
                     long long nnz, long long L, const long long *jidx, const long long *pos,
                     const double *vals, double lr, int loss, int rule, long long step0,
                     long long n_steps, const long long *rec_steps, long long K,
                     double *rec_theta, double s_floor, long long *fail_step);
int fb_gd_conv_f64(const double *ZF, double *theta, long long N, long long d, long long L,
                   double *spec, int use_spec, double lr, int loss, int rule, long long step0,
                   long long n_steps, const long long *rec_steps, long long K,
                   double *rec_theta, double s_floor, long long *fail_step);

/* Many runs of one shape in lock step, float64 (csrc/fb_lockstep_f64.c): SIMD lanes = runs.
 * kind 0 linear, 1 diagonal of depth L, 2 fully connected (dims, offsets as fb_gd_fc_f64).
 * Z: the data rows y_n x_n, (N, d) shared by all runs (per_lane 0), or (Rp, N, d), run r's
 * own data at Z + r N d (per_lane 1: sweeps over data sets of one shape).
 * theta (P, Rp), lr and floor (Rp), status and fail_step (Rp, zeroed by the caller): lane r is
 * run r; Rp is a multiple of fb_lockstep_block_runs(); blocks [b0, b1) of that many runs are
 * run. rec (K, P, Rp) receives the parameters after steps rec_steps (the steps count from 0).
 * status[r]: 0 ok, 1 the divergence test failed at step fail_step[r], 2 the norm passed 2^16
 * after step fail_step[r] (the caller reruns such runs on their own). Codes as fb_gd_linear_f64
 * (-6: logistic loss with rule 2). */
int fb_lockstep_block_runs(void);
int fb_gd_lockstep_f64(int kind, const double *Z, int per_lane, long long N, long long d,
                       long long L, const long long *dims, const long long *offsets, long long P,
                       long long Rp, long long b0, long long b1, double *theta,
                       const double *lr, const double *floor, int loss, int rule,
                       long long n_steps, const long long *rec_steps, long long K, double *rec,
                       long long *status, long long *fail_step);

/* A full-width linear circular convolutional network in long double, in the Fourier domain
 * (csrc/fb_conv_ld.c): Z (N, d) the data rows y_n x_n, theta (L d) the time-domain filters
 * (written on return), spec (L, 2, d/2+1) their half spectra (computed from theta unless
 * use_spec; kept between calls). Exp or logistic loss, rules 0-2; codes as fb_gd_linear_ld. */
int fb_gd_conv_ld(const long double *Z, long double *theta, long double *spec, int use_spec,
                  long long N, long long d, long long L, long double lr, int loss, int rule,
                  long long step0, long long n_steps, const long long *rec_steps, long long K,
                  long double *rec_theta, long double s_floor, long long *fail_step);

/* Diagonal (depth L) and fully connected linear networks in long double, in factored form
 * (csrc/fb_deep_ld.c): the runs of fb_gd_tensor_ld on their layouts, to long double
 * round-off. Z (N, d) the rows y_n x_n; theta (P) the layers one after another (diagonal:
 * P = L d; fully connected: dims, offsets as fb_gd_fc_f64). Codes as fb_gd_linear_ld (-1
 * also for inconsistent dims / offsets or data outside the double range). */
int fb_gd_diagonal_ld(const long double *Z, long double *theta, long long N, long long d,
                      long long L, long double lr, int loss, int rule, long long step0,
                      long long n_steps, const long long *rec_steps, long long K,
                      long double *rec_theta, long double s_floor, long long *fail_step);
int fb_gd_fc_ld(const long double *Z, long double *theta, long long N, long long d, long long P,
                long long L, const long long *dims, const long long *offsets, long double lr,
                int loss, int rule, long long step0, long long n_steps,
                const long long *rec_steps, long long K, long double *rec_theta,
                long double s_floor, long long *fail_step);

/* exp(max(x, -708)) of the float64 kernels (csrc/fb_f64_core.h) on n (a multiple of 4)
 * arguments, the pass made `repeats` times (for timing): which 0 fb_exp (baseline copy), 1
 * fb_exp (AVX2+FMA copy), 2 fb_exp_fma. For the tests and bench/lockstep_bound.py. Returns 0,
 * -1 (bad arguments) or -5 (no AVX2/FMA for which 1, 2; no vector extensions). */
int fb_exp_f64_check(const double *x, double *out, long long n, long long repeats, int which);

/* The vector floating-point throughput of this core (csrc/fb_lockstep_f64.c): `iters`
 * iterations of 10 independent 4-lane multiply-add chains and, which 1: 4 chains of adds,
 * 2: 4 chains of maxima; *out gets their sum. For bench/lockstep_bound.py (time it).
 * Returns 0, -1 (bad arguments) or -5 (no AVX2/FMA). */
int fb_fp_peak_check(long long iters, int which, double *out);

/* e^(xh + xl) in double-double (csrc/fb_ld_dd.h, fb_dd_exp_weights: the exp loss's weights of
 * fb_gd_diagonal_ld, fb_gd_fc_ld and fb_gd_conv_ld) for x <= 0, as exact pairs qh + ql; for
 * the tests. Returns 0, or -5 where the double-double code does not run (no AVX2/FMA). */
int fb_dd_exp_check(const double *xh, const double *xl, long long n, double *qh, double *ql);
