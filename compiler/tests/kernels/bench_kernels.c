/* bench_kernels.c: micro-benchmark of the rt conv / GEMM kernels on the layer shapes of
 * resnet18, mobilenet_v2, densenet121 (batch 1, 224x224) and the first layers of the PP-OCR
 * det (640x640) and cls (48x192) models. Prints per shape the best-of-runs time,
 * GFLOP/s and the fraction of peak, then per network the summed time of its conv layers (each
 * shape times its multiplicity in the network).
 * Usage: bench_kernels [threads] [runs] [peak_gflops_per_core (default 175)] [filter] */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#define PT_KERNELS_INTERNAL
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif
#include "ref.h"

typedef struct {
    const char *net, *name;
    int count; /* times the shape occurs in the network */
    int C, H, W, M, K, S, P, G;
} shape;

static const shape shapes[] = {
    {"resnet18", "conv1 3-64 7x7/2 224", 1, 3, 224, 224, 64, 7, 2, 3, 1},
    {"resnet18", "l1 64-64 3x3 56", 4, 64, 56, 56, 64, 3, 1, 1, 1},
    {"resnet18", "l2a 64-128 3x3/2 56", 1, 64, 56, 56, 128, 3, 2, 1, 1},
    {"resnet18", "l2 128-128 3x3 28", 3, 128, 28, 28, 128, 3, 1, 1, 1},
    {"resnet18", "l2d 64-128 1x1/2 56", 1, 64, 56, 56, 128, 1, 2, 0, 1},
    {"resnet18", "l3a 128-256 3x3/2 28", 1, 128, 28, 28, 256, 3, 2, 1, 1},
    {"resnet18", "l3 256-256 3x3 14", 3, 256, 14, 14, 256, 3, 1, 1, 1},
    {"resnet18", "l3d 128-256 1x1/2 28", 1, 128, 28, 28, 256, 1, 2, 0, 1},
    {"resnet18", "l4a 256-512 3x3/2 14", 1, 256, 14, 14, 512, 3, 2, 1, 1},
    {"resnet18", "l4 512-512 3x3 7", 3, 512, 7, 7, 512, 3, 1, 1, 1},
    {"resnet18", "l4d 256-512 1x1/2 14", 1, 256, 14, 14, 512, 1, 2, 0, 1},
    {"mobilenet_v2", "conv 3-32 3x3/2 224", 1, 3, 224, 224, 32, 3, 2, 1, 1},
    {"mobilenet_v2", "dw 32 3x3 112", 1, 32, 112, 112, 32, 3, 1, 1, 32},
    {"mobilenet_v2", "pw 32-16 112", 1, 32, 112, 112, 16, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 16-96 112", 1, 16, 112, 112, 96, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 96 3x3/2 112", 1, 96, 112, 112, 96, 3, 2, 1, 96},
    {"mobilenet_v2", "pw 96-24 56", 1, 96, 56, 56, 24, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 24-144 56", 2, 24, 56, 56, 144, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 144 3x3 56", 1, 144, 56, 56, 144, 3, 1, 1, 144},
    {"mobilenet_v2", "pw 144-24 56", 1, 144, 56, 56, 24, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 144 3x3/2 56", 1, 144, 56, 56, 144, 3, 2, 1, 144},
    {"mobilenet_v2", "pw 144-32 28", 1, 144, 28, 28, 32, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 32-192 28", 3, 32, 28, 28, 192, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 192 3x3 28", 2, 192, 28, 28, 192, 3, 1, 1, 192},
    {"mobilenet_v2", "pw 192-32 28", 2, 192, 28, 28, 32, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 192 3x3/2 28", 1, 192, 28, 28, 192, 3, 2, 1, 192},
    {"mobilenet_v2", "pw 192-64 14", 1, 192, 14, 14, 64, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 64-384 14", 4, 64, 14, 14, 384, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 384 3x3 14", 4, 384, 14, 14, 384, 3, 1, 1, 384},
    {"mobilenet_v2", "pw 384-64 14", 3, 384, 14, 14, 64, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 384-96 14", 1, 384, 14, 14, 96, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 96-576 14", 3, 96, 14, 14, 576, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 576 3x3 14", 2, 576, 14, 14, 576, 3, 1, 1, 576},
    {"mobilenet_v2", "pw 576-96 14", 2, 576, 14, 14, 96, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 576 3x3/2 14", 1, 576, 14, 14, 576, 3, 2, 1, 576},
    {"mobilenet_v2", "pw 576-160 7", 1, 576, 7, 7, 160, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 160-960 7", 3, 160, 7, 7, 960, 1, 1, 0, 1},
    {"mobilenet_v2", "dw 960 3x3 7", 3, 960, 7, 7, 960, 3, 1, 1, 960},
    {"mobilenet_v2", "pw 960-160 7", 2, 960, 7, 7, 160, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 960-320 7", 1, 960, 7, 7, 320, 1, 1, 0, 1},
    {"mobilenet_v2", "pw 320-1280 7", 1, 320, 7, 7, 1280, 1, 1, 0, 1},
    {"densenet121", "d3 128-32 3x3 56", 6, 128, 56, 56, 32, 3, 1, 1, 1},
    {"densenet121", "d3 128-32 3x3 28", 12, 128, 28, 28, 32, 3, 1, 1, 1},
    {"densenet121", "d3 128-32 3x3 14", 24, 128, 14, 14, 32, 3, 1, 1, 1},
    {"densenet121", "d3 128-32 3x3 7", 16, 128, 7, 7, 32, 3, 1, 1, 1},
    {"densenet121", "d1 256-128 1x1 56", 6, 256, 56, 56, 128, 1, 1, 0, 1},
    {"densenet121", "d1 512-128 1x1 28", 12, 512, 28, 28, 128, 1, 1, 0, 1},
    {"densenet121", "d1 768-128 1x1 14", 24, 768, 14, 14, 128, 1, 1, 0, 1},
    {"densenet121", "d1 768-128 1x1 7", 16, 768, 7, 7, 128, 1, 1, 0, 1},
    {"ppocr_det", "conv 3-16 3x3/2 640", 1, 3, 640, 640, 16, 3, 2, 1, 1},
    {"ppocr_det", "dw 16 3x3 320", 1, 16, 320, 320, 16, 3, 1, 1, 16},
    {"ppocr_det", "dw 32 3x3/2 320", 1, 32, 320, 320, 32, 3, 2, 1, 32},
    {"ppocr_det", "dw 48 3x3 160", 1, 48, 160, 160, 48, 3, 1, 1, 48},
    {"ppocr_det", "dw 48 3x3/2 160", 1, 48, 160, 160, 48, 3, 2, 1, 48},
    {"ppocr_det", "dw 96 3x3 80", 1, 96, 80, 80, 96, 3, 1, 1, 96},
    {"ppocr_det", "dw 96 3x3/2 80", 1, 96, 80, 80, 96, 3, 2, 1, 96},
    {"ppocr_det", "dw 192 5x5 40", 4, 192, 40, 40, 192, 5, 1, 2, 192},
    {"ppocr_det", "dw 192 5x5/2 40", 1, 192, 40, 40, 192, 5, 2, 2, 192},
    {"ppocr_det", "dw 384 5x5 20", 3, 384, 20, 20, 384, 5, 1, 2, 384},
    {"ppocr_cls", "pw 2-8 1x1 24x96", 1, 2, 24, 96, 8, 1, 1, 0, 1},
};

/* Clock of the timings: the thread's CPU time at one thread (robust on a loaded machine: time
 * spent descheduled does not count), wall time otherwise. */
static clockid_t g_clock = CLOCK_MONOTONIC;

static double now_s(void) {
    struct timespec t;
    clock_gettime(g_clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Single-thread fp32 FMA throughput: 24 independent vector accumulators, no memory traffic. */
static double measured_peak(void) {
#define PK_DECL(i) pt_vf a##i = PT_SPLAT(1.0f + 1e-7f * (float)(i));
#define PK_STEP(i) a##i = a##i * m + c;
#define PK_SUM(i) sink += ((float *)&a##i)[0];
#define PK_ALL(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) \
    X(12) X(13) X(14) X(15) X(16) X(17) X(18) X(19) X(20) X(21) X(22) X(23)
    PK_ALL(PK_DECL)
    pt_vf m = PT_SPLAT(0.9999999f), c = PT_SPLAT(1e-7f);
    long iters = 2000000;
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = now_s();
        for (long k = 0; k < iters; k++) {
            PK_ALL(PK_STEP)
#if PT_VL > 1 && defined(__x86_64__)
            __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),
                             "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
            __asm__ volatile("" : "+v"(a12), "+v"(a13), "+v"(a14), "+v"(a15), "+v"(a16),
                             "+v"(a17), "+v"(a18), "+v"(a19), "+v"(a20), "+v"(a21), "+v"(a22),
                             "+v"(a23));
#endif
        }
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    float sink = 0;
    PK_ALL(PK_SUM)
    if (sink == 12345.0f) printf("#");
    return 2.0 * 24 * PT_VL * (double)iters / best * 1e-9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    int runs = argc > 2 ? atoi(argv[2]) : 20;
    double peak = (argc > 3 ? atof(argv[3]) : 175.0) * threads;
    const char *filter = argc > 4 ? argv[4] : NULL;
    pt_set_threads(threads);
    if (threads == 1) g_clock = CLOCK_THREAD_CPUTIME_ID;
    double mpeak = measured_peak() * threads;
    printf("threads=%d runs=%d peak=%.0f GFLOP/s (given); measured FMA loop: %.0f GFLOP/s; %s\n",
           threads, runs, peak, mpeak, threads == 1 ? "thread CPU time" : "wall time");
    printf("%-14s %-24s %9s %9s %7s %7s\n", "net", "layer", "ms", "GFLOP/s", "peak", "meas");
    const char *nets[] = {"resnet18", "mobilenet_v2", "densenet121", "ppocr_det", "ppocr_cls"};
    double net_ms[5] = {0, 0, 0, 0, 0}, net_flop[5] = {0, 0, 0, 0, 0};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape *h = &shapes[s];
        if (filter && !strstr(h->name, filter) && !strstr(h->net, filter)) continue;
        pt_conv2d_desc d = {1, h->C, h->H, h->W, h->M, h->K, h->K, h->S, h->S, 1, 1,
                            h->P, h->P, h->P, h->P, h->G, 0, 0};
        d.OH = (h->H + 2 * h->P - h->K) / h->S + 1;
        d.OW = (h->W + 2 * h->P - h->K) / h->S + 1;
        size_t nx = (size_t)h->C * h->H * h->W, nw = (size_t)h->M * (h->C / h->G) * h->K * h->K;
        size_t ny = (size_t)h->M * d.OH * d.OW;
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *b = malloc((size_t)h->M * 4);
        ref_fill(x, nx);
        ref_fill(w, nw);
        ref_fill(b, (size_t)h->M);
        pt_epilogue ep = {PT_ACT_RELU, 0, 0, b, NULL};
        void *p = pt_conv2d_prepare(&d, w);
        if (!p) {
            printf("prepare failed for %s\n", h->name);
            return 1;
        }
        pt_conv2d_run(p, x, y, &ep, NULL); /* warm-up */
        double best = 1e30;
        for (int r = 0; r < runs; r++) {
            double t0 = now_s();
            pt_conv2d_run(p, x, y, &ep, NULL);
            double t = now_s() - t0;
            if (t < best) best = t;
        }
        double flop = 2.0 * (double)ny * (double)(h->C / h->G) * h->K * h->K;
        printf("%-14s %-24s %9.4f %9.1f %6.1f%% %6.1f%%\n", h->net, h->name, best * 1e3,
               flop / best * 1e-9, 100.0 * flop / best * 1e-9 / peak, 100.0 * flop / best * 1e-9 / mpeak);
        int ni = 0;
        while (ni < 4 && strcmp(h->net, nets[ni]) != 0) ni++;
        net_ms[ni] += best * 1e3 * h->count;
        net_flop[ni] += flop * h->count;
        pt_conv2d_free(p);
        free(x), free(w), free(y), free(b);
    }
    for (int i = 0; i < 5; i++)
        if (net_ms[i] > 0)
            printf("total %-12s conv layers: %8.3f ms  %7.1f GFLOP/s  %5.1f%% of given peak, %5.1f%% of "
                   "measured\n", nets[i], net_ms[i], net_flop[i] / net_ms[i] * 1e-6,
                   100.0 * net_flop[i] / net_ms[i] * 1e-6 / peak,
                   100.0 * net_flop[i] / net_ms[i] * 1e-6 / mpeak);
    pt_set_threads(1);
    pt_threads_shutdown();
    return 0;
}
