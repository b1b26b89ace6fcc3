/* pt_blas.c: the GEMM and dense-convolution entry points of pt_kernels.h on a system BLAS
 * (`petasos compile --target cpu --blas openblas|accelerate`).
 *
 * Built only with -DPT_BLAS (plus -DPT_BLAS_OPENBLAS or -DPT_BLAS_ACCELERATE): pt_gemm.c and
 * pt_conv.c then name their own entry points pt_native_* (see pt_kernels.h), and this file
 * defines the public ones: pt_sgemm / pt_sgemm_packed call cblas_sgemm; dense convolutions
 * materialise the im2col matrix (none for 1x1 stride-1 unpadded) and call cblas_sgemm per
 * (image, group); depthwise and other convolutions the native kernels do better go to
 * pt_native_conv2d_*. The epilogue (bias, residual, activation) runs per output row after the
 * BLAS call. Without -DPT_BLAS this file compiles to nothing. */
#define PT_KERNELS_INTERNAL
#define PT_BLAS_IMPL
#include "pt_kernels.h"

#ifdef PT_BLAS

#include <stdlib.h>
#include <string.h>

#if defined(PT_BLAS_ACCELERATE)
#include <Accelerate/Accelerate.h>
#elif defined(PT_BLAS_OPENBLAS)
#include <cblas.h>
#else
#error "PT_BLAS needs PT_BLAS_OPENBLAS or PT_BLAS_ACCELERATE"
#endif

void pt_native_sgemm(int M, int N, int K, const float *A, int lda, int transA, const float *B,
                     int ldb, int transB, float *C, int ldc, const pt_epilogue *ep);
void *pt_native_conv2d_prepare(const pt_conv2d_desc *d, const float *weight);
void pt_native_conv2d_free(void *prepared);
void pt_native_conv2d_run(const void *prepared, const float *x, float *y, const pt_epilogue *ep,
                          void *scratch);

/* The BLAS library's own threads follow the runtime's thread count. */
static void pt_blas_threads(void) {
#if defined(PT_BLAS_OPENBLAS)
    static int set = 0;
    int t = pt_get_threads();
    if (t != set) {
        openblas_set_num_threads(t);
        set = t;
    }
#endif
}

/* The epilogue over C's M rows of N values (leading dimension ldc). */
static void pt_blas_epilogue(const pt_epilogue *ep, int M, int N, float *C, int ldc) {
    if (!ep) return;
    for (int i = 0; i < M; i++)
        pt_epilogue_row(ep, i, C + (size_t)i * (size_t)ldc,
                        ep->residual ? ep->residual + (size_t)i * (size_t)ldc : NULL, N);
}

static void pt_blas_gemm(int M, int N, int K, const float *A, int lda, int transA, const float *B,
                         int ldb, int transB, float *C, int ldc, const pt_epilogue *ep) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++) memset(C + (size_t)i * (size_t)ldc, 0, (size_t)N * sizeof(float));
    } else {
        pt_blas_threads();
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C,
                    ldc);
    }
    pt_blas_epilogue(ep, M, N, C, ldc);
}

void pt_sgemm(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb,
              int transB, float *C, int ldc, const pt_epilogue *ep) {
    pt_blas_gemm(M, N, K, A, lda, transA, B, ldb, transB, C, ldc, ep);
}

/* A constant A operand, kept row-major (M x K): BLAS packs on its own. */
typedef struct {
    int M, K;
    float data[];
} pt_blas_a;

void *pt_sgemm_pack_a(int M, int K, const float *A, int lda, int transA) {
    if (M < 0 || K < 0) return NULL;
    pt_blas_a *p = (pt_blas_a *)malloc(sizeof *p + (size_t)M * (size_t)K * sizeof(float) + 1);
    if (!p) return NULL;
    p->M = M;
    p->K = K;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++)
            p->data[(size_t)i * (size_t)K + (size_t)k] =
                transA ? A[(size_t)k * (size_t)lda + (size_t)i] : A[(size_t)i * (size_t)lda + (size_t)k];
    return p;
}

void pt_packed_free(void *packed) { free(packed); }

void pt_sgemm_packed(const void *packed_a, int N, const float *B, int ldb, int transB, float *C,
                     int ldc, const pt_epilogue *ep) {
    const pt_blas_a *p = (const pt_blas_a *)packed_a;
    pt_blas_gemm(p->M, N, p->K, p->data, p->K > 0 ? p->K : 1, 0, B, ldb, transB, C, ldc, ep);
}

/* ------------------------------------------------------------------ convolution */

typedef struct {
    pt_conv2d_desc d;
    void *native; /* non-NULL: the native kernels run this convolution */
    float *w;     /* the weight [M][C/G * KH * KW] */
} pt_blas_conv;

void *pt_conv2d_prepare(const pt_conv2d_desc *d, const float *weight) {
    if (!d || !weight) return NULL;
    pt_blas_conv *c = (pt_blas_conv *)calloc(1, sizeof *c);
    if (!c) return NULL;
    c->d = *d;
    int dense = d->G >= 1 && d->C % d->G == 0 && d->C / d->G > 1;
    if (!dense) {
        c->native = pt_native_conv2d_prepare(d, weight);
        if (!c->native) {
            free(c);
            return NULL;
        }
        return c;
    }
    if (!pt_conv_check(d)) {
        free(c);
        return NULL;
    }
    size_t n = (size_t)d->M * (size_t)(d->C / d->G) * (size_t)d->KH * (size_t)d->KW;
    c->w = (float *)malloc(n * sizeof(float) + 1);
    if (!c->w) {
        free(c);
        return NULL;
    }
    memcpy(c->w, weight, n * sizeof(float));
    return c;
}

void pt_conv2d_free(void *prepared) {
    pt_blas_conv *c = (pt_blas_conv *)prepared;
    if (!c) return;
    pt_native_conv2d_free(c->native);
    free(c->w);
    free(c);
}

typedef struct {
    const pt_conv2d_desc *d;
    const float *x; /* the group's first input channel */
    float *col;     /* [Cg * KH * KW][OH * OW] */
} pt_blas_im2col;

/* Row r = (c, kh, kw) of the im2col matrix. */
static void pt_blas_im2col_row(void *vctx, int r, int tid) {
    (void)tid;
    const pt_blas_im2col *j = (const pt_blas_im2col *)vctx;
    const pt_conv2d_desc *d = j->d;
    int kw = r % d->KW, kh = (r / d->KW) % d->KH, c = r / (d->KW * d->KH);
    const float *xc = j->x + (size_t)c * (size_t)d->H * (size_t)d->W;
    float *dst = j->col + (size_t)r * (size_t)d->OH * (size_t)d->OW;
    for (int oh = 0; oh < d->OH; oh++) {
        int ih = oh * d->SH - d->PT + kh * d->DH;
        float *o = dst + (size_t)oh * (size_t)d->OW;
        if (ih < 0 || ih >= d->H) {
            memset(o, 0, (size_t)d->OW * sizeof(float));
            continue;
        }
        pt_strided_copy(o, d->OW, xc + (size_t)ih * (size_t)d->W, d->W, d->SW,
                        kw * d->DW - d->PL, 0.0f);
    }
}

void pt_conv2d_run(const void *prepared, const float *x, float *y, const pt_epilogue *ep,
                   void *scratch) {
    const pt_blas_conv *c = (const pt_blas_conv *)prepared;
    if (!c) return;
    if (c->native) {
        pt_native_conv2d_run(c->native, x, y, ep, scratch);
        return;
    }
    const pt_conv2d_desc *d = &c->d;
    int Cg = d->C / d->G, Mg = d->M / d->G, K = Cg * d->KH * d->KW;
    int P = d->OH * d->OW;
    size_t plane_in = (size_t)d->H * (size_t)d->W, plane_out = (size_t)P;
    int direct = d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1 && d->PT == 0 &&
                 d->PL == 0 && d->PB == 0 && d->PR == 0;
    float *col = NULL;
    if (!direct) {
        col = (float *)pt_workspace(0, 3, (size_t)K * plane_out * sizeof(float));
        if (!col) return;
    }
    for (int b = 0; b < d->N; b++) {
        for (int g = 0; g < d->G; g++) {
            const float *xg = x + ((size_t)b * (size_t)d->C + (size_t)g * (size_t)Cg) * plane_in;
            size_t yoff = ((size_t)b * (size_t)d->M + (size_t)g * (size_t)Mg) * plane_out;
            const float *bm = xg;
            if (!direct) {
                pt_blas_im2col j = {d, xg, col};
                pt_parallel_for_tid(K, pt_blas_im2col_row, &j);
                bm = col;
            }
            pt_epilogue e, *ep2 = NULL;
            if (ep) {
                e = *ep;
                if (e.bias) e.bias += (size_t)g * (size_t)Mg;
                if (e.residual) e.residual += yoff;
                ep2 = &e;
            }
            pt_blas_gemm(Mg, P, K, c->w + (size_t)g * (size_t)Mg * (size_t)K, K, 0, bm, P, 0,
                         y + yoff, P, ep2);
        }
    }
}

#else
/* ISO C forbids an empty translation unit. */
typedef int pt_blas_unused;
#endif
