/* Full-width linear circular convolutional networks in long double, in the Fourier domain.
 *
 * The float64 kernels (src/fastbias/kernels/_numba_conv.py, fb_deep_f64.c) carry the L
 * filters as half spectra: beta_hat = prod_l w_hat_l (Gunasekar et al. Lemma 3), the margins
 * are inner products of the data's real Fourier rows with b = (c_j / d)(Re beta_hat,
 * Im beta_hat), and GD on filter l is w_hat_l += eta_t G_hat conj(prod_{k != l} w_hat_k)
 * (Lemma 10 for the real filter): O(N d + L d) per step. The long double tensor kernel
 * (fb_gd_tensor_ld) runs the same network in the time domain, O(L d^2) per step and a 70x
 * penalty over float64 when it was x87 throughout. This is the Fourier-domain step in long double: the data's DFT (O(N d^2),
 * once per call, with long double twiddles) and the filters' spectra, then per step the
 * margins, log-domain weights and G of fb_ld_step.h (the reference's formulas, shift = the
 * minimum margin) and the elementwise products. The iterates agree with the np.longdouble
 * reference (time-domain predictor and VJP) to long double round-off, not bit for bit.
 * The Fourier rows are held as exact double pairs (fb_ld_data of fb_ld_step.h: 80-bit loads
 * bound the x87 products, 50 -> 18 us/step for Convolutional(2), d = N = 64, CPU time on a
 * busy machine) and the exp loss's weights use fb_expl_fast. On AVX2 the weights are
 * fb_dd_exp_weights's double-double exp, the products offset sums, and the spectral part of
 * the step double-double on the spectra's pairs (fb_conv_dd below): then ~70% of a
 * Convolutional(2) step (d = N = 64, perf, share of the kernel's time) is the two products,
 * ~17% the spectral part, ~6% the exp.
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

#if FB_LD_HAVE_DD
/* The spectral part of a step in double-double on AVX2, the filters' spectra held as exact
 * pairs during a call. In long double it was ~30% of a Convolutional(2) step (perf: 80-bit
 * loads and stores of spec, pre, suf and upd around short x87 chains). Arrays (L, 2, Hp) with
 * Hp = H rounded up to four lanes (the padding is zero and stays zero). The update of spec is
 * FB_DD_UPDATE, each entry rounded to long double, so that the state between calls (spec, long
 * double) is the state within one: chunked calls are one call bit for bit. */
typedef struct {
    long long L, H, Hp, nI, d;
    double *Sh, *Sl; /* the filters' spectra */
    double *Ph, *Pl; /* prefix products prod_{k<l} w_hat_k (l >= 1) */
    double *Uh, *Ul; /* the updates G_hat conj(prod_{k != l} w_hat_k) */
    double *cwh, *cwl, *bh, *bl, *grh, *grl, *gih, *gil, *tmp, *gph, *gpl;
} fb_conv_dd;

/* b (the margins' vector, d pairs) and the prefix products from the spectra */
FB_DD_TARGET static void fb_conv_dd_b(fb_conv_dd *C)
{
    const long long L = C->L, H = C->H, Hp = C->Hp, nI = C->nI;
    long long j, l;
    for (j = 0; j < Hp; j += 4) {
        fb_dd4 br = fb_dd4_load(C->Sh + j, C->Sl + j), bi = fb_dd4_load(C->Sh + Hp + j, C->Sl + Hp + j);
        fb_dd4 cw = fb_dd4_load(C->cwh + j, C->cwl + j), x;
        for (l = 1; l < L; ++l) {
            const long long o = 2 * l * Hp + j;
            const fb_dd4 wr = fb_dd4_load(C->Sh + o, C->Sl + o);
            const fb_dd4 wi = fb_dd4_load(C->Sh + o + Hp, C->Sl + o + Hp);
            const fb_dd4 nr = fb_dd4_add(fb_dd4_mul(br, wr), fb_dd4_neg(fb_dd4_mul(bi, wi)));
            fb_dd4_store(C->Ph + o, C->Pl + o, br);
            fb_dd4_store(C->Ph + o + Hp, C->Pl + o + Hp, bi);
            bi = fb_dd4_add(fb_dd4_mul(br, wi), fb_dd4_mul(bi, wr));
            br = nr;
        }
        x = fb_dd4_mul(cw, br);
        fb_dd4_store(C->tmp + j, C->tmp + Hp + j, x);
        x = fb_dd4_mul(cw, bi);
        fb_dd4_store(C->tmp + 2 * Hp + j, C->tmp + 3 * Hp + j, x);
    }
    for (j = 0; j < H; ++j) {
        C->bh[j] = C->tmp[j];
        C->bl[j] = C->tmp[Hp + j];
    }
    for (j = 1; j <= nI; ++j) {
        C->bh[H - 1 + j] = C->tmp[2 * Hp + j];
        C->bl[H - 1 + j] = C->tmp[3 * Hp + j];
    }
}

/* the updates U_l = G_hat conj(pre_l suf_l) (G_hat from gph + gpl, d pairs); returns
 * ||g||^2 = sum_l sum_j cw_j |U_l[j]|^2 */
FB_DD_TARGET static long double fb_conv_dd_upd(fb_conv_dd *C)
{
    const long long L = C->L, H = C->H, Hp = C->Hp, nI = C->nI;
    fb_dd4 acc;
    double ah[4], al[4];
    long long j, l;
    long double n2 = 0.0L;
    for (j = 0; j < Hp; ++j) {
        C->grh[j] = j < H ? C->gph[j] : 0.0;
        C->grl[j] = j < H ? C->gpl[j] : 0.0;
        C->gih[j] = (j >= 1 && j <= nI) ? C->gph[H - 1 + j] : 0.0;
        C->gil[j] = (j >= 1 && j <= nI) ? C->gpl[H - 1 + j] : 0.0;
    }
    acc.h = _mm256_setzero_pd();
    acc.l = acc.h;
    for (j = 0; j < Hp; j += 4) {
        const fb_dd4 gr = fb_dd4_load(C->grh + j, C->grl + j);
        const fb_dd4 gi = fb_dd4_load(C->gih + j, C->gil + j);
        const fb_dd4 cw = fb_dd4_load(C->cwh + j, C->cwl + j);
        fb_dd4 sr, si, pr, pi, ur, ui;
        sr.h = _mm256_set1_pd(1.0);
        sr.l = _mm256_setzero_pd();
        si.h = sr.l;
        si.l = sr.l;
        for (l = L - 1; l >= 0; --l) {
            const long long o = 2 * l * Hp + j;
            if (l == 0) { /* pre_0 = 1 */
                pr = sr;
                pi = si;
            } else if (l == L - 1) { /* suf = 1 */
                pr = fb_dd4_load(C->Ph + o, C->Pl + o);
                pi = fb_dd4_load(C->Ph + o + Hp, C->Pl + o + Hp);
            } else {
                const fb_dd4 ar = fb_dd4_load(C->Ph + o, C->Pl + o);
                const fb_dd4 ai = fb_dd4_load(C->Ph + o + Hp, C->Pl + o + Hp);
                pr = fb_dd4_add(fb_dd4_mul(ar, sr), fb_dd4_neg(fb_dd4_mul(ai, si)));
                pi = fb_dd4_add(fb_dd4_mul(ar, si), fb_dd4_mul(ai, sr));
            }
            ur = fb_dd4_add(fb_dd4_mul(gr, pr), fb_dd4_mul(gi, pi));
            ui = fb_dd4_add(fb_dd4_mul(gi, pr), fb_dd4_neg(fb_dd4_mul(gr, pi)));
            fb_dd4_store(C->Uh + o, C->Ul + o, ur);
            fb_dd4_store(C->Uh + o + Hp, C->Ul + o + Hp, ui);
            acc = fb_dd4_add(acc, fb_dd4_mul(cw, fb_dd4_add(fb_dd4_mul(ur, ur), fb_dd4_mul(ui, ui))));
            if (l > 0) {
                const fb_dd4 wr = fb_dd4_load(C->Sh + o, C->Sl + o);
                const fb_dd4 wi = fb_dd4_load(C->Sh + o + Hp, C->Sl + o + Hp);
                if (l == L - 1) {
                    sr = wr;
                    si = wi;
                } else {
                    const fb_dd4 nr = fb_dd4_add(fb_dd4_mul(sr, wr), fb_dd4_neg(fb_dd4_mul(si, wi)));
                    si = fb_dd4_add(fb_dd4_mul(sr, wi), fb_dd4_mul(si, wr));
                    sr = nr;
                }
            }
        }
    }
    _mm256_storeu_pd(ah, acc.h);
    _mm256_storeu_pd(al, acc.l);
    for (j = 0; j < 4; ++j) {
        n2 += (long double)ah[j] + al[j];
    }
    return n2;
}

/* spec += factor U, each entry rounded to long double (FB_DD_UPDATE) */
FB_DD_TARGET static void fb_conv_dd_update(fb_conv_dd *C, long double factor)
{
    const __m256d mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7ff0000000000000LL));
    const __m256d kq = _mm256_set1_pd(0x1.8p-11);
    const double f_h = (double)factor, f_l = (double)(factor - (long double)f_h);
    const __m256d F = _mm256_set1_pd(f_h), Fl = _mm256_set1_pd(f_l);
    long long j;
    for (j = 0; j < 2 * C->L * C->Hp; j += 4) {
        const __m256d xh = _mm256_loadu_pd(C->Sh + j), xl = _mm256_loadu_pd(C->Sl + j);
        const __m256d G = _mm256_loadu_pd(C->Uh + j), Gl = _mm256_loadu_pd(C->Ul + j);
        __m256d nh, nl;
        FB_DD_UPDATE(xh, xl, F, Fl, G, Gl, mask, kq, nh, nl);
        _mm256_storeu_pd(C->Sh + j, nh);
        _mm256_storeu_pd(C->Sl + j, nl);
    }
}

/* spec (long double, (L, 2, H)) from the pairs: exact */
static void fb_conv_dd_out(const fb_conv_dd *C, long double *spec)
{
    long long l, j;
    for (l = 0; l < 2 * C->L; ++l) {
        for (j = 0; j < C->H; ++j) {
            spec[l * C->H + j] = (long double)C->Sh[l * C->Hp + j] + C->Sl[l * C->Hp + j];
        }
    }
}

/* the pairs from spec and cw; returns 0 (no pairs) if some |spec| >= 1e300 or not finite */
static int fb_conv_dd_init(fb_conv_dd *C, const long double *spec, const long double *cw)
{
    long long l, j;
    memset(C->Sh, 0, (size_t)(12 * C->L * C->Hp + 10 * C->Hp + 4 * C->d) * sizeof(double));
    for (l = 0; l < 2 * C->L; ++l) {
        for (j = 0; j < C->H; ++j) {
            const long double x = spec[l * C->H + j];
            if (!(fabsl(x) < 1e300L)) {
                return 0;
            }
            C->Sh[l * C->Hp + j] = (double)x;
            C->Sl[l * C->Hp + j] = (double)(x - (long double)C->Sh[l * C->Hp + j]);
        }
    }
    for (j = 0; j < C->H; ++j) {
        C->cwh[j] = (double)cw[j];
        C->cwl[j] = (double)(cw[j] - (long double)C->cwh[j]);
    }
    return 1;
}
#endif

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
    int ddm = 0; /* the spectral part in double-double (fb_conv_dd) */
#if FB_LD_HAVE_DD
    fb_conv_dd C;
    double *cbuf = NULL;
#endif

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
#if FB_LD_HAVE_DD
    if (use_dd) {
        const long long Hp = (H + 3) / 4 * 4;
        cbuf = (double *)malloc((size_t)(12 * L * Hp + 10 * Hp + 4 * d) * sizeof(double));
        if (cbuf != NULL) {
            C.L = L;
            C.H = H;
            C.Hp = Hp;
            C.nI = nI;
            C.d = d;
            C.Sh = cbuf;
            C.Sl = C.Sh + 2 * L * Hp;
            C.Ph = C.Sl + 2 * L * Hp;
            C.Pl = C.Ph + 2 * L * Hp;
            C.Uh = C.Pl + 2 * L * Hp;
            C.Ul = C.Uh + 2 * L * Hp;
            C.cwh = C.Ul + 2 * L * Hp;
            C.cwl = C.cwh + Hp;
            C.grh = C.cwl + Hp;
            C.grl = C.grh + Hp;
            C.gih = C.grl + Hp;
            C.gil = C.gih + Hp;
            C.tmp = C.gil + Hp;
            C.bh = C.tmp + 4 * Hp;
            C.bl = C.bh + d;
            C.gph = C.bl + d;
            C.gpl = C.gph + d;
            ddm = fb_conv_dd_init(&C, spec, cw);
        }
    }
#endif

    for (t = step0; t < step0 + n_steps; ++t) {
        long double s = 0.0L, log_scale, exp_log_scale = 1.0L, factor, total = 0.0L, n2 = 0.0L;
        long long r_m, i_min = 0, r_g;
#if FB_LD_HAVE_DD
        if (ddm) {
            fb_conv_dd_b(&C);
            r_m = fb_ld_products(D.Zh, D.has_lo ? D.Zl : NULL, D.ZTh, D.has_lo ? D.ZTl : NULL, N,
                                 d, b, m, vsplit, use_dd, C.bh, C.bl, exp_dd ? mh : NULL, ml, &D,
                                 D.rabs, sigma);
        } else
#endif
        {
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
        }
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
            r_g = fb_ld_products(D.ZTh, D.has_lo ? D.ZTl : NULL, D.Zh, D.has_lo ? D.Zl : NULL, d,
                                 N, q, Gv, vsplit, use_dd, qh, ql, ddm ? C.gph : NULL,
                                 ddm ? C.gpl : NULL, &D, D.cabs, sigma);
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
            r_g = fb_ld_products(D.ZTh, D.has_lo ? D.ZTl : NULL, D.Zh, D.has_lo ? D.Zl : NULL, d,
                                 N, q, Gv, vsplit, use_dd, NULL, NULL,
#if FB_LD_HAVE_DD
                                 ddm ? C.gph : NULL, ddm ? C.gpl : NULL,
#else
                                 NULL, NULL,
#endif
                                 &D, D.cabs, sigma);
        }
#if FB_LD_HAVE_DD
        if (ddm) {
            if (r_g < d) { /* G from the x87 loop: split */
                for (j = 0; j < d; ++j) {
                    C.gph[j] = (double)Gv[j];
                    C.gpl[j] = (double)(Gv[j] - (long double)C.gph[j]);
                }
            }
            n2 = fb_conv_dd_upd(&C);
        } else
#endif
        {
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
#if FB_LD_HAVE_DD
        if (ddm) {
            fb_conv_dd_update(&C, factor);
        } else
#endif
        {
            for (j = 0; j < 2 * L * H; ++j) {
                spec[j] += factor * upd[j];
            }
        }
        if (k < K && rec_steps[k] == t + 1) {
#if FB_LD_HAVE_DD
            if (ddm) {
                fb_conv_dd_out(&C, spec);
            }
#endif
            for (l = 0; l < L; ++l) {
                fb_ld_inverse(spec + 2 * l * H, spec + (2 * l + 1) * H, d, H, cw, ct, st,
                              rec_theta + k * L * d + l * d);
            }
            ++k;
        }
    }
#if FB_LD_HAVE_DD
    if (ddm) {
        fb_conv_dd_out(&C, spec);
    }
    free(cbuf);
#endif
    for (l = 0; l < L; ++l) {
        fb_ld_inverse(spec + 2 * l * H, spec + (2 * l + 1) * H, d, H, cw, ct, st, theta + l * d);
    }
    *fail_step = status ? t : step0 + n_steps;
    free(vsplit);
    free(D.Zh);
    free(ZF);
    return status;
}
