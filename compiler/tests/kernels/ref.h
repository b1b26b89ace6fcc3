/* ref.h: naive reference kernels (double accumulation) for the rt kernel tests and benchmark.
 * Header-only, static functions; the definitions follow the ONNX operators literally. */
#ifndef PT_REF_H
#define PT_REF_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "pt_kernels.h"

/* Deterministic uniform floats in [-1, 1). */
static uint64_t ref_rng = 0x9e3779b97f4a7c15ull;
static inline float ref_rand(void) {
    ref_rng ^= ref_rng << 13;
    ref_rng ^= ref_rng >> 7;
    ref_rng ^= ref_rng << 17;
    return (float)((double)(ref_rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}
static inline int ref_randint(int lo, int hi) { /* inclusive */
    ref_rand();
    return lo + (int)((ref_rng >> 20) % (uint64_t)(hi - lo + 1));
}
static inline void ref_fill(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = ref_rand();
}

static inline double ref_act(const pt_epilogue *ep, double v) {
    if (!ep) return v;
    switch (ep->act) {
    case PT_ACT_RELU: return v > 0 ? v : 0;
    case PT_ACT_CLIP: return v < ep->lo ? ep->lo : (v > ep->hi ? ep->hi : v);
    case PT_ACT_LEAKY_RELU: return v >= 0 ? v : ep->lo * v;
    case PT_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case PT_ACT_HARDSIGMOID: {
        double t = ep->lo * v + ep->hi;
        return t < 0 ? 0 : (t > 1 ? 1 : t);
    }
    case PT_ACT_HARDSWISH: {
        double t = v / 6.0 + 0.5;
        return v * (t < 0 ? 0 : (t > 1 ? 1 : t));
    }
    case PT_ACT_TANH: return tanh(v);
    default: return v;
    }
}

/* y = act(op(A) op(B) + bias[i] + res[i*ldc+j]); mag = sum of |products| (error scale). */
static void ref_gemm(int M, int N, int K, const float *A, int lda, int ta, const float *B, int ldb,
                     int tb, double *y, double *mag, int ldc, const pt_epilogue *ep) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += a * b;
                m += fabs(a * b);
            }
            if (ep && ep->bias) s += ep->bias[i], m += fabs(ep->bias[i]);
            if (ep && ep->residual) {
                double r = ep->residual[(size_t)i * ldc + j];
                s += r, m += fabs(r);
            }
            y[(size_t)i * ldc + j] = ref_act(ep, s);
            mag[(size_t)i * ldc + j] = m;
        }
}

static void ref_conv(const pt_conv2d_desc *d, const float *x, const float *w, double *y,
                     double *mag, const pt_epilogue *ep) {
    int Cg = d->C / d->G, Mg = d->M / d->G;
    for (int b = 0; b < d->N; b++)
        for (int m = 0; m < d->M; m++) {
            int g = m / Mg;
            for (int oh = 0; oh < d->OH; oh++)
                for (int ow = 0; ow < d->OW; ow++) {
                    double s = 0, a = 0;
                    for (int c = 0; c < Cg; c++)
                        for (int kh = 0; kh < d->KH; kh++)
                            for (int kw = 0; kw < d->KW; kw++) {
                                int ih = oh * d->SH - d->PT + kh * d->DH;
                                int iw = ow * d->SW - d->PL + kw * d->DW;
                                if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                                double xv = x[(((size_t)b * d->C + g * Cg + c) * d->H + ih) * d->W + iw];
                                double wv = w[(((size_t)m * Cg + c) * d->KH + kh) * d->KW + kw];
                                s += xv * wv;
                                a += fabs(xv * wv);
                            }
                    size_t o = (((size_t)b * d->M + m) * d->OH + oh) * d->OW + ow;
                    if (ep && ep->bias) s += ep->bias[m], a += fabs(ep->bias[m]);
                    if (ep && ep->residual) s += ep->residual[o], a += fabs(ep->residual[o]);
                    y[o] = ref_act(ep, s);
                    mag[o] = a;
                }
        }
}

static void ref_pool(const pt_pool2d_desc *d, const float *x, double *y, int is_max) {
    for (int p = 0; p < d->N * d->C; p++)
        for (int oh = 0; oh < d->OH; oh++)
            for (int ow = 0; ow < d->OW; ow++) {
                double acc = is_max ? -INFINITY : 0;
                int inside = 0, padded = 0;
                for (int kh = 0; kh < d->KH; kh++)
                    for (int kw = 0; kw < d->KW; kw++) {
                        int ph = oh * d->SH + kh * d->DH, pw = ow * d->SW + kw * d->DW;
                        if (ph < d->H + d->PT + d->PB && pw < d->W + d->PL + d->PR) padded++;
                        int ih = ph - d->PT, iw = pw - d->PL;
                        if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                        inside++;
                        double v = x[((size_t)p * d->H + ih) * d->W + iw];
                        if (is_max) acc = v > acc ? v : acc;
                        else acc += v;
                    }
                if (!is_max) acc /= d->count_include_pad ? padded : inside;
                y[((size_t)p * d->OH + oh) * d->OW + ow] = acc;
            }
}

#endif
