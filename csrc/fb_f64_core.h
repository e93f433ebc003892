/* The float64 SIMD core shared by the C float64 kernels (fb_linear_f64.c, fb_deep_f64.c):
 * vectors (GCC vector extensions), the vectorized exp, the panel layout of the data and one
 * pass over the panels (margins, divergence test, log-domain weights, G = Z^T q). See
 * fb_linear_f64.c for the design. Included only inside `#if defined(__GNUC__)`, after the
 * pragmas and system headers of the including file; every function is static.
 */

#ifndef FB_F64_CORE_H
#define FB_F64_CORE_H

#define FB_INLINE static inline __attribute__((always_inline))
#define FB_NOINLINE static __attribute__((noinline))
#define FB_RESTRICT restrict

/* Runtime choice between an AVX2+FMA copy and a baseline copy of the drivers (x86 only;
 * elsewhere there is just the baseline copy, vectorized for the compiler's default target). */
#if defined(__x86_64__) || defined(__i386__)
#define FB_HAVE_AVX2_CLONE 1
#define FB_TARGET_AVX2 __attribute__((target("avx2,fma")))
#else
#define FB_HAVE_AVX2_CLONE 0
#endif

#define FB_B 16      /* samples per panel: 4 AVX2 vectors of doubles */
#define FB_SMALL_D 4 /* one-panel problems up to this d get their own copies of the driver */

/* Direct mode (no shift) is used when the minimum margin s satisfies |s| <= FB_DIRECT_LIM
 * (exponential loss) or s <= FB_DIRECT_LIM (logistic): the weights are then at most e^300
 * (no overflow of G for any sane data) and the largest is at least e^-300, while the exp
 * clamps its argument at -708 (see fb_exp), i.e. only weights below e^-408 times the largest
 * are rounded up. */
#define FB_DIRECT_LIM 300.0

/* Automatic thread count (n_threads == 0, see fb_thread_count): two threads from a work
 * N (d + 8) of 2 FB_PAR_WORK(d). Measured on a 2-core AMD EPYC (Zen 4): a serial step costs
 * about 0.17 ns N (d + 8), and two threads add a barrier and a reduction of roughly
 * 0.4 + 0.0025 d us; they break even around N = 500 at d = 2, 300 at d = 10, 130 at d = 100,
 * 80 at d = 300 and 40 at d = 1000. This threshold is a little conservative: it gives two
 * threads from N = 612, 367, 111, 78 and 66 there; the linear kernel also wants a group of
 * 256 samples per thread (fb_linear_f64.c), so from N = 257 at least. */
#define FB_PAR_WORK(d) (3000LL + 30LL * (d))
#define FB_PAR_MIN_PANELS 2LL

/* ---------------------------------------------------------------------------------------- */
/* Vectors: GCC vector extensions, 4 doubles. In the AVX2 copy each is one ymm register; in
 * the baseline copy GCC splits it into two SSE2 registers. The functions taking vectors are
 * always inlined, so -Wpsabi's notes on their calling convention do not apply (build_ffi.py
 * passes -Wno-psabi for its notes; the pragma covers the warning). */

#pragma GCC diagnostic ignored "-Wpsabi" /* (clang reads GCC's diagnostic pragmas too) */

typedef double fb_vd __attribute__((vector_size(32)));
typedef long long fb_vi __attribute__((vector_size(32))); /* comparison masks: -1 or 0 */
typedef unsigned long long fb_vu __attribute__((vector_size(32)));

#define FB_V 4              /* doubles per vector */
#define FB_NV (FB_B / FB_V) /* vectors per panel */

FB_INLINE fb_vd fb_splat(double x)
{
    const fb_vd v = {x, x, x, x};
    return v;
}

FB_INLINE fb_vd fb_load(const double *p)
{
    fb_vd v;
    memcpy(&v, p, sizeof v);
    return v;
}

FB_INLINE void fb_store(double *p, fb_vd v)
{
    memcpy(p, &v, sizeof v);
}

FB_INLINE fb_vi fb_zero_mask(void)
{
    const fb_vi v = {0, 0, 0, 0};
    return v;
}

/* mask ? a : b, lane by lane */
FB_INLINE fb_vd fb_select(fb_vi mask, fb_vd a, fb_vd b)
{
    return (fb_vd)((mask & (fb_vi)a) | (~mask & (fb_vi)b));
}

/* a < b ? a : b (b if either is NaN) */
FB_INLINE fb_vd fb_vmin(fb_vd a, fb_vd b)
{
    return fb_select(a < b, a, b);
}

/* lanes 4k .. 4k+3 of a panel that hold samples (lane < nvalid) */
FB_INLINE fb_vi fb_valid_mask(int k, int nvalid)
{
    const fb_vi lane = {0, 1, 2, 3};
    return lane + (long long)(FB_V * k) < (long long)nvalid;
}

FB_INLINE double fb_hsum(fb_vd v)
{
    return (v[0] + v[1]) + (v[2] + v[3]);
}

/* ---------------------------------------------------------------------------------------- */
/* exp: Cody-Waite reduction, degree-13 Taylor polynomial, 2^n from integer shifts (the
 * algorithm of fastbias.kernels._numba.exp_nonpos; relative error < 2.3e-16). */

#define FB_EXP_LO (-708.0)                   /* exp(-708) ~ 3.3e-308 is still normal */
#define FB_LOG2E 1.4426950408889634          /* 1 / ln 2 */
#define FB_LN2_HI 6.93147180369123816490e-01 /* ln 2 split so that n * LN2_HI is exact */
#define FB_LN2_LO 1.90821492927058770002e-10
#define FB_ROUND 6755399441055744.0    /* 1.5 * 2^52: adding it rounds to an integer */
#define FB_EXP_BIAS 4503599627371519.0 /* 2^52 + 1023 */

/* exp(max(x, -708)) for x <= 708, lane by lane (NaN stays NaN). Larger x give garbage (not
 * undefined behaviour): the drivers discard any pass in which an argument can exceed 300
 * (FB_DIRECT_LIM; with the shift s, the minimum margin, the arguments are <= 0). */
FB_INLINE fb_vd fb_exp(fb_vd x)
{
    fb_vd nf, r, r2, r4, r8, a0, a1, a2, a3, a4, a5, a6, b0, b1, b2, c0, c1;
    fb_vu bits;
    x = fb_select(x < FB_EXP_LO, fb_splat(FB_EXP_LO), x);
    /* nf = round(x / ln 2); r = x - nf ln 2 in [-ln2/2, ln2/2] */
    nf = (x * FB_LOG2E + FB_ROUND) - FB_ROUND;
    r = (x - nf * FB_LN2_HI) - nf * FB_LN2_LO;
    /* sum_{k <= 13} r^k / k! = (1 + r) + r^2 B(r): B by Estrin's scheme (on tiny problems a
     * step is a chain of dependent operations, and this is 5 multiply-adds deep instead of
     * Horner's 13); adding 1 + r last keeps the error within 1 ulp (max 2.2e-16 relative
     * measured, against 1.3e-16 for Horner and 4e-16 for a plain Estrin sum) */
    r2 = r * r;
    r4 = r2 * r2;
    r8 = r4 * r4;
    a0 = 1.0 + r;
    a1 = 1.0 / 2 + (1.0 / 6) * r;
    a2 = 1.0 / 24 + (1.0 / 120) * r;
    a3 = 1.0 / 720 + (1.0 / 5040) * r;
    a4 = 1.0 / 40320 + (1.0 / 362880) * r;
    a5 = 1.0 / 3628800 + (1.0 / 39916800) * r;
    a6 = 1.0 / 479001600 + (1.0 / 6227020800.0) * r;
    b0 = a1 + a2 * r2;
    b1 = a3 + a4 * r2;
    b2 = a5 + a6 * r2;
    c0 = b0 + b1 * r4;
    c1 = c0 + b2 * r8; /* B(r) */
    /* 2^nf: the low bits of nf + 2^52 + 1023 hold the integer nf + 1023 (in [2, 2044]);
     * shifting them into the exponent field gives the double 2^nf (integer shifts: there is
     * no vector double -> int64 conversion before AVX-512) */
    bits = (fb_vu)(nf + FB_EXP_BIAS) << 52;
    return (a0 + c1 * r2) * (fb_vd)bits;
}

/* exp(-shift) for a scalar, also from the vector exp: a libm call in the step loop would make
 * the compiler keep every vector constant in memory (all vector registers are clobbered by a
 * call). Beyond the range of fb_exp, exp(-shift) = exp(-shift/2)^2, which overflows to +inf
 * or underflows towards 0 as libm's exp does. */
FB_INLINE double fb_exp_neg(double shift)
{
    double h;
    if (fabs(shift) <= -FB_EXP_LO) {
        return fb_exp(fb_splat(-shift))[0];
    }
    if (!(fabs(shift) <= -2.0 * FB_EXP_LO)) { /* also +-inf and NaN */
        return shift > 0.0 ? 0.0 : shift < 0.0 ? INFINITY : shift;
    }
    h = fb_exp(fb_splat(-0.5 * shift))[0];
    return h * h;
}

/* ---------------------------------------------------------------------------------------- */
/* Panel kernels (one panel = FB_B samples = FB_NV vectors). */

/* m = P_b^T w: the margins of the panel's samples. For larger d two sets of accumulators
 * (even and odd j) halve the dependency chains. */
FB_INLINE void fb_panel_margins(const double *FB_RESTRICT Pb, const double *FB_RESTRICT w,
                                const long long d, fb_vd m[FB_NV])
{
    fb_vd a[FB_NV], b[FB_NV];
    long long j;
    int k;
    for (k = 0; k < FB_NV; ++k) {
        a[k] = fb_load(Pb + FB_V * k) * w[0];
    }
    if (d < 6) {
        for (j = 1; j < d; ++j) {
            for (k = 0; k < FB_NV; ++k) {
                a[k] += fb_load(Pb + j * FB_B + FB_V * k) * w[j];
            }
        }
        for (k = 0; k < FB_NV; ++k) {
            m[k] = a[k];
        }
        return;
    }
    for (k = 0; k < FB_NV; ++k) {
        b[k] = fb_load(Pb + FB_B + FB_V * k) * w[1];
    }
    for (j = 2; j + 1 < d; j += 2) {
        for (k = 0; k < FB_NV; ++k) {
            a[k] += fb_load(Pb + j * FB_B + FB_V * k) * w[j];
            b[k] += fb_load(Pb + (j + 1) * FB_B + FB_V * k) * w[j + 1];
        }
    }
    if (j < d) {
        for (k = 0; k < FB_NV; ++k) {
            a[k] += fb_load(Pb + j * FB_B + FB_V * k) * w[j];
        }
    }
    for (k = 0; k < FB_NV; ++k) {
        m[k] = a[k] + b[k];
    }
}

/* Padding lanes (past nvalid) get margin +inf: never the minimum, never a failure. */
FB_INLINE void fb_panel_pad(fb_vd m[FB_NV], int nvalid)
{
    int k;
    if (nvalid < FB_B) {
        for (k = 0; k < FB_NV; ++k) {
            m[k] = fb_select(fb_valid_mask(k, nvalid), m[k], fb_splat(INFINITY));
        }
    }
}

/* Running lanes of the minimum margin and of the divergence test !(m > s_floor), which is
 * true for NaN too (the reference tests min(m) > s_floor, and numpy's min propagates NaN). */
FB_INLINE void fb_panel_scan(const fb_vd m[FB_NV], double s_floor, fb_vd lmin[FB_NV],
                             fb_vi lbad[FB_NV])
{
    int k;
    for (k = 0; k < FB_NV; ++k) {
        lmin[k] = fb_vmin(m[k], lmin[k]);
        lbad[k] |= ~(m[k] > s_floor);
    }
}

FB_INLINE double fb_lanes_min(const fb_vd lmin[FB_NV])
{
    const fb_vd c = fb_vmin(fb_vmin(lmin[0], lmin[1]), fb_vmin(lmin[2], lmin[3]));
    const double x = c[0] < c[1] ? c[0] : c[1], y = c[2] < c[3] ? c[2] : c[3];
    return x < y ? x : y;
}

FB_INLINE int fb_lanes_any(const fb_vi lbad[FB_NV])
{
    const fb_vi v = (lbad[0] | lbad[1]) | (lbad[2] | lbad[3]);
    return ((v[0] | v[1]) | (v[2] | v[3])) != 0;
}

/* How the weights q are formed, with log_scale the log of the factor carried separately
 * (the branches of _reference.loss_weights, generalized to any shift):
 *   FB_W_EXP        exponential loss: q = exp(shift - m), log_scale = -shift;
 *   FB_W_LOGI_SHIFT logistic, shift >= 0: E = exp(shift - m), q = E / (1 + exp(-shift) E),
 *                   log_scale = -shift;
 *   FB_W_LOGI_PLAIN logistic: q = 1 / (1 + exp(m)) from a = exp(-|m|) (no overflow),
 *                   log_scale = 0.
 * Direct mode is FB_W_EXP with shift 0 or FB_W_LOGI_PLAIN. With shift = s (the exact minimum)
 * these are the reference's formulas (fb_exact_mode). */
enum { FB_W_EXP = 0, FB_W_LOGI_SHIFT = 1, FB_W_LOGI_PLAIN = 2 };

FB_INLINE int fb_direct_mode(int loss)
{
    return loss == 0 ? FB_W_EXP : FB_W_LOGI_PLAIN;
}

FB_INLINE int fb_direct_ok(int loss, double s)
{
    return loss == 0 ? fabs(s) <= FB_DIRECT_LIM : s <= FB_DIRECT_LIM;
}

FB_INLINE int fb_exact_mode(int loss, double s)
{
    if (loss == 0) {
        return FB_W_EXP;
    }
    return s < 0.0 ? FB_W_LOGI_PLAIN : FB_W_LOGI_SHIFT;
}

/* q from the panel's margins m (shift in every lane, es = exp(-shift)); padding lanes get
 * q = 0. When want_total, the panel's part of the scaled loss sum (_reference.scaled_loss_sum
 * in the same scale as q) is added to the lanes tl (exponential loss) or to *tsum (logistic:
 * log1p has no vector version here, and its calls slow down the whole loop, so the drivers are
 * compiled without that code, with_log1p = 0, for every other case: see FB_DEFINE_DRIVERS). */
FB_INLINE void fb_panel_weights(const fb_vd m[FB_NV], int mode, fb_vd shift, double es,
                                int nvalid, int want_total, const int with_log1p,
                                fb_vd q[FB_NV], fb_vd tl[FB_NV], double *tsum)
{
    fb_vd e[FB_NV];
    double ev[FB_B], mv[FB_B];
    int k, l;
    if (mode == FB_W_LOGI_PLAIN) {
        const fb_vd sign = fb_splat(-0.0);
        for (k = 0; k < FB_NV; ++k) {
            const fb_vi mpos = m[k] > 0.0;
            e[k] = fb_exp((fb_vd)((fb_vi)m[k] | (fb_vi)sign)); /* a = exp(-|m|) */
            q[k] = fb_select(mpos, e[k], fb_splat(1.0)) / (1.0 + e[k]);
        }
    } else {
        for (k = 0; k < FB_NV; ++k) {
            e[k] = fb_exp(shift - m[k]);
            q[k] = mode == FB_W_EXP ? e[k] : e[k] / (1.0 + es * e[k]);
        }
    }
    if (nvalid < FB_B) {
        for (k = 0; k < FB_NV; ++k) {
            q[k] = fb_select(fb_valid_mask(k, nvalid), q[k], fb_splat(0.0));
        }
    }
    if (!want_total) {
        return;
    }
    if (mode == FB_W_EXP || !with_log1p) { /* with_log1p == 0: only the exponential loss */
        for (k = 0; k < FB_NV; ++k) {
            tl[k] += q[k];
        }
        return;
    }
    /* through memory: indexing the vectors with a variable would keep them all (and the
     * panel's other vectors) out of registers */
    for (k = 0; k < FB_NV; ++k) {
        fb_store(ev + FB_V * k, e[k]);
        fb_store(mv + FB_V * k, m[k]);
    }
    for (l = 0; l < nvalid; ++l) {
        if (mode == FB_W_LOGI_SHIFT) {
            /* E log1p(x) / x with x = exp(-shift) E = exp(-m): the reference's ratio */
            const double xv = es * ev[l];
            *tsum += ev[l] * (xv > 1e-300 ? log1p(xv) / xv : 1.0);
        } else {
            /* np.logaddexp(0, -m) = max(-m, 0) + log1p(exp(-|m|)) */
            *tsum += (mv[l] < 0.0 ? -mv[l] : 0.0) + log1p(ev[l]);
        }
    }
}

/* GA[j] (+)= sum_k P_b[j][4k : 4k+4] q[k]: the panel's contribution to G = Z^T q, kept as one
 * vector of lanes per coordinate (a load, 4 multiply-adds and a store per coordinate and
 * panel, no horizontal sums; the first panel of a pass stores instead of adding); fb_hsum
 * folds the lanes at the end of the step. */
FB_INLINE void fb_panel_grad(const double *FB_RESTRICT Pb, const fb_vd q[FB_NV],
                             const long long d, double *FB_RESTRICT GA, int first)
{
    long long j;
    if (first) {
        for (j = 0; j < d; ++j) {
            const double *p = Pb + j * FB_B;
            fb_vd g = fb_load(p) * q[0];
            g += fb_load(p + FB_V) * q[1];
            g += fb_load(p + 2 * FB_V) * q[2];
            g += fb_load(p + 3 * FB_V) * q[3];
            fb_store(GA + j * FB_V, g);
        }
        return;
    }
    for (j = 0; j < d; ++j) {
        const double *p = Pb + j * FB_B;
        fb_vd g = fb_load(GA + j * FB_V);
        g += fb_load(p) * q[0];
        g += fb_load(p + FB_V) * q[1];
        g += fb_load(p + 2 * FB_V) * q[2];
        g += fb_load(p + 3 * FB_V) * q[3];
        fb_store(GA + j * FB_V, g);
    }
}

/* Step size times the scale of G (see _reference.gd_linear): lr exp(log_scale) for rule 0,
 * with es = exp(-shift); lr / ||G|| (gg = G.G) for rule 1; lr / total for rule 2. */
FB_INLINE double fb_factor(int rule, int mode, double lr, double es, double gg, double total)
{
    if (rule == 0) {
        return mode == FB_W_LOGI_PLAIN ? lr : lr * es;
    }
    if (rule == 1) {
        return lr / sqrt(gg);
    }
    return lr / total;
}

/* ---------------------------------------------------------------------------------------- */
/* Drivers. */

typedef struct {
    const double *P; /* panels, NB * d * FB_B doubles */
    long long N, d, NB;
    double lr, s_floor;
    int loss, rule;
    long long step0, n_steps;
    const long long *rec_steps;
    long long K;
    double *rec_w;
    double *w;    /* the iterate: in, and out (last good iterate) */
    double *lo;   /* NULL, or the compensation term of w (precision="compensated") */
    double *work; /* deep kernel: GA (d * FB_V), then the margins (NB * FB_B); linear
                     kernel: fb_serial_work, fb_layout (fb_linear_f64.c) */
    struct fb_barrier *barrier; /* parallel: the threads' barrier (fb_barrier_wait) */
    int status;
    long long fail_step;
} fb_job;

/* w += delta with Neumaier compensation: lo keeps what rounding w lost. Exact under
 * fp-contract=fast (no product to fuse in the two-sum); never under -ffast-math. */
FB_INLINE void fb_comp_add(double *w, double *lo, double delta)
{
    const double u = delta + *lo;
    const double s = *w + u;
    *lo = (fabs(*w) >= fabs(u)) ? (*w - s) + u : (u - s) + *w;
    *w = s;
}

/* doubles rounded up to whole 64-byte lines */
FB_INLINE long long fb_round8(long long n)
{
    return (n + 7) / 8 * 8;
}

/* valid samples in panel b */
FB_INLINE int fb_nvalid(const fb_job *job, long long b)
{
    const long long rest = job->N - b * FB_B;
    return rest < FB_B ? (int)rest : FB_B;
}

/* The weights' mode, shift and es = exp(-shift) of a pass. */
typedef struct {
    int mode;
    double shift, es;
} fb_scale;

FB_INLINE fb_scale fb_direct_scale(int loss)
{
    fb_scale sc;
    sc.mode = fb_direct_mode(loss);
    sc.shift = 0.0;
    sc.es = 1.0;
    return sc;
}

/* The reference's scale for the minimum margin s (when direct mode is unsafe), or for a shift
 * near it. */
FB_INLINE fb_scale fb_shift_scale(int loss, double s)
{
    fb_scale sc;
    sc.mode = fb_exact_mode(loss, s);
    sc.shift = s;
    sc.es = sc.mode == FB_W_LOGI_PLAIN ? 1.0 : fb_exp_neg(s);
    return sc;
}

/* Kinds of pass over the panels. */
enum {
    FB_PASS_FUSED,   /* margins, test, weights and gradient, panel by panel */
    FB_PASS_MARGINS, /* margins and test only, the margins stored in M */
    FB_PASS_WEIGHTS  /* weights and gradient from the margins stored in M */
};

/* A panel's margins m for a pass of this kind: read from M (WEIGHTS), or made from w,
 * padded and scanned into the lanes lmin and lbad (FUSED, MARGINS), then stored to M
 * (MARGINS). Returns whether the pass goes on to the panel's weights (not for MARGINS). */
FB_INLINE int fb_panel_front(const double *Pb, const double *w, const long long d,
                             const int kind, const double s_floor, const int nv,
                             double *FB_RESTRICT Mb, fb_vd m[FB_NV], fb_vd lmin[FB_NV],
                             fb_vi lbad[FB_NV])
{
    int k;
    if (kind == FB_PASS_WEIGHTS) {
        for (k = 0; k < FB_NV; ++k) {
            m[k] = fb_load(Mb + FB_V * k);
        }
        return 1;
    }
    fb_panel_margins(Pb, w, d, m);
    fb_panel_pad(m, nv);
    fb_panel_scan(m, s_floor, lmin, lbad);
    if (kind == FB_PASS_MARGINS) {
        for (k = 0; k < FB_NV; ++k) {
            fb_store(Mb + FB_V * k, m[k]);
        }
        return 0;
    }
    return 1;
}

/* One pass over panels [b0, b1) (kind: a compile-time constant). The margins' minimum goes to
 * *s and the divergence test to *bad (FUSED, MARGINS); the gradient contributions to GA
 * (d vectors of lanes, overwritten) and the scaled loss sum to *total (FUSED, WEIGHTS). The
 * weights are in the scale sc. FUSED and MARGINS + WEIGHTS do the same arithmetic. */
FB_INLINE void fb_pass(const fb_job *job, long long b0, long long b1, const double *w,
                       const long long d, const int kind, fb_scale sc, const int with_log1p,
                       double *FB_RESTRICT M, double *FB_RESTRICT GA, double *s, int *bad,
                       double *total)
{
    const int want_total = job->rule == 2;
    const fb_vd shift_v = fb_splat(sc.shift);
    fb_vd lmin[FB_NV], tl[FB_NV], m[FB_NV], q[FB_NV];
    fb_vi lbad[FB_NV];
    double tsum = 0.0;
    long long b, j;
    int k;
    for (k = 0; k < FB_NV; ++k) {
        lmin[k] = fb_splat(INFINITY);
        lbad[k] = fb_zero_mask();
        tl[k] = fb_splat(0.0);
    }
    if (kind != FB_PASS_MARGINS && b0 == b1) { /* a thread without panels */
        for (j = 0; j < d; ++j) {
            fb_store(GA + j * FB_V, fb_splat(0.0));
        }
    }
    for (b = b0; b < b1; ++b) {
        const double *Pb = job->P + b * d * FB_B;
        const int nv = fb_nvalid(job, b);
        if (!fb_panel_front(Pb, w, d, kind, job->s_floor, nv, M + b * FB_B, m, lmin, lbad)) {
            continue;
        }
        fb_panel_weights(m, sc.mode, shift_v, sc.es, nv, want_total, with_log1p, q, tl, &tsum);
        fb_panel_grad(Pb, q, d, GA, b == b0);
    }
    if (kind != FB_PASS_WEIGHTS) {
        *s = fb_lanes_min(lmin);
        *bad = fb_lanes_any(lbad);
    }
    if (kind != FB_PASS_MARGINS) {
        *total = tsum + fb_hsum((tl[0] + tl[1]) + (tl[2] + tl[3]));
    }
}

/* Copy w into rec_w[k] if step t + 1 is the next record step. */
FB_INLINE void fb_record(const fb_job *job, long long t, const double *w, const long long d,
                         long long *k)
{
    long long j;
    if (*k < job->K && job->rec_steps[*k] == t + 1) {
        for (j = 0; j < d; ++j) { /* (not memcpy: it would keep a local w out of registers) */
            job->rec_w[*k * d + j] = w[j];
        }
        ++*k;
    }
}

/* w += factor(sc) G with G = the lanes GA folded: the end of a serial step. */
FB_INLINE void fb_serial_update(const fb_job *job, double *FB_RESTRICT w, const long long d,
                                const double *FB_RESTRICT GA, fb_scale sc, double total)
{
    double gg = 0.0, factor;
    long long j;
    if (job->rule == 1) {
        for (j = 0; j < d; ++j) {
            const double g = fb_hsum(fb_load(GA + j * FB_V));
            gg += g * g;
        }
    }
    factor = fb_factor(job->rule, sc.mode, job->lr, sc.es, gg, total);
    if (job->lo != NULL) {
        for (j = 0; j < d; ++j) {
            fb_comp_add(w + j, job->lo + j, factor * fb_hsum(fb_load(GA + j * FB_V)));
        }
        return;
    }
    for (j = 0; j < d; ++j) {
        w[j] += factor * fb_hsum(fb_load(GA + j * FB_V));
    }
}

static inline int fb_use_avx2(void)
{
#if FB_HAVE_AVX2_CLONE
    const char *env = getenv("FASTBIAS_NO_AVX2");
    if (env != NULL && env[0] != '\0' && strcmp(env, "0") != 0) {
        return 0;
    }
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/* 64-byte aligned allocation (the base pointer is stored just before the block). */
static inline double *fb_alloc(size_t n_doubles)
{
    const size_t align = 64;
    char *base = (char *)malloc(n_doubles * sizeof(double) + align + sizeof(void *));
    char *p;
    if (base == NULL) {
        return NULL;
    }
    p = base + sizeof(void *);
    p += (align - (uintptr_t)p % align) % align;
    memcpy(p - sizeof(void *), &base, sizeof(void *));
    return (double *)p;
}

static inline void fb_free(double *p)
{
    char *base;
    if (p == NULL) {
        return;
    }
    memcpy(&base, (char *)p - sizeof(void *), sizeof(void *));
    free(base);
}

#if FB_HAVE_AVX2_CLONE
/* ---------------------------------------------------------------------------------------- */
/* The AVX2+FMA copies' exp (fb_linear_f64.c's tiny path, fb_lockstep_f64.c's linear pass) */

#include <immintrin.h>

/* exp(r) = 1 + r + r^2 P(r) on [-ln2/2, ln2/2], P of degree 9: the Chebyshev fit of
 * (e^r - 1 - r) / r^2 (mpmath.chebyfit, 40 digits), rounded to double. With these doubles the
 * polynomial is within 1.6e-17 of e^r (relative; exact arithmetic), two degrees below the
 * Taylor polynomial of the same accuracy. */
#define FB_EXP_C2 0.5000000000000001
#define FB_EXP_C3 0.16666666666666669
#define FB_EXP_C4 0.041666666666624164
#define FB_EXP_C5 0.008333333333330065
#define FB_EXP_C6 0.0013888888917196719
#define FB_EXP_C7 0.00019841269863040545
#define FB_EXP_C8 2.4801521322368692e-05
#define FB_EXP_C9 2.7557268480310024e-06
#define FB_EXP_C10 2.7620075879983367e-07
#define FB_EXP_C11 2.5100375832561234e-08

/* exp(max(x, -708)) for x <= 708, with fb_exp's reduction (nf = round(x / ln 2),
 * r = x - nf LN2_HI - nf LN2_LO, here with explicit FMAs) and, on r, the degree-11 polynomial
 * FB_EXP_C* arranged for a short chain with the 1 added last:
 *   exp(r) = 1 + (r + r^2 b0 + r^6 (b1 + r^4 a5)), b0 = a1 + a2 r^2, a1 = C2 + C3 r, ...
 * That is 16 multiply-adds and multiplies (the Taylor polynomial of degree 13 it replaces took
 * 18: the FMA pipes bound the lock-step pass, issue 12 item 4). Measured against expl on 2^22
 * random x in each of [-1, 1], [-40, 40], [-708, 300]: relative error at most 1.96e-16, mean
 * 4.3e-17 (fb_exp: 2.2e-16 and 5.6e-17). A NaN argument gives exp(-708) (the clamp by
 * vmaxpd): the caller tests the arguments for NaN. */
FB_INLINE FB_TARGET_AVX2 fb_vd fb_exp_fma(fb_vd x)
{
    fb_vd kf, nf, r, r2, r4, a1, a2, a3, a4, a5, b0, b1, s, c;
    x = (fb_vd)_mm256_max_pd((__m256d)x, _mm256_set1_pd(FB_EXP_LO));
    kf = (fb_vd)_mm256_fmadd_pd((__m256d)x, _mm256_set1_pd(FB_LOG2E),
                                _mm256_set1_pd(FB_ROUND)); /* nf in its low bits */
    nf = kf - FB_ROUND;
    r = (fb_vd)_mm256_fnmadd_pd((__m256d)nf, _mm256_set1_pd(FB_LN2_HI), (__m256d)x); /* exact */
    r = (fb_vd)_mm256_fnmadd_pd((__m256d)nf, _mm256_set1_pd(FB_LN2_LO), (__m256d)r);
    r2 = r * r;
    r4 = r2 * r2;
    a1 = FB_EXP_C2 + FB_EXP_C3 * r;
    a2 = FB_EXP_C4 + FB_EXP_C5 * r;
    a3 = FB_EXP_C6 + FB_EXP_C7 * r;
    a4 = FB_EXP_C8 + FB_EXP_C9 * r;
    a5 = FB_EXP_C10 + FB_EXP_C11 * r;
    b0 = a1 + a2 * r2;
    b1 = a3 + a4 * r2;
    s = r + b0 * r2;
    c = b1 + a5 * r4;
    s = 1.0 + (s + c * (r2 * r4)); /* exp(r), r in [-ln2/2, ln2/2]: in [0.7, 1.42] */
    /* times 2^nf: nf added to the exponent field. kf's low 52 bits hold 2^51 + nf, so
     * kf << 52 is nf 2^52 modulo 2^64 (unsigned: no overflow); the result is normal for
     * nf in [-1021, 1021], i.e. x in [-708, 708] */
    return (fb_vd)((fb_vu)s + ((fb_vu)kf << 52));
}

#endif /* FB_HAVE_AVX2_CLONE */

#endif /* FB_F64_CORE_H */
