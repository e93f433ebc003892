/* Gradient descent on a linear predictor in float64: SIMD exp, OpenMP for large problems.
 *
 * Same specification as fb_gd_linear_ld (src/fastbias/kernels/_reference.py: gd_linear,
 * loss_weights, scaled_loss_sum) in double precision. Unlike the long double kernel this one
 * does not reproduce the reference operation for operation: sums are taken in another order,
 * multiply-adds are fused, exp is our own vectorized polynomial and the log-domain shift is
 * chosen differently (below), so iterates agree with the reference to round-off (1e-12
 * relative after 1000 steps), not bit for bit. Serially, a step's arithmetic depends on its w
 * alone, so chunked calls (step0 > 0) reproduce one long call bit for bit.
 *
 * Layout. Z (N, d) is copied once per call into panels of FB_B = 16 samples: panel b holds
 * Z[16b : 16b+16, :] transposed, P[b][j][i] = Z[16b + i][j], zero-padded past N. Every inner
 * loop then runs over the 16 samples of a panel (four AVX2 vectors, no remainder loop)
 * whatever N and d are, and a panel is contiguous in memory (16 d doubles), so it stays in L1
 * between the margin and the gradient loops that read it.
 *
 * Direct mode: one pass per step. The reference works in log domain: with s = min_n m_n it
 * forms the weights E_n = exp(-(m_n - s)) and carries the factor exp(-s) separately, which
 * needs s before the first exp. Any other shift gives the same step mathematically, and shift
 * 0 (plain q = exp(-m), or q = 1 / (1 + exp(m)) for the logistic loss) is safe whenever s is
 * within +-300 (FB_DIRECT_LIM): no weight overflows and the largest one is far above the
 * underflow range. So a step is normally ONE fused pass over the panels (margins, exp,
 * gradient contribution, panel by panel while it is in L1), and s, found in the same pass, is
 * only checked afterwards. No minimum sits between the margins and the exps, which matters
 * for the latency of tiny problems, and the data is read once per step, which matters for
 * large ones. With the fixed step rule margins grow like log t, so runs stay in direct mode.
 *
 * Shift regime: margins beyond the direct range (rules 1 and 2 make them grow linearly, and
 * diverging runs or badly scaled data can get there) use the reference's shift s. Serially
 * that is two passes, margins and their minimum, then weights and gradient. The parallel
 * driver instead uses the previous step's minimum as a stale shift in its one fused pass and
 * redoes the step with the exact shift when they differ by more than 64 (fb_par_impl).
 *
 * Drivers: serial (n_threads == 1, or small problems with n_threads == 0), with copies for
 * one panel and small d where everything stays in registers; and parallel (OpenMP): ONE
 * parallel region for the whole call, each thread owning a range of panels and a partial
 * gradient, one barrier per step.
 *
 * SIMD without -march=native: the drivers are compiled twice from the same inline code, once
 * for AVX2+FMA (target attribute) and once for baseline x86-64 (SSE2), and the AVX2 copy is
 * chosen at run time with __builtin_cpu_supports. Setting the environment variable
 * FASTBIAS_NO_AVX2 to a non-empty value other than "0" forces the baseline copy (for tests).
 * The vector code uses GCC vector extensions (GCC or clang); other compilers get a stub that
 * returns -5.
 *
 * Compiler flags: the extension is built with -ffp-contract=off for the sake of the long
 * double kernel; this file turns contraction back on for itself (the pragma below) so that
 * a*b + c becomes one FMA in the AVX2 copy. No -ffast-math: the rounding trick of the exp
 * ((x + 1.5*2^52) - 1.5*2^52) must not be simplified away and the divergence test must see
 * NaN.
 */

#if defined(__clang__)
#pragma STDC FP_CONTRACT ON
#elif defined(__GNUC__)
/* fused multiply-adds, and instruction scheduling before register allocation with an eye on
 * register pressure (not the default on x86): the tiny problems' step is a long chain of
 * vector operations, which this makes 12% faster (46 -> 41 ns on Figure 3.1's data) */
#pragma GCC optimize("fp-contract=fast", "schedule-insns", "sched-pressure")
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sched.h>
#include <unistd.h>
#define FB_HAVE_POSIX 1
#endif
#endif

#include "fastbias.h"

#if defined(__GNUC__)

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
 * 80 at d = 300 and 40 at d = 1000. This threshold is a little conservative: the automatic
 * choice takes two threads from N = 612, 367, 111, 78 and 66 there. */
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
 * undefined behaviour): the drivers discard any pass in which an argument can exceed 364
 * (FB_DIRECT_LIM, or FB_SHIFT_WINDOW above the minimum margin). */
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
    double *work; /* serial: GA (d * FB_V), then the margins (NB * FB_B);
                     parallel: the per-thread slots (fb_par_impl) */
    long long slot_buf, slot_stride; /* parallel: doubles per buffer and per thread */
    struct fb_barrier *barrier;      /* parallel: the threads' barrier (fb_barrier_wait) */
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
        if (kind == FB_PASS_WEIGHTS) {
            for (k = 0; k < FB_NV; ++k) {
                m[k] = fb_load(M + b * FB_B + FB_V * k);
            }
        } else {
            fb_panel_margins(Pb, w, d, m);
            fb_panel_pad(m, nv);
            fb_panel_scan(m, job->s_floor, lmin, lbad);
            if (kind == FB_PASS_MARGINS) {
                for (k = 0; k < FB_NV; ++k) {
                    fb_store(M + b * FB_B + FB_V * k, m[k]);
                }
                continue;
            }
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

/* Serial driver; d is a compile-time constant in the copies made for small d. A step is one
 * fused pass in direct mode; when the margins leave the direct range (the "shift regime",
 * e.g. runs with rules 1 and 2, whose margins grow linearly), it is two passes: the margins
 * and their exact minimum s, then the weights with the shift s. Which one a step starts with
 * is only a guess from the previous step: the arithmetic of a step depends on its w alone. */
FB_INLINE void fb_serial_impl(fb_job *job, const long long d, const int with_log1p)
{
    const fb_scale direct = fb_direct_scale(job->loss);
    const long long NB = job->NB;
    double *FB_RESTRICT w = job->w;
    double *FB_RESTRICT GA = job->work;
    double *FB_RESTRICT M = GA + d * FB_V;
    long long t, k = 0;
    int guess_direct = 1;

    job->status = 0;
    for (t = job->step0; t < job->step0 + job->n_steps; ++t) {
        fb_scale sc = direct;
        double s, total = 0.0;
        int bad;
        if (guess_direct) {
            fb_pass(job, 0, NB, w, d, FB_PASS_FUSED, direct, with_log1p, M, GA, &s, &bad,
                    &total);
        } else {
            fb_pass(job, 0, NB, w, d, FB_PASS_MARGINS, direct, with_log1p, M, GA, &s, &bad,
                    &total);
        }
        if (bad) {
            job->status = 1;
            break;
        }
        if (!fb_direct_ok(job->loss, s)) {
            if (guess_direct) { /* entering the shift regime: the margins again, stored */
                fb_pass(job, 0, NB, w, d, FB_PASS_MARGINS, direct, with_log1p, M, GA, &s, &bad,
                        &total);
            }
            sc = fb_shift_scale(job->loss, s);
            fb_pass(job, 0, NB, w, d, FB_PASS_WEIGHTS, sc, with_log1p, M, GA, &s, &bad, &total);
            guess_direct = 0;
        } else if (!guess_direct) { /* back to direct mode */
            fb_pass(job, 0, NB, w, d, FB_PASS_WEIGHTS, direct, with_log1p, M, GA, &s, &bad,
                    &total);
            guess_direct = 1;
        }
        fb_serial_update(job, w, d, GA, sc, total);
        fb_record(job, t, w, d, &k);
    }
    job->fail_step = t;
}

/* Serial driver for one panel (N <= 16) and compile-time d and loss: the tiny problems,
 * where a step is one chain of dependent operations (w -> margins -> exp -> G -> w) and its
 * latency is the cost. The same arithmetic as fb_serial_impl, with everything in registers;
 * in direct mode the exps do not wait for the minimum. */
FB_INLINE void fb_serial1_impl(fb_job *job, const long long d, const int loss)
{
    const int nv = (int)job->N;
    const double *FB_RESTRICT P = job->P;
    double wl[FB_SMALL_D];
    long long t, j, k = 0;

    for (j = 0; j < d; ++j) {
        wl[j] = job->w[j];
    }
    job->status = 0;
    for (t = job->step0; t < job->step0 + job->n_steps; ++t) {
        fb_scale sc = fb_direct_scale(loss);
        fb_vd m[FB_NV], q[FB_NV], tl[FB_NV];
        fb_vi lbad[FB_NV];
        double G[FB_SMALL_D], s, tsum = 0.0, gg = 0.0, factor;
        int i;

        fb_panel_margins(P, wl, d, m);
        fb_panel_pad(m, nv);
        for (i = 0; i < FB_NV; ++i) {
            lbad[i] = ~(m[i] > job->s_floor);
        }
        if (fb_lanes_any(lbad)) {
            job->status = 1;
            break;
        }
        s = fb_lanes_min(m);
        if (fb_direct_ok(loss, s)) {
            fb_panel_weights(m, sc.mode, fb_splat(0.0), 1.0, nv, 0, 0, q, tl, &tsum);
        } else {
            sc = fb_shift_scale(loss, s);
            fb_panel_weights(m, sc.mode, fb_splat(s), sc.es, nv, 0, 0, q, tl, &tsum);
        }
        for (j = 0; j < d; ++j) {
            const double *p = P + j * FB_B;
            G[j] = fb_hsum((fb_load(p) * q[0] + fb_load(p + FB_V) * q[1])
                           + (fb_load(p + 2 * FB_V) * q[2] + fb_load(p + 3 * FB_V) * q[3]));
            gg += G[j] * G[j];
        }
        /* rule 2 (the exponential loss here: the logistic one has a driver of its own): the
         * scaled loss sum is the sum of the weights. Computed always: cheaper than a branch. */
        tsum = fb_hsum((q[0] + q[1]) + (q[2] + q[3]));
        factor = fb_factor(job->rule, sc.mode, job->lr, sc.es, gg, tsum);
        if (job->lo != NULL) {
            for (j = 0; j < d; ++j) {
                fb_comp_add(wl + j, job->lo + j, factor * G[j]);
            }
        } else {
            for (j = 0; j < d; ++j) {
                wl[j] += factor * G[j];
            }
        }
        fb_record(job, t, wl, d, &k);
    }
    for (j = 0; j < d; ++j) {
        job->w[j] = wl[j];
    }
    job->fail_step = t;
}

/* The barrier of the parallel driver: a counter and a sense flag (sense reversal), on a cache
 * line of their own. Not "#pragma omp barrier": GNU libgomp's waiters spin for a long time
 * and then sleep in the kernel, which with one barrier every few microseconds is fine on idle
 * cores but, when other processes compete for the cores, costs about a millisecond per step
 * (a thread spins while the one it waits for is not running: 160 threaded tests took 216 s
 * instead of 3 s next to two busy processes on 2 cores). Here a waiter spins briefly
 * (FB_BARRIER_SPINS pause instructions: 3 us on Zen 4, whose pause takes 33 ns; less on
 * older CPUs) and then yields its core at every check (8 s for those tests). */
struct fb_barrier {
    int count; /* threads arrived in this round */
    int sense; /* flipped by the last thread to arrive */
    char pad[64 - 2 * sizeof(int)];
};

#ifdef _OPENMP

#define FB_BARRIER_SPINS 100

FB_INLINE void fb_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Wait until all T threads have called it; *sense is the thread's own copy of the flag. The
 * last arrival's release store (after everyone's acq_rel increment) and the waiters' acquire
 * loads make every thread's writes before the barrier visible to all after it. */
FB_INLINE void fb_barrier_wait(struct fb_barrier *bar, int T, int *sense)
{
    const int s = !*sense;
    int spins = 0;
    *sense = s;
    if (__atomic_add_fetch(&bar->count, 1, __ATOMIC_ACQ_REL) == T) {
        __atomic_store_n(&bar->count, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&bar->sense, s, __ATOMIC_RELEASE);
        return;
    }
    while (__atomic_load_n(&bar->sense, __ATOMIC_ACQUIRE) != s) {
        if (spins < FB_BARRIER_SPINS) {
            ++spins;
            fb_cpu_relax();
        } else {
#ifdef FB_HAVE_POSIX
            sched_yield();
#else
            fb_cpu_relax();
#endif
        }
    }
}
#endif /* _OPENMP */

/* Parallel driver, run by every thread of one parallel region. Thread tid owns panels
 * [NB tid / T, NB (tid+1) / T) and makes one fused pass over them per step; the threads meet
 * at one barrier (fb_barrier_wait) per pass.
 *
 * Scale of the weights: direct mode as in the serial driver. In the shift regime (margins
 * beyond the direct range) the exact minimum s is known only after the barrier, so the pass
 * uses a stale shift, the previous step's minimum, and is redone with shift = s if that was
 * more than FB_SHIFT_WINDOW away (or in direct mode if s is back in range). Hence in the
 * shift regime a step's rounding depends on the previous step: there chunked calls agree with
 * one call to round-off only (bit for bit in direct mode).
 *
 * Per-thread slot (job->slot_stride doubles, 64-byte aligned, so threads never share a cache
 * line): two buffers of job->slot_buf doubles, [min | bad | total | pad | GA (d * FB_V)], then
 * the thread's copy of w (d) and of G (d). After its pass a thread folds the lanes of GA into
 * the thread's partial gradient (the first d doubles of GA: 4 times less data for the others
 * to read). A pass writes buffer (pass & 1); after the barrier, every thread reads that buffer
 * of every thread and reduces the partials itself. Double buffering makes that one barrier
 * per pass enough: a thread writes the same buffer again only two passes later, i.e. after
 * all threads have passed the next barrier and so have finished reading it. All threads
 * reduce the same partials in the same order, so they take the same decisions (divergence,
 * redo) and keep bit-identical copies of w; no second barrier is needed before the next step
 * reads w. */
#define FB_SLOT_HEAD 8 /* doubles before GA in a buffer */

/* A stale shift is accepted within this of the exact minimum s: every weight
 * exp(shift - m_n) is then at most e^64, and the largest at least e^-64. */
#define FB_SHIFT_WINDOW 64.0

FB_INLINE void fb_par_impl(fb_job *job, const int with_log1p)
{
#ifdef _OPENMP
    const long long d = job->d, NB = job->NB, buf = job->slot_buf, stride = job->slot_stride;
    const int T = omp_get_num_threads(), tid = omp_get_thread_num();
    const long long b0 = NB * tid / T, b1 = NB * (tid + 1) / T;
    const fb_scale direct = fb_direct_scale(job->loss);
    double *const slots = job->work;
    double *FB_RESTRICT w = slots + tid * stride + 2 * buf;
    double *FB_RESTRICT G = w + fb_round8(d);
    double s_prev = 0.0; /* the previous step's minimum margin (first step: try direct) */
    int status = 0, th, sense = 0;
    unsigned pass = 0;
    long long t, j, k = 0;

    memcpy(w, job->w, (size_t)d * sizeof(double));
    for (t = job->step0; t < job->step0 + job->n_steps; ++t) {
        const int stale = !fb_direct_ok(job->loss, s_prev);
        fb_scale sc = stale ? fb_shift_scale(job->loss, s_prev) : direct;
        double s, factor, total = 0.0, gg = 0.0;
        const double *part;
        int bad, tried = stale ? 1 : 0; /* 0 direct, 1 stale shift, 2 exact shift */
        for (;;) {
            double *FB_RESTRICT mine = slots + tid * stride + (pass & 1) * buf;
            double *FB_RESTRICT GA = mine + FB_SLOT_HEAD;
            int my_bad;
            fb_pass(job, b0, b1, w, d, FB_PASS_FUSED, sc, with_log1p, NULL, GA, mine, &my_bad,
                    mine + 2);
            mine[1] = my_bad ? 1.0 : 0.0;
            for (j = 0; j < d; ++j) { /* in place: GA[j] is read before it is written */
                GA[j] = fb_hsum(fb_load(GA + j * FB_V));
            }
            fb_barrier_wait(job->barrier, T, &sense);
            part = slots + (pass & 1) * buf;
            ++pass;
            bad = 0;
            s = INFINITY;
            for (th = 0; th < T; ++th) {
                const double *o = part + th * stride;
                s = o[0] < s ? o[0] : s;
                bad |= o[1] != 0.0;
            }
            if (bad) {
                break;
            }
            if (fb_direct_ok(job->loss, s)) {
                if (tried == 0) {
                    break;
                }
                sc = direct; /* back in range: redo in direct mode */
                tried = 0;
            } else {
                if (tried == 2 || (tried == 1 && fabs(sc.shift - s) <= FB_SHIFT_WINDOW)) {
                    break;
                }
                sc = fb_shift_scale(job->loss, s); /* redo with the exact shift */
                tried = 2;
            }
        }
        if (bad) {
            status = 1;
            break;
        }
        s_prev = s;
        for (th = 0; th < T; ++th) {
            total += part[th * stride + 2];
        }
        for (j = 0; j < d; ++j) {
            G[j] = part[FB_SLOT_HEAD + j];
        }
        for (th = 1; th < T; ++th) {
            const double *Gt = part + th * stride + FB_SLOT_HEAD;
            for (j = 0; j < d; ++j) {
                G[j] += Gt[j];
            }
        }
        if (job->rule == 1) {
            for (j = 0; j < d; ++j) {
                gg += G[j] * G[j];
            }
        }
        factor = fb_factor(job->rule, sc.mode, job->lr, sc.es, gg, total);
        for (j = 0; j < d; ++j) {
            w[j] += factor * G[j];
        }
        if (tid == 0) {
            fb_record(job, t, w, d, &k);
        }
    }
    if (tid == 0) {
        memcpy(job->w, w, (size_t)d * sizeof(double));
        job->status = status;
        job->fail_step = t;
    }
#else
    (void)job;
    (void)with_log1p;
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* The compiled copies of the drivers: for each target (baseline, AVX2+FMA), serial copies
 * for one panel with d <= 4 and the loss known at compile time (the loops over d disappear;
 * for more panels such copies gain nothing), a generic one, one for the logistic loss with
 * rule 2 (it needs libm's log1p, whose calls would slow down every other case, see
 * fb_exp_neg), and the parallel driver. Each is a function of its own, so that registers are
 * allocated per copy. */

typedef void (*fb_driver)(fb_job *);

#define FB_DEFINE_DRIVERS(SUFFIX, ATTR)                                                         \
    FB_NOINLINE ATTR void fb_s1_l0_d1_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 1, 0);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l0_d2_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 2, 0);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l0_d3_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 3, 0);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l0_d4_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 4, 0);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l1_d1_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 1, 1);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l1_d2_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 2, 1);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l1_d3_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 3, 1);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l1_d4_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_serial1_impl(job, 4, 1);                                                             \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s_any_##SUFFIX(fb_job *job)                                      \
    {                                                                                           \
        fb_serial_impl(job, job->d, 0);                                                         \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s_log1p_##SUFFIX(fb_job *job)                                    \
    {                                                                                           \
        fb_serial_impl(job, job->d, 1);                                                         \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_par_##SUFFIX(fb_job *job)                                          \
    {                                                                                           \
        if (job->loss == 1 && job->rule == 2) {                                                 \
            fb_par_impl(job, 1);                                                                \
        } else {                                                                                \
            fb_par_impl(job, 0);                                                                \
        }                                                                                       \
    }                                                                                           \
    static const fb_driver fb_drivers_##SUFFIX[FB_N_DRIVERS] = {                                \
        fb_s1_l0_d1_##SUFFIX, fb_s1_l0_d2_##SUFFIX, fb_s1_l0_d3_##SUFFIX,                       \
        fb_s1_l0_d4_##SUFFIX, fb_s1_l1_d1_##SUFFIX, fb_s1_l1_d2_##SUFFIX,                       \
        fb_s1_l1_d3_##SUFFIX, fb_s1_l1_d4_##SUFFIX, fb_s_any_##SUFFIX,                          \
        fb_s_log1p_##SUFFIX, fb_par_##SUFFIX                                                    \
    };

#define FB_N_DRIVERS 11
#define FB_DRIVER_PAR 10

FB_DEFINE_DRIVERS(base, )
#if FB_HAVE_AVX2_CLONE
FB_DEFINE_DRIVERS(avx2, FB_TARGET_AVX2)
#endif

/* Index into fb_drivers_* of the serial copy for this job (the order of FB_DEFINE_DRIVERS). */
static int fb_serial_driver(const fb_job *job)
{
    if (job->loss == 1 && job->rule == 2) {
        return 9;
    }
    if (job->NB == 1 && job->d <= FB_SMALL_D) {
        return 4 * job->loss + (int)job->d - 1;
    }
    return 8;
}

static int fb_use_avx2(void)
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
static double *fb_alloc(size_t n_doubles)
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

static void fb_free(double *p)
{
    char *base;
    if (p == NULL) {
        return;
    }
    memcpy(&base, (char *)p - sizeof(void *), sizeof(void *));
    free(base);
}

#ifdef _OPENMP
#ifdef FB_HAVE_POSIX
/* The process that started OpenMP threads (0: none yet). GNU libgomp keeps its thread pool
 * between parallel regions and does not survive fork(): a forked child (multiprocessing's
 * default start method on Linux) that enters a parallel region hangs. Children of a process
 * that used threads therefore run serially. (A benign race: every thread writes the same pid.) */
static volatile pid_t fb_omp_pid = 0;
#endif

/* Whether OpenMP can be used in this process (not in a fork of a process that used it). */
static int fb_omp_usable(void)
{
#ifdef FB_HAVE_POSIX
    const pid_t pid = fb_omp_pid;
    return pid == 0 || pid == getpid();
#else
    return 1;
#endif
}

static void fb_omp_started(void)
{
#ifdef FB_HAVE_POSIX
    fb_omp_pid = getpid();
#endif
}
#endif

/* Threads for this call: 1 without OpenMP or in a fork of a process that used it; else
 * n_threads if > 0; for 0, a thread per FB_PAR_WORK(d) of work N (d + 8) (the cost of a step
 * is about proportional to N (d + 8): 8 for the exp and the rest of a sample's weight), at
 * least FB_PAR_MIN_PANELS panels per thread, at most the OpenMP default. */
static long long fb_thread_count(long long N, long long d, long long NB, int n_threads)
{
#ifdef _OPENMP
    long long T;
    if (!fb_omp_usable()) {
        return 1;
    }
    if (n_threads > 0) {
        return n_threads;
    }
    T = N * (d + 8) / FB_PAR_WORK(d);
    if (T > NB / FB_PAR_MIN_PANELS) {
        T = NB / FB_PAR_MIN_PANELS;
    }
    if (T > omp_get_max_threads()) {
        T = omp_get_max_threads();
    }
    return T > 1 ? T : 1;
#else
    (void)N;
    (void)d;
    (void)NB;
    (void)n_threads;
    return 1;
#endif
}

int fb_gd_linear_f64(const double *Z, double *w, long long N, long long d, double lr, int loss,
                     int rule, long long step0, long long n_steps, const long long *rec_steps,
                     long long K, double *rec_w, double s_floor, long long *fail_step,
                     int n_threads, double *lo)
{
    fb_job job;
    const fb_driver *drivers;
    long long NB, b, i, j, n_par;
    double *P;
    int finite = 1;

    if (Z == NULL || w == NULL || fail_step == NULL || N < 1 || d < 1 || K < 0 || n_steps < 0
        || n_threads < 0 || (K > 0 && (rec_steps == NULL || rec_w == NULL))) {
        return -1;
    }
    if (loss != 0 && loss != 1) {
        return -2;
    }
    if (rule != 0 && rule != 1 && rule != 2) {
        return -3;
    }
    if (n_steps == 0) {
        *fail_step = step0;
        return 0;
    }

    NB = (N + FB_B - 1) / FB_B;
    n_par = fb_thread_count(N, d, NB, n_threads);
    if (lo != NULL) {
        n_par = 1; /* the threads keep copies of w; one lo needs one writer */
    }
    job.N = N;
    job.d = d;
    job.NB = NB;
    job.lr = lr;
    job.s_floor = s_floor;
    job.loss = loss;
    job.rule = rule;
    job.step0 = step0;
    job.n_steps = n_steps;
    job.rec_steps = rec_steps;
    job.K = K;
    job.rec_w = rec_w;
    job.w = w;
    job.lo = lo;
    job.status = 0;
    job.fail_step = step0;
    job.slot_buf = fb_round8(FB_SLOT_HEAD + d * FB_V);
    job.slot_stride = 2 * job.slot_buf + 2 * fb_round8(d);

    P = fb_alloc((size_t)(NB * d * FB_B));
    /* parallel: the slots of n_par threads, then the barrier (a whole cache line) */
    job.work = fb_alloc((size_t)(n_par > 1 ? n_par * job.slot_stride + 8 : d * FB_V + NB * FB_B));
    if (P == NULL || job.work == NULL) {
        fb_free(P);
        fb_free(job.work);
        return -4;
    }
    /* panels: P[b][j][i] = Z[16 b + i][j], zero past N (Z read row by row) */
    for (b = 0; b < NB; ++b) {
        double *Pb = P + b * d * FB_B;
        for (i = 0; i < FB_B; ++i) {
            const long long n = b * FB_B + i;
            for (j = 0; j < d; ++j) {
                Pb[j * FB_B + i] = n < N ? Z[n * d + j] : 0.0;
            }
        }
    }
    job.P = P;

    drivers = fb_drivers_base;
#if FB_HAVE_AVX2_CLONE
    if (fb_use_avx2()) {
        drivers = fb_drivers_avx2;
    }
#endif
    if (n_par > 1) {
#ifdef _OPENMP
        const fb_driver par = drivers[FB_DRIVER_PAR];
        job.barrier = (struct fb_barrier *)(void *)(job.work + n_par * job.slot_stride);
        job.barrier->count = 0;
        job.barrier->sense = 0;
        fb_omp_started();
#pragma omp parallel num_threads((int)n_par)
        par(&job);
#endif
    } else {
        drivers[fb_serial_driver(&job)](&job);
    }
    fb_free(P);
    fb_free(job.work);

    /* The reference would hand back a non-finite iterate made by the last step with status 0
     * (it is only tested at the next step). Report it instead: the iterate of step
     * step0 + n_steps fails the divergence test, as the next call would find. */
    if (job.status == 0) {
        for (j = 0; j < d; ++j) {
            finite &= isfinite(w[j]) != 0;
        }
        if (!finite) {
            job.status = 1;
        }
    }
    *fail_step = job.fail_step;
    return job.status;
}

#else /* not GCC or clang: no vector extensions */

int fb_gd_linear_f64(const double *Z, double *w, long long N, long long d, double lr, int loss,
                     int rule, long long step0, long long n_steps, const long long *rec_steps,
                     long long K, double *rec_w, double s_floor, long long *fail_step,
                     int n_threads, double *lo)
{
    (void)lo;
    (void)Z, (void)w, (void)N, (void)d, (void)lr, (void)loss, (void)rule, (void)step0;
    (void)n_steps, (void)rec_steps, (void)K, (void)rec_w, (void)s_floor, (void)fail_step;
    (void)n_threads;
    return -5;
}

#endif
