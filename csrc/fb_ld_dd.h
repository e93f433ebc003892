/* The O(N d) products of the long double kernels (fb_deep_ld.c, fb_conv_ld.c) in
 * double-double arithmetic on AVX2+FMA, with the x87 loop of fb_ld_step.h (fb_ld_matvec) as
 * the fallback on CPUs without AVX2/FMA (checked at run time, as fb_f64_core.h does).
 *
 * out[r] = sum_c A[r, c] v[c], with A = Ah + Al held as exact double pairs (fb_ld_data) and
 * v in long double, split exactly into v = vh + vl (two doubles). Four rows per vector, two
 * vectors per block: for each c, the product Ah vh is made exact with an FMA (p + e), p is
 * added to the running sum S with Knuth's two-sum (s + err exactly), and the small terms
 * err + e + Ah vl + Al vh go to a second double C. The result S + C has a relative error of
 * order 1e-30 for sums without cancellation (and stays far better than long double's 5e-20
 * with it), so it agrees with the x87 loop and the np.longdouble reference to long double
 * round-off. Rounded to long double at the end.
 *
 * Where the time goes: x87 has no SIMD, and its multiply-add with one 80-bit operand shared by
 * four rows costs ~2 cycles (0.7 ns here); the double-double multiply-add is ~12 vector
 * instructions for four rows (mul, fma, six adds of the two-sum, three for C), i.e. ~1 cycle
 * a row on two FMA and two add pipes: about twice as fast. Static functions only; include
 * after fb_ld_step.h.
 */

#ifndef FB_LD_DD_H
#define FB_LD_DD_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FB_LD_HAVE_DD 1
#include <immintrin.h>

#define FB_DD_TARGET __attribute__((target("avx2,fma")))

/* two vectors of rows [r, r + 8): the double-double sums over c of ATh/ATl[c, r..] (vh + vl)[c] */
#define FB_DD_STEP(S, C, z, zl, bh, bl, HAS_LO)                                             \
    do {                                                                                  \
        const __m256d p_ = _mm256_mul_pd(z, bh);                                          \
        const __m256d e_ = _mm256_fmsub_pd(z, bh, p_);                                    \
        const __m256d s_ = _mm256_add_pd(S, p_);                                          \
        const __m256d b_ = _mm256_sub_pd(s_, S);                                          \
        const __m256d err_ = _mm256_add_pd(_mm256_sub_pd(S, _mm256_sub_pd(s_, b_)),       \
                                           _mm256_sub_pd(p_, b_));                        \
        C = _mm256_add_pd(C, _mm256_add_pd(err_, e_));                                    \
        C = _mm256_fmadd_pd(z, bl, C);                                                    \
        if (HAS_LO) {                                                                     \
            C = _mm256_fmadd_pd(zl, bh, C);                                               \
        }                                                                                 \
        S = s_;                                                                           \
    } while (0)

FB_DD_TARGET static void fb_dd_rows(const double *ATh, const double *ATl, long long rows,
                                    long long cols, const double *vh, const double *vl,
                                    long long r0, long long r1, long double *out)
{
    long long r, c;
    double sh[8], cl[8];
    int i;
    for (r = r0; r + 8 <= r1; r += 8) {
        __m256d S0 = _mm256_setzero_pd(), S1 = _mm256_setzero_pd();
        __m256d C0 = _mm256_setzero_pd(), C1 = _mm256_setzero_pd();
        if (ATl == NULL) {
            for (c = 0; c < cols; ++c) {
                const double *a = ATh + c * rows + r;
                const __m256d bh = _mm256_broadcast_sd(vh + c), bl = _mm256_broadcast_sd(vl + c);
                const __m256d z0 = _mm256_loadu_pd(a), z1 = _mm256_loadu_pd(a + 4);
                FB_DD_STEP(S0, C0, z0, z0, bh, bl, 0);
                FB_DD_STEP(S1, C1, z1, z1, bh, bl, 0);
            }
        } else {
            for (c = 0; c < cols; ++c) {
                const double *a = ATh + c * rows + r, *al = ATl + c * rows + r;
                const __m256d bh = _mm256_broadcast_sd(vh + c), bl = _mm256_broadcast_sd(vl + c);
                const __m256d z0 = _mm256_loadu_pd(a), z1 = _mm256_loadu_pd(a + 4);
                const __m256d l0 = _mm256_loadu_pd(al), l1 = _mm256_loadu_pd(al + 4);
                FB_DD_STEP(S0, C0, z0, l0, bh, bl, 1);
                FB_DD_STEP(S1, C1, z1, l1, bh, bl, 1);
            }
        }
        _mm256_storeu_pd(sh, S0);
        _mm256_storeu_pd(sh + 4, S1);
        _mm256_storeu_pd(cl, C0);
        _mm256_storeu_pd(cl + 4, C1);
        for (i = 0; i < 8; ++i) {
            out[r + i] = (long double)sh[i] + (long double)cl[i];
        }
    }
}

#include <string.h>

/* Whether the double-double loop runs: AVX2 and FMA present and FASTBIAS_NO_AVX2 unset (or
 * "0"), as fb_f64_core.h's fb_use_avx2 (the variable forces the fallback, for tests). */
static int fb_dd_use(void)
{
    const char *env = getenv("FASTBIAS_NO_AVX2");
    if (env != NULL && env[0] != '\0' && strcmp(env, "0") != 0) {
        return 0;
    }
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
#define FB_LD_HAVE_DD 0
static int fb_dd_use(void)
{
    return 0;
}
#endif

/* out = A v (rows, cols) from A's two layouts: Ah/Al row-major (rows, cols) for the x87
 * loop and ATh/ATl (cols, rows) for the double-double one; vsplit: 2 cols doubles of
 * scratch. Rows in blocks of 8 go to the double-double loop when use_dd (fb_dd_use()), the
 * rest (and everything otherwise) to fb_ld_matvec. */
static inline void fb_ld_products(const double *Ah, const double *Al, const double *ATh,
                                  const double *ATl, long long rows, long long cols,
                                  const long double *v, long double *out, double *vsplit,
                                  int use_dd)
{
    long long r_dd = 0;
#if FB_LD_HAVE_DD
    if (rows >= 8 && use_dd) {
        long long c;
        int finite = 1;
        for (c = 0; c < cols; ++c) {
            const double h = (double)v[c];
            vsplit[c] = h;
            vsplit[cols + c] = (double)(v[c] - (long double)h);
            finite &= isfinite(h) != 0;
        }
        if (finite) { /* else v is past the double range: the x87 loop */
            long long r;
            r_dd = rows - rows % 8;
            fb_dd_rows(ATh, ATl, rows, cols, vsplit, vsplit + cols, 0, r_dd, out);
            for (r = 0; r < r_dd; ++r) {
                finite &= isfinite(out[r]) != 0;
            }
            if (!finite) { /* a sum past the double range (long double goes to 1e4932) */
                r_dd = 0;
            }
        }
    }
#else
    (void)ATh;
    (void)ATl;
    (void)vsplit;
    (void)use_dd;
#endif
    if (r_dd < rows) {
        fb_ld_matvec(Ah + r_dd * cols, Al == NULL ? NULL : Al + r_dd * cols, rows - r_dd, cols, v,
                     out + r_dd);
    }
}

#endif
