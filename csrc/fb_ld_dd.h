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
 * Rows past the last block of 8 take the same arithmetic in scalar form, so that with AVX2 the
 * x87 loop runs only when v or a sum leaves the double range. With the exp loss, the margins'
 * unrounded sums go on to fb_dd_exp_weights (below) and its pairs straight into G = Z^T q.
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
#include <stdint.h>
#include <string.h>

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

/* With sigma[r] >= 2 sum_c |A[r, c] v[c]| a power of two (fb_dd_sigmas), the running sum
 * starts at sigma: T = sigma + S stays within [sigma / 2, 3 sigma / 2], so |T| >= |p| and the
 * two-sum of T + p is Dekker's fast two-sum (3 operations instead of 6; the C chain is also
 * split in two, shortening its dependency chain), and T - sigma is exact at the end. The bits
 * of S below ulp(sigma) go to C exactly, so the sums are as accurate as the two-sum loop's
 * (absolute error ~N 2^-105 sum |terms|, against long double's N 2^-64). 64 x 64 products,
 * minimum over 20000 calls on this EPYC: 2.2 -> 1.6 us. */
FB_DD_TARGET static void fb_dd_rows_offset(const double *ATh, const double *ATl,
                                           long long rows, long long cols, const double *vh,
                                           const double *vl, const double *sigma, long long r1,
                                           long double *out, double *oh, double *ol)
{
    long long r, c;
    double sh[8], cl[8];
    int i;
    for (r = 0; r + 8 <= r1; r += 8) {
        const __m256d g0 = _mm256_loadu_pd(sigma + r), g1 = _mm256_loadu_pd(sigma + r + 4);
        __m256d T0 = g0, T1 = g1;
        __m256d C0 = _mm256_setzero_pd(), C1 = C0, D0 = C0, D1 = C0;
        for (c = 0; c < cols; ++c) {
            const double *a = ATh + c * rows + r;
            const __m256d bh = _mm256_broadcast_sd(vh + c), bl = _mm256_broadcast_sd(vl + c);
            const __m256d z0 = _mm256_loadu_pd(a), z1 = _mm256_loadu_pd(a + 4);
            __m256d p = _mm256_mul_pd(z0, bh), e = _mm256_fmsub_pd(z0, bh, p);
            __m256d s = _mm256_add_pd(T0, p), q = _mm256_sub_pd(s, T0);
            C0 = _mm256_add_pd(C0, _mm256_add_pd(_mm256_sub_pd(p, q), e));
            D0 = _mm256_fmadd_pd(z0, bl, D0);
            if (ATl != NULL) { /* the data's low parts (the Fourier rows of fb_conv_ld.c) */
                D0 = _mm256_fmadd_pd(_mm256_loadu_pd(ATl + c * rows + r), bh, D0);
                D1 = _mm256_fmadd_pd(_mm256_loadu_pd(ATl + c * rows + r + 4), bh, D1);
            }
            T0 = s;
            p = _mm256_mul_pd(z1, bh);
            e = _mm256_fmsub_pd(z1, bh, p);
            s = _mm256_add_pd(T1, p);
            q = _mm256_sub_pd(s, T1);
            C1 = _mm256_add_pd(C1, _mm256_add_pd(_mm256_sub_pd(p, q), e));
            D1 = _mm256_fmadd_pd(z1, bl, D1);
            T1 = s;
        }
        _mm256_storeu_pd(sh, _mm256_sub_pd(T0, g0));
        _mm256_storeu_pd(sh + 4, _mm256_sub_pd(T1, g1));
        _mm256_storeu_pd(cl, _mm256_add_pd(C0, D0));
        _mm256_storeu_pd(cl + 4, _mm256_add_pd(C1, D1));
        for (i = 0; i < 8; ++i) {
            out[r + i] = (long double)sh[i] + (long double)cl[i];
        }
        if (oh != NULL) {
            memcpy(oh + r, sh, sizeof sh);
            memcpy(ol + r, cl, sizeof cl);
        }
    }
}

/* sigma[r] = the power of two >= 2 rowabs[r] max_c |v[c]| (1 + 2^-40) (1 for a zero row);
 * returns 0 (no offset sums) where a bound leaves [2^-900, 2^1000] */
static int fb_dd_sigmas(const double *rowabs, double abs_min, double abs_max, long long rows,
                        const double *vh, long long cols, double *sigma)
{
    double vmax = 0.0, m2;
    long long r, c;
    for (c = 0; c < cols; ++c) {
        const double a = fabs(vh[c]);
        vmax = a > vmax ? a : vmax;
    }
    m2 = 2.0 * (vmax * (1.0 + 0x1p-40)) * (1.0 + 0x1p-40);
    if (!(vmax > 0.0) || !(abs_max * m2 < 0x1p1000) || !(abs_min * m2 > 0x1p-900)) {
        return 0;
    }
    for (r = 0; r < rows; ++r) {
        const double x = rowabs[r] * m2;
        uint64_t bits;
        if (x == 0.0) {
            sigma[r] = 1.0;
            continue;
        }
        memcpy(&bits, &x, sizeof bits);
        bits = (bits + 0x000fffffffffffffULL) & 0x7ff0000000000000ULL;
        memcpy(&sigma[r], &bits, sizeof bits);
    }
    return 1;
}

FB_DD_TARGET static void fb_dd_rows(const double *ATh, const double *ATl, long long rows,
                                    long long cols, const double *vh, const double *vl,
                                    long long r0, long long r1, long double *out, double *oh,
                                    double *ol)
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
        if (oh != NULL) { /* the unrounded sums S + C, for fb_dd_exp_weights */
            memcpy(oh + r, sh, sizeof sh);
            memcpy(ol + r, cl, sizeof cl);
        }
    }
    /* the last rows % 8 rows one at a time, the same arithmetic in scalar form */
    for (; r < r1; ++r) {
        double S = 0.0, C = 0.0;
        for (c = 0; c < cols; ++c) {
            const double z = ATh[c * rows + r];
            const double p = z * vh[c], e = fma(z, vh[c], -p);
            const double s = S + p, b = s - S;
            C = C + (((S - (s - b)) + (p - b)) + e);
            C = fma(z, vl[c], C);
            if (ATl != NULL) {
                C = fma(ATl[c * rows + r], vh[c], C);
            }
            S = s;
        }
        out[r] = (long double)S + (long double)C;
        if (oh != NULL) {
            oh[r] = S;
            ol[r] = C;
        }
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The exp loss's weights E_n = e^(s - m_n) (fb_ld_step.h's loss_weights, s = min m) in
 * double-double on AVX2, from the margins' unrounded double-double sums (mh + ml, from
 * fb_dd_rows) to exact double pairs (qh + ql) that the product G = Z^T q reads as they are
 * (no long double q, no splitting). fb_expl_fast is a scalar x87 polynomial (~24 ns); this is
 * four lanes of ~45 vector instructions.
 *
 * x = (sh + sl) - (mh + ml) (two-sum); k = round(x 64/ln2), x = k ln2/64 + r with
 * ln2/64 = L1 + L2 (L1 a double: k L1 and xh - k L1 are exact, as |k| < 2^17 and
 * |xh - k L1| < 2^-7 is a multiple of 2^-60; k L2's rounding is below 1e-31); e^r - 1 =
 * r + r^2 (1/2 + r/6 + .. + r^5/5040) with the tail in double (|r| <= ln2/128 + 1e-13: the
 * first term left out, r^8/8!, is below 2e-23, the tail's rounding ~3e-21); e^x =
 * 2^(k div 64) (Th + Tl)(1 + p), 2^(j/64) = Th + Tl to ~1e-32 (the table below, from Python's
 * decimal at 60 digits). Relative error ~1e-20 against e^x, below long double's 5.4e-20 ulp,
 * measured in tests/test_extended_factored.py against np.exp in longdouble. Lanes with
 * x < FB_DD_EXP_MIN (where 2^e Tl would be subnormal) are taken by fb_expl_nonpos in long
 * double and split, as the products split any long double (weights below e^-650 weigh 1e-282
 * against the largest, which is 1). */
static const double FB_DD_EXP2_HI[64] = {
    0x1.0000000000000p+0,
    0x1.02c9a3e778061p+0,
    0x1.059b0d3158574p+0,
    0x1.0874518759bc8p+0,
    0x1.0b5586cf9890fp+0,
    0x1.0e3ec32d3d1a2p+0,
    0x1.11301d0125b51p+0,
    0x1.1429aaea92de0p+0,
    0x1.172b83c7d517bp+0,
    0x1.1a35beb6fcb75p+0,
    0x1.1d4873168b9aap+0,
    0x1.2063b88628cd6p+0,
    0x1.2387a6e756238p+0,
    0x1.26b4565e27cddp+0,
    0x1.29e9df51fdee1p+0,
    0x1.2d285a6e4030bp+0,
    0x1.306fe0a31b715p+0,
    0x1.33c08b26416ffp+0,
    0x1.371a7373aa9cbp+0,
    0x1.3a7db34e59ff7p+0,
    0x1.3dea64c123422p+0,
    0x1.4160a21f72e2ap+0,
    0x1.44e086061892dp+0,
    0x1.486a2b5c13cd0p+0,
    0x1.4bfdad5362a27p+0,
    0x1.4f9b2769d2ca7p+0,
    0x1.5342b569d4f82p+0,
    0x1.56f4736b527dap+0,
    0x1.5ab07dd485429p+0,
    0x1.5e76f15ad2148p+0,
    0x1.6247eb03a5585p+0,
    0x1.6623882552225p+0,
    0x1.6a09e667f3bcdp+0,
    0x1.6dfb23c651a2fp+0,
    0x1.71f75e8ec5f74p+0,
    0x1.75feb564267c9p+0,
    0x1.7a11473eb0187p+0,
    0x1.7e2f336cf4e62p+0,
    0x1.82589994cce13p+0,
    0x1.868d99b4492edp+0,
    0x1.8ace5422aa0dbp+0,
    0x1.8f1ae99157736p+0,
    0x1.93737b0cdc5e5p+0,
    0x1.97d829fde4e50p+0,
    0x1.9c49182a3f090p+0,
    0x1.a0c667b5de565p+0,
    0x1.a5503b23e255dp+0,
    0x1.a9e6b5579fdbfp+0,
    0x1.ae89f995ad3adp+0,
    0x1.b33a2b84f15fbp+0,
    0x1.b7f76f2fb5e47p+0,
    0x1.bcc1e904bc1d2p+0,
    0x1.c199bdd85529cp+0,
    0x1.c67f12e57d14bp+0,
    0x1.cb720dcef9069p+0,
    0x1.d072d4a07897cp+0,
    0x1.d5818dcfba487p+0,
    0x1.da9e603db3285p+0,
    0x1.dfc97337b9b5fp+0,
    0x1.e502ee78b3ff6p+0,
    0x1.ea4afa2a490dap+0,
    0x1.efa1bee615a27p+0,
    0x1.f50765b6e4540p+0,
    0x1.fa7c1819e90d8p+0,
};
static const double FB_DD_EXP2_LO[64] = {
    0x0.0p+0,
    -0x1.19083535b085dp-56,
    0x1.d73e2a475b465p-55,
    0x1.186be4bb284ffp-57,
    0x1.8a62e4adc610bp-54,
    0x1.03a1727c57b53p-59,
    -0x1.6c51039449b3ap-54,
    -0x1.32fbf9af1369ep-54,
    -0x1.19041b9d78a76p-55,
    0x1.e5b4c7b4968e4p-55,
    0x1.e016e00a2643cp-54,
    0x1.dc775814a8495p-55,
    0x1.9b07eb6c70573p-54,
    0x1.2bd339940e9d9p-55,
    0x1.612e8afad1255p-55,
    0x1.0024754db41d5p-54,
    0x1.6f46ad23182e4p-55,
    0x1.32721843659a6p-54,
    -0x1.63aeabf42eae2p-54,
    -0x1.5e436d661f5e3p-56,
    0x1.ada0911f09ebcp-55,
    -0x1.ef3691c309278p-58,
    0x1.89b7a04ef80d0p-59,
    0x1.3c1a3b69062f0p-56,
    0x1.d4397afec42e2p-56,
    -0x1.4b309d25957e3p-54,
    -0x1.07abe1db13cadp-55,
    0x1.9bb2c011d93adp-54,
    0x1.6324c054647adp-54,
    0x1.ba6f93080e65ep-54,
    -0x1.383c17e40b497p-54,
    -0x1.bb60987591c34p-54,
    -0x1.bdd3413b26456p-54,
    -0x1.bbe3a683c88abp-57,
    -0x1.16e4786887a99p-55,
    -0x1.0245957316dd3p-54,
    -0x1.41577ee04992fp-55,
    0x1.05d02ba15797ep-56,
    -0x1.d4c1dd41532d8p-54,
    -0x1.fc6f89bd4f6bap-54,
    0x1.6e9f156864b27p-54,
    0x1.5cc13a2e3976cp-55,
    -0x1.75fc781b57ebcp-57,
    -0x1.d185b7c1b85d1p-54,
    0x1.c7c46b071f2bep-56,
    -0x1.359495d1cd533p-54,
    -0x1.d2f6edb8d41e1p-54,
    0x1.0fac90ef7fd31p-54,
    0x1.7a1cd345dcc81p-54,
    -0x1.2805e3084d708p-57,
    -0x1.5584f7e54ac3bp-56,
    0x1.23dd07a2d9e84p-55,
    0x1.11065895048ddp-55,
    0x1.2884dff483cadp-54,
    0x1.503cbd1e949dbp-56,
    -0x1.cbc3743797a9cp-54,
    0x1.2ed02d75b3707p-55,
    0x1.c2300696db532p-54,
    -0x1.1a5cd4f184b5cp-54,
    0x1.39e8980a9cc8fp-55,
    -0x1.e9c23179c2893p-54,
    0x1.dc7f486a4b6b0p-54,
    0x1.9d3e12dd8a18bp-54,
    0x1.74853f3a5931ep-55,
};

#define FB_DD_EXP_MIN (-650.0)

#define FB_DD_TWO_SUM(a, b, s, e)                                                         \
    do {                                                                                  \
        const __m256d a_ = (a), b_ = (b);                                                 \
        const __m256d s_ = _mm256_add_pd(a_, b_);                                         \
        const __m256d bb_ = _mm256_sub_pd(s_, a_);                                        \
        e = _mm256_add_pd(_mm256_sub_pd(a_, _mm256_sub_pd(s_, bb_)), _mm256_sub_pd(b_, bb_)); \
        s = s_;                                                                           \
    } while (0)

/* x = xh + xl (exact pairs) + p, p = (fh + fl)(gh + gl), rounded to long double's 64-bit
 * significand and returned as the canonical pair (h = RN_double(x), l = x - h) that
 * fb_pair_put makes, so a run split into calls is bit for bit one call: the sum in
 * double-double (two-sums, the product fh gh exact by an FMA), then its low part rounded to
 * the grid q = 2^(exponent(h) - 63) by adding and subtracting K = 1.5 2^52 q (below a power
 * of two h the grid is a bit coarser than long double's: still a long double, the same in
 * every path), then renormalized */
#define FB_DD_UPDATE(xh, xl, F, Fl, G, Gl, mask, kq, oh, ol)                                 \
    do {                                                                                  \
        const __m256d up_ = _mm256_mul_pd(F, G);                                           \
        const __m256d upe_ = _mm256_fmsub_pd(F, G, up_);                                    \
        __m256d us_, use_, ulo_, uh_, ul_, uK_;                                                 \
        FB_DD_TWO_SUM(xh, up_, us_, use_);                                                   \
        ulo_ = _mm256_add_pd(_mm256_add_pd(use_, upe_), xl);                                 \
        ulo_ = _mm256_fmadd_pd(F, Gl, ulo_);                                                \
        ulo_ = _mm256_fmadd_pd(Fl, G, ulo_);                                                \
        FB_DD_TWO_SUM(us_, ulo_, uh_, ul_);                                                   \
        uK_ = _mm256_mul_pd(_mm256_and_pd(uh_, mask), kq);                                  \
        ul_ = _mm256_sub_pd(_mm256_add_pd(ul_, uK_), uK_);                                    \
        oh = _mm256_add_pd(uh_, ul_);                                                       \
        ol = _mm256_sub_pd(ul_, _mm256_sub_pd(oh, uh_));                                    \
    } while (0)

/* four lanes of double-double numbers h + l, and their arithmetic (relative error ~2^-100
 * without cancellation; the sum is two two-sums, so it stays valid under cancellation) */
typedef struct {
    __m256d h, l;
} fb_dd4;

FB_DD_TARGET static inline fb_dd4 fb_dd4_load(const double *h, const double *l)
{
    fb_dd4 r;
    r.h = _mm256_loadu_pd(h);
    r.l = _mm256_loadu_pd(l);
    return r;
}

FB_DD_TARGET static inline void fb_dd4_store(double *h, double *l, fb_dd4 a)
{
    _mm256_storeu_pd(h, a.h);
    _mm256_storeu_pd(l, a.l);
}

FB_DD_TARGET static inline fb_dd4 fb_dd4_mul(fb_dd4 a, fb_dd4 b)
{
    const __m256d p = _mm256_mul_pd(a.h, b.h);
    __m256d e = _mm256_fmsub_pd(a.h, b.h, p);
    fb_dd4 r;
    e = _mm256_fmadd_pd(a.h, b.l, e);
    e = _mm256_fmadd_pd(a.l, b.h, e);
    r.h = _mm256_add_pd(p, e); /* fast two-sum: |e| <~ 2^-52 |p| */
    r.l = _mm256_sub_pd(e, _mm256_sub_pd(r.h, p));
    return r;
}

FB_DD_TARGET static inline fb_dd4 fb_dd4_add(fb_dd4 a, fb_dd4 b)
{
    __m256d s, e;
    fb_dd4 r;
    FB_DD_TWO_SUM(a.h, b.h, s, e);
    e = _mm256_add_pd(e, _mm256_add_pd(a.l, b.l));
    FB_DD_TWO_SUM(s, e, r.h, r.l);
    return r;
}

FB_DD_TARGET static inline fb_dd4 fb_dd4_neg(fb_dd4 a)
{
    const __m256d z = _mm256_setzero_pd();
    a.h = _mm256_sub_pd(z, a.h);
    a.l = _mm256_sub_pd(z, a.l);
    return a;
}

/* (h, l) = e^(xh + xl), four lanes, for FB_DD_EXP_MIN <= xh <= ~1e-15 */
FB_DD_TARGET static inline void fb_dd_exp4(__m256d xh, __m256d xl, __m256d *oh, __m256d *ol)
{
    const __m256d inv = _mm256_set1_pd(0x1.71547652b82fep+6); /* 64/ln2, only picks k */
    const __m256d L1 = _mm256_set1_pd(0x1.62e42fefa39efp-7), L2 = _mm256_set1_pd(0x1.abc9e3b39803fp-62);
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(xh, inv),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d r1 = _mm256_fnmadd_pd(k, L1, xh); /* exact */
    const __m256d t = _mm256_fnmadd_pd(k, L2, xl);
    __m256d rh, rl, c, tail, plo, ph, pl, Th, Tl, a, ae, sh, se, lo, h, l, sc;
    __m128i ki, j, e;
    FB_DD_TWO_SUM(r1, t, rh, rl);
    c = _mm256_set1_pd(1.0 / 5040);
    c = _mm256_fmadd_pd(c, rh, _mm256_set1_pd(1.0 / 720));
    c = _mm256_fmadd_pd(c, rh, _mm256_set1_pd(1.0 / 120));
    c = _mm256_fmadd_pd(c, rh, _mm256_set1_pd(1.0 / 24));
    c = _mm256_fmadd_pd(c, rh, _mm256_set1_pd(1.0 / 6));
    c = _mm256_fmadd_pd(c, rh, _mm256_set1_pd(0.5));
    tail = _mm256_mul_pd(_mm256_mul_pd(rh, rh), c);          /* ~ r^2/2 + .., rel. 3e-16 */
    plo = _mm256_add_pd(rl, _mm256_fmadd_pd(rh, rl, tail)); /* + 2 rh rl / 2 + rl */
    ph = _mm256_add_pd(rh, plo); /* fast two-sum: |plo| <= |rh| (rl = 0 when rh = 0) */
    pl = _mm256_sub_pd(plo, _mm256_sub_pd(ph, rh));
    ki = _mm256_cvtpd_epi32(k); /* exact: k is an integer, |k| < 2^17 */
    j = _mm_and_si128(ki, _mm_set1_epi32(63));
    e = _mm_srai_epi32(ki, 6); /* floor(k / 64) */
    Th = _mm256_i32gather_pd(FB_DD_EXP2_HI, j, 8);
    Tl = _mm256_i32gather_pd(FB_DD_EXP2_LO, j, 8);
    /* (Th + Tl)(1 + ph + pl) = Th + Th ph + (Tl + Th pl + Tl ph), Th ph exact (FMA) */
    a = _mm256_mul_pd(Th, ph);
    ae = _mm256_fmsub_pd(Th, ph, a);
    FB_DD_TWO_SUM(Th, a, sh, se);
    lo = _mm256_add_pd(_mm256_add_pd(se, ae), Tl);
    lo = _mm256_fmadd_pd(Th, pl, lo);
    lo = _mm256_fmadd_pd(Tl, ph, lo);
    h = _mm256_add_pd(sh, lo); /* fast two-sum: |lo| << |sh| ~ 1 */
    l = _mm256_sub_pd(lo, _mm256_sub_pd(h, sh));
    sc = _mm256_castsi256_pd(_mm256_slli_epi64(
        _mm256_add_epi64(_mm256_cvtepi32_epi64(e), _mm256_set1_epi64x(1023)), 52));
    *oh = _mm256_mul_pd(h, sc); /* exact: 2^e >= 2^-939 and l stays normal */
    *ol = _mm256_mul_pd(l, sc);
}

/* qh + ql = e^(s - m_n) for n < N, s = mh[i_min] + ml[i_min] (the minimum margin, so the
 * weight there is 1 exactly); returns sum_n E_n in long double when want_total */
FB_DD_TARGET static long double fb_dd_exp_weights(const double *mh, const double *ml,
                                                  long long i_min, long long N, double *qh,
                                                  double *ql, int want_total)
{
    const __m256d sh = _mm256_set1_pd(mh[i_min]), sl = _mm256_set1_pd(ml[i_min]);
    const __m256d lim = _mm256_set1_pd(FB_DD_EXP_MIN);
    long double total = 0.0L;
    long long n, i;
    for (n = 0; n < N; n += 4) {
        double bh[4] = {0.0, 0.0, 0.0, 0.0}, bl[4] = {0.0, 0.0, 0.0, 0.0}, xh4[4], xl4[4];
        double oh4[4], ol4[4];
        const long long w = N - n < 4 ? N - n : 4;
        __m256d mh4, ml4, xh, xl, e1, oh, ol;
        int low;
        if (w == 4) {
            mh4 = _mm256_loadu_pd(mh + n);
            ml4 = _mm256_loadu_pd(ml + n);
        } else { /* the last lanes padded with the minimum margin (weight 1, unused) */
            for (i = 0; i < 4; ++i) {
                bh[i] = i < w ? mh[n + i] : mh[i_min];
                bl[i] = i < w ? ml[n + i] : ml[i_min];
            }
            mh4 = _mm256_loadu_pd(bh);
            ml4 = _mm256_loadu_pd(bl);
        }
        FB_DD_TWO_SUM(sh, _mm256_sub_pd(_mm256_setzero_pd(), mh4), xh, e1);
        xl = _mm256_add_pd(e1, _mm256_sub_pd(sl, ml4));
        FB_DD_TWO_SUM(xh, xl, xh, xl);
        low = _mm256_movemask_pd(_mm256_cmp_pd(xh, lim, _CMP_LT_OQ));
        if (low) {
            _mm256_storeu_pd(xh4, xh);
            _mm256_storeu_pd(xl4, xl);
            xh = _mm256_max_pd(xh, lim);
        }
        fb_dd_exp4(xh, xl, &oh, &ol);
        _mm256_storeu_pd(oh4, oh);
        _mm256_storeu_pd(ol4, ol);
        for (i = 0; i < w; ++i) {
            if (low & (1 << i)) { /* e^x < e^-650 in long double, split as fb_ld_products does */
                const long double E = fb_expl_nonpos((long double)xh4[i] + xl4[i]);
                oh4[i] = (double)E;
                ol4[i] = (double)(E - (long double)oh4[i]);
            }
            qh[n + i] = oh4[i];
            ql[n + i] = ol4[i];
            if (want_total) {
                total += (long double)oh4[i] + ol4[i];
            }
        }
    }
    return total;
}

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
 * scratch. All rows go to the double-double loop when use_dd (fb_dd_use()), blocks of 8 and
 * the rest one by one, and to fb_ld_matvec otherwise. With vh != NULL, v is given as the exact
 * pairs vh + vl instead (v is then scratch, filled from them if the x87 loop needs it). With
 * oh != NULL, the double-double rows also leave their unrounded sums in oh + ol. Returns the
 * number of leading rows the double-double loop made (0 when the sums or v leave the double
 * range, and then all rows are the x87 loop's). */
static inline long long fb_ld_products(const double *Ah, const double *Al, const double *ATh,
                                       const double *ATl, long long rows, long long cols,
                                       long double *v, long double *out, double *vsplit,
                                       int use_dd, const double *vh, const double *vl,
                                       double *oh, double *ol, const fb_ld_data *D,
                                       const double *rowabs, double *sigma)
{
    long long r_dd = 0, c;
#if FB_LD_HAVE_DD
    if (use_dd) {
        int finite = 1;
        if (vh == NULL) {
            for (c = 0; c < cols; ++c) {
                const double h = (double)v[c];
                vsplit[c] = h;
                vsplit[cols + c] = (double)(v[c] - (long double)h);
                finite &= isfinite(h) != 0;
            }
            vh = vsplit;
            vl = vsplit + cols;
        }
        if (finite) { /* else v is past the double range: the x87 loop */
            long long r;
            r_dd = rows;
            if (rowabs != NULL && rows >= 8
                && fb_dd_sigmas(rowabs, D->abs_min, D->abs_max, rows, vh, cols, sigma)) {
                const long long r8 = rows - rows % 8;
                fb_dd_rows_offset(ATh, ATl, rows, cols, vh, vl, sigma, r8, out, oh, ol);
                fb_dd_rows(ATh, ATl, rows, cols, vh, vl, r8, rows, out, oh, ol);
            } else {
                fb_dd_rows(ATh, ATl, rows, cols, vh, vl, 0, r_dd, out, oh, ol);
            }
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
    (void)oh;
    (void)ol;
    (void)D;
    (void)rowabs;
    (void)sigma;
#endif
    if (r_dd < rows) {
        if (vh != NULL && vh != vsplit) {
            for (c = 0; c < cols; ++c) {
                v[c] = (long double)vh[c] + vl[c];
            }
        }
        fb_ld_matvec(Ah + r_dd * cols, Al == NULL ? NULL : Al + r_dd * cols, rows - r_dd, cols, v,
                     out + r_dd);
    }
    return r_dd;
}


#endif
