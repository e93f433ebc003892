/* The honest baseline: exp-loss GD written as plain C loops, the way a researcher who knows C
 * would write it in an afternoon. Not part of the package: bench/cloops.py compiles this file
 * at run time with the system compiler (-O3 -march=native -ffast-math) and loads it with
 * ctypes.
 *
 * Every loop does the math of fastbias's kernels for the exponential loss and the fixed step
 * rule (kernels/_reference.py: gd_linear, gd_model): log-domain weights q_n = exp(s - m_n)
 * with s = min_n m_n and step lr exp(-s) Z^T q; the same divergence tests (stop when the
 * minimum margin is not > floor, or when the parameter gradient is not finite); the same
 * recording (after step rec[k] the parameters are copied into row k of rec_out). Nothing is
 * tuned: one loop per formula, row-major data, libm's exp (which GCC vectorizes through
 * glibc's libmvec under -ffast-math).
 *
 * Each function returns the number of steps taken: n_steps, or the step whose iterate failed
 * a divergence test.
 */

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* q = exp(s - m) with s = min m; returns 0 if the divergence test fails. */
static int cl_weights(const double *m, long N, double floor, double *q, double *s_out)
{
    double s = m[0];
    long n;
    for (n = 1; n < N; ++n) {
        if (m[n] < s) {
            s = m[n];
        }
    }
    if (!(s > floor)) {
        return 0;
    }
    for (n = 0; n < N; ++n) {
        q[n] = exp(s - m[n]);
    }
    *s_out = s;
    return 1;
}

/* m = Z beta, Z (N, d) row-major */
static void cl_margins(const double *Z, const double *beta, long N, long d, double *m)
{
    long n, j;
    for (n = 0; n < N; ++n) {
        double acc = 0.0;
        for (j = 0; j < d; ++j) {
            acc += Z[n * d + j] * beta[j];
        }
        m[n] = acc;
    }
}

/* G = Z^T q */
static void cl_gradient(const double *Z, const double *q, long N, long d, double *G)
{
    long n, j;
    for (j = 0; j < d; ++j) {
        G[j] = 0.0;
    }
    for (n = 0; n < N; ++n) {
        for (j = 0; j < d; ++j) {
            G[j] += q[n] * Z[n * d + j];
        }
    }
}

/* theta += c g after checking that g is finite; returns 0 if not. */
static int cl_update(double *theta, const double *g, long P, double c)
{
    double gg = 0.0;
    long i;
    for (i = 0; i < P; ++i) {
        gg += g[i] * g[i];
    }
    if (!(gg < INFINITY)) {
        return 0;
    }
    for (i = 0; i < P; ++i) {
        theta[i] += c * g[i];
    }
    return 1;
}

static void cl_record(const double *theta, long P, long t, const long *rec, long K, double *out,
                      long *k)
{
    if (*k < K && rec[*k] == t + 1) {
        memcpy(out + *k * P, theta, (size_t)P * sizeof(double));
        ++*k;
    }
}

/* Linear predictor (Soudry et al. eq. 2.2): w (d). */
long cl_linear(const double *Z, double *w, long N, long d, double lr, long n_steps,
               const long *rec, long K, double *rec_out, double floor)
{
    double *m = malloc(N * sizeof(double)), *q = malloc(N * sizeof(double));
    double *G = malloc(d * sizeof(double));
    double s;
    long t, k = 0;
    for (t = 0; t < n_steps; ++t) {
        cl_margins(Z, w, N, d, m);
        if (!cl_weights(m, N, floor, q, &s)) {
            break;
        }
        cl_gradient(Z, q, N, d, G);
        if (!cl_update(w, G, d, lr * exp(-s))) {
            break;
        }
        cl_record(w, d, t, rec, K, rec_out, &k);
    }
    free(m), free(q), free(G);
    return t;
}

/* Diagonal network of depth L (Yun eq. 11): theta = [w_1 (d), ..., w_L (d)],
 * beta = w_1 * ... * w_L, g_l = G * prod_{k != l} w_k. */
long cl_diagonal(const double *Z, double *theta, long N, long d, long L, double lr,
                 long n_steps, const long *rec, long K, double *rec_out, double floor)
{
    double *m = malloc(N * sizeof(double)), *q = malloc(N * sizeof(double));
    double *G = malloc(d * sizeof(double)), *beta = malloc(d * sizeof(double));
    double *g = malloc(L * d * sizeof(double));
    double s;
    long t, k = 0, j, l, i;
    for (t = 0; t < n_steps; ++t) {
        for (j = 0; j < d; ++j) {
            beta[j] = theta[j];
            for (l = 1; l < L; ++l) {
                beta[j] *= theta[l * d + j];
            }
        }
        cl_margins(Z, beta, N, d, m);
        if (!cl_weights(m, N, floor, q, &s)) {
            break;
        }
        cl_gradient(Z, q, N, d, G);
        for (l = 0; l < L; ++l) {
            for (j = 0; j < d; ++j) {
                double p = G[j];
                for (i = 0; i < L; ++i) {
                    if (i != l) {
                        p *= theta[i * d + j];
                    }
                }
                g[l * d + j] = p;
            }
        }
        if (!cl_update(theta, g, L * d, lr * exp(-s))) {
            break;
        }
        cl_record(theta, L * d, t, rec, K, rec_out, &k);
    }
    free(m), free(q), free(G), free(beta), free(g);
    return t;
}

/* Fully connected linear network with one hidden layer (Gunasekar eq. 1):
 * theta = [W (d x h, row-major), v (h)], beta = W v; g_W = G v^T, g_v = W^T G. */
long cl_fc2(const double *Z, double *theta, long N, long d, long h, double lr, long n_steps,
            const long *rec, long K, double *rec_out, double floor)
{
    const long P = d * h + h;
    double *m = malloc(N * sizeof(double)), *q = malloc(N * sizeof(double));
    double *G = malloc(d * sizeof(double)), *beta = malloc(d * sizeof(double));
    double *g = malloc(P * sizeof(double));
    const double *W = theta, *v = theta + d * h;
    double s;
    long t, k = 0, j, c;
    for (t = 0; t < n_steps; ++t) {
        for (j = 0; j < d; ++j) {
            double acc = 0.0;
            for (c = 0; c < h; ++c) {
                acc += W[j * h + c] * v[c];
            }
            beta[j] = acc;
        }
        cl_margins(Z, beta, N, d, m);
        if (!cl_weights(m, N, floor, q, &s)) {
            break;
        }
        cl_gradient(Z, q, N, d, G);
        for (c = 0; c < h; ++c) {
            g[d * h + c] = 0.0;
        }
        for (j = 0; j < d; ++j) {
            for (c = 0; c < h; ++c) {
                g[j * h + c] = G[j] * v[c];
                g[d * h + c] += W[j * h + c] * G[j];
            }
        }
        if (!cl_update(theta, g, P, lr * exp(-s))) {
            break;
        }
        cl_record(theta, P, t, rec, K, rec_out, &k);
    }
    free(m), free(q), free(G), free(beta), free(g);
    return t;
}

/* Full-width linear circular convolutional network of depth L in the Fourier domain
 * (Gunasekar Lemma 3 / Lemma 10): the state is the half spectra of the L filters,
 * beta_hat = prod_l w_hat_l, and GD on the filter l is w_hat_l += c G_hat conj(prod_{k != l}
 * w_hat_k). ZF (N, d) holds each sample's half spectrum as a real row [Re zhat[0..H-1],
 * Im zhat[1..d-H]] (computed once by the caller), so z_n . beta = sum_r ZF[n, r] b[r] with
 * b = (c_j / d) [Re beta_hat, Im beta_hat] (Parseval; c_j = 1 at DC and Nyquist, else 2).
 * theta (L d) holds the time-domain filters: read on entry, written on exit and at the
 * recorded steps (inverse DFT, O(L d^2)). */
static void cl_twiddles(long d, double *ct, double *st)
{
    long r;
    for (r = 0; r < d; ++r) {
        ct[r] = cos(2.0 * M_PI * (double)r / (double)d);
        st[r] = sin(2.0 * M_PI * (double)r / (double)d);
    }
}

static void cl_to_time(const double *spec, long L, long d, long H, const double *cw,
                       const double *ct, const double *st, double *out)
{
    long l, p, j;
    for (l = 0; l < L; ++l) {
        const double *re = spec + (2 * l) * H, *im = spec + (2 * l + 1) * H;
        for (p = 0; p < d; ++p) {
            double acc = 0.0;
            for (j = 0; j < H; ++j) {
                const long r = (p * j) % d;
                acc += cw[j] * (re[j] * ct[r] - im[j] * st[r]);
            }
            out[l * d + p] = acc;
        }
    }
}

long cl_conv(const double *ZF, double *theta, long N, long d, long L, double lr, long n_steps,
             const long *rec, long K, double *rec_out, double floor)
{
    const long H = d / 2 + 1, nI = d - H;
    double *m = malloc(N * sizeof(double)), *q = malloc(N * sizeof(double));
    double *b = malloc(d * sizeof(double)), *Gv = malloc(d * sizeof(double));
    double *spec = malloc(2 * L * H * sizeof(double)), *u = malloc(2 * L * H * sizeof(double));
    double *cw = malloc(H * sizeof(double)), *ct = malloc(d * sizeof(double));
    double *st = malloc(d * sizeof(double));
    double s;
    long t, k = 0, j, l, i, p;
    cl_twiddles(d, ct, st);
    for (j = 0; j < H; ++j) {
        cw[j] = (j == 0 || 2 * j == d ? 1.0 : 2.0) / (double)d;
    }
    for (l = 0; l < L; ++l) { /* forward DFT of the filters */
        for (j = 0; j < H; ++j) {
            double re = 0.0, im = 0.0;
            for (p = 0; p < d; ++p) {
                const long r = (p * j) % d;
                re += theta[l * d + p] * ct[r];
                im -= theta[l * d + p] * st[r];
            }
            spec[2 * l * H + j] = re;
            spec[(2 * l + 1) * H + j] = im;
        }
    }
    for (t = 0; t < n_steps; ++t) {
        double gg = 0.0, c;
        for (j = 0; j < H; ++j) { /* beta_hat = prod_l w_hat_l */
            double br = 1.0, bi = 0.0;
            for (l = 0; l < L; ++l) {
                const double wr = spec[2 * l * H + j], wi = spec[(2 * l + 1) * H + j];
                const double nr = br * wr - bi * wi;
                bi = br * wi + bi * wr;
                br = nr;
            }
            b[j] = cw[j] * br;
            if (j >= 1 && j <= nI) {
                b[H - 1 + j] = cw[j] * bi;
            }
        }
        cl_margins(ZF, b, N, d, m);
        if (!cl_weights(m, N, floor, q, &s)) {
            break;
        }
        cl_gradient(ZF, q, N, d, Gv);
        for (l = 0; l < L; ++l) { /* u_l = G_hat conj(prod_{k != l} w_hat_k) */
            for (j = 0; j < H; ++j) {
                const double gr = Gv[j], gi = (j >= 1 && j <= nI) ? Gv[H - 1 + j] : 0.0;
                double pr = 1.0, pi = 0.0, ur, ui;
                for (i = 0; i < L; ++i) {
                    if (i != l) {
                        const double wr = spec[2 * i * H + j], wi = spec[(2 * i + 1) * H + j];
                        const double nr = pr * wr - pi * wi;
                        pi = pr * wi + pi * wr;
                        pr = nr;
                    }
                }
                ur = gr * pr + gi * pi;
                ui = gi * pr - gr * pi;
                u[2 * l * H + j] = ur;
                u[(2 * l + 1) * H + j] = ui;
                gg += cw[j] * (ur * ur + ui * ui); /* ||g_l||^2 (Parseval) */
            }
        }
        if (!(gg < INFINITY)) {
            break;
        }
        c = lr * exp(-s);
        for (i = 0; i < 2 * L * H; ++i) {
            spec[i] += c * u[i];
        }
        if (k < K && rec[k] == t + 1) {
            cl_to_time(spec, L, d, H, cw, ct, st, rec_out + k * L * d);
            ++k;
        }
    }
    cl_to_time(spec, L, d, H, cw, ct, st, theta);
    free(m), free(q), free(b), free(Gv), free(spec), free(u), free(cw), free(ct), free(st);
    return t;
}

/* Linear tensor network (Yun eq. 6) from the COO nonzeros of the data tensor: nonzero e adds
 * vals[e] prod_l theta[pos[e L + l]] to beta[jidx[e]]; the gradient of theta[pos[e L + l]]
 * gets G[jidx[e]] vals[e] prod_{k != l} theta[pos[e L + k]]. */
long cl_tensor(const double *Z, double *theta, long N, long d, long P, long nnz, long L,
               const long *jidx, const long *pos, const double *vals, double lr, long n_steps,
               const long *rec, long K, double *rec_out, double floor)
{
    double *m = malloc(N * sizeof(double)), *q = malloc(N * sizeof(double));
    double *G = malloc(d * sizeof(double)), *beta = malloc(d * sizeof(double));
    double *g = malloc(P * sizeof(double));
    double s;
    long t, k = 0, e, l, i;
    for (t = 0; t < n_steps; ++t) {
        for (i = 0; i < d; ++i) {
            beta[i] = 0.0;
        }
        for (e = 0; e < nnz; ++e) {
            double p = vals[e];
            for (l = 0; l < L; ++l) {
                p *= theta[pos[e * L + l]];
            }
            beta[jidx[e]] += p;
        }
        cl_margins(Z, beta, N, d, m);
        if (!cl_weights(m, N, floor, q, &s)) {
            break;
        }
        cl_gradient(Z, q, N, d, G);
        for (i = 0; i < P; ++i) {
            g[i] = 0.0;
        }
        for (e = 0; e < nnz; ++e) {
            for (l = 0; l < L; ++l) {
                double p = G[jidx[e]] * vals[e];
                for (i = 0; i < L; ++i) {
                    if (i != l) {
                        p *= theta[pos[e * L + i]];
                    }
                }
                g[pos[e * L + l]] += p;
            }
        }
        if (!cl_update(theta, g, P, lr * exp(-s))) {
            break;
        }
        cl_record(theta, P, t, rec, K, rec_out, &k);
    }
    free(m), free(q), free(G), free(beta), free(g);
    return t;
}
