/* Full-width linear circular convolutional networks in long double, in the Fourier domain.
 *
 * The float64 kernels (src/fastbias/kernels/_numba_conv.py, fb_deep_f64.c) carry the L
 * filters as half spectra: beta_hat = prod_l w_hat_l (Gunasekar et al. Lemma 3), the margins
 * are inner products of the data's real Fourier rows with b = (c_j / d)(Re beta_hat,
 * Im beta_hat), and GD on filter l is w_hat_l += eta_t G_hat conj(prod_{k != l} w_hat_k)
 * (Lemma 10 for the real filter): O(N d + L d) per step. The long double tensor kernel
 * (fb_tensor_ld.c) runs the same network in the time domain, O(L d^2) per step and a 70x
 * penalty over float64. This is the Fourier-domain step in long double: the data's DFT (O(N d^2),
 * once per call, with long double twiddles) and the filters' spectra, then per step the
 * margins, log-domain weights and G of fb_ld_step.h (the reference's formulas, shift = the
 * minimum margin) and the elementwise products. The iterates agree with the np.longdouble
 * reference (time-domain predictor and VJP) to long double round-off, not bit for bit.
 * The Fourier rows are held as exact double pairs (fb_ld_data of fb_ld_step.h: 80-bit loads
 * bound the x87 products, 50 -> 18 us/step for Convolutional(2), d = N = 64, CPU time on a
 * busy machine) and the exp loss's weights use fb_expl_fast.
 *
 * State: spec (L, 2, H) long double, the half spectra of the filters, kept by the caller
 * between calls (use_spec = 1: spec already holds the spectra of theta, as the previous call
 * left them), so that a run split into calls (chunks, checkpoints) is bit for bit one call;
 * theta receives the time-domain filters on return and rec_theta at the recorded steps.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastbias.h"
#define FB_LD_FAST_EXP 1 /* fb_expl_fast for the exp-loss weights (fb_ld_step.h) */
#include "fb_ld_step.h"
#include "fb_ld_dd.h"

static void fb_ld_twiddles(long long d, long double *ct, long double *st)
{
    long long r;
    for (r = 0; r < d; ++r) { /* 2 pi r / d in long double */
        const long double ang = 2.0L * 3.141592653589793238462643383279502884L * (long double)r
                                / (long double)d;
        ct[r] = cosl(ang);
        st[r] = sinl(ang);
    }
    ct[0] = 1.0L;
    st[0] = 0.0L;
    if (d % 2 == 0) {
        ct[d / 2] = -1.0L;
        st[d / 2] = 0.0L;
    }
    if (d % 4 == 0) {
        ct[d / 4] = 0.0L;
        st[d / 4] = 1.0L;
        ct[3 * d / 4] = 0.0L;
        st[3 * d / 4] = -1.0L;
    }
}

/* out (re H, im H) = the half spectrum of x (length d) */
static void fb_ld_spectrum(const long double *x, long long d, long long H, const long double *ct,
                           const long double *st, long double *re, long double *im)
{
    long long j, p, r;
    for (j = 0; j < H; ++j) {
        long double a = 0.0L, b = 0.0L;
        for (p = 0, r = 0; p < d; ++p) {
            a += x[p] * ct[r];
            b -= x[p] * st[r];
            r += j;
            if (r >= d) {
                r -= d;
            }
        }
        re[j] = a;
        im[j] = b;
    }
}

/* out[p] = sum_j cw[j] Re((re + i im)[j] exp(2 pi i p j / d)): the inverse real DFT */
static void fb_ld_inverse(const long double *re, const long double *im, long long d, long long H,
                          const long double *cw, const long double *ct, const long double *st,
                          long double *out)
{
    long long j, p, r;
    for (p = 0; p < d; ++p) {
        long double acc = 0.0L;
        for (j = 0, r = 0; j < H; ++j) {
            acc += cw[j] * (re[j] * ct[r] - im[j] * st[r]);
            r += p;
            if (r >= d) {
                r -= d;
            }
        }
        out[p] = acc;
    }
}

int fb_gd_conv_ld(const long double *Z, long double *theta, long double *spec, int use_spec,
                  long long N, long long d, long long L, long double lr, int loss, int rule,
                  long long step0, long long n_steps, const long long *rec_steps, long long K,
                  long double *rec_theta, long double s_floor, long long *fail_step)
{
    const long long H = d / 2 + 1, nI = d - H;
    long double *ZF, *ct, *st, *cw, *b, *m, *q, *Gv, *pre, *upd, *suf, *re, *im;
    long long t, k = 0, n, j, l;
    int status = 0;
    fb_ld_data D;
    double *vsplit;
    const int use_dd = fb_dd_use(), exp_dd = use_dd && loss == 0;
    double *mh, *ml, *qh, *ql, *sigma;

    if (Z == NULL || theta == NULL || spec == NULL || fail_step == NULL || N < 1 || d < 1
        || L < 1 || K < 0 || n_steps < 0 || (K > 0 && (rec_steps == NULL || rec_theta == NULL))) {
        return -1;
    }
    if (loss != 0 && loss != 1) {
        return -2;
    }
    if (rule != 0 && rule != 1 && rule != 2) {
        return -3;
    }
    ZF = (long double *)malloc(
        (size_t)(N * d + 3 * d + 2 * H + 2 * N + d + 2 * L * H * 2 + 2 * H + H + d)
        * sizeof(long double));
    if (ZF == NULL) {
        return -4;
    }
    ct = ZF + N * d;
    st = ct + d;
    b = st + d;
    cw = b + d;
    m = cw + H;
    q = m + N;
    Gv = q + N;
    pre = Gv + d;        /* (L, 2, H): pre[l] = prod_{k<l} w_hat_k */
    upd = pre + 2 * L * H; /* (L, 2, H) */
    suf = upd + 2 * L * H; /* (2, H) */
    re = suf + 2 * H;      /* (H) scratch */
    im = b;                /* (unused alias) */
    (void)im;
    fb_ld_twiddles(d, ct, st);
    for (j = 0; j < H; ++j) {
        cw[j] = (j == 0 || 2 * j == d ? 1.0L : 2.0L) / (long double)d;
    }
    /* the data's real Fourier rows: ZF[n] = (Re zhat_n[0..H-1], Im zhat_n[1..nI]) */
    for (n = 0; n < N; ++n) {
        long double *row = ZF + n * d;
        fb_ld_spectrum(Z + n * d, d, H, ct, st, row, re);
        for (j = 1; j <= nI; ++j) {
            row[H - 1 + j] = re[j];
        }
    }
    /* the Fourier rows as exact double pairs, and transposed (fb_ld_step.h) */
    {
        const int code = fb_ld_data_init(&D, ZF, N, d);
        if (code) {
            free(ZF);
            return code;
        }
        /* the split of v in fb_ld_products and its offsets, the margins' and exp weights'
         * pairs (2 N each) */
        vsplit = (double *)malloc((size_t)(3 * (N > d ? N : d) + 4 * N) * sizeof(double));
        if (vsplit == NULL) {
            free(D.Zh);
            free(ZF);
            return -4;
        }
    }
    mh = vsplit + 2 * (N > d ? N : d);
    ml = mh + N;
    qh = ml + N;
    ql = qh + N;
    sigma = ql + N; /* max(N, d): fb_ld_products's offsets */
    if (!use_spec) {
        for (l = 0; l < L; ++l) {
            fb_ld_spectrum(theta + l * d, d, H, ct, st, spec + 2 * l * H, spec + (2 * l + 1) * H);
        }
    }

    for (t = step0; t < step0 + n_steps; ++t) {
        long double s = 0.0L, log_scale, exp_log_scale = 1.0L, factor, total = 0.0L, n2 = 0.0L;
        long long r_m, i_min = 0;
        /* prefix products and b */
        for (j = 0; j < H; ++j) {
            long double br = spec[j], bi = spec[H + j];
            pre[j] = 1.0L;
            pre[H + j] = 0.0L;
            for (l = 1; l < L; ++l) {
                const long double wr = spec[2 * l * H + j], wi = spec[(2 * l + 1) * H + j];
                const long double nr = br * wr - bi * wi;
                pre[2 * l * H + j] = br;
                pre[(2 * l + 1) * H + j] = bi;
                bi = br * wi + bi * wr;
                br = nr;
            }
            b[j] = cw[j] * br;
            if (j >= 1 && j <= nI) {
                b[H - 1 + j] = cw[j] * bi;
            }
        }
        r_m = fb_ld_products(D.Zh, D.has_lo ? D.Zl : NULL, D.ZTh, D.has_lo ? D.ZTl : NULL, N, d,
                             b, m, vsplit, use_dd, NULL, NULL, exp_dd ? mh : NULL, ml, &D, D.rabs,
                             sigma);
        for (n = 0; n < N; ++n) { /* the divergence test "min(m) > s_floor" (false for NaN) */
            if (!(m[n] > s_floor)) {
                status = 1;
                break;
            }
            if (n == 0 || m[n] < s) {
                s = m[n];
                i_min = n;
            }
        }
        if (status) {
            break;
        }
#if FB_LD_HAVE_DD
        if (exp_dd && r_m == N) {
            /* the exp loss's weights in double-double, from the unrounded margins, straight
             * into the G product as pairs (fb_dd_exp_weights) */
            log_scale = -s;
            total = fb_dd_exp_weights(mh, ml, i_min, N, qh, ql, rule == 2);
            fb_ld_products(D.ZTh, D.has_lo ? D.ZTl : NULL, D.Zh, D.has_lo ? D.Zl : NULL, d, N, q,
                           Gv, vsplit, use_dd, qh, ql, NULL, NULL, &D, D.cabs, sigma);
        } else
#endif
        {
            /* the weights (and the loss-scaled rule's sum) of fb_ld_step.h, without its G:
             * with d = 0 it leaves q = E in the logistic shifted branch, finished here */
            log_scale = fb_ld_weights_G(ZF, m, q, Gv, N, 0, s, loss, rule, &exp_log_scale,
                                        &total);
            if (loss == 1 && !(s < 0.0L)) {
                for (n = 0; n < N; ++n) {
                    q[n] = q[n] / (1.0L + exp_log_scale * q[n]);
                }
            }
            fb_ld_products(D.ZTh, D.has_lo ? D.ZTl : NULL, D.Zh, D.has_lo ? D.Zl : NULL, d, N,
                           q, Gv, vsplit, use_dd, NULL, NULL, NULL, NULL, &D, D.cabs, sigma);
        }
        /* upd_l = G_hat conj(pre_l suf_l), suf running from the last layer */
        for (j = 0; j < H; ++j) {
            suf[j] = 1.0L;
            suf[H + j] = 0.0L;
        }
        for (l = L - 1; l >= 0; --l) {
            for (j = 0; j < H; ++j) {
                const long double gr = Gv[j], gi = (j >= 1 && j <= nI) ? Gv[H - 1 + j] : 0.0L;
                const long double ar = pre[2 * l * H + j], ai = pre[(2 * l + 1) * H + j];
                const long double sr = suf[j], si = suf[H + j];
                const long double pr = ar * sr - ai * si, pi = ar * si + ai * sr;
                const long double ur = gr * pr + gi * pi, ui = gi * pr - gr * pi;
                const long double wr = spec[2 * l * H + j], wi = spec[(2 * l + 1) * H + j];
                upd[2 * l * H + j] = ur;
                upd[(2 * l + 1) * H + j] = ui;
                n2 += cw[j] * (ur * ur + ui * ui);
                suf[j] = sr * wr - si * wi;
                suf[H + j] = sr * wi + si * wr;
            }
        }
        if (!(n2 < (long double)INFINITY)) {
            status = 1;
            break;
        }
        if (rule == 0) {
            if (loss == 0) {
                exp_log_scale = expl(log_scale);
            }
            factor = lr * exp_log_scale;
        } else if (rule == 1) {
            factor = n2 > 0.0L ? lr / sqrtl(n2) : 0.0L;
        } else {
            factor = lr / total;
        }
        for (j = 0; j < 2 * L * H; ++j) {
            spec[j] += factor * upd[j];
        }
        if (k < K && rec_steps[k] == t + 1) {
            for (l = 0; l < L; ++l) {
                fb_ld_inverse(spec + 2 * l * H, spec + (2 * l + 1) * H, d, H, cw, ct, st,
                              rec_theta + k * L * d + l * d);
            }
            ++k;
        }
    }
    for (l = 0; l < L; ++l) {
        fb_ld_inverse(spec + 2 * l * H, spec + (2 * l + 1) * H, d, H, cw, ct, st, theta + l * d);
    }
    *fail_step = status ? t : step0 + n_steps;
    free(vsplit);
    free(D.Zh);
    free(ZF);
    return status;
}
