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
