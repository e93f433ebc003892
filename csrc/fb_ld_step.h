/* Shared long double arithmetic of the extended-precision kernels (fb_linear.c,
 * fb_tensor_ld.c): the log-domain loss weights and G = Z^T q of _reference.loss_weights and
 * _reference.scaled_loss_sum, in long double, sums in index order. Static inline only: each
 * kernel gets its own copy, specialized for its constant d. */

#include <math.h>

#if defined(__GNUC__)
#define FB_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FB_ALWAYS_INLINE inline
#endif

/* Dimensions up to this use a stack copy of w and G, which the compiler keeps in registers
 * when the kernel is specialized for a constant d (see the dispatch at the end). */
#define FB_SMALL_D 4

/* Below this, expl(x) is exactly +0: half the smallest subnormal is e^-11399.5 for x87
 * extended and e^-11433.5 for IEEE quad long double (double long double is smaller still). */
static const long double FB_EXPL_ZERO_BELOW = -11500.0L;

/* expl(x) for x <= 0 (x = -(m_n - s) or -s with s >= 0), with two exact shortcuts:
 * expl(0) = 1 and expl(x) = +0 far below the subnormal range (there glibc's expl takes a slow
 * path that costs 2.5 calls). */
static inline long double fb_expl_nonpos(long double x)
{
    if (x == 0.0L) {
        return 1.0L;
    }
    if (x < FB_EXPL_ZERO_BELOW) {
        return 0.0L;
    }
    return expl(x);
}

/* np.logaddexp(0, x) = log(1 + exp(x)) without overflow (numpy's formula with y = 0). */
static inline long double fb_logaddexp0_ld(long double x)
{
    if (x > 0.0L) {
        return x + log1pl(expl(-x));
    }
    return log1pl(expl(x));
}

/* m = Z w and the divergence test "min(m) > s_floor" (false for NaN too): returns 0 and sets
 * *s = min(m), or returns 1 at the first margin that fails. */
static FB_ALWAYS_INLINE int fb_ld_margins(const long double *Z, const long double *w,
                                          long double *m, long long N, const long long d,
                                          long double s_floor, long double *s)
{
    const long double *z;
    long long n, j;
    long double smin = 0.0L;
    for (n = 0, z = Z; n < N; ++n, z += d) {
        long double acc = 0.0L;
        for (j = 0; j < d; ++j) {
            acc += z[j] * w[j];
        }
        m[n] = acc;
        if (!(acc > s_floor)) {
            return 1;
        }
        if (n == 0 || acc < smin) {
            smin = acc;
        }
    }
    *s = smin;
    return 0;
}

/* Weights q_n (-l'(m_n) = exp(log_scale) q_n) of the margins m (minimum s), G = Z^T q and, for
 * rule 2, total = L / exp(log_scale); returns log_scale and sets *exp_log_scale_out to
 * expl(log_scale) where it was computed on the way (1 otherwise). */
static FB_ALWAYS_INLINE long double fb_ld_weights_G(const long double *Z, const long double *m,
                                                    long double *q, long double *G, long long N,
                                                    const long long d, long double s, int loss,
                                                    int rule, long double *exp_log_scale_out,
                                                    long double *total_out)
{
    /* s is read from memory in the loops that call expl: every x87 register is clobbered by a
     * call, and an 80-bit spill and reload per call costs more than the reload alone. */
    volatile long double s_mem = s;
    long double log_scale, exp_log_scale = 1.0L, total = 0.0L;
    const long double *z;
    long long n, j;

    for (j = 0; j < d; ++j) {
        G[j] = 0.0L;
    }

    /* loss_weights (-l'(m_n) = exp(log_scale) q_n), G = Z^T q and, for rule 2,
     * scaled_loss_sum (total = L / exp(log_scale)). The exponentials are taken in a loop
     * of their own: a call clobbers every x87 register, so the accumulators of G would
     * otherwise be spilled and reloaded around each call. */
    if (loss == 0) {
        log_scale = -s;
        for (n = 0; n < N; ++n) {
            q[n] = fb_expl_nonpos(-(m[n] - s_mem)); /* q = E */
        }
        for (n = 0, z = Z; n < N; ++n, z += d) {
            const long double E = q[n];
            for (j = 0; j < d; ++j) {
                G[j] += z[j] * E;
            }
            total += E;
        }
    } else if (s < 0.0L) {
        log_scale = 0.0L;
        for (n = 0; n < N; ++n) {
            q[n] = 1.0L / (1.0L + expl(m[n]));
        }
        for (n = 0, z = Z; n < N; ++n, z += d) {
            const long double qn = q[n];
            for (j = 0; j < d; ++j) {
                G[j] += z[j] * qn;
            }
        }
        if (rule == 2) {
            for (n = 0; n < N; ++n) {
                total += fb_logaddexp0_ld(-m[n]);
            }
        }
    } else {
        const long double es = fb_expl_nonpos(-s);
        log_scale = -s;
        exp_log_scale = es; /* = expl(log_scale), reused by rule 0 */
        for (n = 0; n < N; ++n) {
            q[n] = fb_expl_nonpos(-(m[n] - s_mem)); /* E, turned into q below */
        }
        if (rule == 2) {
            for (n = 0; n < N; ++n) {
                const long double E = q[n];
                const long double x = es * E;
                /* 1e-300 is the double of the specification, compared exactly */
                total += E * ((x > 1e-300) ? log1pl(x) / x : 1.0L);
            }
        }
        for (n = 0, z = Z; n < N; ++n, z += d) {
            const long double qn = q[n] / (1.0L + es * q[n]);
            for (j = 0; j < d; ++j) {
                G[j] += z[j] * qn;
            }
        }
    }

    *exp_log_scale_out = exp_log_scale;
    *total_out = total;
    return log_scale;
}
