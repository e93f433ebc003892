/* Gradient descent on diagonal and fully connected linear networks in long double, in the
 * factored form of the float64 kernels (fb_deep_f64.c), and on any linear tensor network
 * (fb_gd_tensor_ld: LowRank, Convolutional narrower than d, Tensor) from the data tensor's
 * nonzeros, for precision="extended".
 *
 * Specification: _reference.gd_model (Gunasekar et al. 2018, eq. 7: GD on the parameters of
 * f(x) = <x, P(theta)>) with the models' predictor and VJP, run in np.longdouble. A step is
 * the predictor beta = P(theta) (O(P)), the margins m = Z beta and G = Z^T q (O(N d) each,
 * the log-domain weights q of fb_ld_step.h in between), the VJP and the update (O(P)); the
 * step rules, divergence test, recording and return codes are those of fb_linear.c. A tensor
 * network's predictor and VJP are O(nnz L) per step over its nonzeros (two index loads per
 * factor); the nonzeros and their positions are the model's layout, in any order.
 *
 * Where the time goes (x87, no SIMD for 80-bit numbers). The two O(N d) products dominate
 * at the sizes of the benchmarks (d = N = 64: 8192 multiply-adds against 64 exponentials and
 * O(L d) for the rest). On this AMD EPYC an x87 multiply-add whose operands are both 80-bit
 * numbers in memory costs ~4 ns (the 80-bit loads, FLD m80, are the bottleneck, not the
 * arithmetic); with the data held as doubles (FLD m64 / FMUL m64 are cheap) and four rows
 * sharing each 80-bit load of beta (or q), 0.7 ns. So the data are kept here as doubles:
 * Z = Zh + Zl with Zh = (double)Z and Zl = (double)(Z - Zh), both exact; Zl is only read
 * when some entry of it is nonzero (data given in float64, the usual case, have Zl = 0), and
 * then Zh + Zl is formed exactly in x87 registers. Z^T is stored too, so that G = Z^T q is
 * the same row-blocked loop as the margins. Those products run in double-double on AVX2
 * (fb_ld_dd.h). The parameters of the fully connected and depth-2 diagonal networks are held
 * as exact double pairs during a call (fb_pair_get / fb_pair_put: 80-bit stores are the
 * slowest x87 operation here), and the depth-2 diagonal step is fused into two passes.
 * On AVX2 the exp loss's weights are a double-double exp fed to G = Z^T q as pairs
 * (fb_dd_exp_weights), the data products use offset sums (fb_dd_rows_offset), and the fully
 * connected layers' W v, W^T a and update run in double-double on the pairs, each updated
 * parameter rounded to long double (FB_DD_UPDATE). Then (perf, d = N = 64, share of the
 * kernel's time) Diagonal(2) is ~63% data products, ~30% the fused x87 diag2 passes, the
 * minimum and the splitting, ~7% exp; FullyConnected([50]) ~37% data products, ~20% the
 * update, ~24% W v and W^T a. The tensor networks ran their own x87 kernel before
 * (fb_tensor_ld.c, Z in long double, ~4 ns an 80-bit multiply-add); here, with the data
 * products in double-double and the contraction's sums in registers, their steps went from
 * 12.8x to 2.3-3.6x float64's (LowRank(2), d = 16), 19.8x to 4.4-5.2x (Convolutional(2),
 * kernel 3, d = 64) and 13x to 4.2-4.7x (an order-3 Tensor, nnz = 1000); the contraction and
 * its VJP (x87, 80-bit loads of theta) are then ~1.6x the data products' time (perf,
 * Convolutional(2) kernel 3).
 *
 * Same compilation rules as fb_linear.c: no -ffast-math, no contraction.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fastbias.h"
#define FB_LD_FAST_EXP 1 /* fb_expl_fast for the exp-loss weights (fb_ld_step.h) */
#include "fb_ld_step.h"
#include "fb_ld_dd.h"

/* sum_i a[i] b[i], two running sums */
static long double fb_ld_dot(const long double *a, const long double *b, long long n)
{
    long double s0 = 0.0L, s1 = 0.0L;
    long long i = 0;
    for (; i + 2 <= n; i += 2) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
    }
    if (i < n) {
        s0 += a[i] * b[i];
    }
    return s0 + s1;
}

/* out = A v for a long double (rows, cols) matrix, four rows sharing each load of v */
static void fb_ld_gemv(const long double *A, long long rows, long long cols,
                       const long double *v, long double *out)
{
    long long r = 0, c;
    for (; r + 4 <= rows; r += 4) {
        const long double *a0 = A + r * cols, *a1 = a0 + cols, *a2 = a1 + cols, *a3 = a2 + cols;
        long double s0 = 0.0L, s1 = 0.0L, s2 = 0.0L, s3 = 0.0L;
        for (c = 0; c < cols; ++c) {
            const long double x = v[c];
            s0 += a0[c] * x;
            s1 += a1[c] * x;
            s2 += a2[c] * x;
            s3 += a3[c] * x;
        }
        out[r] = s0;
        out[r + 1] = s1;
        out[r + 2] = s2;
        out[r + 3] = s3;
    }
    for (; r < rows; ++r) {
        out[r] = fb_ld_dot(A + r * cols, v, cols);
    }
}

/* out = A^T a for a long double (rows, cols) matrix: four columns at a time, each load of
 * a[r] serving four multiply-adds and no store in the inner loop (an x87 axpy over rows
 * stores and reloads an 80-bit partial sum per multiply-add) */
static void fb_ld_gemv_t(const long double *A, long long rows, long long cols,
                         const long double *a, long double *out)
{
    long long r, c = 0;
    for (; c + 4 <= cols; c += 4) {
        const long double *p = A + c;
        long double s0 = 0.0L, s1 = 0.0L, s2 = 0.0L, s3 = 0.0L;
        for (r = 0; r < rows; ++r, p += cols) {
            const long double x = a[r];
            s0 += x * p[0];
            s1 += x * p[1];
            s2 += x * p[2];
            s3 += x * p[3];
        }
        out[c] = s0;
        out[c + 1] = s1;
        out[c + 2] = s2;
        out[c + 3] = s3;
    }
    for (; c < cols; ++c) {
        long double s = 0.0L;
        for (r = 0; r < rows; ++r) {
            s += a[r] * A[r * cols + c];
        }
        out[c] = s;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The models. theta is the flat parameter vector of the Python model (layers one after the
 * other); beta (d), G (d) are written by the caller's step. */

enum { FB_LD_DIAG = 0, FB_LD_FC = 1, FB_LD_TENSOR = 2 };

typedef struct {
    int kind;
    long long d, P, L;
    /* fully connected: layer l < L-1 is W_l (dims[l] x dims[l+1]) at offsets[l], the last
     * w_L (dims[L-1]); right + l width = W_l .. w_L; avec + l width = a_l (a_0 = G,
     * a_{l+1} = W_l^T a_l), so the gradient of W_l is a_l right_{l+1}^T, that of w_L a_{L-1} */
    const long long *dims, *offsets;
    long long width;
    long double *right, *avec;
    /* diagonal: prefix + l d = w_1 * .. * w_{l+1}; g the gradient (P), also the tensor's */
    long double *prefix, *g;
    /* a tensor network (fb_gd_tensor_ld): nonzero e of the data tensor adds
     * vals[e] * prod_l theta[pos[e * L + l]] to beta[jidx[e]] */
    long long nnz;
    const long long *jidx, *pos;
    const long double *vals;
    /* order + l nnz: the nonzeros stably sorted by pos[e, l] (fb_ld_tensor_orders), so that
     * the VJP sums each g[p] in a register */
    long long *order;
    long double *beta, *G;
    /* th + tl: theta as exact double pairs during the call (fully connected, and the depth-2
     * diagonal), or NULL; theta is written back at the recorded steps and on return */
    double *th, *tl;
    /* fully connected with the pairs on AVX2 (fb_dd_use()): the W products and the update
     * in double-double (below); dsplit: 4 width doubles of scratch */
    int use_dd;
    double *dsplit;
} fb_ld_model;

/* Parameters held as exact double pairs. On this AMD EPYC an x87 store of an 80-bit number
 * (FSTP m80) costs ~6 ns, and the update of theta is one per parameter (the FC update was
 * a third of the step); a pair costs two 64-bit stores and the value is the same: x = h + l
 * with h = (double)x, l = (double)(x - h), both exact for long doubles in the double range
 * (the kernels use the pairs only when every |theta_i| < 1e300). */
static inline long double fb_pair_get(const double *h, const double *l, long long i)
{
    return (long double)h[i] + l[i];
}

static inline void fb_pair_put(double *h, double *l, long long i, long double x)
{
    /* FST m64 into h[i] and FSUB m64 from it, so the double does not leave the x87 unit:
     * GCC otherwise rounds x through a stack temporary read back by SSE (~a third of the FC
     * update in perf) */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __asm__("fstl %0" : "=m"(h[i]) : "t"(x));
#else
    h[i] = (double)x;
#endif
    l[i] = (double)(x - (long double)h[i]);
}

/* out = A^T a for A = Ah + Al, a (rows, cols) matrix of double pairs, as fb_ld_gemv_t */
static void fb_ld_gemv_t_pair(const double *Ah, const double *Al, long long rows,
                              long long cols, const long double *a, long double *out)
{
    long long r, c = 0;
    for (; c + 4 <= cols; c += 4) {
        const double *p = Ah + c, *q = Al + c;
        long double s0 = 0.0L, s1 = 0.0L, s2 = 0.0L, s3 = 0.0L;
        for (r = 0; r < rows; ++r, p += cols, q += cols) {
            const long double x = a[r];
            s0 += x * ((long double)p[0] + q[0]);
            s1 += x * ((long double)p[1] + q[1]);
            s2 += x * ((long double)p[2] + q[2]);
            s3 += x * ((long double)p[3] + q[3]);
        }
        out[c] = s0;
        out[c + 1] = s1;
        out[c + 2] = s2;
        out[c + 3] = s3;
    }
    for (; c < cols; ++c) {
        long double s = 0.0L;
        for (r = 0; r < rows; ++r) {
            s += a[r] * fb_pair_get(Ah, Al, r * cols + c);
        }
        out[c] = s;
    }
}

#if FB_LD_HAVE_DD
/* The fully connected layers' O(width^2) work in double-double on AVX2, on the parameters'
 * exact pairs: the predictor's W v, the VJP's W^T a (fb_dd_rows) and the update
 * W += f a r^T. With x87 they were ~60% of a FullyConnected([50]) step after the data
 * products went to double-double (perf: the update's 80-bit arithmetic and pair stores alone
 * ~25%). */

/* out[r] = sum_c (Ah + Al)[r, c] (vh + vl)[c]: four lanes over c, then the lanes' S and C
 * added in long double */
FB_DD_TARGET static void fb_dd_dots(const double *Ah, const double *Al, long long rows,
                                    long long cols, const double *vh, const double *vl,
                                    long double *out)
{
    long long r, c;
    for (r = 0; r < rows; ++r) {
        const double *a = Ah + r * cols, *al = Al + r * cols;
        __m256d S = _mm256_setzero_pd(), C = _mm256_setzero_pd();
        double sh[4], cl[4], St = 0.0, Ct = 0.0;
        long double acc;
        for (c = 0; c + 4 <= cols; c += 4) {
            const __m256d z = _mm256_loadu_pd(a + c), zl = _mm256_loadu_pd(al + c);
            const __m256d bh = _mm256_loadu_pd(vh + c), bl = _mm256_loadu_pd(vl + c);
            FB_DD_STEP(S, C, z, zl, bh, bl, 1);
        }
        for (; c < cols; ++c) { /* the same arithmetic, scalar */
            const double z = a[c], p = z * vh[c], e = fma(z, vh[c], -p);
            const double s = St + p, b = s - St;
            Ct = Ct + (((St - (s - b)) + (p - b)) + e);
            Ct = fma(z, vl[c], Ct);
            Ct = fma(al[c], vh[c], Ct);
            St = s;
        }
        _mm256_storeu_pd(sh, S);
        _mm256_storeu_pd(cl, C);
        acc = ((long double)sh[0] + sh[1]) + ((long double)sh[2] + sh[3]);
        acc += (long double)St;
        acc += (((long double)cl[0] + cl[1]) + ((long double)cl[2] + cl[3])) + Ct;
        out[r] = acc;
    }
}


/* W += (fh + fl)[r] (gh + gl)[c] for a (rows, cols) matrix of pairs */
FB_DD_TARGET static void fb_dd_outer_update(double *Wh, double *Wl, long long rows,
                                            long long cols, const double *fh,
                                            const double *fl, const double *gh,
                                            const double *gl)
{
    const __m256d mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7ff0000000000000LL));
    const __m256d kq = _mm256_set1_pd(0x1.8p-11);
    long long r, c;
    for (r = 0; r < rows; ++r) {
        double *wh = Wh + r * cols, *wl = Wl + r * cols;
        const __m256d F = _mm256_broadcast_sd(fh + r), Fl = _mm256_broadcast_sd(fl + r);
        for (c = 0; c + 4 <= cols; c += 4) {
            const __m256d G = _mm256_loadu_pd(gh + c), Gl = _mm256_loadu_pd(gl + c);
            const __m256d xh = _mm256_loadu_pd(wh + c), xl = _mm256_loadu_pd(wl + c);
            __m256d nh, nl;
            FB_DD_UPDATE(xh, xl, F, Fl, G, Gl, mask, kq, nh, nl);
            _mm256_storeu_pd(wh + c, nh);
            _mm256_storeu_pd(wl + c, nl);
        }
        if (c < cols) { /* the last columns padded to a vector */
            double bh[4] = {0, 0, 0, 0}, bl[4] = {0, 0, 0, 0}, xh4[4] = {0, 0, 0, 0},
                   xl4[4] = {0, 0, 0, 0};
            const long long w = cols - c;
            long long i;
            __m256d nh, nl;
            for (i = 0; i < w; ++i) {
                bh[i] = gh[c + i];
                bl[i] = gl[c + i];
                xh4[i] = wh[c + i];
                xl4[i] = wl[c + i];
            }
            {
                const __m256d G = _mm256_loadu_pd(bh), Gl = _mm256_loadu_pd(bl);
                const __m256d xh = _mm256_loadu_pd(xh4), xl = _mm256_loadu_pd(xl4);
                FB_DD_UPDATE(xh, xl, F, Fl, G, Gl, mask, kq, nh, nl);
            }
            _mm256_storeu_pd(xh4, nh);
            _mm256_storeu_pd(xl4, nl);
            for (i = 0; i < w; ++i) {
                wh[c + i] = xh4[i];
                wl[c + i] = xl4[i];
            }
        }
    }
}
#endif

/* v (n long doubles) as exact pairs (h, l); returns 0 if some entry is past the double range */
static int fb_ld_split(const long double *v, long long n, double *h, double *l)
{
    long long i;
    int finite = 1;
    for (i = 0; i < n; ++i) {
        h[i] = (double)v[i];
        l[i] = (double)(v[i] - (long double)h[i]);
        finite &= isfinite(h[i]) != 0;
    }
    return finite;
}

/* whether out[0..n) are finite */
static int fb_ld_all_finite(const long double *out, long long n)
{
    long long i;
    int finite = 1;
    for (i = 0; i < n; ++i) {
        finite &= isfinite(out[i]) != 0;
    }
    return finite;
}

/* A tensor network's beta = P(theta), the multilinear contraction with the nonzeros in index
 * order (Yun et al. 2021, eq. 6). A run of nonzeros with the same j (the normal form sorts
 * them by j) is summed in a register: an 80-bit store costs ~6 ns here. */
static void fb_ld_tensor_predictor(fb_ld_model *M, const long double *theta)
{
    const long long L = M->L, nnz = M->nnz;
    long long e = 0, l;
    for (l = 0; l < M->d; ++l) {
        M->beta[l] = 0.0L;
    }
    while (e < nnz) {
        const long long j = M->jidx[e];
        long double acc = M->beta[j];
        do {
            const long long *p = M->pos + e * L;
            long double prod = M->vals[e];
            for (l = 0; l < L; ++l) {
                prod *= theta[p[l]];
            }
            acc += prod;
            ++e;
        } while (e < nnz && M->jidx[e] == j);
        M->beta[j] = acc;
    }
}

/* A tensor network's VJP g = J_P(theta)^T G: nonzero e adds
 * vals[e] G[jidx[e]] prod_{k != l} theta[pos[e, k]] to g[pos[e, l]]; returns ||g||^2. Layer
 * by layer over the nonzeros sorted by pos[e, l] (stably: each g[p] gets its terms in index
 * order, as the reference's np.add.at), a run of equal positions summed in a register. */
static long double fb_ld_tensor_vjp(fb_ld_model *M, const long double *theta)
{
    const long long L = M->L, nnz = M->nnz;
    const long long *pos = M->pos;
    long double n2 = 0.0L;
    long long l, k, i;
    for (i = 0; i < M->P; ++i) {
        M->g[i] = 0.0L;
    }
    for (l = 0; l < L; ++l) {
        const long long *order = M->order + l * nnz;
        i = 0;
        while (i < nnz) {
            const long long at = pos[order[i] * L + l];
            long double acc = M->g[at];
            do {
                const long long e = order[i];
                const long long *p = pos + e * L;
                long double prod = M->vals[e] * M->G[M->jidx[e]];
                for (k = 0; k < L; ++k) {
                    if (k != l) {
                        prod *= theta[p[k]];
                    }
                }
                acc += prod;
                ++i;
            } while (i < nnz && pos[order[i] * L + l] == at);
            M->g[at] = acc;
        }
    }
    for (i = 0; i < M->P; ++i) {
        n2 += M->g[i] * M->g[i];
    }
    return n2;
}

/* order + l nnz = the nonzeros e stably sorted by pos[e, l] (a counting sort over the P
 * positions); count: P + 1 scratch */
static void fb_ld_tensor_orders(const long long *pos, long long nnz, long long L, long long P,
                                long long *count, long long *order)
{
    long long l, e, p;
    for (l = 0; l < L; ++l) {
        memset(count, 0, (size_t)(P + 1) * sizeof(long long));
        for (e = 0; e < nnz; ++e) {
            ++count[pos[e * L + l] + 1];
        }
        for (p = 0; p < P; ++p) {
            count[p + 1] += count[p];
        }
        for (e = 0; e < nnz; ++e) {
            order[l * nnz + count[pos[e * L + l]]++] = e;
        }
    }
}

/* beta = P(theta) */
static void fb_ld_predictor(fb_ld_model *M, const long double *theta)
{
    const long long d = M->d, L = M->L;
    long long l, j;
    if (M->kind == FB_LD_TENSOR) {
        fb_ld_tensor_predictor(M, theta);
        return;
    }
    if (M->kind == FB_LD_DIAG) {
        /* beta = w_1 * w_2 * .. * w_L (Yun et al. eq. 11) */
        memcpy(M->prefix, theta, (size_t)d * sizeof(long double));
        for (l = 1; l < L; ++l) {
            const long double *prev = M->prefix + (l - 1) * d, *w = theta + l * d;
            long double *cur = M->prefix + l * d;
            for (j = 0; j < d; ++j) {
                cur[j] = prev[j] * w[j];
            }
        }
        memcpy(M->beta, M->prefix + (L - 1) * d, (size_t)d * sizeof(long double));
        return;
    }
    /* beta = W_1 (W_2 (.. w_L)) (Gunasekar et al. eq. 1) */
    {
        const long long wd = M->width;
        if (M->th != NULL) {
            const long long o = M->offsets[L - 1];
            for (j = 0; j < M->dims[L - 1]; ++j) {
                M->right[(L - 1) * wd + j] = fb_pair_get(M->th + o, M->tl + o, j);
            }
            for (l = L - 2; l >= 0; --l) {
                const double *Wh = M->th + M->offsets[l], *Wl = M->tl + M->offsets[l];
                const long long rows = M->dims[l], cols = M->dims[l + 1];
                const long double *v = M->right + (l + 1) * wd;
                long double *out = M->right + l * wd;
#if FB_LD_HAVE_DD
                if (M->use_dd && fb_ld_split(v, cols, M->dsplit, M->dsplit + wd)) {
                    fb_dd_dots(Wh, Wl, rows, cols, M->dsplit, M->dsplit + wd, out);
                    if (fb_ld_all_finite(out, rows)) {
                        continue;
                    }
                }
#endif
                fb_ld_matvec(Wh, Wl, rows, cols, v, out);
            }
        } else {
            memcpy(M->right + (L - 1) * wd, theta + M->offsets[L - 1],
                   (size_t)M->dims[L - 1] * sizeof(long double));
            for (l = L - 2; l >= 0; --l) {
                fb_ld_gemv(theta + M->offsets[l], M->dims[l], M->dims[l + 1],
                           M->right + (l + 1) * wd, M->right + l * wd);
            }
        }
        memcpy(M->beta, M->right, (size_t)d * sizeof(long double));
    }
}

/* The VJP J_P(theta)^T G (kept in the model's scratch); returns its squared norm. */
static long double fb_ld_vjp(fb_ld_model *M, const long double *theta)
{
    const long long d = M->d, L = M->L;
    long double n2 = 0.0L;
    long long l, j;
    if (M->kind == FB_LD_TENSOR) {
        return fb_ld_tensor_vjp(M, theta);
    }
    if (M->kind == FB_LD_DIAG) {
        /* g_l = G * prod_{k<l} w_k * prod_{k>l} w_k, suffix products from the last layer */
        long double *suffix = M->beta; /* beta is not needed any more */
        memcpy(suffix, M->G, (size_t)d * sizeof(long double));
        for (l = L - 1; l >= 0; --l) {
            long double *g = M->g + l * d;
            const long double *w = theta + l * d;
            if (l > 0) {
                const long double *left = M->prefix + (l - 1) * d;
                for (j = 0; j < d; ++j) {
                    g[j] = left[j] * suffix[j];
                }
            } else {
                memcpy(g, suffix, (size_t)d * sizeof(long double));
            }
            for (j = 0; j < d; ++j) {
                suffix[j] *= w[j];
            }
            n2 += fb_ld_dot(g, g, d);
        }
        return n2;
    }
    {
        /* no gradient is formed: ||g||^2 = sum_{l<L-1} ||a_l||^2 ||right_{l+1}||^2
         * + ||a_{L-1}||^2 (exact algebra; the update forms a_l[r] right_{l+1}[c] itself) */
        const long long wd = M->width;
        memcpy(M->avec, M->G, (size_t)d * sizeof(long double));
        for (l = 0; l < L - 1; ++l) {
            const long long rows = M->dims[l], cols = M->dims[l + 1];
            const long double *W = theta + M->offsets[l], *a = M->avec + l * wd;
            const long double *rg = M->right + (l + 1) * wd;
            if (M->th != NULL) {
                long double *out = M->avec + (l + 1) * wd;
                int done = 0;
#if FB_LD_HAVE_DD
                if (M->use_dd && fb_ld_split(a, rows, M->dsplit, M->dsplit + wd)) {
                    /* out[c] = sum_r W[r, c] a[r]: W row-major is the (cols, rows) layout */
                    fb_dd_rows(M->th + M->offsets[l], M->tl + M->offsets[l], cols, rows,
                               M->dsplit, M->dsplit + wd, 0, cols, out, NULL, NULL);
                    done = fb_ld_all_finite(out, cols);
                }
#endif
                if (!done) {
                    fb_ld_gemv_t_pair(M->th + M->offsets[l], M->tl + M->offsets[l], rows, cols,
                                      a, out);
                }
            } else {
                fb_ld_gemv_t(W, rows, cols, a, M->avec + (l + 1) * wd);
            }
            n2 += fb_ld_dot(a, a, rows) * fb_ld_dot(rg, rg, cols);
        }
        n2 += fb_ld_dot(M->avec + (L - 1) * wd, M->avec + (L - 1) * wd, M->dims[L - 1]);
        return n2;
    }
}

/* theta += factor * g */
static void fb_ld_update(fb_ld_model *M, long double *theta, long double factor)
{
    const long long L = M->L;
    long long l, i, r, c;
    if (M->kind != FB_LD_FC) {
        for (i = 0; i < M->P; ++i) {
            theta[i] += factor * M->g[i];
        }
        return;
    }
    if (M->th != NULL) {
        const long long wd = M->width;
        for (l = 0; l < L - 1; ++l) {
            const long long rows = M->dims[l], cols = M->dims[l + 1];
            double *Wh = M->th + M->offsets[l], *Wl = M->tl + M->offsets[l];
            const long double *a = M->avec + l * wd, *rg = M->right + (l + 1) * wd;
#if FB_LD_HAVE_DD
            if (M->use_dd) {
                /* f_r = factor a_r (long double), W += f r^T in double-double, each sum
                 * rounded to long double (fb_dd_outer_update); the x87 loop below when
                 * f or r leaves the double range */
                double *fh = M->dsplit, *fl = fh + wd, *gh = fl + wd, *gl = gh + wd;
                int ok = fb_ld_split(rg, cols, gh, gl);
                for (r = 0; r < rows; ++r) {
                    const long double f = factor * a[r];
                    fh[r] = (double)f;
                    fl[r] = (double)(f - (long double)fh[r]);
                    ok &= isfinite(fh[r]) != 0;
                }
                if (ok) {
                    fb_dd_outer_update(Wh, Wl, rows, cols, fh, fl, gh, gl);
                    continue;
                }
            }
#endif
            for (r = 0; r < rows; ++r) {
                const long double ar = a[r];
                for (c = 0; c < cols; ++c) {
                    const long long k = r * cols + c;
                    fb_pair_put(Wh, Wl, k, fb_pair_get(Wh, Wl, k) + factor * (ar * rg[c]));
                }
            }
        }
        {
            const long long o = M->offsets[L - 1];
            const long double *a = M->avec + (L - 1) * wd;
            for (i = 0; i < M->dims[L - 1]; ++i) {
                fb_pair_put(M->th + o, M->tl + o, i,
                            fb_pair_get(M->th + o, M->tl + o, i) + factor * a[i]);
            }
        }
        return;
    }
    {
        const long long wd = M->width;
        for (l = 0; l < L - 1; ++l) {
            const long long rows = M->dims[l], cols = M->dims[l + 1];
            long double *W = theta + M->offsets[l];
            const long double *a = M->avec + l * wd, *rg = M->right + (l + 1) * wd;
            for (r = 0; r < rows; ++r) {
                const long double ar = a[r];
                long double *Wr = W + r * cols;
                for (c = 0; c < cols; ++c) {
                    Wr[c] += factor * (ar * rg[c]); /* g = a_l right_{l+1}^T, as the VJP */
                }
            }
        }
        {
            long double *w = theta + M->offsets[L - 1];
            const long double *a = M->avec + (L - 1) * wd;
            for (i = 0; i < M->dims[L - 1]; ++i) {
                w[i] += factor * a[i];
            }
        }
    }
}

/* Depth 2 diagonal, fused: the gradient (G w_2, G w_1) is never stored; its norm is one pass
 * (3 80-bit loads a coordinate) and the update another that also forms the next step's
 * beta = w_1 * w_2 (3 loads, 3 stores), against ~14 loads and 6 stores a coordinate through
 * the general depth-L code (prefix, suffix and gradient arrays). */
static long double fb_ld_diag2_norm(const fb_ld_model *M)
{
    const long long d = M->d;
    const double *h = M->th, *l = M->tl;
    const long double *G = M->G;
    long double a = 0.0L, b = 0.0L;
    long long j;
    for (j = 0; j < d; ++j) {
        const long double g1 = G[j] * fb_pair_get(h, l, d + j), g2 = G[j] * fb_pair_get(h, l, j);
        a += g1 * g1;
        b += g2 * g2;
    }
    return a + b;
}

static void fb_ld_diag2_update(fb_ld_model *M, long double factor)
{
    const long long d = M->d;
    double *h = M->th, *l = M->tl;
    long double *beta = M->beta;
    const long double *G = M->G;
    long long j;
    for (j = 0; j < d; ++j) {
        const long double x1 = fb_pair_get(h, l, j), x2 = fb_pair_get(h, l, d + j), Gj = G[j];
        const long double n1 = x1 + factor * (Gj * x2), n2 = x2 + factor * (Gj * x1);
        fb_pair_put(h, l, j, n1);
        fb_pair_put(h, l, d + j, n2);
        beta[j] = n1 * n2;
    }
}

/* beta = w_1 * w_2 from the pairs (the first step of a call) */
static void fb_ld_diag2_predictor(fb_ld_model *M)
{
    long long j;
    for (j = 0; j < M->d; ++j) {
        M->beta[j] = fb_pair_get(M->th, M->tl, j) * fb_pair_get(M->th, M->tl, M->d + j);
    }
}

/* theta (and a recorded row) from the pairs */
static void fb_ld_pairs_out(const fb_ld_model *M, long double *out)
{
    long long i;
    for (i = 0; i < M->P; ++i) {
        out[i] = fb_pair_get(M->th, M->tl, i);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The run: the steps of _reference.gd_model. */

static int fb_ld_run(fb_ld_model *M, const fb_ld_data *D, long double *theta, long double *m,
                     long double *q, long double lr, int loss, int rule, long long step0,
                     long long n_steps, const long long *rec_steps, long long K,
                     long double *rec_theta, long double s_floor, long long *fail_step)
{
    const long long N = D->N, d = D->d, P = M->P;
    const double *Zl = D->has_lo ? D->Zl : NULL, *ZTl = D->has_lo ? D->ZTl : NULL;
    long long t, n, k = 0;
    int status = 0;
    const int use_dd = fb_dd_use();
    int diag2 = 0;
    /* scratch: the split of v in fb_ld_products (2 max(N, d)), the pairs (2 P), the
     * margins' and the exp loss's weights' pairs (2 N each), the FC splits (4 width), sigma (max(N, d)) */
    double *vsplit = (double *)malloc((size_t)(3 * (N > d ? N : d) + 2 * P + 4 * N
                                               + 4 * M->width)
                                      * sizeof(double));
    double *mh, *ml, *qh, *ql, *sigma;
    const int exp_dd = use_dd && loss == 0;
    if (vsplit == NULL) {
        return -4;
    }
    mh = vsplit + 2 * (N > d ? N : d) + 2 * P;
    ml = mh + N;
    qh = ml + N;
    ql = qh + N;
    M->dsplit = ql + N;
    sigma = M->dsplit + 4 * M->width; /* max(N, d): fb_ld_products's offsets */
    M->use_dd = use_dd;
    /* the pairs (fully connected; depth-2 diagonal), if theta is in the double range */
    M->th = NULL;
    if (M->kind == FB_LD_FC || (M->kind == FB_LD_DIAG && M->L == 2)) {
        long long i;
        int ok = 1;
        for (i = 0; i < P; ++i) {
            ok &= fabsl(theta[i]) < 1e300L;
        }
        if (ok) {
            M->th = vsplit + 2 * (N > d ? N : d);
            M->tl = M->th + P;
            for (i = 0; i < P; ++i) {
                fb_pair_put(M->th, M->tl, i, theta[i]);
            }
            diag2 = M->kind == FB_LD_DIAG;
        }
    }

    for (t = step0; t < step0 + n_steps; ++t) {
        long double s = 0.0L, log_scale, exp_log_scale = 1.0L, factor, total = 0.0L, n2;
        long long r_m, i_min = 0;

        if (!diag2) {
            fb_ld_predictor(M, theta);
        } else if (t == step0) { /* later, the fused depth-2 update forms beta */
            fb_ld_diag2_predictor(M);
        }
        /* m = Z beta and the divergence test "min(m) > s_floor" (false for NaN too) */
        r_m = fb_ld_products(D->Zh, Zl, D->ZTh, ZTl, N, d, M->beta, m, vsplit, use_dd, NULL,
                             NULL, exp_dd ? mh : NULL, ml, D, D->rabs, sigma);
        for (n = 0; n < N; ++n) {
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
            fb_ld_products(D->ZTh, ZTl, D->Zh, Zl, d, N, q, M->G, vsplit, use_dd, qh, ql, NULL,
                           NULL, D, D->cabs, sigma);
        } else
#endif
        {
            /* the weights (and the loss-scaled rule's sum) of fb_ld_step.h without its G
             * (d = 0: the logistic shifted branch leaves q = E, finished here); G = Z^T q */
            log_scale = fb_ld_weights_G(m, m, q, M->G, N, 0, s, loss, rule, &exp_log_scale,
                                        &total);
            if (loss == 1 && !(s < 0.0L)) {
                for (n = 0; n < N; ++n) {
                    q[n] = q[n] / (1.0L + exp_log_scale * q[n]);
                }
            }
            fb_ld_products(D->ZTh, ZTl, D->Zh, Zl, d, N, q, M->G, vsplit, use_dd, NULL, NULL,
                           NULL, NULL, D, D->cabs, sigma);
        }

        n2 = diag2 ? fb_ld_diag2_norm(M) : fb_ld_vjp(M, theta);
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
        if (diag2) {
            fb_ld_diag2_update(M, factor);
        } else {
            fb_ld_update(M, theta, factor);
        }
        if (k < K && rec_steps[k] == t + 1) {
            if (M->th != NULL) {
                fb_ld_pairs_out(M, rec_theta + k * P);
            } else {
                memcpy(rec_theta + k * P, theta, (size_t)P * sizeof(long double));
            }
            ++k;
        }
    }
    if (M->th != NULL) {
        fb_ld_pairs_out(M, theta);
    }
    *fail_step = status ? t : step0 + n_steps;
    free(vsplit);
    return status;
}

static int fb_ld_check(const long double *Z, const long double *theta, long long N, long long d,
                       long long L, int loss, int rule, long long n_steps,
                       const long long *rec_steps, long long K, const long double *rec_theta,
                       const long long *fail_step)
{
    if (Z == NULL || theta == NULL || fail_step == NULL || N < 1 || d < 1 || L < 1 || K < 0
        || n_steps < 0 || (K > 0 && (rec_steps == NULL || rec_theta == NULL))) {
        return -1;
    }
    if (loss != 0 && loss != 1) {
        return -2;
    }
    if (rule != 0 && rule != 1 && rule != 2) {
        return -3;
    }
    return 0;
}

int fb_gd_diagonal_ld(const long double *Z, long double *theta, long long N, long long d,
                      long long L, long double lr, int loss, int rule, long long step0,
                      long long n_steps, const long long *rec_steps, long long K,
                      long double *rec_theta, long double s_floor, long long *fail_step)
{
    fb_ld_model M;
    fb_ld_data D;
    long double *work;
    int code = fb_ld_check(Z, theta, N, d, L, loss, rule, n_steps, rec_steps, K, rec_theta,
                           fail_step);
    if (code) {
        return code;
    }
    memset(&M, 0, sizeof M);
    M.kind = FB_LD_DIAG;
    M.d = d;
    M.L = L;
    M.P = L * d;
    /* m, q (N each), beta, G (d each), prefix, g (L d each) */
    work = (long double *)malloc((size_t)(2 * N + 2 * d + 2 * L * d) * sizeof(long double));
    if (work == NULL) {
        return -4;
    }
    code = fb_ld_data_init(&D, Z, N, d);
    if (code) {
        free(work);
        return code;
    }
    M.beta = work + 2 * N;
    M.G = M.beta + d;
    M.prefix = M.G + d;
    M.g = M.prefix + L * d;
    code = fb_ld_run(&M, &D, theta, work, work + N, lr, loss, rule, step0, n_steps, rec_steps,
                     K, rec_theta, s_floor, fail_step);
    free(D.Zh);
    free(work);
    return code;
}

int fb_gd_fc_ld(const long double *Z, long double *theta, long long N, long long d, long long P,
                long long L, const long long *dims, const long long *offsets, long double lr,
                int loss, int rule, long long step0, long long n_steps,
                const long long *rec_steps, long long K, long double *rec_theta,
                long double s_floor, long long *fail_step)
{
    fb_ld_model M;
    fb_ld_data D;
    long double *work;
    long long l, width = 0;
    int code = fb_ld_check(Z, theta, N, d, L, loss, rule, n_steps, rec_steps, K, rec_theta,
                           fail_step);
    if (code) {
        return code;
    }
    if (dims == NULL || offsets == NULL || dims[0] != d) {
        return -1;
    }
    for (l = 0; l < L; ++l) {
        const long long size = l < L - 1 ? dims[l] * dims[l + 1] : dims[l];
        if (dims[l] < 1 || offsets[l] < 0 || offsets[l] + size > P) {
            return -1;
        }
        if (dims[l] > width) {
            width = dims[l];
        }
    }
    memset(&M, 0, sizeof M);
    M.kind = FB_LD_FC;
    M.d = d;
    M.L = L;
    M.P = P;
    M.dims = dims;
    M.offsets = offsets;
    M.width = width;
    /* m, q (N each), beta, G (d each), right, avec (L width each) */
    work = (long double *)malloc((size_t)(2 * N + 2 * d + 2 * L * width)
                                 * sizeof(long double));
    if (work == NULL) {
        return -4;
    }
    code = fb_ld_data_init(&D, Z, N, d);
    if (code) {
        free(work);
        return code;
    }
    M.beta = work + 2 * N;
    M.G = M.beta + d;
    M.right = M.G + d;
    M.avec = M.right + L * width;
    code = fb_ld_run(&M, &D, theta, work, work + N, lr, loss, rule, step0, n_steps, rec_steps,
                     K, rec_theta, s_floor, fail_step);
    free(D.Zh);
    free(work);
    return code;
}

int fb_gd_tensor_ld(const long double *Z, long double *theta, long long N, long long d,
                    long long P, long long nnz, long long L, const long long *jidx,
                    const long long *pos, const long double *vals, long double lr, int loss,
                    int rule, long long step0, long long n_steps, const long long *rec_steps,
                    long long K, long double *rec_theta, long double s_floor,
                    long long *fail_step)
{
    fb_ld_model M;
    fb_ld_data D;
    long double *work;
    long long e, l;
    int code = fb_ld_check(Z, theta, N, d, L, loss, rule, n_steps, rec_steps, K, rec_theta,
                           fail_step);
    if (code) {
        return code;
    }
    if (jidx == NULL || pos == NULL || vals == NULL || P < 1 || nnz < 0) {
        return -1;
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
    memset(&M, 0, sizeof M);
    M.kind = FB_LD_TENSOR;
    M.d = d;
    M.L = L;
    M.P = P;
    M.nnz = nnz;
    M.jidx = jidx;
    M.pos = pos;
    M.vals = vals;
    /* m, q (N each), beta, G (d each), g (P); the orders (L nnz) and their counts (P + 1) */
    work = (long double *)malloc((size_t)(2 * N + 2 * d + P) * sizeof(long double));
    M.order = (long long *)malloc((size_t)(L * nnz + P + 1) * sizeof(long long));
    if (work == NULL || M.order == NULL) {
        free(work);
        free(M.order);
        return -4;
    }
    fb_ld_tensor_orders(pos, nnz, L, P, M.order + L * nnz, M.order);
    code = fb_ld_data_init(&D, Z, N, d);
    if (code) {
        free(work);
        free(M.order);
        return code;
    }
    M.beta = work + 2 * N;
    M.G = M.beta + d;
    M.g = M.G + d;
    code = fb_ld_run(&M, &D, theta, work, work + N, lr, loss, rule, step0, n_steps, rec_steps,
                     K, rec_theta, s_floor, fail_step);
    free(D.Zh);
    free(work);
    free(M.order);
    return code;
}

int fb_dd_exp_check(const double *xh, const double *xl, long long n, double *qh, double *ql)
{
#if FB_LD_HAVE_DD
    /* fb_dd_exp_weights takes margins m and their minimum s and forms x = s - m: here m = -x
     * with a 0 appended as the minimum */
    double *m = (double *)malloc((size_t)(4 * (n + 1)) * sizeof(double));
    long long i;
    if (m == NULL) {
        return -4;
    }
    if (!fb_dd_use()) {
        free(m);
        return -5;
    }
    for (i = 0; i < n; ++i) {
        m[i] = -xh[i];
        m[n + 1 + i] = -xl[i];
    }
    m[n] = 0.0;
    m[2 * n + 1] = 0.0;
    fb_dd_exp_weights(m, m + n + 1, n, n + 1, m + 2 * (n + 1), m + 3 * (n + 1), 0);
    for (i = 0; i < n; ++i) {
        qh[i] = m[2 * (n + 1) + i];
        ql[i] = m[3 * (n + 1) + i];
    }
    free(m);
    return 0;
#else
    (void)xh;
    (void)xl;
    (void)n;
    (void)qh;
    (void)ql;
    return -5;
#endif
}
