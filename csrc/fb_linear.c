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

#include "fb_ld_step.h"

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
    long long t, j, k = 0;
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

        /* m = Z wk and the divergence test */
        if (fb_ld_margins(Z, wk, m, N, d, s_floor, &s)) {
            status = 1;
            break;
        }

        log_scale = fb_ld_weights_G(Z, m, q, G, N, d, s, loss, rule, &exp_log_scale, &total);

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
