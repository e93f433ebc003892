/* Gradient descent on deep linear models beta = P(theta) in float64 (diagonal, fully
 * connected, tensor and full-width circular convolutional networks).
 *
 * Same steps as the numba kernels of src/fastbias/kernels/_numba_models.py, _numba_tensor.py
 * and _numba_conv.py (specification: _reference.gd_model with the models' predictor and VJP)
 * up to round-off, for the exponential and logistic losses, while the parameters stay below
 * 2^16 in norm (the numba kernels then start carrying theta = 2^e theta_s; this kernel
 * stops instead, return code 2, and the caller continues with the numba kernel, which gives
 * the same iterates since that rescaling is exact).
 *
 * Where the time goes. A step is: the predictor beta = P(theta) (O(P)), the margins Z beta,
 * the weights q and G = Z^T q (O(N d) each), the VJP and the update (O(P)). The numba kernels
 * read Z twice per step (margins, then G); for FullyConnected([50]) at N = 200, d = 50, Z is
 * 80 kB, more than the 32 kB L1 of this machine's cores, so both passes stream it from L2,
 * and the O(P) part makes 5 more passes over the 20 kB of parameters (outer product into g,
 * W^T a, ||g||, update, ||theta||). Here the data goes through the panel pass of
 * fb_f64_core.h (fb_linear_f64.c's): Z transposed in panels of 16 samples, margins, exp and
 * the panel's contribution to G while the panel is in L1, so Z is read once per step; the
 * VJP makes no g for the fully connected layers (||g||^2 = sum_l ||a_l||^2 ||r_{l+1}||^2 is
 * exact algebra) and the update W += c a r^T is one pass that also sums ||theta||^2.
 *
 * Compiled like fb_linear_f64.c: AVX2+FMA and baseline copies chosen at run time, fused
 * multiply-adds on (the pragma below), no -ffast-math.
 */

#if defined(__clang__)
#pragma STDC FP_CONTRACT ON
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast", "schedule-insns", "sched-pressure")
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastbias.h"

#if defined(__GNUC__)

#include "fb_f64_core.h"

enum { FB_DEEP_DIAG = 0, FB_DEEP_FC = 1, FB_DEEP_TENSOR = 2, FB_DEEP_CONV = 3 };

/* ||theta_s||^2 above this hands the run back to the numba kernel (its RESCALE_BITS = 16) */
#define FB_DEEP_T2_HI 4294967296.0

/* The model of a run: sizes, description and scratch (one allocation, fb_deep_alloc). */
typedef struct {
    long long d, P, L;
    /* fully connected: layer l < L-1 is W_l (dims[l] x dims[l+1]) at offsets[l], the last
     * is w_L (dims[L-1]); right[l] (row l of L x width) = W_l .. w_L, a / b: W_l^T vectors */
    const long long *dims, *offsets;
    long long width;
    double *right, *avec; /* avec: a_l for every layer, L x width */
    /* tensor: nonzero e adds vals[e] prod_l theta[pos[e L + l]] to beta[jidx[e]] */
    long long nnz;
    const long long *jidx;
    long long *pos;
    const double *vals;
    /* convolutional (every layer full width, in the Fourier domain) */
    long long H, nI;
    double *spec; /* (L, 2, H), the state */
    double *cw, *ctab, *stab, *pre, *upd, *suf, *Gh;
    /* all */
    double *beta, *G, *g, *prefix;
} fb_model;

/* ---------------------------------------------------------------------------------------- */
/* Small vector helpers over contiguous doubles. */

/* sum_i a[i] b[i] */
FB_INLINE double fb_dot(const double *FB_RESTRICT a, const double *FB_RESTRICT b, long long n)
{
    fb_vd s0 = fb_splat(0.0), s1 = fb_splat(0.0);
    double tail = 0.0;
    long long i = 0;
    for (; i + 2 * FB_V <= n; i += 2 * FB_V) {
        s0 += fb_load(a + i) * fb_load(b + i);
        s1 += fb_load(a + i + FB_V) * fb_load(b + i + FB_V);
    }
    for (; i + FB_V <= n; i += FB_V) {
        s0 += fb_load(a + i) * fb_load(b + i);
    }
    for (; i < n; ++i) {
        tail += a[i] * b[i];
    }
    return fb_hsum(s0 + s1) + tail;
}

/* y += c x; returns sum_i y[i]^2 after the update */
FB_INLINE double fb_axpy_norm(double *FB_RESTRICT y, double c, const double *FB_RESTRICT x,
                              long long n)
{
    const fb_vd cv = fb_splat(c);
    fb_vd s0 = fb_splat(0.0);
    double tail = 0.0;
    long long i = 0;
    for (; i + FB_V <= n; i += FB_V) {
        const fb_vd v = fb_load(y + i) + cv * fb_load(x + i);
        fb_store(y + i, v);
        s0 += v * v;
    }
    for (; i < n; ++i) {
        y[i] += c * x[i];
        tail += y[i] * y[i];
    }
    return fb_hsum(s0) + tail;
}

/* y += c x (no norm) */
FB_INLINE void fb_axpy(double *FB_RESTRICT y, double c, const double *FB_RESTRICT x,
                       long long n)
{
    const fb_vd cv = fb_splat(c);
    long long i = 0;
    for (; i + FB_V <= n; i += FB_V) {
        fb_store(y + i, fb_load(y + i) + cv * fb_load(x + i));
    }
    for (; i < n; ++i) {
        y[i] += c * x[i];
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Diagonal network beta = w_1 * .. * w_L (Yun eq. 11): prefix[l] = w_1 * .. * w_{l+1}. */

FB_INLINE void fb_diag_predictor(fb_model *M, const double *theta)
{
    const long long d = M->d, L = M->L;
    long long l, j;
    memcpy(M->prefix, theta, (size_t)d * sizeof(double));
    for (l = 1; l < L; ++l) {
        const double *prev = M->prefix + (l - 1) * d, *w = theta + l * d;
        double *cur = M->prefix + l * d;
        for (j = 0; j < d; ++j) {
            cur[j] = prev[j] * w[j];
        }
    }
    memcpy(M->beta, M->prefix + (L - 1) * d, (size_t)d * sizeof(double));
}

/* g_l = G * prod_{k<l} w_k * prod_{k>l} w_k; returns ||g||^2 */
FB_INLINE double fb_diag_vjp(fb_model *M, const double *theta)
{
    const long long d = M->d, L = M->L;
    double *FB_RESTRICT suffix = M->beta; /* beta is not needed any more */
    double n2 = 0.0;
    long long l, j;
    memcpy(suffix, M->G, (size_t)d * sizeof(double));
    for (l = L - 1; l >= 0; --l) {
        double *g = M->g + l * d;
        const double *w = theta + l * d;
        if (l > 0) {
            const double *left = M->prefix + (l - 1) * d;
            for (j = 0; j < d; ++j) {
                g[j] = left[j] * suffix[j];
            }
        } else {
            memcpy(g, suffix, (size_t)d * sizeof(double));
        }
        for (j = 0; j < d; ++j) {
            suffix[j] *= w[j];
        }
        n2 += fb_dot(g, g, d);
    }
    return n2;
}

/* ---------------------------------------------------------------------------------------- */
/* Fully connected network beta = W_1 (W_2 (.. w_L)) (Gunasekar eq. 1). */

FB_INLINE void fb_fc_predictor(fb_model *M, const double *theta)
{
    const long long L = M->L, wd = M->width;
    long long l, r;
    memcpy(M->right + (L - 1) * wd, theta + M->offsets[L - 1],
           (size_t)M->dims[L - 1] * sizeof(double));
    for (l = L - 2; l >= 0; --l) {
        const long long rows = M->dims[l], cols = M->dims[l + 1];
        const double *W = theta + M->offsets[l], *src = M->right + (l + 1) * wd;
        double *dst = M->right + l * wd;
        for (r = 0; r < rows; ++r) {
            dst[r] = fb_dot(W + r * cols, src, cols);
        }
    }
    memcpy(M->beta, M->right, (size_t)M->d * sizeof(double));
}

/* a_1 = G, a_{l+1} = W_l^T a_l (into avec); returns ||g||^2 = sum_{l<L} ||a_l||^2
 * ||right_{l+1}||^2 + ||a_L||^2 (g_{W_l} = a_l right_{l+1}^T, g_{w_L} = a_L) */
FB_INLINE double fb_fc_vjp(fb_model *M, const double *theta)
{
    const long long L = M->L, wd = M->width;
    double n2 = 0.0;
    long long l, r;
    memcpy(M->avec, M->G, (size_t)M->d * sizeof(double));
    for (l = 0; l < L - 1; ++l) {
        const long long rows = M->dims[l], cols = M->dims[l + 1];
        const double *W = theta + M->offsets[l], *a = M->avec + l * wd;
        const double *rg = M->right + (l + 1) * wd;
        double *b = M->avec + (l + 1) * wd;
        memset(b, 0, (size_t)cols * sizeof(double));
        for (r = 0; r < rows; ++r) {
            fb_axpy(b, a[r], W + r * cols, cols);
        }
        n2 += fb_dot(a, a, rows) * fb_dot(rg, rg, cols);
    }
    {
        const double *a = M->avec + (L - 1) * wd;
        n2 += fb_dot(a, a, M->dims[L - 1]);
    }
    return n2;
}

/* theta += c g without forming g; returns ||theta||^2 */
FB_INLINE double fb_fc_update(fb_model *M, double *theta, double c)
{
    const long long L = M->L, wd = M->width;
    double t2 = 0.0;
    long long l, r;
    for (l = 0; l < L - 1; ++l) {
        const long long rows = M->dims[l], cols = M->dims[l + 1];
        double *W = theta + M->offsets[l];
        const double *a = M->avec + l * wd, *rg = M->right + (l + 1) * wd;
        for (r = 0; r < rows; ++r) {
            t2 += fb_axpy_norm(W + r * cols, c * a[r], rg, cols);
        }
    }
    t2 += fb_axpy_norm(theta + M->offsets[L - 1], c, M->avec + (L - 1) * wd, M->dims[L - 1]);
    return t2;
}

/* ---------------------------------------------------------------------------------------- */
/* Tensor network from COO nonzeros (Yun eq. 6); a direct two-factor loop for L = 2. */

FB_INLINE void fb_tensor_predictor(fb_model *M, const double *theta)
{
    const long long nnz = M->nnz, L = M->L;
    const long long *pos = M->pos, *jidx = M->jidx;
    const double *vals = M->vals;
    long long e, l;
    memset(M->beta, 0, (size_t)M->d * sizeof(double));
    if (L == 2) {
        for (e = 0; e < nnz; ++e) {
            M->beta[jidx[e]] += vals[e] * theta[pos[2 * e]] * theta[pos[2 * e + 1]];
        }
        return;
    }
    for (e = 0; e < nnz; ++e) {
        double p = vals[e];
        for (l = 0; l < L; ++l) {
            p *= theta[pos[e * L + l]];
        }
        M->beta[jidx[e]] += p;
    }
}

FB_INLINE double fb_tensor_vjp(fb_model *M, const double *theta)
{
    const long long nnz = M->nnz, L = M->L;
    const long long *pos = M->pos, *jidx = M->jidx;
    const double *vals = M->vals, *G = M->G;
    double *FB_RESTRICT g = M->g, *FB_RESTRICT pre = M->prefix;
    long long e, l;
    memset(g, 0, (size_t)M->P * sizeof(double));
    if (L == 2) {
        for (e = 0; e < nnz; ++e) {
            const double w = G[jidx[e]] * vals[e];
            const long long a = pos[2 * e], b = pos[2 * e + 1];
            const double va = theta[a];
            g[a] += w * theta[b];
            g[b] += w * va;
        }
    } else {
        for (e = 0; e < nnz; ++e) {
            double p = G[jidx[e]] * vals[e], s = 1.0;
            for (l = 0; l < L; ++l) {
                pre[l] = p;
                p *= theta[pos[e * L + l]];
            }
            for (l = L - 1; l >= 0; --l) {
                const long long idx = pos[e * L + l];
                g[idx] += pre[l] * s;
                s *= theta[idx];
            }
        }
    }
    return fb_dot(g, g, M->P);
}

/* ---------------------------------------------------------------------------------------- */
/* Full-width circular convolutional network in the Fourier domain (see _numba_conv.py): the
 * state is the half spectra spec[l] (re H, im H) of the filters; beta_hat = prod_l w_hat_l;
 * the data are the real Fourier rows ZF, so the "beta" of the panel pass is
 * b = (cw Re beta_hat, cw Im beta_hat[1..nI]); GD on filter l is
 * w_hat_l += c G_hat conj(prod_{k != l} w_hat_k). */

#define FB_SPEC_RE(M, l) ((M)->spec + (2 * (l)) * (M)->H)
#define FB_SPEC_IM(M, l) ((M)->spec + (2 * (l) + 1) * (M)->H)

FB_INLINE void fb_conv_predictor(fb_model *M)
{
    const long long L = M->L, H = M->H, nI = M->nI;
    double *pre = M->pre; /* pre[l] = prod_{k<l} w_hat_k for 1 <= l < L: (L, 2, H) */
    double br, bi;
    long long l, j;
    if (L > 1) {
        memcpy(pre + 2 * H, M->spec, (size_t)(2 * H) * sizeof(double));
    }
    for (l = 2; l < L; ++l) {
        const double *ar = pre + (2 * (l - 1)) * H, *ai = ar + H;
        const double *wr = FB_SPEC_RE(M, l - 1), *wi = FB_SPEC_IM(M, l - 1);
        double *cr = pre + (2 * l) * H, *ci = cr + H;
        for (j = 0; j < H; ++j) {
            cr[j] = ar[j] * wr[j] - ai[j] * wi[j];
            ci[j] = ar[j] * wi[j] + ai[j] * wr[j];
        }
    }
    for (j = 0; j < H; ++j) {
        const double wr = FB_SPEC_RE(M, L - 1)[j], wi = FB_SPEC_IM(M, L - 1)[j];
        if (L == 1) {
            br = wr;
            bi = wi;
        } else {
            const double ar = pre[(2 * (L - 1)) * H + j], ai = pre[(2 * (L - 1) + 1) * H + j];
            br = ar * wr - ai * wi;
            bi = ar * wi + ai * wr;
        }
        M->beta[j] = M->cw[j] * br;
        if (j >= 1 && j <= nI) {
            M->beta[H - 1 + j] = M->cw[j] * bi;
        }
    }
}

/* upd[l] = G_hat conj(pre[l] suf_l); returns sum_l sum_j cw[j] |upd[l, j]|^2 */
FB_INLINE double fb_conv_vjp(fb_model *M)
{
    const long long L = M->L, H = M->H, nI = M->nI;
    double *gr = M->Gh, *gi = M->Gh + H, *sr = M->suf, *si = M->suf + H;
    double n2 = 0.0;
    long long l, j;
    for (j = 0; j < H; ++j) {
        gr[j] = M->G[j];
        gi[j] = (j >= 1 && j <= nI) ? M->G[H - 1 + j] : 0.0;
        sr[j] = 1.0;
        si[j] = 0.0;
    }
    for (l = L - 1; l >= 0; --l) {
        const double *ar = M->pre + (2 * l) * H, *ai = ar + H;
        const double *wr = FB_SPEC_RE(M, l), *wi = FB_SPEC_IM(M, l);
        double *ur = M->upd + (2 * l) * H, *ui = ur + H;
        double acc = 0.0;
        for (j = 0; j < H; ++j) {
            double pr = sr[j], pi = si[j], nr;
            if (l > 0) { /* P_l = pre[l] suf_l */
                pr = ar[j] * sr[j] - ai[j] * si[j];
                pi = ar[j] * si[j] + ai[j] * sr[j];
            }
            ur[j] = gr[j] * pr + gi[j] * pi;
            ui[j] = gi[j] * pr - gr[j] * pi;
            acc += M->cw[j] * (ur[j] * ur[j] + ui[j] * ui[j]);
            nr = sr[j] * wr[j] - si[j] * wi[j]; /* suf_{l-1} = suf_l w_hat_l */
            si[j] = sr[j] * wi[j] + si[j] * wr[j];
            sr[j] = nr;
        }
        n2 += acc;
    }
    return n2;
}

FB_INLINE double fb_conv_update(fb_model *M, double c)
{
    const long long L = M->L, H = M->H;
    double t2 = 0.0;
    long long l, j;
    for (l = 0; l < L; ++l) {
        double *wr = FB_SPEC_RE(M, l), *wi = FB_SPEC_IM(M, l);
        const double *ur = M->upd + (2 * l) * H, *ui = ur + H;
        for (j = 0; j < H; ++j) {
            wr[j] += c * ur[j];
            wi[j] += c * ui[j];
            t2 += M->cw[j] * (wr[j] * wr[j] + wi[j] * wi[j]);
        }
    }
    return t2;
}

/* time-domain filters: out[l d + p] = sum_j cw[j] Re(w_hat_l[j] exp(2 pi i p j / d)) */
static void fb_conv_to_time(const fb_model *M, double *out)
{
    const long long L = M->L, H = M->H, d = M->d;
    long long l, p, j, r;
    for (l = 0; l < L; ++l) {
        const double *wr = FB_SPEC_RE(M, l), *wi = FB_SPEC_IM(M, l);
        for (p = 0; p < d; ++p) {
            double acc = 0.0;
            r = 0;
            for (j = 0; j < H; ++j) {
                acc += M->cw[j] * (wr[j] * M->ctab[r] - wi[j] * M->stab[r]);
                r += p;
                if (r >= d) {
                    r -= d;
                }
            }
            out[l * d + p] = acc;
        }
    }
}

static void fb_conv_from_time(fb_model *M, const double *theta)
{
    const long long L = M->L, H = M->H, d = M->d;
    long long l, p, j, r;
    for (l = 0; l < L; ++l) {
        double *wr = FB_SPEC_RE(M, l), *wi = FB_SPEC_IM(M, l);
        for (j = 0; j < H; ++j) {
            double re = 0.0, im = 0.0;
            r = 0;
            for (p = 0; p < d; ++p) {
                re += theta[l * d + p] * M->ctab[r];
                im -= theta[l * d + p] * M->stab[r];
                r += j;
                if (r >= d) {
                    r -= d;
                }
            }
            wr[j] = re;
            wi[j] = im;
        }
    }
}

/* cos and sin of 2 pi r / d, exact at the quarter points (as _numba_conv.twiddles) */
static void fb_twiddles(long long d, double *ct, double *st)
{
    long long r;
    for (r = 0; r < d; ++r) {
        const double ang = 2.0 * 3.14159265358979323846 * (double)r / (double)d;
        ct[r] = cos(ang);
        st[r] = sin(ang);
    }
    ct[0] = 1.0;
    st[0] = 0.0;
    if (d % 2 == 0) {
        ct[d / 2] = -1.0;
        st[d / 2] = 0.0;
    }
    if (d % 4 == 0) {
        ct[d / 4] = 0.0;
        st[d / 4] = 1.0;
        ct[3 * d / 4] = 0.0;
        st[3 * d / 4] = -1.0;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The driver: the serial driver of fb_linear_f64.c (fb_serial_impl: one fused pass per step
 * in direct mode, margins then weights in the shift regime) with the model's predictor before
 * the pass and its VJP and update after it. kind is a compile-time constant in each copy. */

/* eta_t times the scale of G, as _numba_models.step_coefficient with e = 0 */
FB_INLINE double fb_deep_factor(int rule, fb_scale sc, double lr, double n2, double total)
{
    if (rule == 0) {
        return sc.mode == FB_W_LOGI_PLAIN ? lr : lr * sc.es;
    }
    if (rule == 1) {
        return n2 > 0.0 ? lr / sqrt(n2) : 0.0;
    }
    return lr / total;
}

typedef struct {
    fb_job job;
    fb_model M;
    double *theta;
    double *rec_theta;
} fb_deep_job;

FB_INLINE void fb_deep_impl(fb_deep_job *dj, const int kind)
{
    fb_job *job = &dj->job;
    fb_model *M = &dj->M;
    double *FB_RESTRICT theta = dj->theta;
    const fb_scale direct = fb_direct_scale(job->loss);
    const long long NB = job->NB, d = job->d, P = M->P;
    double *FB_RESTRICT GA = job->work;
    double *FB_RESTRICT Mm = GA + d * FB_V;
    long long t, k = 0, j;
    int guess_direct = 1;

    job->status = 0;
    for (t = job->step0; t < job->step0 + job->n_steps; ++t) {
        fb_scale sc = direct;
        double s, total = 0.0, n2, c, t2;
        int bad;
        if (kind == FB_DEEP_DIAG) {
            fb_diag_predictor(M, theta);
        } else if (kind == FB_DEEP_FC) {
            fb_fc_predictor(M, theta);
        } else if (kind == FB_DEEP_TENSOR) {
            fb_tensor_predictor(M, theta);
        } else {
            fb_conv_predictor(M);
        }
        if (guess_direct) {
            fb_pass(job, 0, NB, M->beta, d, FB_PASS_FUSED, direct, 0, Mm, GA, &s, &bad, &total);
        } else {
            fb_pass(job, 0, NB, M->beta, d, FB_PASS_MARGINS, direct, 0, Mm, GA, &s, &bad,
                    &total);
        }
        if (bad) {
            job->status = 1;
            break;
        }
        if (!fb_direct_ok(job->loss, s)) {
            if (guess_direct) {
                fb_pass(job, 0, NB, M->beta, d, FB_PASS_MARGINS, direct, 0, Mm, GA, &s, &bad,
                        &total);
            }
            sc = fb_shift_scale(job->loss, s);
            fb_pass(job, 0, NB, M->beta, d, FB_PASS_WEIGHTS, sc, 0, Mm, GA, &s, &bad, &total);
            guess_direct = 0;
        } else if (!guess_direct) {
            fb_pass(job, 0, NB, M->beta, d, FB_PASS_WEIGHTS, direct, 0, Mm, GA, &s, &bad,
                    &total);
            guess_direct = 1;
        }
        for (j = 0; j < d; ++j) {
            M->G[j] = fb_hsum(fb_load(GA + j * FB_V));
        }
        if (kind == FB_DEEP_DIAG) {
            n2 = fb_diag_vjp(M, theta);
        } else if (kind == FB_DEEP_FC) {
            n2 = fb_fc_vjp(M, theta);
        } else if (kind == FB_DEEP_TENSOR) {
            n2 = fb_tensor_vjp(M, theta);
        } else {
            n2 = fb_conv_vjp(M);
        }
        if (!(n2 < INFINITY)) {
            job->status = 1;
            break;
        }
        c = fb_deep_factor(job->rule, sc, job->lr, n2, total);
        if (kind == FB_DEEP_FC) {
            t2 = fb_fc_update(M, theta, c);
        } else if (kind == FB_DEEP_CONV) {
            t2 = fb_conv_update(M, c);
        } else {
            t2 = fb_axpy_norm(theta, c, M->g, P);
        }
        if (k < job->K && job->rec_steps[k] == t + 1) {
            if (kind == FB_DEEP_CONV) {
                fb_conv_to_time(M, dj->rec_theta + k * P);
            } else {
                memcpy(dj->rec_theta + k * P, theta, (size_t)P * sizeof(double));
            }
            ++k;
        }
        if (t2 > FB_DEEP_T2_HI && t2 < INFINITY) { /* the numba kernel rescales from here */
            job->status = 2;
            ++t;
            break;
        }
    }
    job->fail_step = t;
}

typedef void (*fb_deep_driver)(fb_deep_job *);

#define FB_DEFINE_DEEP(SUFFIX, ATTR)                                                            \
    FB_NOINLINE ATTR void fb_deep_diag_##SUFFIX(fb_deep_job *dj)                               \
    {                                                                                           \
        fb_deep_impl(dj, FB_DEEP_DIAG);                                                         \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_deep_fc_##SUFFIX(fb_deep_job *dj)                                 \
    {                                                                                           \
        fb_deep_impl(dj, FB_DEEP_FC);                                                           \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_deep_tensor_##SUFFIX(fb_deep_job *dj)                             \
    {                                                                                           \
        fb_deep_impl(dj, FB_DEEP_TENSOR);                                                       \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_deep_conv_##SUFFIX(fb_deep_job *dj)                               \
    {                                                                                           \
        fb_deep_impl(dj, FB_DEEP_CONV);                                                         \
    }                                                                                           \
    static const fb_deep_driver fb_deep_drivers_##SUFFIX[4] = {                                 \
        fb_deep_diag_##SUFFIX, fb_deep_fc_##SUFFIX, fb_deep_tensor_##SUFFIX,                    \
        fb_deep_conv_##SUFFIX};

FB_DEFINE_DEEP(base, )
#if FB_HAVE_AVX2_CLONE
FB_DEFINE_DEEP(avx2, FB_TARGET_AVX2)
#endif

/* Common part of the entry points: checks, panels of the data (Z (N, d) row-major, or
 * (d, N) when transposed), work arrays, the run, clean-up. M is filled by the caller except
 * for the scratch, which is carved here from one allocation of `scratch` doubles. */
static int fb_deep_run(int kind, const double *Z, int transposed, long long N, long long d,
                       fb_model *M, double *theta, long long scratch, double lr, int loss,
                       int rule, long long step0, long long n_steps, const long long *rec_steps,
                       long long K, double *rec_theta, double s_floor, long long *fail_step)
{
    fb_deep_job dj;
    fb_job *job = &dj.job;
    const fb_deep_driver *drivers = fb_deep_drivers_base;
    long long NB, b, i, j;
    double *P, *S;

    if (Z == NULL || theta == NULL || fail_step == NULL || N < 1 || d < 1 || K < 0
        || n_steps < 0 || (K > 0 && (rec_steps == NULL || rec_theta == NULL))) {
        return -1;
    }
    if (loss != 0 && loss != 1) {
        return -2;
    }
    if (rule != 0 && rule != 1 && rule != 2) {
        return -3;
    }
    if (loss == 1 && rule == 2) { /* needs log1p sums: the numba kernels run it */
        return -6;
    }
    *fail_step = step0;
    if (n_steps == 0) {
        return 0;
    }
    NB = (N + FB_B - 1) / FB_B;
    memset(job, 0, sizeof *job);
    job->N = N;
    job->d = d;
    job->NB = NB;
    job->lr = lr;
    job->s_floor = s_floor;
    job->loss = loss;
    job->rule = rule;
    job->step0 = step0;
    job->n_steps = n_steps;
    job->rec_steps = rec_steps;
    job->K = K;
    job->fail_step = step0;
    P = fb_alloc((size_t)(NB * d * FB_B));
    job->work = fb_alloc((size_t)(d * FB_V + NB * FB_B));
    S = fb_alloc((size_t)scratch);
    if (P == NULL || job->work == NULL || S == NULL) {
        fb_free(P);
        fb_free(job->work);
        fb_free(S);
        return -4;
    }
    for (b = 0; b < NB; ++b) {
        double *Pb = P + b * d * FB_B;
        for (i = 0; i < FB_B; ++i) {
            const long long n = b * FB_B + i;
            for (j = 0; j < d; ++j) {
                Pb[j * FB_B + i] = n >= N ? 0.0 : transposed ? Z[j * N + n] : Z[n * d + j];
            }
        }
    }
    job->P = P;
    /* scratch: beta (d), G (d), then the model's arrays after M->beta .. (carved by caller
     * offsets stored as doubles counts in the pointers: see fb_deep_carve) */
    M->beta = S;
    M->G = S + fb_round8(d);
    {
        double *q = M->G + fb_round8(d);
        const long long wd = M->width, L = M->L;
        M->g = q;
        q += fb_round8(M->P);
        M->prefix = q;
        q += fb_round8(L * d);
        if (kind == FB_DEEP_FC) {
            M->right = q;
            q += fb_round8(L * wd);
            M->avec = q;
            q += fb_round8(L * wd);
        }
        if (kind == FB_DEEP_CONV) {
            const long long H = M->H;
            M->cw = q;
            q += fb_round8(H);
            M->ctab = q;
            q += fb_round8(d);
            M->stab = q;
            q += fb_round8(d);
            M->pre = q;
            q += fb_round8(2 * L * H);
            M->upd = q;
            q += fb_round8(2 * L * H);
            M->suf = q;
            q += fb_round8(2 * H);
            M->Gh = q;
            q += fb_round8(2 * H);
            fb_twiddles(d, M->ctab, M->stab);
            for (j = 0; j < H; ++j) {
                M->cw[j] = (j == 0 || 2 * j == d ? 1.0 : 2.0) / (double)d;
            }
        }
        (void)q;
    }
    dj.M = *M;
    dj.theta = theta;
    dj.rec_theta = rec_theta;
#if FB_HAVE_AVX2_CLONE
    if (fb_use_avx2()) {
        drivers = fb_deep_drivers_avx2;
    }
#endif
    drivers[kind](&dj);
    fb_free(P);
    fb_free(job->work);
    *M = dj.M;
    if (kind == FB_DEEP_CONV) {
        fb_conv_to_time(M, theta);
    }
    fb_free(S);
    *fail_step = job->fail_step;
    return job->status;
}

/* doubles of scratch for a model (the carving of fb_deep_run) */
static long long fb_deep_scratch(int kind, long long d, long long P, long long L, long long wd,
                                 long long H)
{
    long long n = 2 * fb_round8(d) + fb_round8(P) + fb_round8(L * d) + 64;
    if (kind == FB_DEEP_FC) {
        n += 2 * fb_round8(L * wd);
    }
    if (kind == FB_DEEP_CONV) {
        n += fb_round8(H) + 2 * fb_round8(d) + 2 * fb_round8(2 * L * H) + 2 * fb_round8(2 * H);
    }
    return n;
}

int fb_gd_diagonal_f64(const double *Z, double *theta, long long N, long long d, long long L,
                       double lr, int loss, int rule, long long step0, long long n_steps,
                       const long long *rec_steps, long long K, double *rec_theta,
                       double s_floor, long long *fail_step)
{
    fb_model M;
    if (L < 1) {
        return -1;
    }
    memset(&M, 0, sizeof M);
    M.d = d;
    M.L = L;
    M.P = L * d;
    return fb_deep_run(FB_DEEP_DIAG, Z, 0, N, d, &M, theta,
                       fb_deep_scratch(FB_DEEP_DIAG, d, M.P, L, 0, 0), lr, loss, rule, step0,
                       n_steps, rec_steps, K, rec_theta, s_floor, fail_step);
}

int fb_gd_fc_f64(const double *Z, double *theta, long long N, long long d, long long L,
                 const long long *dims, const long long *offsets, double lr, int loss, int rule,
                 long long step0, long long n_steps, const long long *rec_steps, long long K,
                 double *rec_theta, double s_floor, long long *fail_step)
{
    fb_model M;
    long long l, wd = 0, P = 0;
    if (L < 1 || dims == NULL || offsets == NULL || dims[0] != d) {
        return -1;
    }
    for (l = 0; l < L; ++l) {
        const long long size = l < L - 1 ? dims[l] * dims[l + 1] : dims[l];
        if (dims[l] < 1 || offsets[l] != P) {
            return -1;
        }
        P += size;
        wd = dims[l] > wd ? dims[l] : wd;
    }
    memset(&M, 0, sizeof M);
    M.d = d;
    M.L = L;
    M.P = P;
    M.dims = dims;
    M.offsets = offsets;
    M.width = fb_round8(wd);
    return fb_deep_run(FB_DEEP_FC, Z, 0, N, d, &M, theta,
                       fb_deep_scratch(FB_DEEP_FC, d, P, L, M.width, 0), lr, loss, rule, step0,
                       n_steps, rec_steps, K, rec_theta, s_floor, fail_step);
}

int fb_gd_tensor_f64(const double *Z, double *theta, long long N, long long d, long long P,
                     long long nnz, long long L, const long long *jidx, const long long *pos,
                     const double *vals, double lr, int loss, int rule, long long step0,
                     long long n_steps, const long long *rec_steps, long long K,
                     double *rec_theta, double s_floor, long long *fail_step)
{
    fb_model M;
    long long e;
    if (L < 1 || nnz < 0 || P < 1 || (nnz > 0 && (jidx == NULL || pos == NULL || vals == NULL))) {
        return -1;
    }
    for (e = 0; e < nnz * L; ++e) {
        if (pos[e] < 0 || pos[e] >= P) {
            return -1;
        }
    }
    for (e = 0; e < nnz; ++e) {
        if (jidx[e] < 0 || jidx[e] >= d) {
            return -1;
        }
    }
    memset(&M, 0, sizeof M);
    M.d = d;
    M.L = L;
    M.P = P;
    M.nnz = nnz;
    M.jidx = jidx;
    M.pos = (long long *)pos;
    M.vals = vals;
    return fb_deep_run(FB_DEEP_TENSOR, Z, 0, N, d, &M, theta,
                       fb_deep_scratch(FB_DEEP_TENSOR, d, P, L, 0, 0), lr, loss, rule, step0,
                       n_steps, rec_steps, K, rec_theta, s_floor, fail_step);
}

int fb_gd_conv_f64(const double *ZF, double *theta, long long N, long long d, long long L,
                   double *spec, int use_spec, double lr, int loss, int rule, long long step0,
                   long long n_steps, const long long *rec_steps, long long K,
                   double *rec_theta, double s_floor, long long *fail_step)
{
    fb_model M;
    double *cw_tab;
    long long j, H = d / 2 + 1;
    if (L < 1 || spec == NULL) {
        return -1;
    }
    memset(&M, 0, sizeof M);
    M.d = d;
    M.L = L;
    M.P = L * d;
    M.H = H;
    M.nI = d - H;
    M.spec = spec;
    if (!use_spec) { /* spectra of the time-domain filters (needs the tables: small copy) */
        cw_tab = fb_alloc((size_t)(2 * d));
        if (cw_tab == NULL) {
            return -4;
        }
        M.ctab = cw_tab;
        M.stab = cw_tab + d;
        fb_twiddles(d, cw_tab, cw_tab + d);
        fb_conv_from_time(&M, theta);
        fb_free(cw_tab);
    }
    (void)j;
    return fb_deep_run(FB_DEEP_CONV, ZF, 1, N, d, &M, theta,
                       fb_deep_scratch(FB_DEEP_CONV, d, M.P, L, 0, H), lr, loss, rule, step0,
                       n_steps, rec_steps, K, rec_theta, s_floor, fail_step);
}

#else /* not GCC or clang */

int fb_gd_diagonal_f64(const double *Z, double *theta, long long N, long long d, long long L,
                       double lr, int loss, int rule, long long step0, long long n_steps,
                       const long long *rec_steps, long long K, double *rec_theta,
                       double s_floor, long long *fail_step)
{
    return -5;
}

int fb_gd_fc_f64(const double *Z, double *theta, long long N, long long d, long long L,
                 const long long *dims, const long long *offsets, double lr, int loss, int rule,
                 long long step0, long long n_steps, const long long *rec_steps, long long K,
                 double *rec_theta, double s_floor, long long *fail_step)
{
    return -5;
}

int fb_gd_tensor_f64(const double *Z, double *theta, long long N, long long d, long long P,
                     long long nnz, long long L, const long long *jidx, const long long *pos,
                     const double *vals, double lr, int loss, int rule, long long step0,
                     long long n_steps, const long long *rec_steps, long long K,
                     double *rec_theta, double s_floor, long long *fail_step)
{
    return -5;
}

int fb_gd_conv_f64(const double *ZF, double *theta, long long N, long long d, long long L,
                   double *spec, int use_spec, double lr, int loss, int rule, long long step0,
                   long long n_steps, const long long *rec_steps, long long K,
                   double *rec_theta, double s_floor, long long *fail_step)
{
    return -5;
}

#endif
