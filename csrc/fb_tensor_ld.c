/* Gradient descent on a linear tensor network f(x) = M(x) o (v_1, ..., v_L) (Yun et al. 2021,
 * eq. 6) in long double. Diagonal, convolutional (any filter sizes) and fully connected linear
 * networks are tensor networks (Tensor.diagonal / .convolutional / .fully_connected), so this
 * one kernel gives them all precision="extended".
 *
 * The data tensor is given by its nonzeros: entry e contributes vals[e] * prod_l theta[pos[e,l]]
 * to beta[jidx[e]], where pos holds global positions into the flat parameter vector theta.
 * A step is that of _reference.gd_model: beta = P(theta), margins m = Z beta, the log-domain
 * weights and G = Z^T q (fb_ld_step.h), the VJP g = J_P^T G, and theta += eta_t g with the
 * normalized rule dividing by ||g||. Same rules as fb_linear.c: no -ffast-math. */

#include <stdlib.h>

#include "fastbias.h"
#include "fb_ld_step.h"

int fb_gd_tensor_ld(const long double *Z, long double *theta, long long N, long long d,
                    long long P, long long nnz, long long L, const long long *jidx,
                    const long long *pos, const long double *vals, long double lr, int loss,
                    int rule, long long step0, long long n_steps, const long long *rec_steps,
                    long long K, long double *rec_theta, long double s_floor,
                    long long *fail_step)
{
    long double *m, *q, *G, *beta, *g;
    long long t, j, e, l, i, k = 0;
    int status = 0;

    if (Z == NULL || theta == NULL || fail_step == NULL || jidx == NULL || pos == NULL
        || vals == NULL || N < 1 || d < 1 || P < 1 || nnz < 0 || L < 1 || K < 0 || n_steps < 0
        || (K > 0 && (rec_steps == NULL || rec_theta == NULL))) {
        return -1;
    }
    if (loss != 0 && loss != 1) {
        return -2;
    }
    if (rule != 0 && rule != 1 && rule != 2) {
        return -3;
    }
    for (e = 0; e < nnz; ++e) {
        if (jidx[e] < 0 || jidx[e] >= d) {
            return -1;
        }
        for (l = 0; l < L; ++l) {
            if (pos[e * L + l] < 0 || pos[e * L + l] >= P) {
                return -1;
            }
        }
    }
    /* work arrays: margins m, weights q (N each), G and beta (d each), g (P) */
    m = (long double *)malloc((size_t)(2 * N + 2 * d + P) * sizeof(long double));
    if (m == NULL) {
        return -4;
    }
    q = m + N;
    G = q + N;
    beta = G + d;
    g = beta + d;

    for (t = step0; t < step0 + n_steps; ++t) {
        long double s = 0.0L, log_scale, exp_log_scale = 1.0L, factor, total = 0.0L, gg;

        /* beta = P(theta): the multilinear contraction, entries in index order */
        for (j = 0; j < d; ++j) {
            beta[j] = 0.0L;
        }
        for (e = 0; e < nnz; ++e) {
            long double prod = vals[e];
            for (l = 0; l < L; ++l) {
                prod *= theta[pos[e * L + l]];
            }
            beta[jidx[e]] += prod;
        }
        /* m = Z beta and the divergence test */
        if (fb_ld_margins(Z, beta, m, N, d, s_floor, &s)) {
            status = 1;
            break;
        }
        log_scale = fb_ld_weights_G(Z, m, q, G, N, d, s, loss, rule, &exp_log_scale, &total);

        /* g = J_P(theta)^T G: entry e adds vals[e] G[jidx[e]] prod_{k != l} theta[pos[e,k]]
         * to g[pos[e,l]] */
        for (i = 0; i < P; ++i) {
            g[i] = 0.0L;
        }
        for (e = 0; e < nnz; ++e) {
            const long double ge = vals[e] * G[jidx[e]];
            for (l = 0; l < L; ++l) {
                long double prod = ge;
                long long kk;
                for (kk = 0; kk < L; ++kk) {
                    if (kk != l) {
                        prod *= theta[pos[e * L + kk]];
                    }
                }
                g[pos[e * L + l]] += prod;
            }
        }

        /* a gradient that is not finite stops the run here, whatever the rule (as the
         * reference's test of ||g||; the margins of the next iterate need not catch it) */
        gg = 0.0L;
        for (i = 0; i < P; ++i) {
            gg += g[i] * g[i];
        }
        if (!(gg < (long double)INFINITY)) {
            status = 1;
            break;
        }
        /* step size eta_t times the scale of the gradient */
        if (rule == 0) {
            if (loss == 0) {
                exp_log_scale = expl(log_scale);
            }
            factor = lr * exp_log_scale;
        } else if (rule == 1) {
            factor = gg > 0.0L ? lr / sqrtl(gg) : 0.0L;
        } else {
            factor = lr / total;
        }
        for (i = 0; i < P; ++i) {
            theta[i] += factor * g[i];
        }
        if (k < K && rec_steps[k] == t + 1) {
            for (i = 0; i < P; ++i) {
                rec_theta[k * P + i] = theta[i];
            }
            ++k;
        }
    }
    *fail_step = status ? t : step0 + n_steps;
    free(m);
    return status;
}
