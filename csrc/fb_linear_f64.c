/* Gradient descent on a linear predictor in float64: SIMD exp, OpenMP for large problems.
 *
 * Same specification as fb_gd_linear_ld (src/fastbias/kernels/_reference.py: gd_linear,
 * loss_weights, scaled_loss_sum) in double precision. Unlike the long double kernel this one
 * does not reproduce the reference operation for operation: sums are taken in another order,
 * multiply-adds are fused, exp is our own vectorized polynomial and the log-domain shift is
 * chosen differently (below), so iterates agree with the reference to round-off (1e-12
 * relative after 1000 steps), not bit for bit. A step's arithmetic depends on its w alone,
 * not on the number of threads (the sums are taken in a fixed order: groups of FB_GROUP panels
 * added as the leaves of a fixed tree, below) nor on the previous steps, so runs give the same
 * bits with any n_threads, and chunked calls (step0 > 0) reproduce one long call bit for bit.
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
 * diverging runs or badly scaled data can get there) use the reference's shift s, the exact
 * minimum: two passes, margins and their minimum, then weights and gradient (with threads, a
 * barrier after each).
 *
 * Drivers: serial (n_threads == 1, problems of one group, or small problems with
 * n_threads == 0), with copies for one panel and small d where everything stays in registers
 * (and, for the exponential loss in the AVX2 copy, a path of its own with fewer operations:
 * fb_tiny_exp_impl); and parallel (OpenMP): ONE parallel region for the whole call, each
 * thread owning a range of groups, one barrier per step in direct mode (fb_par_impl). The
 * compensated updates (lo != NULL, precision="compensated") always run serially.
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

#include "fb_f64_core.h"

/* The canonical order of the sums. A step's gradient G = Z^T q and scaled loss sum are summed
 * over groups of FB_GROUP panels (FB_GROUP * FB_B samples; the last group may be shorter):
 * within a group, fb_pass keeps FB_V lanes per coordinate from zero (the group's first panel
 * stores, the others add), and the groups' lanes (with their loss sums) are then added as the
 * leaves of a fixed binary tree over the NG groups: node [a, a + 2s) (a a multiple of 2s) is
 * node [a, a + s) plus node [a + s, a + 2s), nodes past NG are left out (a node with an empty
 * right half is its left half), and the root's lanes are folded with fb_hsum. Every driver
 * sums this way whatever its number of threads: a thread takes a range of whole groups, adds
 * up the nodes that lie inside its range (at most ~2 log2 NG of them remain, the range's
 * decomposition into aligned blocks, fb_block), and whoever combines the threads' blocks
 * finishes the same tree. So the iterates do not depend on the thread count, a thread has
 * few blocks to hand over, and with one group (N <= FB_GROUP * FB_B) a step is the plain pass
 * over all panels, as before groups. The minimum margin and the divergence test are exact in
 * any order.
 *
 * A block (node value) is FB_V lanes for each of the d coordinates, then the loss sum:
 * fb_bstride(d) doubles, whole cache lines. */
#define FB_GROUP 16

FB_INLINE long long fb_ngroups(long long NB)
{
    return (NB + FB_GROUP - 1) / FB_GROUP;
}

FB_INLINE long long fb_bstride(long long d)
{
    return fb_round8(d * FB_V + 1);
}

/* Blocks a stack may need for NG groups (a range's decomposition has at most 2 log2 NG). */
FB_INLINE long long fb_depth(long long NG)
{
    long long m = 1;
    while ((1LL << m) <= NG) {
        ++m;
    }
    return 2 * m + 2;
}

/* The first block of the decomposition of groups [a, b) into aligned blocks: the largest
 * power of two s with a a multiple of s and a + s <= b. */
FB_INLINE long long fb_block(long long a, long long b)
{
    long long s = 1;
    while ((a & s) == 0 && a + 2 * s <= b) {
        s *= 2;
    }
    return s;
}

/* out = x + y over n doubles (out may be x) */
FB_INLINE void fb_add_block(double *out, const double *x, const double *FB_RESTRICT y,
                            long long n)
{
    long long i;
    for (i = 0; i < n; ++i) {
        out[i] = x[i] + y[i];
    }
}

/* Whether the top two blocks of a stack are the halves of one node (equal sizes, the lower
 * one starting at a multiple of twice its size). */
FB_INLINE int fb_siblings(const long long *start, const long long *size, int top)
{
    return top >= 2 && size[top - 2] == size[top - 1] && (start[top - 2] & size[top - 2]) == 0;
}

/* Group g's pass (fb_pass's arithmetic over its panels [b0, b1)) with the block made in place
 * at S + top * bs, followed by c merges on the stack: S[top - 1] += block, S[top - 2] +=
 * S[top - 1], ... (the tree's order: left + right; the additions commute exactly), the first
 * two fused into the last panel's gradient loop when the group has more than one panel. The
 * margins' minimum and test go to the lanes lmin and lbad (FUSED, MARGINS). */
FB_INLINE void fb_group_pass(const fb_job *job, long long b0, long long b1, const double *w,
                             const long long d, const int kind, fb_scale sc,
                             const int with_log1p, double *FB_RESTRICT M, double *S,
                             const long long bs, int top, int c, fb_vd lmin[FB_NV],
                             fb_vi lbad[FB_NV])
{
    const int want_total = job->rule == 2;
    const fb_vd shift_v = fb_splat(sc.shift);
    /* the last panel's merges: fused = 1 or 2 of them, or 0 for one-panel groups */
    const long long bf = c > 0 && b1 - b0 > 1 ? b1 - 1 : -1;
    const int fused = bf < 0 ? 0 : c < 2 ? 1 : 2;
    double *GA = S + top * bs, *s1 = S + (top - 1) * bs, *s2 = S + (top - 2) * bs;
    fb_vd tl[FB_NV], m[FB_NV], q[FB_NV];
    double tsum = 0.0, total;
    long long b, j;
    int k, i;
    for (k = 0; k < FB_NV; ++k) {
        tl[k] = fb_splat(0.0);
    }
    for (b = b0; b < b1; ++b) {
        const double *Pb = job->P + b * d * FB_B;
        const int nv = fb_nvalid(job, b);
        if (!fb_panel_front(Pb, w, d, kind, job->s_floor, nv, M + b * FB_B, m, lmin, lbad)) {
            continue;
        }
        fb_panel_weights(m, sc.mode, shift_v, sc.es, nv, want_total, with_log1p, q, tl, &tsum);
        if (b != bf) {
            fb_panel_grad(Pb, q, d, GA, b == b0);
        } else { /* fb_panel_grad's sums (not the first panel), then one or two merges */
            double *dst = fused == 1 ? s1 : s2;
            for (j = 0; j < d; ++j) {
                const double *p = Pb + j * FB_B;
                fb_vd g = fb_load(GA + j * FB_V);
                g += fb_load(p) * q[0];
                g += fb_load(p + FB_V) * q[1];
                g += fb_load(p + 2 * FB_V) * q[2];
                g += fb_load(p + 3 * FB_V) * q[3];
                if (fused == 2) {
                    g = fb_load(s1 + j * FB_V) + g;
                }
                fb_store(dst + j * FB_V, fb_load(dst + j * FB_V) + g);
            }
        }
    }
    if (kind == FB_PASS_MARGINS) {
        return;
    }
    total = tsum + fb_hsum((tl[0] + tl[1]) + (tl[2] + tl[3]));
    for (i = 1; i <= fused; ++i) {
        total = S[(top - i) * bs + d * FB_V] + total;
    }
    S[(top - fused) * bs + d * FB_V] = total;
    for (i = fused + 1; i <= c; ++i) { /* the other merges */
        fb_add_block(S + (top - i) * bs, S + (top - i) * bs, S + (top - i + 1) * bs,
                     d * FB_V + 1);
    }
}

/* One pass (kind as fb_pass) over groups [g0, g1), with the weights in the scale sc. The
 * minimum margin goes to *s and the test to *bad (FUSED, MARGINS). FUSED, WEIGHTS: group g's
 * block is made on the stack S (bstride doubles per block) and merged with its left siblings
 * there (fb_group_pass); at the end S holds the blocks of the decomposition of [g0, g1), in
 * order. */
FB_INLINE void fb_tree_pass(const fb_job *job, long long g0, long long g1, const double *w,
                            const long long d, const int kind, fb_scale sc,
                            const int with_log1p, double *FB_RESTRICT M, double *S,
                            double *s, int *bad)
{
    const long long bs = fb_bstride(d);
    long long start[64], size[64], g;
    fb_vd lmin[FB_NV];
    fb_vi lbad[FB_NV];
    int top = 0, k;
    for (k = 0; k < FB_NV; ++k) {
        lmin[k] = fb_splat(INFINITY);
        lbad[k] = fb_zero_mask();
    }
    for (g = g0; g < g1; ++g) {
        const long long b0 = g * FB_GROUP;
        const long long b1 = b0 + FB_GROUP < job->NB ? b0 + FB_GROUP : job->NB;
        long long cs = 1; /* the block's size after c merges */
        int c = 0;
        if (kind != FB_PASS_MARGINS) {
            while (c < top && size[top - 1 - c] == cs && (start[top - 1 - c] & cs) == 0) {
                ++c;
                cs *= 2;
            }
        }
        fb_group_pass(job, b0, b1, w, d, kind, sc, with_log1p, M, S, bs, top, c, lmin, lbad);
        if (kind == FB_PASS_MARGINS) {
            continue;
        }
        top -= c;
        if (c == 0) {
            start[top] = g;
        }
        size[top] = cs;
        ++top;
    }
    if (kind != FB_PASS_WEIGHTS) {
        *s = fb_lanes_min(lmin);
        *bad = fb_lanes_any(lbad);
    }
}

/* The root of the tree from T stacks left by fb_tree_pass, stack t (at S0 + t * tstride)
 * holding the blocks of thread t's groups [NG t / T, NG (t+1) / T): the blocks merged as in
 * fb_tree_pass, then the rest (the blocks of NG's binary decomposition) added from the right,
 * which is the tree's root. Gt[0 : d] = G (the lanes folded), Gt[d] = the loss sum. R:
 * scratch for fb_depth(NG) blocks. */
FB_INLINE void fb_tree_root(const double *S0, long long tstride, int T, long long NG,
                            const long long d, double *FB_RESTRICT R, double *FB_RESTRICT Gt)
{
    const long long bs = fb_bstride(d), n = d * FB_V + 1;
    const double *ptr[64];
    long long start[64], size[64], j;
    int top = 0, t, k;
    for (t = 0; t < T; ++t) {
        const long long a1 = NG * (t + 1) / T;
        long long a = NG * t / T;
        const double *blk = S0 + t * tstride;
        while (a < a1) {
            const long long sz = fb_block(a, a1);
            ptr[top] = blk;
            start[top] = a;
            size[top] = sz;
            ++top;
            blk += bs;
            a += sz;
            while (fb_siblings(start, size, top)) {
                fb_add_block(R + (top - 2) * bs, ptr[top - 2], ptr[top - 1], n);
                ptr[top - 2] = R + (top - 2) * bs;
                size[top - 2] *= 2;
                --top;
            }
        }
    }
    for (k = top - 2; k >= 0; --k) {
        fb_add_block(R + k * bs, ptr[k], ptr[k + 1], n);
        ptr[k] = R + k * bs;
    }
    for (j = 0; j < d; ++j) {
        Gt[j] = fb_hsum(fb_load(ptr[0] + j * FB_V));
    }
    Gt[d] = ptr[0][d * FB_V];
}

/* w += factor(sc) G, G = Gt[0 : d] and total = Gt[d] summed in the canonical order: the end
 * of a step, the same in every driver. */
FB_INLINE void fb_update(const fb_job *job, double *FB_RESTRICT w, const long long d,
                         const double *FB_RESTRICT Gt, fb_scale sc)
{
    double gg = 0.0, factor;
    long long j;
    if (job->rule == 1) {
        for (j = 0; j < d; ++j) {
            gg += Gt[j] * Gt[j];
            /* One multiply-add after the other (fused in the AVX2 copy) whatever the context:
             * GCC would otherwise vectorize the products and add them in order, unfused,
             * with a fused scalar remainder, a rounding that depends on d mod 4. */
            __asm__("" : "+x"(gg));
        }
    }
    factor = fb_factor(job->rule, sc.mode, job->lr, sc.es, gg, Gt[d]);
    if (job->lo != NULL) {
        for (j = 0; j < d; ++j) {
            fb_comp_add(w + j, job->lo + j, factor * Gt[j]);
        }
        return;
    }
    for (j = 0; j < d; ++j) {
        w[j] += factor * Gt[j];
    }
}

/* Serial driver. A step is one fused pass in direct mode; when the margins leave the direct
 * range (the "shift regime", e.g. runs with rules 1 and 2, whose margins grow linearly), it
 * is two passes: the margins and their exact minimum s, then the weights with the shift s
 * (and on entering that regime, a fused pass with the shift s: the same arithmetic). Which
 * one a step starts with is only a guess from the previous step: the arithmetic of a step
 * depends on its w alone. Work area: G and total, the stack, the root's scratch, the
 * margins. */
FB_INLINE void fb_serial_impl(fb_job *job, const long long d, const int with_log1p)
{
    const fb_scale direct = fb_direct_scale(job->loss);
    const long long NG = fb_ngroups(job->NB), stack = fb_depth(NG) * fb_bstride(d);
    double *FB_RESTRICT w = job->w;
    double *FB_RESTRICT Gt = job->work;
    double *FB_RESTRICT S = Gt + fb_round8(d + 1);
    double *FB_RESTRICT R = S + stack;
    double *FB_RESTRICT M = R + stack;
    long long t, k = 0;
    int guess_direct = 1;

    job->status = 0;
    for (t = job->step0; t < job->step0 + job->n_steps; ++t) {
        fb_scale sc = direct;
        double s;
        int bad;
        if (guess_direct) { /* (each call with a constant kind: one copy of the pass each) */
            fb_tree_pass(job, 0, NG, w, d, FB_PASS_FUSED, direct, with_log1p, M, S, &s, &bad);
        } else {
            fb_tree_pass(job, 0, NG, w, d, FB_PASS_MARGINS, direct, with_log1p, M, S, &s, &bad);
        }
        if (bad) {
            job->status = 1;
            break;
        }
        if (!fb_direct_ok(job->loss, s)) {
            sc = fb_shift_scale(job->loss, s);
            if (guess_direct) {
                fb_tree_pass(job, 0, NG, w, d, FB_PASS_FUSED, sc, with_log1p, M, S, &s, &bad);
            } else {
                fb_tree_pass(job, 0, NG, w, d, FB_PASS_WEIGHTS, sc, with_log1p, M, S, &s, &bad);
            }
            guess_direct = 0;
        } else if (!guess_direct) { /* back to direct mode */
            fb_tree_pass(job, 0, NG, w, d, FB_PASS_WEIGHTS, direct, with_log1p, M, S, &s, &bad);
            guess_direct = 1;
        }
        fb_tree_root(S, 0, 1, NG, d, R, Gt);
        fb_update(job, w, d, Gt, sc);
        fb_record(job, t, w, d, &k);
    }
    job->fail_step = t;
}

/* The serial driver's work area, doubles. */
FB_INLINE long long fb_serial_work(long long d, long long NB)
{
    return fb_round8(d + 1) + 2 * fb_depth(fb_ngroups(NB)) * fb_bstride(d) + NB * FB_B;
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

#if FB_HAVE_AVX2_CLONE
/* ---------------------------------------------------------------------------------------- */
/* The tiniest problems in the AVX2+FMA copy: one panel (N <= 16), d <= 4, exponential loss,
 * no compensation (Figure 3.1's data). There fb_serial1_impl is bound by the two FMA/multiply
 * pipes of a Zen 3 core (llvm-mca -mcpu=znver3: 105 cycles a step, 88 of them that pipes'
 * pressure; 43 ns measured), and a fifth of its ~320 instructions a step are the tests
 * (masked compares of each vector, lanes extracted to integer registers). This path does
 * the same step with fewer operations (31-33 ns, see the commits):
 *   - the tests on a fast path without masks: the margins are taken from a copy of the panel
 *     whose padding lanes repeat sample 0 (so they never change a maximum, and are NaN only
 *     when sample 0's is), and the whole test is one vector maximum of x = -m, one sum of the
 *     x (NaN if any is NaN), four compares and two movemasks; any doubt (a NaN, an infinity,
 *     the divergence test, margins beyond the direct range) goes to the exact tests of
 *     fb_serial1_impl, with its arithmetic (fb_exp, the reference's shift);
 *   - the exp of the direct mode is fb_exp_fma (below): fb_exp's reduction with a shorter
 *     polynomial (degree 11, about as accurate), 2^n added to the exponent field as an integer, the
 *     clamp at -708 one vmaxpd;
 *   - the iterate kept negated and broadcast (x = P^T (-w) is the exp's argument, with no
 *     subtraction or broadcast on the chain), G_j summed into every lane (fb_allsum);
 *   - the gradient from the zero-padded panel, so padding lanes add nothing to G without a
 *     mask (their weights are finite on the fast path).
 * Each step still depends on its w alone (chunked calls reproduce one call bit for bit). */

#include <immintrin.h>

/* (fb_exp_fma, the exp of the direct mode: fb_f64_core.h) */

/* All four lanes of v set to (v0 + v2) + (v1 + v3) (the same in every lane: additions
 * commute exactly). */
FB_INLINE FB_TARGET_AVX2 fb_vd fb_allsum(fb_vd v)
{
    const __m256d a = (__m256d)v;
    const __m256d t = _mm256_add_pd(a, _mm256_permute2f128_pd(a, a, 1));
    return (fb_vd)_mm256_add_pd(t, _mm256_permute_pd(t, 5));
}

/* G_j = P_j^T q in every lane. */
FB_INLINE FB_TARGET_AVX2 void fb_tiny_grad(const double *FB_RESTRICT P, const fb_vd q[FB_NV],
                                           const long long d, fb_vd G[FB_SMALL_D])
{
    long long j;
    for (j = 0; j < d; ++j) {
        const double *Pj = P + j * FB_B;
        G[j] = fb_allsum((fb_load(Pj) * q[0] + fb_load(Pj + FB_V) * q[1])
                         + (fb_load(Pj + 2 * FB_V) * q[2] + fb_load(Pj + 3 * FB_V) * q[3]));
    }
}

/* vmaxpd: a > b ? a : b (b if either is NaN) */
FB_INLINE FB_TARGET_AVX2 fb_vd fb_vmax(fb_vd a, fb_vd b)
{
    return (fb_vd)_mm256_max_pd((__m256d)a, (__m256d)b);
}

FB_INLINE FB_TARGET_AVX2 int fb_movemask(fb_vi m)
{
    return _mm256_movemask_pd((__m256d)m);
}

FB_INLINE FB_TARGET_AVX2 void fb_tiny_exp_impl(fb_job *job, const long long d)
{
    const int nv = (int)job->N, rule = job->rule;
    const double lr = job->lr;
    const double *FB_RESTRICT P = job->P; /* zero padding: the gradient */
    double Pm[FB_SMALL_D * FB_B] __attribute__((aligned(32))); /* padding = sample 0 */
    fb_vd nw[FB_SMALL_D];
    fb_vi valid[FB_NV];
    const fb_vd neg_floor = fb_splat(-job->s_floor);
    long long t, j, k = 0;
    int i;

    for (j = 0; j < d; ++j) {
        nw[j] = fb_splat(-job->w[j]);
        for (i = 0; i < FB_B; ++i) {
            Pm[j * FB_B + i] = P[j * FB_B + (i < nv ? i : 0)];
        }
    }
    for (i = 0; i < FB_NV; ++i) {
        valid[i] = fb_valid_mask(i, nv);
    }
    job->status = 0;
    for (t = job->step0; t < job->step0 + job->n_steps; ++t) {
        fb_vd x[FB_NV], q[FB_NV], G[FB_SMALL_D], xs, xm, f;
        double es = 1.0, factor;
        for (i = 0; i < FB_NV; ++i) { /* x = -m, as fb_panel_margins's m with w negated */
            x[i] = fb_load(Pm + FB_V * i) * nw[0];
            for (j = 1; j < d; ++j) {
                x[i] += fb_load(Pm + j * FB_B + FB_V * i) * nw[j];
            }
            q[i] = fb_exp_fma(x[i]);
        }
        fb_tiny_grad(P, q, d, G);
        /* Fast test, true only if every x is a number (xs is NaN otherwise), max x <= 300
         * (no weight above e^300), max x >= -300 (the largest weight at least e^-300) and
         * max x < -s_floor (the divergence test min m > s_floor): direct mode holds and the
         * step is good. (vmaxpd may drop a NaN: xs catches it.) */
        xs = (x[0] + x[1]) + (x[2] + x[3]);
        xm = fb_vmax(fb_vmax(x[0], x[1]), fb_vmax(x[2], x[3]));
        if (__builtin_expect(fb_movemask((xs == xs) & (xm <= FB_DIRECT_LIM) & (xm < neg_floor))
                                     != 15
                                 || fb_movemask(xm >= -FB_DIRECT_LIM) == 0,
                             0)) {
            /* The exact tests and weights of fb_serial1_impl on the valid lanes. */
            fb_vi bad = fb_zero_mask();
            fb_vd hi = fb_splat(-INFINITY);
            double xmax;
            for (i = 0; i < FB_NV; ++i) {
                bad |= valid[i] & ~(x[i] < neg_floor); /* !(m > s_floor), true for NaN */
                hi = fb_select(valid[i] & (x[i] > hi), x[i], hi);
            }
            if (fb_movemask(bad) != 0) {
                job->status = 1;
                break;
            }
            xmax = hi[0] > hi[1] ? hi[0] : hi[1];
            xmax = hi[2] > xmax ? hi[2] : xmax;
            xmax = hi[3] > xmax ? hi[3] : xmax; /* -s, s the minimum margin */
            if (!fb_direct_ok(0, -xmax)) { /* the reference's shift: q = exp(s - m) */
                es = fb_exp_neg(-xmax);
                hi = fb_splat(xmax);
                for (i = 0; i < FB_NV; ++i) {
                    q[i] = fb_select(valid[i], fb_exp(x[i] - hi), fb_splat(0.0));
                }
                fb_tiny_grad(P, q, d, G);
            }
        }
        if (rule == 0) {
            factor = lr * es;
        } else if (rule == 1) {
            double gg = 0.0;
            for (j = 0; j < d; ++j) {
                gg += G[j][0] * G[j][0];
            }
            factor = lr / sqrt(gg);
        } else { /* the scaled loss sum: the valid lanes' weights */
            fb_vd tq = fb_splat(0.0);
            for (i = 0; i < FB_NV; ++i) {
                tq += fb_select(valid[i], q[i], fb_splat(0.0));
            }
            factor = lr / fb_allsum(tq)[0];
        }
        f = fb_splat(factor);
        for (j = 0; j < d; ++j) {
            nw[j] -= f * G[j];
        }
        if (k < job->K && job->rec_steps[k] == t + 1) {
            for (j = 0; j < d; ++j) {
                job->rec_w[k * d + j] = -nw[j][0];
            }
            ++k;
        }
    }
    for (j = 0; j < d; ++j) {
        job->w[j] = -nw[j][0];
    }
    job->fail_step = t;
}

/* The serial one-panel exp-loss copies: the tiny path unless compensated. */
FB_INLINE FB_TARGET_AVX2 void fb_s1_exp_avx2(fb_job *job, const long long d)
{
    if (job->lo == NULL) {
        fb_tiny_exp_impl(job, d);
    } else {
        fb_serial1_impl(job, d, 0);
    }
}
#endif /* FB_HAVE_AVX2_CLONE */

FB_INLINE void fb_s1_exp_base(fb_job *job, const long long d)
{
    fb_serial1_impl(job, d, 0);
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

/* Parallel driver, run by every thread of one parallel region. Thread tid owns groups
 * [NG tid / T, NG (tid+1) / T) and makes the serial driver's passes over them, with the
 * serial driver's decisions: a step is one fused pass and one barrier (fb_barrier_wait) in
 * direct mode, and in the shift regime a margins pass, a barrier (then every thread knows
 * the exact minimum s), a weights pass with the shift s and a second barrier. After the last
 * barrier of a step every thread combines all the threads' blocks into the tree's root
 * (fb_tree_root), so the threads keep bit-identical copies of w, which is the serial
 * driver's whatever T is.
 *
 * Work area (fb_par_layout; every part 64-byte aligned, so threads never write to a shared
 * cache line): per thread a slot [head 0 (8) | head 1 (8) | w | G, total | the root's
 * scratch | stack 0 | stack 1], a head holding the thread's minimum margin and test of a
 * pass; then the margins (NB * FB_B, each thread writing and reading only its own panels');
 * then the barrier's line. A pass writes head and stack (pass & 1), and all threads read
 * them of every thread after the barrier that ends the pass and before they reach the next
 * barrier. Double buffering makes one barrier per pass enough: a thread writes the same
 * buffer again only two passes later, i.e. after all threads have passed the next barrier
 * and so have finished reading it. */
typedef struct {
    long long stack, w, Gt, R, S, slot, margins, barrier, total;
} fb_par_layout;

static fb_par_layout fb_layout(long long d, long long NB, long long T)
{
    fb_par_layout L;
    L.stack = fb_depth(fb_ngroups(NB)) * fb_bstride(d);
    L.w = 16;
    L.Gt = L.w + fb_round8(d);
    L.R = L.Gt + fb_round8(d + 1);
    L.S = L.R + L.stack;
    L.slot = L.S + 2 * L.stack;
    L.margins = T * L.slot;
    L.barrier = L.margins + NB * FB_B;
    L.total = L.barrier + 8;
    return L;
}

#ifdef _OPENMP
/* One pass of this thread over its groups [g0, g1), then the barrier. For FUSED and MARGINS,
 * *s and *bad get the minimum margin and the test over all threads. */
FB_INLINE void fb_par_pass(fb_job *job, const fb_par_layout *L, long long g0, long long g1,
                           const double *w, const long long d, const int kind, fb_scale sc,
                           const int with_log1p, unsigned *pass, int *sense, double *s,
                           int *bad)
{
    const int T = omp_get_num_threads(), tid = omp_get_thread_num();
    const long long h = (*pass & 1) * 8;
    double *const base = job->work;
    double *const mine = base + tid * L->slot;
    double ms = INFINITY;
    int mb = 0, th;
    fb_tree_pass(job, g0, g1, w, d, kind, sc, with_log1p, base + L->margins,
                 mine + L->S + (*pass & 1) * L->stack, &ms, &mb);
    if (kind != FB_PASS_WEIGHTS) {
        mine[h] = ms;
        mine[h + 1] = mb ? 1.0 : 0.0;
    }
    fb_barrier_wait(job->barrier, T, sense);
    if (kind != FB_PASS_WEIGHTS) {
        ms = INFINITY;
        mb = 0;
        for (th = 0; th < T; ++th) {
            const double *o = base + th * L->slot + h;
            ms = o[0] < ms ? o[0] : ms;
            mb |= o[1] != 0.0;
        }
        *s = ms;
        *bad = mb;
    }
    ++*pass;
}
#endif

FB_INLINE void fb_par_impl(fb_job *job, const int with_log1p)
{
#ifdef _OPENMP
    const long long d = job->d, NG = fb_ngroups(job->NB);
    const int T = omp_get_num_threads(), tid = omp_get_thread_num();
    const fb_par_layout L = fb_layout(d, job->NB, T);
    const long long g0 = NG * tid / T, g1 = NG * (tid + 1) / T;
    const fb_scale direct = fb_direct_scale(job->loss);
    double *const base = job->work;
    double *FB_RESTRICT w = base + tid * L.slot + L.w;
    double *FB_RESTRICT Gt = base + tid * L.slot + L.Gt;
    double *FB_RESTRICT R = base + tid * L.slot + L.R;
    int status = 0, sense = 0, guess_direct = 1;
    unsigned pass = 0;
    long long t, k = 0;

    memcpy(w, job->w, (size_t)d * sizeof(double));
    for (t = job->step0; t < job->step0 + job->n_steps; ++t) {
        fb_scale sc = direct;
        double s, s2;
        int bad, bad2;
        if (guess_direct) { /* (each call with a constant kind: one copy of the pass each) */
            fb_par_pass(job, &L, g0, g1, w, d, FB_PASS_FUSED, direct, with_log1p, &pass, &sense,
                        &s, &bad);
        } else {
            fb_par_pass(job, &L, g0, g1, w, d, FB_PASS_MARGINS, direct, with_log1p, &pass,
                        &sense, &s, &bad);
        }
        if (bad) {
            status = 1;
            break;
        }
        if (!fb_direct_ok(job->loss, s)) {
            sc = fb_shift_scale(job->loss, s);
            if (guess_direct) {
                fb_par_pass(job, &L, g0, g1, w, d, FB_PASS_FUSED, sc, with_log1p, &pass, &sense,
                            &s2, &bad2);
            } else {
                fb_par_pass(job, &L, g0, g1, w, d, FB_PASS_WEIGHTS, sc, with_log1p, &pass,
                            &sense, &s2, &bad2);
            }
            guess_direct = 0;
        } else if (!guess_direct) { /* back to direct mode */
            fb_par_pass(job, &L, g0, g1, w, d, FB_PASS_WEIGHTS, direct, with_log1p, &pass,
                        &sense, &s2, &bad2);
            guess_direct = 1;
        }
        /* the stacks of the step's last pass, (pass - 1) & 1 */
        fb_tree_root(base + L.S + ((pass - 1) & 1) * L.stack, L.slot, T, NG, d, R, Gt);
        fb_update(job, w, d, Gt, sc);
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
 * for more panels such copies gain nothing; the exponential loss's go through fb_s1_exp_*,
 * i.e. fb_tiny_exp_impl in the AVX2 copy), a generic one, one for the logistic loss with
 * rule 2 (it needs libm's log1p, whose calls would slow down every other case, see
 * fb_exp_neg), and the parallel driver. Each is a function of its own, so that registers are
 * allocated per copy. */

typedef void (*fb_driver)(fb_job *);

#define FB_DEFINE_DRIVERS(SUFFIX, ATTR)                                                         \
    FB_NOINLINE ATTR void fb_s1_l0_d1_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_s1_exp_##SUFFIX(job, 1);                                                          \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l0_d2_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_s1_exp_##SUFFIX(job, 2);                                                          \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l0_d3_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_s1_exp_##SUFFIX(job, 3);                                                          \
    }                                                                                           \
    FB_NOINLINE ATTR void fb_s1_l0_d4_##SUFFIX(fb_job *job)                                   \
    {                                                                                           \
        fb_s1_exp_##SUFFIX(job, 4);                                                          \
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
 * least FB_PAR_MIN_PANELS panels per thread, at most the OpenMP default. (The caller then
 * caps it at one thread per group.) */
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
    if (n_par > fb_ngroups(NB)) {
        /* a thread takes whole groups; and one group is the serial drivers' (whose copies
         * for one panel and d <= 4 sum the panel in another order) */
        n_par = fb_ngroups(NB);
    }
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

    P = fb_alloc((size_t)(NB * d * FB_B));
    /* parallel: fb_layout; serial: fb_serial_work */
    job.work = fb_alloc((size_t)(n_par > 1 ? fb_layout(d, NB, n_par).total
                                           : fb_serial_work(d, NB)));
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
        job.barrier = (struct fb_barrier *)(void *)(job.work + fb_layout(d, NB, n_par).barrier);
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

/* ---------------------------------------------------------------------------------------- */
/* The kernels' exp on an array, for the tests and bench/lockstep_bound.py (the lock-step
 * batches are bound by its throughput). which: 0 fb_exp in the baseline copy, 1 fb_exp in
 * the AVX2+FMA copy (contracted: the shifted mode of the AVX2 drivers), 2 fb_exp_fma (the
 * direct mode of the AVX2 tiny path and the lock-step linear pass). The pass over the n
 * arguments is made `repeats` times (an empty asm with a memory clobber keeps every pass). */
FB_NOINLINE void fb_exp_pass(const double *x, double *out, long long n, long long repeats)
{
    long long t, i;
    for (t = 0; t < repeats; ++t) {
        for (i = 0; i < n; i += FB_V) {
            fb_store(out + i, fb_exp(fb_load(x + i)));
        }
        __asm__ volatile("" ::: "memory");
    }
}

#if FB_HAVE_AVX2_CLONE
FB_NOINLINE FB_TARGET_AVX2 void fb_exp_pass_avx2(const double *x, double *out, long long n,
                                                 long long repeats, int fma_exp)
{
    long long t, i;
    for (t = 0; t < repeats; ++t) {
        if (fma_exp) {
            for (i = 0; i < n; i += FB_V) {
                fb_store(out + i, fb_exp_fma(fb_load(x + i)));
            }
        } else {
            for (i = 0; i < n; i += FB_V) {
                fb_store(out + i, fb_exp(fb_load(x + i)));
            }
        }
        __asm__ volatile("" ::: "memory");
    }
}
#endif

int fb_exp_f64_check(const double *x, double *out, long long n, long long repeats, int which)
{
    if (x == NULL || out == NULL || n < 0 || n % FB_V != 0 || repeats < 1 || which < 0
        || which > 2) {
        return -1;
    }
    if (which == 0) {
        fb_exp_pass(x, out, n, repeats);
        return 0;
    }
#if FB_HAVE_AVX2_CLONE
    if (fb_use_avx2()) {
        fb_exp_pass_avx2(x, out, n, repeats, which == 2);
        return 0;
    }
#endif
    return -5;
}

#else /* not GCC or clang: no vector extensions */

int fb_exp_f64_check(const double *x, double *out, long long n, long long repeats, int which)
{
    (void)x, (void)out, (void)n, (void)repeats, (void)which;
    return -5;
}

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
