/* Shared long double arithmetic of the extended-precision kernels (fb_linear.c,
 * fb_conv_ld.c, fb_deep_ld.c): the log-domain loss weights and G = Z^T q of _reference.loss_weights and
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

#if defined(FB_LD_FAST_EXP)
#include <stdint.h>
#include <string.h>

/* 2^(j/64), j = 0..63, correctly rounded from 30 digits (Python's decimal module) */
static const long double FB_EXP2_64[64] = {
    1.000000000000000000000000000000e+0L,
    1.010889286051700460020409790562e+0L,
    1.021897148654116678234480134783e+0L,
    1.033024879021228422500108283970e+0L,
    1.044273782427413840321966478740e+0L,
    1.055645178360557158808341325153e+0L,
    1.067140400676823618169521120993e+0L,
    1.078760797757119793740680037438e+0L,
    1.090507732665257659207010655761e+0L,
    1.102382583307840943556414209426e+0L,
    1.114386742595892536308812956920e+0L,
    1.126521618608241899794798643787e+0L,
    1.138788634756691653703830283842e+0L,
    1.151189229952982705817759635202e+0L,
    1.163724858777577513813573599092e+0L,
    1.176396991650281276284645728484e+0L,
    1.189207115002721066717499970560e+0L,
    1.202156731452703142096396957498e+0L,
    1.215247359980468878116520251339e+0L,
    1.228480536106870005694008957793e+0L,
    1.241857812073484048593677468727e+0L,
    1.255380757024691089579390657442e+0L,
    1.269050957191733222554419081032e+0L,
    1.282870016078778280726669781022e+0L,
    1.296839554651009665933754117792e+0L,
    1.310961211524764341922991786331e+0L,
    1.325236643159741294629537095499e+0L,
    1.339667524053303005360030669724e+0L,
    1.354255546936892728298014740141e+0L,
    1.369002422974590611929601132982e+0L,
    1.383909881963831954872659527265e+0L,
    1.398979672538311140209528136715e+0L,
    1.414213562373095048801688724210e+0L,
    1.429613338391970011235065778275e+0L,
    1.445180806977046620037006241472e+0L,
    1.460917794180646988651302890311e+0L,
    1.476826145939499311386907480374e+0L,
    1.492907728291264849200643531487e+0L,
    1.509164427593422739766019551033e+0L,
    1.525598150744538306851253689517e+0L,
    1.542210825407940823612291862091e+0L,
    1.559004400237836967033728089475e+0L,
    1.575980845107886486455270160182e+0L,
    1.593142151342266897937248643119e+0L,
    1.610490331949254308179520667357e+0L,
    1.628027421857347766848218522014e+0L,
    1.645755478153964844518756724726e+0L,
    1.663676580326736435046336456976e+0L,
    1.681792830507429086062250952466e+0L,
    1.700106353718523469501362573498e+0L,
    1.718619298122477915629344376456e+0L,
    1.737333835273706248994202081872e+0L,
    1.756252160373299483112160619375e+0L,
    1.775376492526521252550559200199e+0L,
    1.794709075003107186427703242128e+0L,
    1.814252175500398756249834600362e+0L,
    1.834008086409342463487083189588e+0L,
    1.853979125083385568392453070338e+0L,
    1.874167634110299901329998949954e+0L,
    1.894575981586965641340218653427e+0L,
    1.915206561397147293872611270296e+0L,
    1.936061793492294450598055904567e+0L,
    1.957144124175400269018322251627e+0L,
    1.978456026387950968258249918131e+0L,
};

/* e^x for -708 <= x <= 0 in x87 arithmetic, within ~2 ulp of long double (glibc's expl is
 * within 1): x = k ln2/64 + r, |r| <= ln2/128, with ln2/64 = C1 + C2 (C1 has 44 bits, so k C1
 * is exact for |k| < 2^20 and x - k C1 is exact); e^r - 1 by its Taylor polynomial to r^7
 * (the first term left out is below 2e-23); e^x = 2^(k div 64) 2^((k mod 64)/64) e^r, the
 * power of two built as a double. glibc's expl costs ~75 ns a call on this machine (x87
 * f2xm1 and its care for every rounding mode); this ~10 ns, where the exp loss's N weights
 * per step were a third of a Diagonal(2) step at d = N = 64. */
static inline long double fb_expl_fast(long double x)
{
    /* all constants are doubles (80-bit constants are slow loads): 64/ln2 only picks k;
     * c1 has 44 bits; c2's rounding error, 3e-33, times |k| < 2^20 stays below 1e-26 */
    static const double inv = 92.3324826168936580710351795841210967953053; /* 64/ln2 */
    static const double c1 = 0xb17217f7d1dp-50;
    static const double c2 = -2.91279480269422362900816450174318710116543644e-17;
    static const double c3 = 1.0 / 6, c4 = 1.0 / 24, c5 = 1.0 / 120, c6 = 1.0 / 720,
                        c7 = 1.0 / 5040, c8 = 1.0 / 40320;
    /* k = round(x 64/ln2) in SSE (cvtsd2si): x87's own integer conversions change the
     * control word or go through memory (an 80-bit store and a 64-bit load do not forward) */
    const long long ki = lrint((double)(x * inv));
    const long double k = (long double)ki;
    const long double r = (x - k * c1) - k * c2;
    long double p;
    uint64_t bits;
    long long j, e;
    double two_e;
    /* the coefficients' rounding errors, 1e-17 relative, weigh r^3/6 < 3e-8 at most */
    p = r * (1.0L + r * (0.5L + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * (c7 + r * c8)))))));
    j = ki & 63;
    e = (ki - j) / 64; /* >= -1022 - 1 for x >= -708 */
    bits = (uint64_t)(e + 1023) << 52;
    memcpy(&two_e, &bits, sizeof two_e);
    return (FB_EXP2_64[j] + FB_EXP2_64[j] * p) * two_e;
}
#endif

/* expl(x) for x <= 0 (x = -(m_n - s) or -s with s >= 0), with two exact shortcuts:
 * expl(0) = 1 and expl(x) = +0 far below the subnormal range (there glibc's expl takes a slow
 * path that costs 2.5 calls). With FB_LD_FAST_EXP defined before this header, fb_expl_fast
 * above for -708 <= x < 0. */
static inline long double fb_expl_nonpos(long double x)
{
    if (x == 0.0L) {
        return 1.0L;
    }
#if defined(FB_LD_FAST_EXP)
    if (x >= -708.0L) {
        return fb_expl_fast(x);
    }
#endif
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

/* ---------------------------------------------------------------------------------------- */
/* Data held as exact double pairs for the O(N d) products of fb_deep_ld.c and fb_conv_ld.c:
 * an x87 multiply-add whose operands are both 80-bit numbers in memory is bound by the 80-bit
 * loads (FLD m80, ~4 ns a multiply-add on this AMD EPYC against 0.7 ns with one operand a
 * double and four rows sharing each 80-bit load). */

#include <stdlib.h>
#include <string.h>

/* The data rows as doubles: Z (N, d) and Z^T (d, N), hi and (if has_lo) lo parts. */
typedef struct {
    long long N, d;
    double *Zh, *Zl, *ZTh, *ZTl;
    int has_lo;
    /* sum_j |Z[n, j]| (N) and sum_n |Z[n, j]| (d), and their largest and smallest nonzero
     * values over both: the bounds fb_dd_rows's offset sums take (fb_ld_dd.h) */
    double *rabs, *cabs, abs_max, abs_min;
} fb_ld_data;

/* Split the long double rows into exact double pairs; returns 0, or -4 (memory) or -1 (an
 * entry outside the double range, which the splitting cannot hold). */
static inline int fb_ld_data_init(fb_ld_data *D, const long double *Z, long long N, long long d)
{
    const long long n_all = N * d;
    long long n, j;
    D->N = N;
    D->d = d;
    D->has_lo = 0;
    D->Zh = (double *)malloc((size_t)(4 * n_all + N + d) * sizeof(double));
    if (D->Zh == NULL) {
        return -4;
    }
    D->Zl = D->Zh + n_all;
    D->ZTh = D->Zl + n_all;
    D->ZTl = D->ZTh + n_all;
    for (n = 0; n < N; ++n) {
        for (j = 0; j < d; ++j) {
            const long double z = Z[n * d + j];
            const double h = (double)z;
            const double l = (double)(z - (long double)h);
            if (!isfinite(h) || !isfinite(l)) {
                free(D->Zh);
                D->Zh = NULL;
                return -1;
            }
            D->Zh[n * d + j] = h;
            D->Zl[n * d + j] = l;
            D->ZTh[j * N + n] = h;
            D->ZTl[j * N + n] = l;
            D->has_lo |= (l != 0.0);
        }
    }
    D->rabs = D->ZTl + n_all;
    D->cabs = D->rabs + N;
    memset(D->rabs, 0, (size_t)(N + d) * sizeof(double));
    for (n = 0; n < N; ++n) {
        for (j = 0; j < d; ++j) {
            const double a = fabs(D->Zh[n * d + j]) + fabs(D->Zl[n * d + j]);
            D->rabs[n] += a;
            D->cabs[j] += a;
        }
    }
    D->abs_max = 0.0;
    D->abs_min = INFINITY;
    for (n = 0; n < N + d; ++n) {
        const double a = D->rabs[n];
        D->abs_max = a > D->abs_max ? a : D->abs_max;
        D->abs_min = (a > 0.0 && a < D->abs_min) ? a : D->abs_min;
    }
    return 0;
}

/* out[r] = sum_c (Ah + Al)[r, c] v[c] for a (rows, cols) row-major matrix of double pairs
 * (Al == NULL: Ah alone), four rows at a time so that each 80-bit load of v serves four
 * multiply-adds; sums in index order within a row. */
static inline void fb_ld_matvec(const double *Ah, const double *Al, long long rows, long long cols,
                         const long double *v, long double *out)
{
    long long r = 0, c;
    for (; r + 4 <= rows; r += 4) {
        const double *a0 = Ah + r * cols, *a1 = a0 + cols, *a2 = a1 + cols, *a3 = a2 + cols;
        long double s0 = 0.0L, s1 = 0.0L, s2 = 0.0L, s3 = 0.0L;
        if (Al == NULL) {
            for (c = 0; c < cols; ++c) {
                const long double x = v[c];
                s0 += a0[c] * x;
                s1 += a1[c] * x;
                s2 += a2[c] * x;
                s3 += a3[c] * x;
            }
        } else {
            const double *l0 = Al + r * cols, *l1 = l0 + cols, *l2 = l1 + cols, *l3 = l2 + cols;
            for (c = 0; c < cols; ++c) {
                const long double x = v[c];
                s0 += ((long double)a0[c] + l0[c]) * x;
                s1 += ((long double)a1[c] + l1[c]) * x;
                s2 += ((long double)a2[c] + l2[c]) * x;
                s3 += ((long double)a3[c] + l3[c]) * x;
            }
        }
        out[r] = s0;
        out[r + 1] = s1;
        out[r + 2] = s2;
        out[r + 3] = s3;
    }
    for (; r < rows; ++r) {
        const double *a = Ah + r * cols;
        long double s = 0.0L;
        if (Al == NULL) {
            for (c = 0; c < cols; ++c) {
                s += a[c] * v[c];
            }
        } else {
            const double *l = Al + r * cols;
            for (c = 0; c < cols; ++c) {
                s += ((long double)a[c] + l[c]) * v[c];
            }
        }
        out[r] = s;
    }
}
