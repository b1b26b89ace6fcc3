/* test_kernels.c: correctness of the rt kernels against the naive references in ref.h.
 * GEMM (all transpose combinations, odd sizes, leading dimensions, K = 0, M = 1), convolution
 * (odd sizes, strides, padding, dilation, groups, depthwise with multiplier, 1x1, 1-D, batch),
 * pooling (max / average, both count modes, ceil-mode windows, dilation) and every epilogue,
 * each at 1, 2 and 3 threads, plus random shapes. Prints one line per failure and a summary;
 * exits non-zero on any failure. Usage: test_kernels [random_cases] */
#include <stdio.h>
#include <string.h>

#include "ref.h"

static int g_fail = 0, g_checks = 0;

/* Tolerance: float accumulation error relative to the sum of |terms|. */
static int close_enough(double got, double want, double mag) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    double tol = 2e-6 * mag + 1e-6 + 1e-5 * fabs(want);
    return fabs(got - want) <= tol;
}

static void check(const char *what, const float *got, const double *want, const double *mag,
                  size_t n) {
    g_checks++;
    for (size_t i = 0; i < n; i++) {
        if (!close_enough(got[i], want[i], mag ? mag[i] : fabs(want[i]))) {
            g_fail++;
            printf("FAIL %s: element %zu got %.7g want %.7g\n", what, i, got[i], want[i]);
            return;
        }
    }
}

static const pt_epilogue *make_ep(pt_epilogue *e, int kind, const float *bias, const float *res) {
    memset(e, 0, sizeof *e);
    int act = kind % 8;
    e->act = act;
    if (act == PT_ACT_CLIP) e->lo = -0.3f, e->hi = 0.4f;
    if (act == PT_ACT_LEAKY_RELU) e->lo = 0.1f;
    if (act == PT_ACT_HARDSIGMOID) e->lo = 0.2f, e->hi = 0.5f;
    e->bias = (kind / 8) % 2 ? bias : NULL;
    e->residual = (kind / 16) % 2 ? res : NULL;
    return kind == 0 ? NULL : e;
}

static void test_gemm(int M, int N, int K, int ta, int tb, int pad, int kind) {
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t na = (size_t)(ta ? K : M) * lda + 1, nb = (size_t)(tb ? N : K) * ldb + 1;
    size_t nc = (size_t)M * ldc + 1;
    float *A = malloc(na * 4), *B = malloc(nb * 4), *C = malloc(nc * 4), *R = malloc(nc * 4);
    float *bias = malloc((size_t)(M + 1) * 4);
    double *want = calloc(nc, 8), *mag = calloc(nc, 8);
    ref_fill(A, na);
    ref_fill(B, nb);
    ref_fill(R, nc);
    ref_fill(bias, (size_t)M + 1);
    pt_epilogue e;
    const pt_epilogue *ep = make_ep(&e, kind, bias, R);
    ref_gemm(M, N, K, A, lda, ta, B, ldb, tb, want, mag, ldc, ep);
    for (size_t i = 0; i < nc; i++) C[i] = 1e30f; /* must be overwritten */
    pt_sgemm(M, N, K, A, lda, ta, B, ldb, tb, C, ldc, ep);
    char what[160];
    snprintf(what, sizeof what, "gemm M=%d N=%d K=%d ta=%d tb=%d pad=%d ep=%d", M, N, K, ta, tb,
             pad, kind);
    for (int i = 0; i < M; i++)
        check(what, C + (size_t)i * ldc, want + (size_t)i * ldc, mag + (size_t)i * ldc, (size_t)N);
    if (M > 1 && !ta) { /* the pre-packed A path */
        void *pa = pt_sgemm_pack_a(M, K, A, lda, 0);
        memset(C, 0, nc * 4);
        pt_sgemm_packed(pa, N, B, ldb, tb, C, ldc, ep);
        pt_packed_free(pa);
        snprintf(what, sizeof what, "gemm_packed M=%d N=%d K=%d tb=%d ep=%d", M, N, K, tb, kind);
        for (int i = 0; i < M; i++)
            check(what, C + (size_t)i * ldc, want + (size_t)i * ldc, mag + (size_t)i * ldc, (size_t)N);
    }
    free(A), free(B), free(C), free(R), free(bias), free(want), free(mag);
}

static int out_dim(int I, int K, int S, int D, int P0, int P1) {
    return (I + P0 + P1 - D * (K - 1) - 1) / S + 1;
}

static void test_conv(int N, int C, int H, int W, int M, int KH, int KW, int SH, int SW, int DH,
                      int DW, int PT, int PL, int PB, int PR, int G, int kind) {
    pt_conv2d_desc d = {N, C, H, W, M, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR, G, 0, 0};
    d.OH = out_dim(H, KH, SH, DH, PT, PB);
    d.OW = out_dim(W, KW, SW, DW, PL, PR);
    if (d.OH < 1 || d.OW < 1) return;
    size_t nx = (size_t)N * C * H * W, nw = (size_t)M * (C / G) * KH * KW;
    size_t ny = (size_t)N * M * d.OH * d.OW;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *r = malloc(ny * 4);
    float *bias = malloc((size_t)M * 4);
    double *want = malloc(ny * 8), *mag = malloc(ny * 8);
    ref_fill(x, nx);
    ref_fill(w, nw);
    ref_fill(r, ny);
    ref_fill(bias, (size_t)M);
    pt_epilogue e;
    const pt_epilogue *ep = make_ep(&e, kind, bias, r);
    ref_conv(&d, x, w, want, mag, ep);
    void *p = pt_conv2d_prepare(&d, w);
    char what[200];
    snprintf(what, sizeof what,
             "conv N=%d C=%d H=%d W=%d M=%d K=%dx%d S=%dx%d D=%dx%d P=%d,%d,%d,%d G=%d ep=%d", N, C,
             H, W, M, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR, G, kind);
    if (!p) {
        g_fail++;
        printf("FAIL %s: prepare returned NULL\n", what);
    } else {
        for (size_t i = 0; i < ny; i++) y[i] = 1e30f;
        pt_conv2d_run(p, x, y, ep, NULL);
        check(what, y, want, mag, ny);
        pt_conv2d_free(p);
    }
    free(x), free(w), free(y), free(r), free(bias), free(want), free(mag);
}

/* Depthwise (pt_dw.c): every path of the direct kernel. Undilated 3x3 at strides 1 and 2 with
 * each padding (the register kernel, row copies by vector permute), planes at most a vector
 * wide (four rows at a time), wide rows with a short last vector, other kernel sizes, stride 3,
 * dilation, channel multipliers, batch, and every epilogue (residual included). */
static void depthwise_cases(void) {
    int hw[][2] = {{1, 1}, {2, 3}, {5, 7}, {7, 7}, {14, 14}, {15, 17}, {16, 16}, {17, 33},
                   {28, 28}, {29, 70}, {56, 56}, {9, 113}};
    for (size_t i = 0; i < sizeof hw / sizeof hw[0]; i++)
        for (int s = 1; s <= 2; s++)
            for (int pad = 0; pad < 4; pad++) {
                int pt = pad & 1, pl = (pad >> 1) & 1;
                test_conv(1, 3, hw[i][0], hw[i][1], 3, 3, 3, s, s, 1, 1, pt, pl, 1 - pt, pl ? 1 : 0, 3,
                          (int)(i * 7 + (size_t)s * 3 + (size_t)pad) % 32);
            }
    for (int kind = 0; kind < 32; kind++) {
        test_conv(1, 4, 12, 21, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 4, kind);
        test_conv(2, 3, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3, kind);
    }
    test_conv(1, 4, 20, 35, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 4, 26);  /* multiplier 2 */
    test_conv(2, 3, 19, 40, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 3, 18);  /* multiplier 3, s2 */
    test_conv(1, 5, 17, 23, 5, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 5, 25);  /* 5x5 s2 */
    test_conv(1, 5, 30, 31, 5, 7, 7, 1, 1, 1, 1, 3, 3, 3, 3, 5, 9);   /* 7x7 */
    test_conv(1, 3, 22, 25, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 3, 10);  /* stride 3 */
    test_conv(1, 3, 22, 25, 3, 3, 3, 1, 2, 2, 2, 2, 2, 2, 2, 3, 17);  /* dilation 2, mixed s */
    test_conv(1, 3, 22, 25, 3, 3, 3, 2, 1, 1, 1, 0, 2, 1, 0, 3, 4);   /* SH 2, SW 1, odd pads */
    test_conv(1, 2, 9, 45, 2, 1, 40, 1, 1, 1, 1, 0, 3, 0, 3, 2, 2);   /* wider than the tap table */
    test_conv(1, 2, 11, 13, 2, 11, 1, 1, 1, 1, 1, 5, 0, 5, 0, 2, 3);  /* tall kernel */
    test_conv(1, 96, 112, 112, 96, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 96, 2);
    test_conv(1, 32, 112, 112, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 32, 2);
    /* channel lanes (multiplier 1, rows up to 64 wide): several groups and a short last one,
     * batch (the last group's loads end the input), whole-plane and ring fills, bands */
    for (int kind = 0; kind < 32; kind += 3) {
        test_conv(2, 37, 9, 11, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 37, kind);
        test_conv(2, 21, 28, 28, 21, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, 21, kind);
    }
    test_conv(1, 40, 56, 56, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 40, 26);
    test_conv(1, 17, 30, 64, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 17, 18);  /* widest lane rows */
    test_conv(1, 17, 30, 65, 17, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 17, 18);  /* per-plane again */
    test_conv(1, 16, 7, 7, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16, 10);
    test_conv(1, 18, 13, 31, 18, 5, 3, 2, 1, 2, 1, 4, 1, 0, 1, 18, 21); /* generic taps */
    for (int kind = 1; kind < 32; kind += 6) { /* 5x5 (PP-OCR) */
        test_conv(1, 20, 13, 23, 20, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 20, kind);
        test_conv(2, 19, 14, 21, 19, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 19, kind);
    }
    /* stride 1 read in place (per-plane path: wide rows or a multiplier), rows of 2 vectors */
    for (int kind = 0; kind < 32; kind += 5) test_conv(2, 5, 6, 100, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 5, kind);
    test_conv(1, 2, 5, 32, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 2, 9);
    test_conv(2, 2, 6, 19, 14, 3, 3, 3, 1, 1, 2, 0, 2, 0, 1, 2, 21); /* 3x3, column dilation */
    test_conv(1, 5, 6, 2, 5, 5, 3, 2, 3, 1, 2, 2, 2, 3, 0, 5, 0);   /* last window past the pad */
    test_conv(1, 2, 5, 33, 4, 3, 3, 1, 1, 1, 1, 0, 1, 2, 1, 2, 24);
}

/* Direct dense convolution for few input channels (pt_conv_direct.c): C 1..4, rows at least two
 * vectors wide, output channels not a multiple of the register block, rows ending on a short
 * vector or exactly on a chunk, strides 1..3 (mixed), dilation, asymmetric pads, kernels up to
 * 16 wide, batch, and every epilogue (residual included) on the first-layer shapes. */
static void direct_cases(void) {
    for (int kind = 0; kind < 32; kind++) {
        test_conv(1, 3, 9, 71, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, kind);  /* OW 36 */
        test_conv(2, 3, 7, 97, 5, 3, 3, 2, 2, 1, 1, 0, 1, 1, 0, 1, kind);   /* batch, OW 48 */
    }
    test_conv(1, 3, 24, 224, 32, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 10);  /* mobilenet rows */
    test_conv(1, 3, 21, 77, 17, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 9);    /* resnet-like 7x7/2 */
    test_conv(1, 3, 40, 60, 64, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 25);   /* 64 outputs */
    test_conv(1, 4, 9, 50, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 26);     /* stride 1 */
    test_conv(1, 1, 11, 65, 7, 3, 5, 1, 1, 1, 1, 1, 2, 1, 2, 1, 18);    /* C 1, 3x5, OW 65 */
    test_conv(1, 2, 13, 110, 3, 5, 5, 3, 3, 1, 1, 2, 2, 2, 2, 1, 17);   /* stride 3 */
    test_conv(1, 2, 15, 90, 6, 3, 3, 2, 1, 2, 2, 0, 2, 1, 3, 1, 22);    /* dilation, SH != SW */
    test_conv(2, 4, 8, 83, 12, 5, 5, 1, 2, 2, 1, 2, 0, 3, 1, 1, 30);    /* mixed, batch */
    test_conv(1, 1, 5, 80, 3, 1, 16, 1, 1, 1, 1, 0, 7, 0, 8, 1, 21);    /* 16 wide */
    test_conv(1, 3, 6, 97, 8, 16, 3, 1, 1, 1, 1, 5, 1, 5, 1, 1, 24);    /* 16 tall */
    test_conv(1, 3, 17, 33, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 20);    /* 1x1, OW 33 */
    test_conv(1, 3, 4, 40, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 4);      /* OH 2 */
}

static void test_pool(int N, int C, int H, int W, int KH, int KW, int SH, int SW, int DH, int DW,
                      int PT, int PL, int PB, int PR, int ceil_mode, int incl) {
    pt_pool2d_desc d = {N, C, H, W, KH, KW, SH, SW, DH, DW, PT, PL, PB, PR, 0, 0, incl};
    int eh = H + PT + PB - DH * (KH - 1) - 1, ew = W + PL + PR - DW * (KW - 1) - 1;
    if (eh < 0 || ew < 0) return;
    d.OH = (ceil_mode ? (eh + SH - 1) / SH : eh / SH) + 1;
    d.OW = (ceil_mode ? (ew + SW - 1) / SW : ew / SW) + 1;
    /* ONNX ceil mode: the last window must start inside the input or the left pad */
    if (ceil_mode && (d.OH - 1) * SH >= H + PT) d.OH--;
    if (ceil_mode && (d.OW - 1) * SW >= W + PL) d.OW--;
    size_t nx = (size_t)N * C * H * W, ny = (size_t)N * C * d.OH * d.OW;
    float *x = malloc(nx * 4), *y = malloc(ny * 4);
    double *want = malloc(ny * 8);
    ref_fill(x, nx);
    char what[200];
    for (int is_max = 0; is_max < 2; is_max++) {
        ref_pool(&d, x, want, is_max);
        for (size_t i = 0; i < ny; i++) y[i] = 1e30f;
        if (is_max) pt_maxpool2d(&d, x, y);
        else pt_avgpool2d(&d, x, y);
        snprintf(what, sizeof what,
                 "%s N=%d C=%d H=%d W=%d K=%dx%d S=%dx%d D=%dx%d P=%d,%d,%d,%d ceil=%d incl=%d",
                 is_max ? "maxpool" : "avgpool", N, C, H, W, KH, KW, SH, SW, DH, DW, PT, PL, PB,
                 PR, ceil_mode, incl);
        check(what, y, want, NULL, ny);
    }
    free(x), free(y), free(want);
}

static void test_global(int NC, int HW) {
    float *x = malloc((size_t)NC * HW * 4 + 4), *y = malloc((size_t)NC * 4);
    double *want = malloc((size_t)NC * 8), *mag = malloc((size_t)NC * 8);
    ref_fill(x, (size_t)NC * HW);
    for (int is_max = 0; is_max < 2; is_max++) {
        for (int i = 0; i < NC; i++) {
            double s = 0, m = -INFINITY, a = 0;
            for (int k = 0; k < HW; k++) {
                double v = x[(size_t)i * HW + k];
                s += v, a += fabs(v), m = v > m ? v : m;
            }
            want[i] = is_max ? m : s / HW;
            mag[i] = is_max ? fabs(m) : a / HW;
        }
        if (is_max) pt_global_maxpool(NC, HW, x, y);
        else pt_global_avgpool(NC, HW, x, y);
        char what[80];
        snprintf(what, sizeof what, "global%s NC=%d HW=%d", is_max ? "max" : "avg", NC, HW);
        check(what, y, want, mag, (size_t)NC);
    }
    free(x), free(y), free(want), free(mag);
}

/* The pools' loops visit every index exactly once, with tids in range. */
static int g_hits[1000];
static int g_bad_tid = 0;
static void hit_tid(void *ctx, int i, int tid) {
    (void)ctx;
    if (tid < 0 || tid >= pt_get_threads()) g_bad_tid = 1;
    __atomic_fetch_add(&g_hits[i], 1, __ATOMIC_RELAXED);
}
static void hit(void *ctx, int64_t i) { hit_tid(ctx, (int)i, 0); }
static void test_threads(void) {
    for (int round = 0; round < 50; round++) {
        int n = 1 + round * 19 % 1000;
        memset(g_hits, 0, sizeof g_hits);
        if (round % 2) pt_parallel_for((int64_t)n, hit, NULL);
        else pt_parallel_for_tid(n, hit_tid, NULL);
        g_checks++;
        for (int i = 0; i < 1000; i++)
            if (g_hits[i] != (i < n)) {
                g_fail++;
                printf("FAIL parallel_for n=%d: index %d ran %d times\n", n, i, g_hits[i]);
                break;
            }
    }
    if (g_bad_tid) {
        g_fail++;
        printf("FAIL parallel_for: tid out of range\n");
    }
}

static void fixed_cases(void) {
    test_threads();
    /* GEMM: edges around the register tile, transposes, leading dims, every epilogue */
    int sizes[][3] = {{1, 1, 1},   {1, 37, 19},  {2, 3, 4},    {7, 17, 33},   {8, 48, 256},
                      {9, 49, 257}, {16, 100, 5}, {33, 95, 300}, {64, 1000, 64}, {3, 1, 9},
                      {5, 7, 0},   {130, 67, 515}, {1, 1000, 300}, {1, 333, 77}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
        for (int t = 0; t < 4; t++)
            test_gemm(sizes[s][0], sizes[s][1], sizes[s][2], t & 1, t >> 1, (int)(s % 3), (int)(s * 5 + t) % 32);
    for (int kind = 0; kind < 32; kind++) test_gemm(11, 53, 29, 0, 0, 1, kind);

    /* convolutions: resnet / mobilenet-like, odd sizes, stride, padding, dilation, groups */
    test_conv(1, 3, 23, 29, 8, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 9);
    test_conv(1, 16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 25);
    test_conv(1, 16, 15, 13, 20, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 26);
    test_conv(1, 32, 7, 7, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 8);
    test_conv(1, 24, 9, 11, 40, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 1, 30);
    test_conv(1, 24, 13, 17, 40, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 21); /* B read in place */
    test_conv(2, 10, 15, 21, 9, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 2);
    test_conv(2, 6, 10, 12, 9, 3, 5, 1, 2, 2, 1, 2, 1, 0, 3, 3, 14);
    test_conv(1, 8, 12, 12, 8, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 2, 1);
    test_conv(1, 12, 17, 19, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 12, 24);
    test_conv(1, 12, 17, 19, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 12, 10);
    test_conv(1, 6, 16, 40, 12, 5, 5, 2, 2, 1, 1, 2, 2, 2, 2, 6, 22);
    test_conv(1, 5, 9, 33, 10, 3, 3, 3, 1, 2, 3, 0, 4, 2, 1, 5, 29);
    test_conv(2, 7, 1, 50, 5, 1, 3, 1, 1, 1, 1, 0, 1, 0, 1, 1, 3);
    test_conv(1, 4, 1, 31, 4, 1, 5, 1, 2, 1, 2, 0, 4, 0, 4, 4, 11);
    test_conv(1, 3, 5, 5, 2, 5, 5, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0);
    test_conv(1, 64, 56, 56, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 25);
    /* stride-2 im2col rows long enough for the vector deinterleave, both pad sides */
    test_conv(1, 5, 9, 100, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 5);
    test_conv(1, 4, 7, 77, 20, 1, 5, 1, 2, 1, 2, 0, 0, 0, 5, 1, 7);
    test_conv(1, 3, 40, 61, 8, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 9);
    /* Winograd: odd sizes and asymmetric pads (row edges of the deinterleaved input rows) */
    test_conv(1, 20, 13, 37, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 29);
    test_conv(2, 17, 20, 45, 16, 3, 3, 1, 1, 1, 1, 0, 2, 1, 0, 1, 12);
    test_conv(1, 256, 7, 7, 512, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 9);
    test_conv(1, 144, 28, 28, 144, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 144, 2);
    for (int kind = 0; kind < 32; kind++) test_conv(1, 5, 6, 7, 9, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, kind);
    depthwise_cases();
    /* few output pixels (swapped operands): pixel panels of 8 / 7 / 6 / 5 rows, channel tails,
     * K tails, one pixel, batch, stride, 1x1, every epilogue kind on the 7x7 case */
    test_conv(1, 20, 7, 7, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 25);   /* P = 49 */
    test_conv(1, 37, 14, 14, 70, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, 9);  /* P = 49, stride 2 */
    test_conv(2, 19, 5, 10, 33, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 30);  /* P = 50 */
    test_conv(1, 11, 3, 3, 17, 3, 3, 1, 1, 1, 1, 0, 0, 0, 0, 1, 26);   /* P = 1 */
    test_conv(1, 64, 14, 14, 64, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 21);  /* P = 196 */
    test_conv(1, 600, 7, 7, 130, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 17); /* K > 512 */
    test_conv(1, 9, 8, 9, 48, 2, 3, 1, 2, 2, 1, 1, 0, 1, 2, 1, 8);     /* dilation, asym pads */
    test_conv(1, 3, 17, 17, 16, 7, 7, 2, 2, 1, 1, 3, 3, 3, 3, 1, 1);   /* P = 81 */
    test_conv(1, 40, 7, 14, 100, 3, 3, 2, 2, 2, 1, 2, 1, 1, 0, 1, 13); /* 3x7: rows = OW */
    for (int kind = 0; kind < 32; kind += 3) test_conv(1, 13, 7, 7, 50, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, kind);
    direct_cases();

    /* pooling */
    test_pool(1, 3, 112, 112, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0);
    test_pool(2, 4, 13, 17, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 1, 0);
    test_pool(1, 2, 13, 17, 3, 2, 2, 3, 1, 1, 1, 0, 1, 1, 1, 1);
    test_pool(1, 3, 9, 10, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 0, 1);
    test_pool(1, 5, 7, 7, 7, 7, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0);
    test_pool(1, 2, 35, 41, 5, 3, 1, 1, 1, 1, 2, 1, 2, 1, 0, 0);
    test_global(7, 49);
    test_global(3, 1);
    test_global(5, 3137);
}

static void random_cases(int n) {
    for (int i = 0; i < n; i++) {
        int M = ref_randint(1, 70), N = ref_randint(1, 130), K = ref_randint(0, 300);
        test_gemm(M, N, K, ref_randint(0, 1), ref_randint(0, 1), ref_randint(0, 3), ref_randint(0, 31));
        int G = ref_randint(1, 3), dw = ref_randint(0, 2) == 0;
        int Cg = dw ? 1 : ref_randint(1, 9), Mg = ref_randint(1, 9);
        if (dw) G = ref_randint(1, 12);
        int KH = ref_randint(1, 5), KW = ref_randint(1, 5);
        test_conv(ref_randint(1, 2), Cg * G, ref_randint(1, 20), ref_randint(1, 40), Mg * G, KH, KW,
                  ref_randint(1, 3), ref_randint(1, 3), ref_randint(1, 2), ref_randint(1, 2),
                  ref_randint(0, KH - 1), ref_randint(0, KW - 1), ref_randint(0, KH - 1),
                  ref_randint(0, KW - 1), G, ref_randint(0, 31));
        /* few input channels, rows wide enough for the direct kernel */
        int DK = ref_randint(1, 7), DS = ref_randint(1, 3);
        test_conv(ref_randint(1, 2), ref_randint(1, 4), ref_randint(1, 12), ref_randint(32, 120),
                  ref_randint(1, 20), DK, ref_randint(1, 7), DS, ref_randint(1, 2),
                  ref_randint(1, 2), ref_randint(1, 2), ref_randint(0, DK - 1), ref_randint(0, 3),
                  ref_randint(0, DK - 1), ref_randint(0, 3), 1, ref_randint(0, 31));
        int PK = ref_randint(1, 4);
        test_pool(1, ref_randint(1, 3), ref_randint(PK, 20), ref_randint(PK, 40), PK,
                  ref_randint(1, 4), ref_randint(1, 3), ref_randint(1, 3), ref_randint(1, 2),
                  ref_randint(1, 2), ref_randint(0, PK - 1), ref_randint(0, 0), ref_randint(0, PK - 1),
                  ref_randint(0, 0), ref_randint(0, 1), ref_randint(0, 1));
    }
}

int main(int argc, char **argv) {
    int nrand = argc > 1 ? atoi(argv[1]) : 60;
    for (int t = 1; t <= 3; t++) {
        pt_set_threads(t);
        fixed_cases();
        random_cases(nrand);
    }
    pt_set_threads(1);
    pt_threads_shutdown();
    printf("%d checks, %d failures\n", g_checks, g_fail);
    return g_fail ? 1 : 0;
}
