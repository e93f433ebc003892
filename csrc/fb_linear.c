/* Gradient descent on a linear predictor in long double (x87 80-bit extended precision on
 * x86-64).
 *
 * The arithmetic is exactly that of the NumPy specification
 * src/fastbias/kernels/_reference.py (gd_linear, loss_weights, scaled_loss_sum), done in
 * long double with expl, log1pl and sqrtl: the same operations on the same operands, sums
 * taken in index order. The loops are arranged for the x87 unit (see the comments below); no
 * rearrangement changes a result. Do not compile with -ffast-math: the point of this kernel is
 * honest extended-precision arithmetic (and -ffast-math would inline a less accurate expl).
 */

#include <math.h>
#include <stdlib.h>

#include "fastbias.h"

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

/* The kernel; d is a compile-time constant in the specialized copies. w and G live in the
 * local arrays wl and Gl when d <= FB_SMALL_D (w is copied back at the end, at every record
 * and on failure). Long doubles are kept in registers in the same format as in memory, so this
 * changes no result. */
static FB_ALWAYS_INLINE int fb_gd_linear_ld_impl(const long double *Z, long double *w,
                                                 long long N, const long long d, long double lr,
                                                 int loss, int rule, long long step0,
                                                 long long n_steps, const long long *rec_steps,
                                                 long long K, long double *rec_w,
                                                 long double s_floor, long long *fail_step)
{
    long double wl[FB_SMALL_D], Gl[FB_SMALL_D];
    long double *m, *q, *G, *wk;
    /* s is read from memory in the loops that call expl: every x87 register is clobbered by a
     * call, and an 80-bit spill and reload per call costs more than the reload alone. */
    volatile long double s_mem = 0.0L;
    long long t, n, j, k = 0;
    const int small = d <= FB_SMALL_D;
    int status = 0;

    /* work arrays: margins m (N), weights q (N) and, for large d, the gradient direction
     * G = Z^T q (d) */
    m = (long double *)malloc((size_t)(2 * N + (small ? 0 : d)) * sizeof(long double));
    if (m == NULL) {
        return -4;
    }
    q = m + N;
    if (small) {
        G = Gl;
        wk = wl;
        for (j = 0; j < d; ++j) {
            wl[j] = w[j];
        }
    } else {
        G = q + N;
        wk = w;
    }

    for (t = step0; t < step0 + n_steps; ++t) {
        long double s, log_scale, exp_log_scale = 1.0L, factor, total = 0.0L;
        const long double *z;

        /* m = Z @ w and the divergence test "min(m) > s_floor" (false for NaN too) */
        s = 0.0L;
        for (n = 0, z = Z; n < N; ++n, z += d) {
            long double acc = 0.0L;
            for (j = 0; j < d; ++j) {
                acc += z[j] * wk[j];
            }
            m[n] = acc;
            if (!(acc > s_floor)) {
                status = 1;
                break;
            }
            if (n == 0 || acc < s) {
                s = acc;
            }
        }
        if (status) {
            break;
        }
        s_mem = s;

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

        /* step size eta_t times the scale of the gradient */
        if (rule == 0) {
            if (loss == 0) {
                exp_log_scale = expl(log_scale); /* log_scale = -s may be > 0 here */
            }
            factor = lr * exp_log_scale;
        } else if (rule == 1) {
            long double gg = 0.0L;
            for (j = 0; j < d; ++j) {
                gg += G[j] * G[j];
            }
            factor = lr / sqrtl(gg);
        } else {
            factor = lr / total;
        }

        for (j = 0; j < d; ++j) {
            wk[j] += factor * G[j];
        }

        if (k < K && rec_steps[k] == t + 1) {
            for (j = 0; j < d; ++j) {
                rec_w[k * d + j] = wk[j];
            }
            ++k;
        }
    }

    if (small) {
        for (j = 0; j < d; ++j) {
            w[j] = wl[j];
        }
    }
    *fail_step = status ? t : step0 + n_steps;
    free(m);
    return status;
}

int fb_gd_linear_ld(const long double *Z, long double *w, long long N, long long d,
                    long double lr, int loss, int rule, long long step0, long long n_steps,
                    const long long *rec_steps, long long K, long double *rec_w,
                    long double s_floor, long long *fail_step)
{
    if (Z == NULL || w == NULL || fail_step == NULL || N < 1 || d < 1 || K < 0 || n_steps < 0
        || (K > 0 && (rec_steps == NULL || rec_w == NULL))) {
        return -1;
    }
    if (loss != 0 && loss != 1) {
        return -2;
    }
    if (rule != 0 && rule != 1 && rule != 2) {
        return -3;
    }
    /* copies specialized for the small dimensions of the planar and low-dimensional examples */
    switch (d) {
    case 1:
        return fb_gd_linear_ld_impl(Z, w, N, 1, lr, loss, rule, step0, n_steps, rec_steps, K,
                                    rec_w, s_floor, fail_step);
    case 2:
        return fb_gd_linear_ld_impl(Z, w, N, 2, lr, loss, rule, step0, n_steps, rec_steps, K,
                                    rec_w, s_floor, fail_step);
    case 3:
        return fb_gd_linear_ld_impl(Z, w, N, 3, lr, loss, rule, step0, n_steps, rec_steps, K,
                                    rec_w, s_floor, fail_step);
    default:
        return fb_gd_linear_ld_impl(Z, w, N, d, lr, loss, rule, step0, n_steps, rec_steps, K,
                                    rec_w, s_floor, fail_step);
    }
}
