/* pt_kernels.h: the petasos CPU kernel API (fp32 GEMM, 2-D convolution, 2-D pooling) and the
 * thread pool the kernels run on.
 *
 * Conventions: every tensor is row-major and contiguous unless a leading dimension says
 * otherwise; shapes are static and given by the caller; nothing here allocates per call except
 * the per-thread packing workspace, which grows on first use and is then reused (call a kernel
 * once during warm-up so that the timed runs do not allocate).
 *
 * Implementation files: pt_gemm.c (packed, cache-blocked micro-kernel GEMM and the shared GEMM
 * driver), pt_conv.c (convolution: implicit-im2col GEMM, dispatch), pt_wino.c (Winograd),
 * pt_dw.c (direct depthwise), pt_conv_direct.c (direct conv for few input channels), pt_pool.c
 * (max / average / global pooling), pt_threads.c (the pthread pool). C11 with GCC/Clang vector
 * extensions; define PT_SCALAR to force the scalar fallback. */
#ifndef PT_KERNELS_H
#define PT_KERNELS_H

/* Built with --blas (-DPT_BLAS), pt_blas.c defines the GEMM and convolution entry points; the
 * kernel files' own definitions of them are renamed pt_native_* (pt_blas.c falls back on them). */
#if defined(PT_BLAS) && defined(PT_KERNELS_INTERNAL) && !defined(PT_BLAS_IMPL)
#define pt_sgemm pt_native_sgemm
#define pt_sgemm_pack_a pt_native_sgemm_pack_a
#define pt_sgemm_packed pt_native_sgemm_packed
#define pt_packed_free pt_native_packed_free
#define pt_conv2d_prepare pt_native_conv2d_prepare
#define pt_conv2d_free pt_native_conv2d_free
#define pt_conv2d_run pt_native_conv2d_run
#endif

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- epilogue */

/* Activation applied by an epilogue, after the bias and the residual. */
enum {
    PT_ACT_NONE = 0,
    PT_ACT_RELU = 1,        /* max(x, 0) */
    PT_ACT_CLIP = 2,        /* min(max(x, lo), hi) */
    PT_ACT_LEAKY_RELU = 3,  /* x >= 0 ? x : lo * x */
    PT_ACT_SIGMOID = 4,     /* 1 / (1 + exp(-x)) */
    PT_ACT_HARDSIGMOID = 5, /* max(0, min(1, lo * x + hi)) */
    PT_ACT_HARDSWISH = 6,   /* x * max(0, min(1, x / 6 + 1 / 2)) */
    PT_ACT_TANH = 7         /* tanh(x) */
};

/* What a kernel does to each output value y before storing it:
 *   y = act(y + bias[row] + residual[same position as y]).
 * `bias` is indexed by the output row (GEMM) or output channel (conv); `residual` has exactly
 * the layout of the output (same leading dimension for GEMM). NULL pointers are skipped; a
 * NULL epilogue means none. */
typedef struct {
    int act;
    float lo, hi;
    const float *bias;
    const float *residual;
} pt_epilogue;

/* The residual must not overlap the output (the output is written in several passes). */

/* Apply `act` of `ep` to one value (scalar reference of the epilogue's last step). */
float pt_act_apply(const pt_epilogue *ep, float v);

/* ---------------------------------------------------------------- GEMM */

/* C[M x N] = op(A)[M x K] * op(B)[K x N], then the epilogue (bias per row of C).
 * op(A) = A (element (i, p) at A[i * lda + p]) or, if transA, A^T (element at A[p * lda + i]);
 * likewise B with ldb and transB. C is written (not accumulated) with leading dimension ldc.
 * M, N >= 0; K >= 0 (K == 0 gives act(bias + residual)). Runs on the thread pool. */
void pt_sgemm(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb,
              int transB, float *C, int ldc, const pt_epilogue *ep);

/* A GEMM whose A operand (M x K, a constant such as a weight) is packed once in advance.
 * pt_sgemm_pack_a returns NULL on allocation failure; free with pt_packed_free. */
void *pt_sgemm_pack_a(int M, int K, const float *A, int lda, int transA);
void pt_sgemm_packed(const void *packed_a, int N, const float *B, int ldb, int transB, float *C,
                     int ldc, const pt_epilogue *ep);
void pt_packed_free(void *packed);

/* ---------------------------------------------------------------- convolution */

/* A 2-D convolution, NCHW input [N, C, H, W], weight [M, C / G, KH, KW], output
 * [N, M, OH, OW]. S* strides, D* dilations, P* pads (top, left, bottom, right), G groups.
 * The caller computes OH and OW (they must match the pads: OH = (H + PT + PB - DH * (KH - 1)
 * - 1) / SH + 1, likewise OW); a 1-D convolution is H = KH = OH = 1. */
typedef struct {
    int N, C, H, W, M, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR, G, OH, OW;
} pt_conv2d_desc;

/* Checks the descriptor and packs the weight (done once, at init). Returns NULL on an
 * inconsistent descriptor or allocation failure. Free with pt_conv2d_free. */
void *pt_conv2d_prepare(const pt_conv2d_desc *d, const float *weight);
void pt_conv2d_free(void *prepared);
/* Scratch the caller must pass to pt_conv2d_run: currently 0 (the kernels keep their own
 * per-thread workspace); `scratch` may then be NULL. */
size_t pt_conv2d_scratch_bytes(const pt_conv2d_desc *d);
/* y = act(conv(x, weight) + bias[m] + residual), residual laid out like y. */
void pt_conv2d_run(const void *prepared, const float *x, float *y, const pt_epilogue *ep,
                   void *scratch);

/* ---------------------------------------------------------------- pooling */

/* A 2-D pooling window over NCHW [N, C, H, W] -> [N, C, OH, OW]; fields as in the conv
 * descriptor (the caller computes OH / OW, ceil mode included). count_include_pad: the average
 * divides by the taps inside the padded input (1) or inside the input (0). A max over a window
 * with no tap inside the input is -inf. */
typedef struct {
    int N, C, H, W, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR, OH, OW;
    int count_include_pad;
} pt_pool2d_desc;

void pt_maxpool2d(const pt_pool2d_desc *d, const float *x, float *y);
void pt_avgpool2d(const pt_pool2d_desc *d, const float *x, float *y);
/* x is [NC, HW]; y[i] = mean (max) of row i. */
void pt_global_avgpool(int NC, int HW, const float *x, float *y);
void pt_global_maxpool(int NC, int HW, const float *x, float *y);

/* ---------------------------------------------------------------- threads */

/* Number of threads the kernels use (the caller included); n < 1 means 1. The pool's threads
 * are started lazily and stopped by pt_threads_shutdown. Not thread-safe: call from the
 * thread that runs the model. */
void pt_set_threads(int n);
int pt_get_threads(void);
void pt_threads_shutdown(void);

/* The runtime's loop (same declaration as in pt_rt.h; C11 allows the repeated typedef):
 * fn(ctx, i) for every i in [0, n), spread over the threads; nested calls run inline. */
typedef void (*pt_task)(void *ctx, int64_t i);
void pt_parallel_for(int64_t n, pt_task fn, void *ctx);

/* The kernels' loop: fn(ctx, i, tid) for every i in [0, n); tid in [0, pt_get_threads())
 * names the thread running the task (for per-thread buffers). Returns when all are done.
 * Nested calls run inline on the calling thread with its tid. */
typedef void (*pt_task_fn)(void *ctx, int i, int tid);
void pt_parallel_for_tid(int n, pt_task_fn fn, void *ctx);

/* A 64-byte aligned buffer of at least `bytes` owned by thread slot `tid` and buffer `slot`
 * (0..3), reused across calls (grown when too small). NULL on allocation failure. */
void *pt_workspace(int tid, int slot, size_t bytes);

/* ---------------------------------------------------------------- internal
 * Shared by the rt kernel files (compiled with PT_KERNELS_INTERNAL); not part of the API. */
#ifdef PT_KERNELS_INTERNAL

/* Whether a convolution descriptor is consistent (sizes, groups, pads matching OH/OW). */
int pt_conv_check(const pt_conv2d_desc *d);

/* Register tile of the micro-kernel: PT_MR rows (broadcast operand, A) x PT_NRV vectors of
 * PT_VL floats (vector operand, B). */
#if defined(PT_SCALAR) || !(defined(__GNUC__) || defined(__clang__))
#define PT_VL 1
#define PT_MR 4
#define PT_NRV 4
typedef float pt_vf;
typedef float pt_vfu;
#elif defined(__AVX512F__)
#define PT_VL 16
#define PT_MR 8
#define PT_NRV 3
#elif defined(__AVX__)
#define PT_VL 8
#define PT_MR 6
#define PT_NRV 2
#elif defined(__aarch64__)
#define PT_VL 4
#define PT_MR 8
#define PT_NRV 3
#else
#define PT_VL 4
#define PT_MR 4
#define PT_NRV 3
#endif
#if PT_VL > 1
typedef float pt_vf __attribute__((vector_size(PT_VL * 4)));
typedef float pt_vfu __attribute__((vector_size(PT_VL * 4), aligned(4)));
typedef int32_t pt_vi __attribute__((vector_size(PT_VL * 4)));
#endif
#define PT_NR (PT_NRV * PT_VL)

/* Vector helpers: splat, zero, unaligned load / store, lane-wise max / min. */
#if PT_VL > 1
#define PT_SPLAT(x) ((pt_vf){0} + (x))
static inline pt_vf pt_vmax(pt_vf a, pt_vf b) {
    pt_vi m = (pt_vi)(a > b);
    return (pt_vf)(((pt_vi)a & m) | ((pt_vi)b & ~m));
}
static inline pt_vf pt_vmin(pt_vf a, pt_vf b) {
    pt_vi m = (pt_vi)(a < b);
    return (pt_vf)(((pt_vi)a & m) | ((pt_vi)b & ~m));
}
#else
#define PT_SPLAT(x) ((pt_vf)(x))
static inline pt_vf pt_vmax(pt_vf a, pt_vf b) { return a > b ? a : b; }
static inline pt_vf pt_vmin(pt_vf a, pt_vf b) { return a < b ? a : b; }
#endif
#define PT_VZERO PT_SPLAT(0.0f)

/* bp[q] = src[q * SW + start] for 0 <= q < n where that index is inside [0, W), else padv. */
static inline void pt_strided_copy(float *bp, int n, const float *src, int W, int SW, int start,
                                   float padv) {
    int lo, hi;
    if (SW == 1) { /* no divisions on the common paths */
        lo = start >= 0 ? 0 : -start;
        hi = W - start <= 0 ? 0 : W - start;
    } else if (SW == 2) {
        lo = start >= 0 ? 0 : (1 - start) >> 1;
        hi = W - start <= 0 ? 0 : (W - start + 1) >> 1;
    } else {
        lo = start >= 0 ? 0 : (-start + SW - 1) / SW;
        hi = W - start <= 0 ? 0 : (W - start + SW - 1) / SW;
    }
    if (lo > n) lo = n;
    if (hi > n) hi = n;
    if (hi < lo) hi = lo;
    for (int q = 0; q < lo; q++) bp[q] = padv;
    const float *s = src + start;
    if (SW == 1) {
        for (int q = lo; q < hi; q++) bp[q] = s[q];
    } else if (SW == 2) {
        for (int q = lo; q < hi; q++) bp[q] = s[2 * q];
    } else {
        for (int q = lo; q < hi; q++) bp[q] = s[(size_t)q * (size_t)SW];
    }
    for (int q = hi; q < n; q++) bp[q] = padv;
}
#define PT_VLOAD(p) (*(const pt_vfu *)(p))
#define PT_VSTORE(p, v) (*(pt_vfu *)(p) = (v))

/* PT_EVEN(a, b) / PT_ODD(a, b): the even / odd lanes of the concatenation of vectors a and b
 * (defined, with PT_HAVE_DEINT, where the compiler has __builtin_shufflevector). */
#if defined(__has_builtin) && PT_VL > 1
#if __has_builtin(__builtin_shufflevector) && (PT_VL == 16 || PT_VL == 8 || PT_VL == 4)
#define PT_HAVE_DEINT 1
/* PT_ZIPLO(a, b) / PT_ZIPHI(a, b): a0 b0 a1 b1 ... of the low / high halves (the inverse). */
#if PT_VL == 16
#define PT_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30)
#define PT_ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31)
#define PT_ZIPLO(a, b) __builtin_shufflevector(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23)
#define PT_ZIPHI(a, b) __builtin_shufflevector(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31)
#elif PT_VL == 8
#define PT_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14)
#define PT_ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15)
#define PT_ZIPLO(a, b) __builtin_shufflevector(a, b, 0, 8, 1, 9, 2, 10, 3, 11)
#define PT_ZIPHI(a, b) __builtin_shufflevector(a, b, 4, 12, 5, 13, 6, 14, 7, 15)
#else
#define PT_EVEN(a, b) __builtin_shufflevector(a, b, 0, 2, 4, 6)
#define PT_ODD(a, b) __builtin_shufflevector(a, b, 1, 3, 5, 7)
#define PT_ZIPLO(a, b) __builtin_shufflevector(a, b, 0, 4, 1, 5)
#define PT_ZIPHI(a, b) __builtin_shufflevector(a, b, 2, 6, 3, 7)
#endif
#endif
#endif

/* Packed A: panel p holds rows p*PT_MR.. as K steps of PT_MR floats (zero rows past M). */
size_t pt_gemm_packed_a_floats(int M, int K);
void pt_gemm_pack_a_into(int M, int K, const float *A, int lda, int transA, float *dst);

/* Writes op(B)[k0 .. k0+kc, n0 .. n0+nc] as ceil(nc / PT_NR) panels of kc steps of PT_NR
 * floats (zero columns past nc). */
typedef void (*pt_pack_b_fn)(const void *ctx, int k0, int kc, int n0, int nc, float *dst);

/* C[M x N] = Apacked * B (B produced by pack_b), then the epilogue; on the thread pool. */
void pt_gemm_run(int M, int N, int K, const float *apacked, pt_pack_b_fn pack_b, const void *bctx,
                 float *C, int ldc, const pt_epilogue *ep);
/* The same, reading B (row-major K x N, leading dimension ldb) in place for full column
 * panels; pack_b still packs a short last panel. */
void pt_gemm_run_b(int M, int N, int K, const float *apacked, pt_pack_b_fn pack_b,
                   const void *bctx, const float *bdirect, int ldb, float *C, int ldc,
                   const pt_epilogue *ep);

/* C[M x N] = Apacked * Bpacked on the calling thread, no epilogue: both operands already packed
 * for the full depth K (A: panels of PT_MR rows, K * PT_MR floats apart; B: panels of PT_NR
 * columns, K * PT_NR floats apart, zero columns past N). C is written with leading dim ldc. */
void pt_gemm_pp(int M, int N, int K, const float *apacked, const float *bpacked, float *C,
                int ldc);

/* C[M x (c1 - c0)] at C (column c of B lands in column c of C, leading dimension ldc) =
 * A * B[:, c0:c1] on the calling thread, no epilogue. A: panels of mr rows (pt_gemm_rows_min()
 * <= mr <= PT_MR), K * mr floats apart, mr floats per k step, zero rows past M. B: panels of
 * PT_NR columns, K * PT_NR floats apart, zero columns past the matrix; c0 a multiple of PT_VL.
 * Blocked over K; per K block a B micro-panel slice is reused across all A panels. */
void pt_gemm_rows(int M, int mr, int c0, int c1, int K, const float *apacked,
                  const float *bpacked, float *C, int ldc);
int pt_gemm_rows_min(void);

/* Winograd F(2x2, 3x3) convolution (pt_wino.c) for 3x3, stride 1, dilation 1, one group:
 * pt_wino_eligible says whether a descriptor takes this path (and is worth it);
 * pt_wino_prepare transforms and packs the weight (NULL on allocation failure). */
int pt_wino_eligible(const pt_conv2d_desc *d);
void *pt_wino_prepare(const pt_conv2d_desc *d, const float *weight);
void pt_wino_free(void *prepared);
/* One image: x [C, H, W] -> y [M, OH, OW] with the epilogue (residual offset to the image). */
void pt_wino_run(const void *prepared, const float *x, float *y, const pt_epilogue *ep);

/* Direct depthwise convolution (pt_dw.c) for C / G == 1 (any multiplier M / G): pt_dw_prepare
 * copies the weight (NULL on allocation failure or a descriptor with C != G); pt_dw_run does
 * all images, x [N, C, H, W] -> y [N, M, OH, OW], with the epilogue, on the thread pool. */
void *pt_dw_prepare(const pt_conv2d_desc *d, const float *weight);
void pt_dw_free(void *plan);
void pt_dw_run(const void *plan, const float *x, float *y, const pt_epilogue *ep);

/* Writes input row `src` (d->W floats) as a padded, stride-phase-split row at `br` (pt_dw.c):
 * padded column q (input column q - PL) at br[(q % SW) * Wq + q / SW]. For SW 1 and 2 only the
 * input columns are written (the pads keep what `br` held: zero it once); other strides write
 * every phase in full (Wq floats each, pads zero). */
void pt_conv_fill_row(const pt_conv2d_desc *d, int Wq, const float *src, float *br);

/* Direct dense convolution for few input channels (pt_conv_direct.c): pt_cd_eligible says
 * whether a descriptor takes this path (one group, C <= 4, kernels up to 16x16, rows at least
 * two vectors wide); pt_cd_prepare packs the weight (NULL on allocation failure or an
 * ineligible descriptor); pt_cd_run does all images, x [N, C, H, W] -> y [N, M, OH, OW], with
 * the epilogue, on the thread pool. */
int pt_cd_eligible(const pt_conv2d_desc *d);
void *pt_cd_prepare(const pt_conv2d_desc *d, const float *weight);
void pt_cd_free(void *plan);
void pt_cd_run(const void *plan, const float *x, float *y, const pt_epilogue *ep);

/* Applies the epilogue to n contiguous values of row `row` (residual at the same offset). */
void pt_epilogue_row(const pt_epilogue *ep, int row, float *y, const float *res, int n);
#endif

#ifdef __cplusplus
}
#endif
#endif
