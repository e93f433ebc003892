/* Many GD runs of one shape in lock step, float64: SIMD lanes = runs.
 *
 * train_batch's runs over seeds, initial scales and step sizes share the data and the number
 * of steps; only the parameters, the step size and the divergence floor differ. Here the
 * parameters of R runs are stored lane by lane, theta[p * Rp + r] (Rp = R rounded up to
 * whole blocks), and a block of FB_LS_RUNS = 16 runs (4 AVX2 vectors) makes every step
 * together: each element of the shared data Z is loaded once and broadcast against the
 * vectors of the block's runs, and every other operation (the predictor, the exp of the
 * weights, the VJP, the update) is elementwise across runs, so it is SIMD with no
 * horizontal sums and no dependency chain across samples. A single small run (Figure 3.1: 16
 * exps and ~100 flops per step) is a chain of dependent latencies; 16 of them side by side
 * fill the pipeline instead.
 *
 * Each run does the arithmetic of the single-run C kernels (fb_linear_f64.c, fb_deep_f64.c):
 * margins, shift 0 (direct mode) while the minimum margin s is within +-300 and the exact
 * shift s beyond, the same exp, the same step-size rules; only the order of the sums over
 * samples and coordinates differs, so iterates agree with train's to round-off (1e-12
 * relative after 10^4 steps in the tests), not bit for bit.
 *
 * A run that fails its divergence test, whose gradient is not finite, or whose parameters
 * pass 2^16 in norm (where the single-run kernels start rescaling) gets status 1 or 2 and the
 * step in fail_step; its lanes are then garbage (lanes never mix) and the caller runs it again
 * on its own with train, which reproduces the single-run behaviour exactly. Blocks are
 * independent: [b0, b1) lets the caller split them over threads (cffi releases the GIL).
 *
 * Data: shared by all runs (Z (N, d), each element broadcast against the block's vectors), or
 * per run (sweeps over data sets of one shape: run r's rows at Z + r N d). Per run, a block
 * keeps its runs' data lane by lane, (N, d, 16) and transposed (d, N, 16), and the products
 * with the data load them as vectors instead of broadcasting a shared element (the same
 * arithmetic, lane by lane: a run's iterates do not depend on the other runs' data).
 *
 * Models: 0 linear (theta = w), 1 diagonal of depth L (theta = [w_1 .. w_L], beta = their
 * product), 2 fully connected with dims[0..L-1] (layer l < L-1 a dims[l] x dims[l+1] matrix,
 * row-major, the last a vector), the layouts of fastbias.models.
 */

#if defined(__clang__)
#pragma STDC FP_CONTRACT ON
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastbias.h"

#if defined(__GNUC__)

#include "fb_f64_core.h"

#define FB_LS_RV 4                   /* vectors per block (fb_ls_dot2 is written for 4) */
#define FB_LS_RUNS (FB_LS_RV * FB_V) /* runs per block */
#define FB_LS_T2_HI 4294967296.0     /* ||theta||^2 = 2^32: the single-run kernels rescale */
#define FB_LS_FUSED_D 4              /* the AVX2 linear pass: d <= 4, kept in registers */

enum { FB_LS_LINEAR = 0, FB_LS_DIAG = 1, FB_LS_FC = 2 };

typedef struct fb_ls_job_s {
    int kind, loss, rule;
    const double *Z, *ZT; /* (N, d) and (d, N); per run: (N, d, 16) and (d, N, 16) */
    const double *ZB;     /* linear, d <= FB_LS_FUSED_D: Z[n, j] broadcast, (N, d, 4), or
                           * per run the block's (N, d, 16) */
    long long zs;         /* 1, or FB_LS_RUNS with data per run (the lanes of one element) */
    long long N, d, P, L, Rp, width;
    const long long *dims, *offsets;
    double *theta;
    const double *lr, *floor; /* per run (Rp) */
    long long n_steps, K;
    const long long *rec_steps;
    double *rec;              /* (K, P, Rp) */
    long long *status, *fail; /* per run (Rp) */
    /* the fused linear pass (AVX2 copy, d <= FB_LS_FUSED_D) or NULL */
    void (*lp)(const struct fb_ls_job_s *, const double *, double *, double *, double *);
} fb_ls_job;

/* FB_LS_RV vectors: the block's lanes of one quantity */
typedef struct {
    fb_vd v[FB_LS_RV];
} fb_lv;

#define FB_LV_FOR for (v = 0; v < FB_LS_RV; ++v)

FB_INLINE fb_lv fb_lv_load(const double *p)
{
    fb_lv a;
    int v;
    FB_LV_FOR a.v[v] = fb_load(p + FB_V * v);
    return a;
}

FB_INLINE void fb_lv_store(double *p, fb_lv a)
{
    int v;
    FB_LV_FOR fb_store(p + FB_V * v, a.v[v]);
}

FB_INLINE fb_lv fb_lv_splat(double x)
{
    fb_lv a;
    int v;
    FB_LV_FOR a.v[v] = fb_splat(x);
    return a;
}

/* whether any lane of the masks is set */
FB_INLINE int fb_lv_any(const fb_vi mask[FB_LS_RV])
{
    fb_vi o = mask[0];
    int v;
    for (v = 1; v < FB_LS_RV; ++v) {
        o |= mask[v];
    }
    return ((o[0] | o[1]) | (o[2] | o[3])) != 0;
}

/* Scratch of a block (doubles): beta, G (d), q (N), g (P), prefix (L d), right and avec
 * (L width), per lane; fully connected: a second right (L width) and the private copy of the
 * parameters (P) */
FB_INLINE long long fb_ls_scratch(const fb_ls_job *J)
{
    const long long fc = J->kind == FB_LS_FC ? J->L * J->width + J->P : 0;
    return FB_LS_RUNS * (2 * J->d + J->N + J->P + J->L * J->d + 2 * J->L * J->width + fc + 8);
}

/* Flag the lanes set in mask (status 0 -> code, fail step t; first event only); returns
 * the number of lanes still unflagged. */
FB_INLINE int fb_ls_flag(const fb_ls_job *J, long long r0, const fb_vi mask[FB_LS_RV],
                         int code, long long t)
{
    long long buf[FB_LS_RUNS];
    int i, v, left = 0;
    FB_LV_FOR memcpy(buf + FB_V * v, &mask[v], sizeof mask[v]);
    for (i = 0; i < FB_LS_RUNS; ++i) {
        if (buf[i] != 0 && J->status[r0 + i] == 0) {
            J->status[r0 + i] = code;
            J->fail[r0 + i] = t;
        }
        left += J->status[r0 + i] == 0;
    }
    return left;
}

/* The weights of one sample for the block's runs (loss a compile-time constant): in direct
 * mode (shifted == 0) q = exp(-m) or 1 / (1 + exp(m)); else per lane with shift != 0,
 * exp(shift - m) (exponential) or E / (1 + es E), E = exp(shift - m) (logistic), as
 * fb_panel_weights of the single-run kernel. One vector at a time: interleaving four exps
 * spills registers (out-of-order execution overlaps the iterations anyway). Defined for each
 * copy's exp: fb_exp, and in the AVX2 copy fb_exp_fma (16 multiply-adds against 18, and no
 * spills: GCC kept fb_exp's constants on the stack there), where a NaN margin gets a finite
 * weight instead of a NaN: such a lane's parameters are not finite, so its VJP, and the test
 * of ||g||^2 after it, flag it in the same step. */
#define FB_LS_WEIGHTS(NAME, ATTR, EXP)                                                          \
    FB_INLINE ATTR fb_lv NAME(fb_lv m, const fb_lv *shift, const fb_lv *es, const int loss,     \
                              int shifted)                                                      \
    {                                                                                           \
        fb_lv q;                                                                                \
        int v;                                                                                  \
        _Pragma("GCC unroll 1") FB_LV_FOR                                                       \
        {                                                                                       \
            if (loss == 0) {                                                                    \
                q.v[v] = EXP((shifted ? shift->v[v] : fb_splat(0.0)) - m.v[v]);                 \
            } else {                                                                            \
                const fb_vd a = EXP((fb_vd)((fb_vi)m.v[v] | (fb_vi)fb_splat(-0.0)));            \
                q.v[v] = fb_select(m.v[v] > 0.0, a, fb_splat(1.0)) / (1.0 + a);                 \
                if (shifted) {                                                                  \
                    const fb_vd e = EXP(shift->v[v] - m.v[v]);                                  \
                    q.v[v] = fb_select(shift->v[v] != 0.0, e / (1.0 + es->v[v] * e), q.v[v]);   \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        return q;                                                                               \
    }
FB_LS_WEIGHTS(fb_ls_weights, , fb_exp)
#if FB_HAVE_AVX2_CLONE
FB_LS_WEIGHTS(fb_ls_weights_avx2, FB_TARGET_AVX2, fb_exp_fma)
#endif

typedef fb_lv (*fb_ls_weights_fn)(fb_lv, const fb_lv *, const fb_lv *, int, int);

/* o0 = sum_i z0[i] x[i], o1 = sum_i z1[i] x[i] over i < n for the block's lanes x[i]
 * (FB_LS_RUNS doubles each, contiguous): the inner products of two rows of the shared data
 * with the block's vectors; with lanes, z0 and z1 are rows of the block's own data, lane by
 * lane like x (FB_LS_RUNS doubles per i). Written out with eight named accumulators
 * (FB_LS_RV = 4): kept in an array of structs, GCC spills them to memory in every iteration. */
FB_INLINE void fb_ls_dot2(const double *FB_RESTRICT x, const double *z0, const double *z1,
                          long long n, int lanes, fb_lv *o0, fb_lv *o1)
{
    fb_vd a0 = fb_splat(0.0), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    long long i;
    if (lanes) {
        for (i = 0; i < n; ++i) {
            const double *p = x + i * FB_LS_RUNS, *u = z0 + i * FB_LS_RUNS;
            const double *w = z1 + i * FB_LS_RUNS;
            const fb_vd b0 = fb_load(p), b1 = fb_load(p + FB_V), b2 = fb_load(p + 2 * FB_V);
            const fb_vd b3 = fb_load(p + 3 * FB_V);
            a0 += fb_load(u) * b0;
            a1 += fb_load(u + FB_V) * b1;
            a2 += fb_load(u + 2 * FB_V) * b2;
            a3 += fb_load(u + 3 * FB_V) * b3;
            c0 += fb_load(w) * b0;
            c1 += fb_load(w + FB_V) * b1;
            c2 += fb_load(w + 2 * FB_V) * b2;
            c3 += fb_load(w + 3 * FB_V) * b3;
        }
    } else {
        for (i = 0; i < n; ++i) {
            const double *p = x + i * FB_LS_RUNS;
            const fb_vd u = fb_splat(z0[i]), w = fb_splat(z1[i]);
            const fb_vd b0 = fb_load(p), b1 = fb_load(p + FB_V), b2 = fb_load(p + 2 * FB_V);
            const fb_vd b3 = fb_load(p + 3 * FB_V);
            a0 += u * b0;
            a1 += u * b1;
            a2 += u * b2;
            a3 += u * b3;
            c0 += w * b0;
            c1 += w * b1;
            c2 += w * b2;
            c3 += w * b3;
        }
    }
    o0->v[0] = a0, o0->v[1] = a1, o0->v[2] = a2, o0->v[3] = a3;
    o1->v[0] = c0, o1->v[1] = c1, o1->v[2] = c2, o1->v[3] = c3;
}

typedef void (*fb_ls_dot2_fn)(const double *, const double *, const double *, long long, int,
                              fb_lv *, fb_lv *);

#if FB_HAVE_AVX2_CLONE
/* fb_ls_dot2 in the AVX2 copy, the same arithmetic: the block's four vectors loaded once into
 * registers (the empty asm keeps GCC from folding each load into both multiply-adds that use
 * it, 8 loads instead of 4) and the data broadcast by vbroadcastsd (GCC's generic splat was
 * vmovddup + vinsertf128, the insert on an FP pipe): 6 loads per 8 multiply-adds, so the
 * loop is bound by the two FMA pipes (llvm-mca -mcpu=znver3: 4.0 cycles per iteration against
 * 11 before). */
FB_INLINE FB_TARGET_AVX2 void fb_ls_dot2_avx2(const double *FB_RESTRICT x, const double *z0,
                                              const double *z1, long long n, int lanes,
                                              fb_lv *o0, fb_lv *o1)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0;
    __m256d c3 = a0;
    long long i;
    if (lanes) { /* data per run: 12 loads per 8 multiply-adds */
        for (i = 0; i < n; ++i) {
            const double *p = x + i * FB_LS_RUNS, *u = z0 + i * FB_LS_RUNS;
            const double *w = z1 + i * FB_LS_RUNS;
            __m256d b0 = _mm256_loadu_pd(p), b1 = _mm256_loadu_pd(p + FB_V);
            __m256d b2 = _mm256_loadu_pd(p + 2 * FB_V), b3 = _mm256_loadu_pd(p + 3 * FB_V);
            __asm__("" : "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3));
            a0 = _mm256_fmadd_pd(_mm256_loadu_pd(u), b0, a0);
            a1 = _mm256_fmadd_pd(_mm256_loadu_pd(u + FB_V), b1, a1);
            a2 = _mm256_fmadd_pd(_mm256_loadu_pd(u + 2 * FB_V), b2, a2);
            a3 = _mm256_fmadd_pd(_mm256_loadu_pd(u + 3 * FB_V), b3, a3);
            c0 = _mm256_fmadd_pd(_mm256_loadu_pd(w), b0, c0);
            c1 = _mm256_fmadd_pd(_mm256_loadu_pd(w + FB_V), b1, c1);
            c2 = _mm256_fmadd_pd(_mm256_loadu_pd(w + 2 * FB_V), b2, c2);
            c3 = _mm256_fmadd_pd(_mm256_loadu_pd(w + 3 * FB_V), b3, c3);
        }
    } else {
        for (i = 0; i < n; ++i) {
            const double *p = x + i * FB_LS_RUNS;
            __m256d b0 = _mm256_loadu_pd(p), b1 = _mm256_loadu_pd(p + FB_V);
            __m256d b2 = _mm256_loadu_pd(p + 2 * FB_V), b3 = _mm256_loadu_pd(p + 3 * FB_V);
            const __m256d u = _mm256_broadcast_sd(z0 + i), w = _mm256_broadcast_sd(z1 + i);
            __asm__("" : "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3));
            a0 = _mm256_fmadd_pd(u, b0, a0);
            a1 = _mm256_fmadd_pd(u, b1, a1);
            a2 = _mm256_fmadd_pd(u, b2, a2);
            a3 = _mm256_fmadd_pd(u, b3, a3);
            c0 = _mm256_fmadd_pd(w, b0, c0);
            c1 = _mm256_fmadd_pd(w, b1, c1);
            c2 = _mm256_fmadd_pd(w, b2, c2);
            c3 = _mm256_fmadd_pd(w, b3, c3);
        }
    }
    o0->v[0] = (fb_vd)a0, o0->v[1] = (fb_vd)a1, o0->v[2] = (fb_vd)a2, o0->v[3] = (fb_vd)a3;
    o1->v[0] = (fb_vd)c0, o1->v[1] = (fb_vd)c1, o1->v[2] = (fb_vd)c2, o1->v[3] = (fb_vd)c3;
}
#endif

/* One pass over the samples, two at a time: margins from beta, their minimum and the
 * divergence test (when scan), the weights into q and their sum. */
FB_INLINE void fb_ls_pass(const fb_ls_job *J, const double *beta, double *q, const int loss,
                          int shifted, const fb_lv *shift, const fb_lv *es, int scan, fb_lv *s,
                          fb_vi bad[FB_LS_RV], fb_lv *total, const fb_ls_dot2_fn dot,
                          const fb_ls_weights_fn wts)
{
    const long long N = J->N, d = J->d;
    const fb_lv fl = fb_lv_load(J->floor); /* (rebased by the caller) */
    fb_lv acc0, acc1, tot = fb_lv_splat(0.0);
    long long n;
    int v;
    for (n = 0; n < N; n += 2) {
        const int two = n + 1 < N;
        const double *z0 = J->Z + n * d * J->zs, *z1 = two ? z0 + d * J->zs : z0;
        dot(beta, z0, z1, d, J->zs != 1, &acc0, &acc1);
        if (scan) { /* (a NaN margin is dropped by the minimum; the gradient test flags it) */
            FB_LV_FOR s->v[v] = fb_vmin(fb_vmin(acc0.v[v], acc1.v[v]), s->v[v]);
        }
        acc0 = wts(acc0, shift, es, loss, shifted);
        FB_LV_FOR tot.v[v] += acc0.v[v];
        fb_lv_store(q + n * FB_LS_RUNS, acc0);
        if (two) {
            acc1 = wts(acc1, shift, es, loss, shifted);
            FB_LV_FOR tot.v[v] += acc1.v[v];
            fb_lv_store(q + (n + 1) * FB_LS_RUNS, acc1);
        }
    }
    *total = tot;
    if (scan) {
        FB_LV_FOR bad[v] = ~(s->v[v] > fl.v[v]);
    }
}

/* The linear model's pass in the AVX2+FMA copy (d <= FB_LS_FUSED_D, direct mode): margins,
 * minimum, weights, their sum and G = Z^T q in ONE pass over the samples, one vector of
 * four runs at a time, with that vector's w_j and G_j in registers and Z[n, j] read
 * pre-broadcast (J->ZB) as a memory operand of the multiply-adds, so a sample costs a
 * vector of runs 2d multiply-adds, a vmaxpd, the exp (fb_exp_fma, the exp of train's tiny
 * linear path) and an add, with no dependency between samples but the sums. The argument
 * x = -m is formed from -w (exactly -m, in the order of fb_ls_dot2), the minimum margin is
 * -max x (vmaxpd drops a NaN, as fb_vmin). A NaN margin (non-finite parameters) gets the
 * weight exp(-708) here instead of a NaN: such a lane keeps non-finite parameters, which
 * train_lockstep checks at the end (the run is then executed on its own). Writes G (lane
 * layout), the minimum margins s and the sums of the weights of the block's lanes; the
 * caller redoes the pass with the per-run shift (fb_ls_pass) when a lane's s is out of the
 * direct range. */
#if FB_HAVE_AVX2_CLONE
FB_INLINE FB_TARGET_AVX2 void fb_ls_linpass_impl(const fb_ls_job *J, const double *th,
                                                  double *G, double *s_out, double *tot_out,
                                                  const int loss, const long long d,
                                                  const int lanes)
{
    const long long N = J->N, Rp = J->Rp;
    const __m256d one = _mm256_set1_pd(1.0);
    const __m256d sign = _mm256_set1_pd(-0.0);
    int v;
    for (v = 0; v < FB_LS_RV; ++v) {
        __m256d w[FB_LS_FUSED_D], g[FB_LS_FUSED_D];
        __m256d xm = _mm256_set1_pd(-INFINITY), tot = _mm256_setzero_pd();
        long long n, j;
        for (j = 0; j < d; ++j) {
            w[j] = _mm256_xor_pd(_mm256_loadu_pd(th + j * Rp + FB_V * v), sign); /* -w */
            g[j] = _mm256_setzero_pd();
        }
        for (n = 0; n < N; ++n) {
            /* Z[n, j] for this vector's runs: broadcast (FB_V copies) or the block's lanes */
            const long long zj = lanes ? FB_LS_RUNS : FB_V;
            const double *zb = J->ZB + n * d * zj + (lanes ? FB_V * v : 0);
            __m256d x = _mm256_mul_pd(_mm256_load_pd(zb), w[0]), q;
            for (j = 1; j < d; ++j) {
                x = _mm256_fmadd_pd(_mm256_load_pd(zb + zj * j), w[j], x);
            }
            xm = _mm256_max_pd(x, xm);
            if (loss == 0) {
                q = (__m256d)fb_exp_fma((fb_vd)x);
            } else { /* 1 / (1 + e^-m) = a / (1 + a) (m > 0) or 1 / (1 + a), a = e^-|m| */
                const __m256d a = (__m256d)fb_exp_fma((fb_vd)_mm256_or_pd(x, sign));
                const __m256d num = _mm256_blendv_pd(one, a, _mm256_cmp_pd(x, sign, _CMP_LT_OQ));
                q = _mm256_div_pd(num, _mm256_add_pd(one, a));
            }
            tot = _mm256_add_pd(tot, q);
            for (j = 0; j < d; ++j) {
                g[j] = _mm256_fmadd_pd(_mm256_load_pd(zb + zj * j), q, g[j]);
            }
        }
        for (j = 0; j < d; ++j) {
            _mm256_storeu_pd(G + j * FB_LS_RUNS + FB_V * v, g[j]);
        }
        _mm256_storeu_pd(s_out + FB_V * v, _mm256_xor_pd(xm, sign));
        _mm256_storeu_pd(tot_out + FB_V * v, tot);
    }
}

#define FB_LS_LINPASS(LOSS, D, LANES)                                                           \
    FB_NOINLINE FB_TARGET_AVX2 void fb_ls_linpass_##LOSS##_##D##_##LANES(                       \
        const fb_ls_job *J, const double *th, double *G, double *s, double *tot)                \
    {                                                                                           \
        fb_ls_linpass_impl(J, th, G, s, tot, LOSS, D, LANES);                                   \
    }
#define FB_LS_LINPASSES(LOSS, LANES)                                                            \
    FB_LS_LINPASS(LOSS, 1, LANES)                                                               \
    FB_LS_LINPASS(LOSS, 2, LANES)                                                               \
    FB_LS_LINPASS(LOSS, 3, LANES)                                                               \
    FB_LS_LINPASS(LOSS, 4, LANES)
FB_LS_LINPASSES(0, 0)
FB_LS_LINPASSES(1, 0)
FB_LS_LINPASSES(0, 1)
FB_LS_LINPASSES(1, 1)
#endif

typedef void (*fb_ls_linpass)(const fb_ls_job *, const double *, double *, double *, double *);

#if FB_HAVE_AVX2_CLONE
/* [per-run data][loss][d - 1] */
static const fb_ls_linpass fb_ls_linpasses[2][2][FB_LS_FUSED_D] = {
    {{fb_ls_linpass_0_1_0, fb_ls_linpass_0_2_0, fb_ls_linpass_0_3_0, fb_ls_linpass_0_4_0},
     {fb_ls_linpass_1_1_0, fb_ls_linpass_1_2_0, fb_ls_linpass_1_3_0, fb_ls_linpass_1_4_0}},
    {{fb_ls_linpass_0_1_1, fb_ls_linpass_0_2_1, fb_ls_linpass_0_3_1, fb_ls_linpass_0_4_1},
     {fb_ls_linpass_1_1_1, fb_ls_linpass_1_2_1, fb_ls_linpass_1_3_1, fb_ls_linpass_1_4_1}}};
#endif

/* ---- The fully connected model's weight passes ----
 *
 * A block's parameters are copied into a private array tw, vector-major: the 4 lanes of
 * vector v of parameter p at tw[(v P + p) FB_V], so each pass over a layer runs through one
 * contiguous stream per vector of runs. (In theta a parameter's 16 lanes are 128 bytes every
 * Rp doubles: with Rp = 64 every parameter sits at the same offset of a 512-byte stride and
 * a block's 326 KB of FullyConnected([50]) weights fell on a quarter of the L2's sets.) A
 * step makes two passes over each matrix instead of three: the VJP (a_{l+1} = W_l^T a_l,
 * reading W_l), then, once the step size is known, the update W_l += (cf a_l) r_{l+1}^T with
 * ||theta||^2 and the next step's predictor r'_l = W'_l r'_{l+1} in the same pass (layers from
 * the last down, so r'_{l+1} is ready; r and r' alternate between two buffers). Every sum is
 * taken in the order of the three-pass step (over c for the predictor, over r for the VJP),
 * so the iterates are the same bits; only ||theta||^2, which is only compared with 2^32, is
 * summed in another order. Rows go FB_LS_FC_ROWS at a time (their scalars in registers, the
 * shared vectors loaded once per column). */
#define FB_LS_FC_ROWS 4

/* r_out[r] = sum_c W[r, c] x[c] for nr rows of one vector (W: nr rows of cols, FB_V doubles
 * each; x and r_out with stride FB_LS_RUNS) */
FB_INLINE void fb_ls_fc_pred_rows(const double *FB_RESTRICT Wv, long long cols, const int nr,
                                  const double *x, double *out)
{
    fb_vd acc[FB_LS_FC_ROWS];
    long long c;
    int i;
#pragma GCC unroll 4
    for (i = 0; i < nr; ++i) {
        acc[i] = fb_splat(0.0);
    }
    for (c = 0; c < cols; ++c) {
        const fb_vd xc = fb_load(x + c * FB_LS_RUNS);
#pragma GCC unroll 4
        for (i = 0; i < nr; ++i) {
            acc[i] += fb_load(Wv + (i * cols + c) * FB_V) * xc;
        }
    }
#pragma GCC unroll 4
    for (i = 0; i < nr; ++i) {
        fb_store(out + i * FB_LS_RUNS, acc[i]);
    }
}

/* b[c] += sum_i W[i, c] a[i] (in the order of i) for nr rows of one vector */
FB_INLINE void fb_ls_fc_vjp_rows(const double *FB_RESTRICT Wv, long long cols, const int nr,
                                 const double *a, double *FB_RESTRICT b)
{
    fb_vd ar[FB_LS_FC_ROWS];
    long long c;
    int i;
#pragma GCC unroll 4
    for (i = 0; i < nr; ++i) {
        ar[i] = fb_load(a + i * FB_LS_RUNS);
    }
    for (c = 0; c < cols; ++c) {
        fb_vd bc = fb_load(b + c * FB_LS_RUNS);
#pragma GCC unroll 4
        for (i = 0; i < nr; ++i) {
            bc += fb_load(Wv + (i * cols + c) * FB_V) * ar[i];
        }
        fb_store(b + c * FB_LS_RUNS, bc);
    }
}

/* For nr rows of one vector: W[i, c] += ca[i] xo[c], tt[i] += W[i, c]^2 and
 * out[i] = sum_c W[i, c] xn[c] with the updated W */
FB_INLINE void fb_ls_fc_upd_rows(double *FB_RESTRICT Wv, long long cols, const int nr,
                                 const fb_vd *ca, const double *xo, const double *xn,
                                 fb_vd *tt, double *out)
{
    fb_vd acc[FB_LS_FC_ROWS], cr[FB_LS_FC_ROWS], sq[FB_LS_FC_ROWS];
    long long c;
    int i;
#pragma GCC unroll 4
    for (i = 0; i < nr; ++i) {
        acc[i] = fb_splat(0.0);
        sq[i] = tt[i];
        cr[i] = ca[i];
    }
    for (c = 0; c < cols; ++c) {
        const fb_vd xoc = fb_load(xo + c * FB_LS_RUNS), xnc = fb_load(xn + c * FB_LS_RUNS);
#pragma GCC unroll 4
        for (i = 0; i < nr; ++i) {
            fb_vd w = fb_load(Wv + (i * cols + c) * FB_V);
            w += cr[i] * xoc;
            sq[i] += w * w;
            acc[i] += w * xnc;
            fb_store(Wv + (i * cols + c) * FB_V, w);
        }
    }
#pragma GCC unroll 4
    for (i = 0; i < nr; ++i) {
        fb_store(out + i * FB_LS_RUNS, acc[i]);
        tt[i] = sq[i];
    }
}

/* The predictor r_l (layers L-1 .. 0, into rt: (L, width) lanes) of the block's parameters
 * tw, vector by vector */
FB_INLINE void fb_ls_fc_predict(const fb_ls_job *J, const double *tw, double *rt)
{
    const long long P = J->P, L = J->L, wd = J->width, last = J->offsets[L - 1];
    long long l, r;
    int v;
    for (v = 0; v < FB_LS_RV; ++v) {
        const double *Tv = tw + v * P * FB_V;
        for (r = 0; r < J->dims[L - 1]; ++r) {
            fb_store(rt + ((L - 1) * wd + r) * FB_LS_RUNS + FB_V * v,
                     fb_load(Tv + (last + r) * FB_V));
        }
        for (l = L - 2; l >= 0; --l) {
            const long long rows = J->dims[l], cols = J->dims[l + 1], off = J->offsets[l];
            const double *x = rt + (l + 1) * wd * FB_LS_RUNS + FB_V * v;
            double *out = rt + l * wd * FB_LS_RUNS + FB_V * v;
            for (r = 0; r + FB_LS_FC_ROWS <= rows; r += FB_LS_FC_ROWS) {
                fb_ls_fc_pred_rows(Tv + (off + r * cols) * FB_V, cols, FB_LS_FC_ROWS, x,
                                   out + r * FB_LS_RUNS);
            }
            for (; r < rows; ++r) {
                fb_ls_fc_pred_rows(Tv + (off + r * cols) * FB_V, cols, 1, x, out + r * FB_LS_RUNS);
            }
        }
    }
}

/* The VJP a_{l+1} = W_l^T a_l (a_0 = G, given in av), layers 0 .. L-2, and ||g||^2 into *nn:
 * sum_l ||a_l||^2 ||r_{l+1}||^2 + ||a_{L-1}||^2, as the single-run kernel */
FB_INLINE void fb_ls_fc_vjp(const fb_ls_job *J, const double *tw, const double *rt, double *av,
                            fb_lv *nn)
{
    const long long P = J->P, L = J->L, wd = J->width;
    long long l, r, c;
    int v;
    for (l = 0; l < L - 1; ++l) {
        const long long rows = J->dims[l], cols = J->dims[l + 1], off = J->offsets[l];
        const double *a = av + l * wd * FB_LS_RUNS;
        const double *rg = rt + (l + 1) * wd * FB_LS_RUNS;
        double *b = av + (l + 1) * wd * FB_LS_RUNS;
        fb_lv na = fb_lv_splat(0.0), nr = fb_lv_splat(0.0);
        memset(b, 0, (size_t)(cols * FB_LS_RUNS) * sizeof(double));
        for (v = 0; v < FB_LS_RV; ++v) {
            const double *Tv = tw + (v * P + off) * FB_V;
            for (r = 0; r + FB_LS_FC_ROWS <= rows; r += FB_LS_FC_ROWS) {
                fb_ls_fc_vjp_rows(Tv + r * cols * FB_V, cols, FB_LS_FC_ROWS,
                                  a + r * FB_LS_RUNS + FB_V * v, b + FB_V * v);
            }
            for (; r < rows; ++r) {
                fb_ls_fc_vjp_rows(Tv + r * cols * FB_V, cols, 1, a + r * FB_LS_RUNS + FB_V * v,
                                  b + FB_V * v);
            }
        }
        for (r = 0; r < rows; ++r) {
            const fb_lv x = fb_lv_load(a + r * FB_LS_RUNS);
            FB_LV_FOR na.v[v] += x.v[v] * x.v[v];
        }
        for (c = 0; c < cols; ++c) {
            const fb_lv x = fb_lv_load(rg + c * FB_LS_RUNS);
            FB_LV_FOR nr.v[v] += x.v[v] * x.v[v];
        }
        FB_LV_FOR nn->v[v] += na.v[v] * nr.v[v];
    }
    for (r = 0; r < J->dims[L - 1]; ++r) {
        const fb_lv x = fb_lv_load(av + ((L - 1) * wd + r) * FB_LS_RUNS);
        FB_LV_FOR nn->v[v] += x.v[v] * x.v[v];
    }
}

/* The update with step factors cf (the gradient of W_l is a_l r_{l+1}^T, of the last vector
 * a_{L-1}), ||theta||^2 into *t2, and the next step's predictor into rn (ro: this step's) */
FB_INLINE void fb_ls_fc_update(const fb_ls_job *J, double *tw, const double *ro, double *rn,
                               const double *av, fb_lv cf, fb_lv *t2)
{
    const long long P = J->P, L = J->L, wd = J->width, last = J->offsets[L - 1];
    long long l, r;
    int v, i;
    for (v = 0; v < FB_LS_RV; ++v) {
        double *Tv = tw + v * P * FB_V;
        const fb_vd cv = cf.v[v];
        fb_vd tt[FB_LS_FC_ROWS];
        for (i = 0; i < FB_LS_FC_ROWS; ++i) {
            tt[i] = fb_splat(0.0);
        }
        for (r = 0; r < J->dims[L - 1]; ++r) {
            fb_vd w = fb_load(Tv + (last + r) * FB_V);
            w += cv * fb_load(av + ((L - 1) * wd + r) * FB_LS_RUNS + FB_V * v);
            tt[0] += w * w;
            fb_store(Tv + (last + r) * FB_V, w);
            fb_store(rn + ((L - 1) * wd + r) * FB_LS_RUNS + FB_V * v, w);
        }
        for (l = L - 2; l >= 0; --l) {
            const long long rows = J->dims[l], cols = J->dims[l + 1], off = J->offsets[l];
            const double *a = av + l * wd * FB_LS_RUNS + FB_V * v;
            const double *xo = ro + (l + 1) * wd * FB_LS_RUNS + FB_V * v;
            const double *xn = rn + (l + 1) * wd * FB_LS_RUNS + FB_V * v;
            double *out = rn + l * wd * FB_LS_RUNS + FB_V * v;
            fb_vd ca[FB_LS_FC_ROWS];
            for (r = 0; r + FB_LS_FC_ROWS <= rows; r += FB_LS_FC_ROWS) {
                for (i = 0; i < FB_LS_FC_ROWS; ++i) {
                    ca[i] = fb_load(a + (r + i) * FB_LS_RUNS) * cv;
                }
                fb_ls_fc_upd_rows(Tv + (off + r * cols) * FB_V, cols, FB_LS_FC_ROWS, ca, xo, xn,
                                  tt, out + r * FB_LS_RUNS);
            }
            for (; r < rows; ++r) {
                ca[0] = fb_load(a + r * FB_LS_RUNS) * cv;
                fb_ls_fc_upd_rows(Tv + (off + r * cols) * FB_V, cols, 1, ca, xo, xn, tt,
                                  out + r * FB_LS_RUNS);
            }
        }
        for (i = 0; i < FB_LS_FC_ROWS; ++i) {
            t2->v[v] += tt[i];
        }
    }
}

/* theta (lanes r0.., stride Rp) <-> the private copy tw */
FB_INLINE void fb_ls_fc_copy(const fb_ls_job *J, double *th, double *tw, int out)
{
    const long long P = J->P, Rp = J->Rp;
    long long p;
    int v;
    for (v = 0; v < FB_LS_RV; ++v) {
        for (p = 0; p < P; ++p) {
            if (out) {
                fb_store(th + p * Rp + FB_V * v, fb_load(tw + (v * P + p) * FB_V));
            } else {
                fb_store(tw + (v * P + p) * FB_V, fb_load(th + p * Rp + FB_V * v));
            }
        }
    }
}

FB_INLINE void fb_ls_block(const fb_ls_job *J0, long long r0, double *W, const int kind,
                           const int loss, const fb_ls_linpass lp, const fb_ls_dot2_fn dot,
                           const fb_ls_weights_fn wts)
{
    fb_ls_job Jb = *J0;
    const fb_ls_job *J = &Jb;
    const long long N = J->N, d = J->d, P = J->P, L = J->L, Rp = J->Rp, wd = J->width;
    const int rule = J->rule;
    double *FB_RESTRICT th = J->theta + r0;
    double *FB_RESTRICT beta = W;
    double *FB_RESTRICT G = beta + d * FB_LS_RUNS;
    double *FB_RESTRICT qb = G + d * FB_LS_RUNS;
    double *FB_RESTRICT g = qb + N * FB_LS_RUNS;
    double *FB_RESTRICT prefix = g + P * FB_LS_RUNS;
    double *right = prefix + L * d * FB_LS_RUNS; /* (swapped with right2) */
    double *FB_RESTRICT avec = right + L * wd * FB_LS_RUNS;
    double *right2 = avec + L * wd * FB_LS_RUNS;            /* fully connected: */
    double *FB_RESTRICT tw = right2 + L * wd * FB_LS_RUNS;   /* (see fb_ls_fc_predict) */
    double lane[FB_LS_RUNS], esl[FB_LS_RUNS], tb[FB_LS_RUNS];
    const fb_lv lrv = fb_lv_load(J0->lr + r0);
    long long t, k = 0, j, l, i;
    int v;

    Jb.floor = J0->floor + r0;
    if (kind == FB_LS_FC) {
        fb_ls_fc_copy(J, th, tw, 0);
        fb_ls_fc_predict(J, tw, right);
    }
    for (t = 0; t < J->n_steps; ++t) {
        fb_lv s = fb_lv_splat(INFINITY), shift = fb_lv_splat(0.0), es = fb_lv_splat(1.0);
        fb_lv total, cf, nn = fb_lv_splat(0.0), t2 = fb_lv_splat(0.0);
        fb_vi bad[FB_LS_RV], far[FB_LS_RV];
        int shifted = 0;
        /* ---- predictor: beta (d lanes) ---- */
        if (kind == FB_LS_LINEAR && lp != NULL) {
            /* (the fused pass reads theta; beta is copied only for a shifted pass) */
        } else if (kind == FB_LS_LINEAR) {
            for (j = 0; j < d; ++j) {
                fb_lv_store(beta + j * FB_LS_RUNS, fb_lv_load(th + j * Rp));
            }
        } else if (kind == FB_LS_DIAG) {
            for (j = 0; j < d; ++j) {
                fb_lv p = fb_lv_load(th + j * Rp);
                fb_lv_store(prefix + j * FB_LS_RUNS, p);
                for (l = 1; l < L; ++l) {
                    const fb_lv w = fb_lv_load(th + (l * d + j) * Rp);
                    FB_LV_FOR p.v[v] *= w.v[v];
                    fb_lv_store(prefix + (l * d + j) * FB_LS_RUNS, p);
                }
                fb_lv_store(beta + j * FB_LS_RUNS, p);
            }
        } else { /* (made by the previous step's update, or before the first step) */
            memcpy(beta, right, (size_t)(d * FB_LS_RUNS) * sizeof(double));
        }
        /* ---- margins, test and weights: one pass in direct mode (shift 0), a second one
         * with the per-run shift when some run's minimum margin is out of the direct range */
        FB_LV_FOR bad[v] = fb_zero_mask();
        if (kind == FB_LS_LINEAR && lp != NULL) {
            const fb_lv fl = fb_lv_load(J->floor);
            lp(J, th, G, lane, tb);
            s = fb_lv_load(lane);
            total = fb_lv_load(tb);
            FB_LV_FOR bad[v] = ~(s.v[v] > fl.v[v]);
        } else {
            fb_ls_pass(J, beta, qb, loss, 0, &shift, &es, 1, &s, bad, &total, dot, wts);
        }
        FB_LV_FOR
        {
            const fb_vd sv = s.v[v];
            if (loss == 0) {
                far[v] = (sv > FB_DIRECT_LIM) | (sv < -FB_DIRECT_LIM);
            } else {
                far[v] = sv > FB_DIRECT_LIM;
            }
            far[v] &= ~bad[v];
            shift.v[v] = fb_select(far[v], sv, fb_splat(0.0));
        }
        if (fb_lv_any(bad) && fb_ls_flag(J0, r0, bad, 1, t) == 0) {
            break;
        }
        if (fb_lv_any(far)) {
            fb_lv_store(lane, shift);
            for (i = 0; i < FB_LS_RUNS; ++i) {
                esl[i] = lane[i] == 0.0 ? 1.0 : fb_exp_neg(lane[i]);
            }
            es = fb_lv_load(esl);
            shifted = 1;
            if (kind == FB_LS_LINEAR && lp != NULL) {
                for (j = 0; j < d; ++j) {
                    fb_lv_store(beta + j * FB_LS_RUNS, fb_lv_load(th + j * Rp));
                }
            }
            fb_ls_pass(J, beta, qb, loss, 1, &shift, &es, 0, &s, bad, &total, dot, wts);
        }
        /* ---- G = Z^T q, two coordinates at a time (done by the fused pass unless shifted) */
        for (j = 0; j < d && !(kind == FB_LS_LINEAR && lp != NULL && !shifted); j += 2) {
            const int two = j + 1 < d;
            const double *z0 = J->ZT + j * N * J->zs, *z1 = two ? z0 + N * J->zs : z0;
            fb_lv a0, a1;
            dot(qb, z0, z1, N, J->zs != 1, &a0, &a1);
            fb_lv_store(G + j * FB_LS_RUNS, a0);
            if (two) {
                fb_lv_store(G + (j + 1) * FB_LS_RUNS, a1);
            }
        }
        /* ---- VJP: g (diagonal) or the vectors a_l (fully connected); ||g||^2 ---- */
        if (kind == FB_LS_LINEAR) {
            for (j = 0; j < d; ++j) {
                const fb_lv x = fb_lv_load(G + j * FB_LS_RUNS);
                FB_LV_FOR nn.v[v] += x.v[v] * x.v[v];
            }
        } else if (kind == FB_LS_DIAG) {
            for (j = 0; j < d; ++j) {
                fb_lv suf = fb_lv_load(G + j * FB_LS_RUNS);
                for (l = L - 1; l >= 0; --l) {
                    fb_lv x = suf;
                    const fb_lv w = fb_lv_load(th + (l * d + j) * Rp);
                    if (l > 0) {
                        const fb_lv left = fb_lv_load(prefix + ((l - 1) * d + j) * FB_LS_RUNS);
                        FB_LV_FOR x.v[v] = left.v[v] * suf.v[v];
                    }
                    FB_LV_FOR
                    {
                        suf.v[v] *= w.v[v];
                        nn.v[v] += x.v[v] * x.v[v];
                    }
                    fb_lv_store(g + (l * d + j) * FB_LS_RUNS, x);
                }
            }
        } else {
            memcpy(avec, G, (size_t)(d * FB_LS_RUNS) * sizeof(double));
            fb_ls_fc_vjp(J, tw, right, avec, &nn);
        }
        FB_LV_FOR bad[v] = ~(nn.v[v] < INFINITY);
        if (fb_lv_any(bad) && fb_ls_flag(J0, r0, bad, 1, t) == 0) {
            break;
        }
        /* ---- step size per run (fb_factor / fb_deep_factor) ---- */
        if (rule == 0) {
            FB_LV_FOR
            {
                cf.v[v] = lrv.v[v] * es.v[v];
                if (loss == 1 && shifted) {
                    cf.v[v] = fb_select(shift.v[v] != 0.0, cf.v[v], lrv.v[v]);
                } else if (loss == 1) {
                    cf.v[v] = lrv.v[v];
                }
            }
        } else if (rule == 1) {
            fb_lv_store(lane, nn);
            for (i = 0; i < FB_LS_RUNS; ++i) {
                lane[i] = lane[i] > 0.0 ? 1.0 / sqrt(lane[i]) : 0.0;
            }
            cf = fb_lv_load(lane);
            FB_LV_FOR cf.v[v] *= lrv.v[v];
        } else {
            FB_LV_FOR cf.v[v] = lrv.v[v] / total.v[v];
        }
        /* ---- update, ||theta||^2 ---- */
        if (kind == FB_LS_FC) {
            double *swap = right;
            fb_ls_fc_update(J, tw, right, right2, avec, cf, &t2);
            right = right2;
            right2 = swap;
        } else {
            const double *src = kind == FB_LS_LINEAR ? G : g;
            for (i = 0; i < P; ++i) {
                fb_lv w = fb_lv_load(th + i * Rp);
                const fb_lv x = fb_lv_load(src + i * FB_LS_RUNS);
                FB_LV_FOR
                {
                    w.v[v] += cf.v[v] * x.v[v];
                    t2.v[v] += w.v[v] * w.v[v];
                }
                fb_lv_store(th + i * Rp, w);
            }
        }
        /* ---- record ---- */
        if (k < J->K && J->rec_steps[k] == t + 1 && kind == FB_LS_FC) {
            for (i = 0; i < P; ++i) {
                FB_LV_FOR fb_store(J->rec + (k * P + i) * Rp + r0 + FB_V * v,
                                   fb_load(tw + (v * P + i) * FB_V));
            }
            ++k;
        } else if (k < J->K && J->rec_steps[k] == t + 1) {
            for (i = 0; i < P; ++i) {
                fb_lv_store(J->rec + (k * P + i) * Rp + r0, fb_lv_load(th + i * Rp));
            }
            ++k;
        }
        if (kind != FB_LS_LINEAR) { /* the single-run deep kernels rescale past 2^16 */
            FB_LV_FOR bad[v] = (t2.v[v] > FB_LS_T2_HI) & (t2.v[v] < INFINITY);
            if (fb_lv_any(bad) && fb_ls_flag(J0, r0, bad, 2, t + 1) == 0) {
                break;
            }
        }
    }
    if (kind == FB_LS_FC) {
        fb_ls_fc_copy(J, th, tw, 1);
    }
}

typedef void (*fb_ls_driver)(const fb_ls_job *, long long, double *);

#define FB_DEFINE_LS(SUFFIX, ATTR, LP0, LP1, DOT, WTS)                                             \
    FB_NOINLINE ATTR void fb_ls_lin0_##SUFFIX(const fb_ls_job *J, long long r0, double *W)         \
    {                                                                                              \
        fb_ls_block(J, r0, W, FB_LS_LINEAR, 0, LP0, DOT, WTS);                                     \
    }                                                                                              \
    FB_NOINLINE ATTR void fb_ls_diag0_##SUFFIX(const fb_ls_job *J, long long r0, double *W)        \
    {                                                                                              \
        fb_ls_block(J, r0, W, FB_LS_DIAG, 0, NULL, DOT, WTS);                                      \
    }                                                                                              \
    FB_NOINLINE ATTR void fb_ls_fc0_##SUFFIX(const fb_ls_job *J, long long r0, double *W)          \
    {                                                                                              \
        fb_ls_block(J, r0, W, FB_LS_FC, 0, NULL, DOT, WTS);                                        \
    }                                                                                              \
    FB_NOINLINE ATTR void fb_ls_lin1_##SUFFIX(const fb_ls_job *J, long long r0, double *W)         \
    {                                                                                              \
        fb_ls_block(J, r0, W, FB_LS_LINEAR, 1, LP1, DOT, WTS);                                     \
    }                                                                                              \
    FB_NOINLINE ATTR void fb_ls_diag1_##SUFFIX(const fb_ls_job *J, long long r0, double *W)        \
    {                                                                                              \
        fb_ls_block(J, r0, W, FB_LS_DIAG, 1, NULL, DOT, WTS);                                      \
    }                                                                                              \
    FB_NOINLINE ATTR void fb_ls_fc1_##SUFFIX(const fb_ls_job *J, long long r0, double *W)          \
    {                                                                                              \
        fb_ls_block(J, r0, W, FB_LS_FC, 1, NULL, DOT, WTS);                                        \
    }                                                                                              \
    static const fb_ls_driver fb_ls_drivers_##SUFFIX[6] = {                                        \
        fb_ls_lin0_##SUFFIX, fb_ls_diag0_##SUFFIX, fb_ls_fc0_##SUFFIX,                             \
        fb_ls_lin1_##SUFFIX, fb_ls_diag1_##SUFFIX, fb_ls_fc1_##SUFFIX};

FB_DEFINE_LS(base, , NULL, NULL, fb_ls_dot2, fb_ls_weights)
#if FB_HAVE_AVX2_CLONE
/* the linear drivers of the AVX2 copy take the fused pass J->lp when the call has one
 * (d <= FB_LS_FUSED_D) */
FB_DEFINE_LS(avx2, FB_TARGET_AVX2, J->lp, J->lp, fb_ls_dot2_avx2, fb_ls_weights_avx2)
#endif

int fb_lockstep_block_runs(void)
{
    return FB_LS_RUNS;
}

/* The block's data, per run: run r0 + i's Z[n, j] at ZL[(n d + j) FB_LS_RUNS + i] and
 * ZTL[(j N + n) FB_LS_RUNS + i], from Z (Rp, N, d) */
static void fb_ls_block_data(const double *Z, long long N, long long d, long long r0, double *ZL,
                             double *ZTL)
{
    long long n, j, i;
    for (i = 0; i < FB_LS_RUNS; ++i) {
        const double *Zr = Z + (r0 + i) * N * d;
        for (n = 0; n < N; ++n) {
            for (j = 0; j < d; ++j) {
                ZL[(n * d + j) * FB_LS_RUNS + i] = Zr[n * d + j];
                ZTL[(j * N + n) * FB_LS_RUNS + i] = Zr[n * d + j];
            }
        }
    }
}

int fb_gd_lockstep_f64(int kind, const double *Z, int per_lane, long long N, long long d,
                       long long L, const long long *dims, const long long *offsets, long long P,
                       long long Rp, long long b0, long long b1, double *theta,
                       const double *lr, const double *floor, int loss, int rule,
                       long long n_steps, const long long *rec_steps, long long K, double *rec,
                       long long *status, long long *fail_step)
{
    fb_ls_job J;
    const fb_ls_driver *drivers = fb_ls_drivers_base;
    double *ZT, *W, *ZB = NULL;
    long long n, j, b, wd = 0, l;

    if (Z == NULL || theta == NULL || lr == NULL || floor == NULL || status == NULL
        || fail_step == NULL || N < 1 || d < 1 || L < 1 || P < 1 || Rp < 1
        || Rp % FB_LS_RUNS != 0 || b0 < 0 || b1 > Rp / FB_LS_RUNS || n_steps < 0 || K < 0
        || (K > 0 && (rec_steps == NULL || rec == NULL)) || kind < 0 || kind > 2
        || (per_lane != 0 && per_lane != 1)) {
        return -1;
    }
    if (loss != 0 && loss != 1) {
        return -2;
    }
    if (rule != 0 && rule != 1 && rule != 2) {
        return -3;
    }
    if (loss == 1 && rule == 2) {
        return -6;
    }
    if (kind == FB_LS_FC) {
        if (dims == NULL || offsets == NULL || dims[0] != d) {
            return -1;
        }
        for (l = 0; l < L; ++l) {
            wd = dims[l] > wd ? dims[l] : wd;
        }
    }
    memset(&J, 0, sizeof J);
    J.kind = kind;
    J.loss = loss;
    J.rule = rule;
    J.Z = Z;
    J.N = N;
    J.d = d;
    J.P = P;
    J.L = kind == FB_LS_LINEAR ? 1 : L;
    J.Rp = Rp;
    J.width = wd;
    J.dims = dims;
    J.offsets = offsets;
    J.theta = theta;
    J.lr = lr;
    J.floor = floor;
    J.n_steps = n_steps;
    J.K = K;
    J.rec_steps = rec_steps;
    J.rec = rec;
    J.status = status;
    J.fail = fail_step;
    J.zs = per_lane ? FB_LS_RUNS : 1;
    /* the transposed data (d, N), or per run the block's two copies (N, d, 16), (d, N, 16) */
    ZT = fb_alloc((size_t)(N * d * (per_lane ? 2 * FB_LS_RUNS : 1)));
    W = fb_alloc((size_t)fb_ls_scratch(&J));
    if (ZT == NULL || W == NULL) {
        fb_free(ZT);
        fb_free(W);
        return -4;
    }
    if (per_lane) {
        J.Z = J.ZB = ZT;
        J.ZT = ZT + N * d * FB_LS_RUNS;
    } else {
        for (n = 0; n < N; ++n) {
            for (j = 0; j < d; ++j) {
                ZT[j * N + n] = Z[n * d + j];
            }
        }
        J.ZT = ZT;
    }
#if FB_HAVE_AVX2_CLONE
    if (fb_use_avx2()) {
        drivers = fb_ls_drivers_avx2;
        if (kind == FB_LS_LINEAR && d <= FB_LS_FUSED_D) {
            J.lp = fb_ls_linpasses[per_lane][loss][d - 1];
        }
        if (kind == FB_LS_LINEAR && d <= FB_LS_FUSED_D && !per_lane) {
            ZB = fb_alloc((size_t)(N * d * FB_V));
            if (ZB == NULL) {
                fb_free(ZT);
                fb_free(W);
                return -4;
            }
            for (n = 0; n < N * d; ++n) {
                for (j = 0; j < FB_V; ++j) {
                    ZB[n * FB_V + j] = Z[n];
                }
            }
            J.ZB = ZB;
        }
    }
#endif
    for (b = b0; b < b1; ++b) {
        if (per_lane) {
            fb_ls_block_data(Z, N, d, b * FB_LS_RUNS, ZT, ZT + N * d * FB_LS_RUNS);
        }
        drivers[3 * loss + kind](&J, b * FB_LS_RUNS, W);
    }
    fb_free(ZB);
    fb_free(ZT);
    fb_free(W);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* The core's vector floating-point throughput, for bench/lockstep_bound.py: `iters`
 * iterations of 10 independent 4-lane multiply-add chains a <- a m + c (their 4-cycle latency
 * is below the iteration's 5 cycles at 2 per cycle, so the time is the pipes' throughput)
 * and, for which 1, 4 chains of adds a <- a + c beside them, for which 2 4 chains of maxima
 * a <- max(a, c): what those cost next to the multiply-adds. On the Zen 3 cores of the
 * machine this was written on the adds cost nothing there, the maxima ~0.08 ns each. The
 * chains start from different values (no two are the same computation); their sum goes to
 * *out. */
#if FB_HAVE_AVX2_CLONE
#define FB_FMA(A) A = _mm256_fmadd_pd(A, m, c)
#define FB_KEEP                                                                                 \
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6), \
                     "+x"(a7), "+x"(a8), "+x"(a9), "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3))
FB_NOINLINE FB_TARGET_AVX2 double fb_fp_peak_avx2(long long iters, int which)
{
    const __m256d m = _mm256_set1_pd(0.999999), c = _mm256_set1_pd(1e-9);
    __m256d a0 = _mm256_set1_pd(1.000), a1 = _mm256_set1_pd(1.001), a2 = _mm256_set1_pd(1.002),
            a3 = _mm256_set1_pd(1.003), a4 = _mm256_set1_pd(1.004), a5 = _mm256_set1_pd(1.005),
            a6 = _mm256_set1_pd(1.006), a7 = _mm256_set1_pd(1.007), a8 = _mm256_set1_pd(1.008),
            a9 = _mm256_set1_pd(1.009), b0 = _mm256_set1_pd(-10.0), b1 = _mm256_set1_pd(-20.0),
            b2 = _mm256_set1_pd(-30.0), b3 = _mm256_set1_pd(-40.0);
    double sum[4];
    long long t;
    for (t = 0; t < iters; ++t) { /* (the asm keeps each chain in a register of its own) */
        FB_FMA(a0), FB_FMA(a1), FB_FMA(a2), FB_FMA(a3), FB_FMA(a4);
        FB_FMA(a5), FB_FMA(a6), FB_FMA(a7), FB_FMA(a8), FB_FMA(a9);
        if (which == 1) {
            b0 = _mm256_add_pd(b0, c), b1 = _mm256_add_pd(b1, c);
            b2 = _mm256_add_pd(b2, c), b3 = _mm256_add_pd(b3, c);
        } else if (which == 2) {
            b0 = _mm256_max_pd(b0, c), b1 = _mm256_max_pd(b1, c);
            b2 = _mm256_max_pd(b2, c), b3 = _mm256_max_pd(b3, c);
        }
        FB_KEEP;
    }
    a0 = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + b0 + b1 + b2 + b3;
    _mm256_storeu_pd(sum, a0);
    return sum[0] + sum[1] + sum[2] + sum[3];
}
#undef FB_FMA
#undef FB_KEEP
#endif

int fb_fp_peak_check(long long iters, int which, double *out)
{
    if (out == NULL || iters < 1 || which < 0 || which > 2) {
        return -1;
    }
#if FB_HAVE_AVX2_CLONE
    if (fb_use_avx2()) {
        *out = fb_fp_peak_avx2(iters, which);
        return 0;
    }
#endif
    return -5;
}

#else /* not GCC or clang */

int fb_lockstep_block_runs(void)
{
    return 16;
}

int fb_gd_lockstep_f64(int kind, const double *Z, int per_lane, long long N, long long d,
                       long long L, const long long *dims, const long long *offsets, long long P,
                       long long Rp, long long b0, long long b1, double *theta,
                       const double *lr, const double *floor, int loss, int rule,
                       long long n_steps, const long long *rec_steps, long long K, double *rec,
                       long long *status, long long *fail_step)
{
    return -5;
}

int fb_fp_peak_check(long long iters, int which, double *out)
{
    return -5;
}

#endif
