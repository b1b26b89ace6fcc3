/* pt_conv.c: 2-D convolution. 3x3 stride-1 convolutions with enough channels go to the
 * Winograd kernel (pt_wino.c). Grouped and dense convolutions run as one GEMM per (image,
 * group): the packed weight [M/G x C/G*KH*KW] times the implicit im2col matrix, which is never
 * materialised: the GEMM's B packer reads it straight from the input (zero padding, strides,
 * dilations included), a contiguous copy per output-row run when SW == 1. Depthwise
 * convolutions (C/G == 1) go to the direct kernel in pt_dw.c, dense convolutions with few input
 * channels (the first layer) to the one in pt_conv_direct.c. */
#define PT_KERNELS_INTERNAL
#include "pt_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

enum { PT_CONV_GEMM = 0, PT_CONV_DW = 1, PT_CONV_WINO = 2, PT_CONV_SWAP = 3, PT_CONV_DIRECT = 4 };

/* Pointwise convolutions with at most this many output channels (per group) read B in place. */
#ifndef PT_DIRECT_B_MAX_M
#define PT_DIRECT_B_MAX_M 64
#endif

/* Pointwise convolutions with at most this many output pixels run with swapped operands. */
#ifndef PT_SWAP_MAX_PIXELS
#define PT_SWAP_MAX_PIXELS 100
#endif

typedef struct {
    pt_conv2d_desc d;
    int mode;
    int Cg, Mg, Kg;     /* per-group input channels, output channels, GEMM depth */
    size_t gstride;     /* floats per group in `w` */
    float *w;           /* GEMM: packed A per group; DW: weight [M][KH*KW]; SWAP: packed B
                           (W^T, K x M); WINO: unused */
    void *wino;         /* WINO: the Winograd plan (pt_wino.c) */
    void *direct;       /* DW: the depthwise plan (pt_dw.c); DIRECT: the plan of pt_conv_direct.c */
} pt_conv;

static int pt_conv_check(const pt_conv2d_desc *d) {
    if (d->N < 1 || d->C < 1 || d->H < 1 || d->W < 1 || d->M < 1 || d->KH < 1 || d->KW < 1)
        return 0;
    if (d->SH < 1 || d->SW < 1 || d->DH < 1 || d->DW < 1 || d->G < 1) return 0;
    if (d->PT < 0 || d->PL < 0 || d->PB < 0 || d->PR < 0) return 0;
    if (d->C % d->G != 0 || d->M % d->G != 0) return 0;
    long oh = ((long)d->H + d->PT + d->PB - (long)d->DH * (d->KH - 1) - 1) / d->SH + 1;
    long ow = ((long)d->W + d->PL + d->PR - (long)d->DW * (d->KW - 1) - 1) / d->SW + 1;
    return oh == d->OH && ow == d->OW && oh >= 1 && ow >= 1;
}

void *pt_conv2d_prepare(const pt_conv2d_desc *d, const float *weight) {
    if (!d || !weight || !pt_conv_check(d)) return NULL;
    pt_conv *c = (pt_conv *)calloc(1, sizeof *c);
    if (!c) return NULL;
    c->d = *d;
    c->Cg = d->C / d->G;
    c->Mg = d->M / d->G;
    c->Kg = c->Cg * d->KH * d->KW;
    c->mode = c->Cg == 1 ? PT_CONV_DW : PT_CONV_GEMM;
    if (c->mode == PT_CONV_DW) {
        c->direct = pt_dw_prepare(d, weight);
        if (!c->direct) {
            free(c);
            return NULL;
        }
        return c;
    }
    if (pt_cd_eligible(d)) {
        /* few input channels: a GEMM of depth C * KH * KW is too shallow to pay its packing */
        c->direct = pt_cd_prepare(d, weight);
        if (!c->direct) {
            free(c);
            return NULL;
        }
        c->mode = PT_CONV_DIRECT;
        return c;
    }
    if (c->mode == PT_CONV_GEMM && pt_wino_eligible(d)) {
        c->wino = pt_wino_prepare(d, weight);
        if (!c->wino) {
            free(c);
            return NULL;
        }
        c->mode = PT_CONV_WINO;
        return c;
    }
    if (c->mode == PT_CONV_GEMM && d->G == 1 && d->KH == 1 && d->KW == 1 && d->SH == 1 &&
        d->SW == 1 && d->PT == 0 && d->PL == 0 && d->PB == 0 && d->PR == 0 && d->M >= PT_VL &&
        d->OH * d->OW <= PT_SWAP_MAX_PIXELS) {
        /* few pixels: the weight is the vector operand, the pixels the broadcast one */
        int K = d->C, npan = (d->M + PT_NR - 1) / PT_NR;
        size_t n = (size_t)npan * (size_t)K * PT_NR;
        c->w = (float *)aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
        if (!c->w) {
            free(c);
            return NULL;
        }
        for (int q = 0; q < npan; q++)
            for (int k = 0; k < K; k++)
                for (int r = 0; r < PT_NR; r++) {
                    int m = q * PT_NR + r;
                    c->w[((size_t)q * (size_t)K + (size_t)k) * PT_NR + r] =
                        m < d->M ? weight[(size_t)m * (size_t)K + (size_t)k] : 0.0f;
                }
        c->mode = PT_CONV_SWAP;
        return c;
    }
    size_t total;
    if (c->mode == PT_CONV_GEMM) {
        c->gstride = pt_gemm_packed_a_floats(c->Mg, c->Kg);
        c->gstride = (c->gstride + 15) & ~(size_t)15;
        total = c->gstride * (size_t)d->G;
    } else {
        total = (size_t)d->M * (size_t)(d->KH * d->KW);
    }
    c->w = (float *)aligned_alloc(64, ((total * sizeof(float)) + 63) & ~(size_t)63);
    if (!c->w) {
        free(c);
        return NULL;
    }
    if (c->mode == PT_CONV_GEMM) {
        for (int g = 0; g < d->G; g++)
            pt_gemm_pack_a_into(c->Mg, c->Kg, weight + (size_t)g * (size_t)c->Mg * (size_t)c->Kg,
                                c->Kg, 0, c->w + (size_t)g * c->gstride);
    } else {
        memcpy(c->w, weight, total * sizeof(float));
    }
    return c;
}

void pt_conv2d_free(void *prepared) {
    pt_conv *c = (pt_conv *)prepared;
    if (!c) return;
    pt_wino_free(c->wino);
    if (c->mode == PT_CONV_DIRECT) pt_cd_free(c->direct);
    else pt_dw_free(c->direct);
    free(c->w);
    free(c);
}

size_t pt_conv2d_scratch_bytes(const pt_conv2d_desc *d) {
    (void)d;
    return 0;
}

/* ------------------------------------------------------------------ implicit im2col */

typedef struct {
    const pt_conv2d_desc *d;
    const float *x; /* first input channel of the group, image b */
} pt_im2col;

/* Writes row k of the im2col matrix, columns [n0, n0 + nc), into panel layout: column n goes to
 * dst[((n - n0) / PT_NR) * kc * PT_NR + n % PT_NR] (dst already offset by k * PT_NR). */
static void pt_im2col_row(const pt_conv2d_desc *d, const float *xc, int kh, int kw, int n0,
                          int nc, size_t pstride, float *dst) {
    int OW = d->OW, W = d->W, H = d->H;
    int n = n0, end = n0 + nc;
    int oh = n / OW, ow = n % OW;
    while (n < end) {
        int seg = OW - ow;
        if (seg > end - n) seg = end - n;
        int ih = oh * d->SH - d->PT + kh * d->DH;
        const float *row = (ih >= 0 && ih < H) ? xc + (size_t)ih * (size_t)W : NULL;
        /* valid ow range: 0 <= ow*SW - PL + kw*DW < W */
        int off = kw * d->DW - d->PL;
        int j = 0;
        while (j < seg) {
            int rel = n + j - n0;
            int q = rel / PT_NR, r = rel % PT_NR;
            int len = PT_NR - r;
            if (len > seg - j) len = seg - j;
            float *o = dst + (size_t)q * pstride + r;
            if (!row) {
                for (int t = 0; t < len; t++) o[t] = 0.0f;
            } else if (d->SW == 1) {
                int iw0 = ow + j + off;
                int t = 0;
                for (; t < len && iw0 + t < 0; t++) o[t] = 0.0f;
                int hi = len;
                if (iw0 + hi > W) hi = W - iw0;
                if (hi > t) {
                    const float *sr = row + iw0;
                    for (; t + PT_VL <= hi; t += PT_VL) PT_VSTORE(o + t, PT_VLOAD(sr + t));
                    for (; t < hi; t++) o[t] = sr[t];
                }
                for (; t < len; t++) o[t] = 0.0f;
            } else {
                pt_strided_copy(o, len, row, W, d->SW, (ow + j) * d->SW + off, 0.0f);
            }
            j += len;
        }
        n += seg;
        oh++;
        ow = 0;
    }
}

static void pt_pack_b_im2col(const void *vctx, int k0, int kc, int n0, int nc, float *dst) {
    const pt_im2col *m = (const pt_im2col *)vctx;
    const pt_conv2d_desc *d = m->d;
    int kk = d->KH * d->KW;
    size_t pstride = (size_t)kc * PT_NR;
    int npanels = (nc + PT_NR - 1) / PT_NR;
    int tail = npanels * PT_NR - nc;
    size_t plane = (size_t)d->H * (size_t)d->W;
    if (d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1 && d->PT == 0 && d->PL == 0 &&
        d->PB == 0 && d->PR == 0) {
        /* pointwise: row k of B is input channel k0 + k, contiguous over the pixels */
        for (int k = 0; k < kc; k++) {
            const float *src = m->x + (size_t)(k0 + k) * plane + (size_t)n0;
            float *o = dst + (size_t)k * PT_NR;
            for (int q = 0; q < npanels; q++) {
                const float *s = src + (size_t)q * PT_NR;
                float *t = o + (size_t)q * pstride;
                int len = nc - q * PT_NR;
                if (len >= PT_NR) {
                    for (int v = 0; v < PT_NRV; v++) PT_VSTORE(t + v * PT_VL, PT_VLOAD(s + v * PT_VL));
                } else {
                    for (int i = 0; i < len; i++) t[i] = s[i];
                    for (int i = len; i < PT_NR; i++) t[i] = 0.0f;
                }
            }
        }
        return;
    }
    for (int k = 0; k < kc; k++) {
        int kg = k0 + k;
        int c = kg / kk, r = kg % kk;
        int kh = r / d->KW, kw = r % d->KW;
        float *o = dst + (size_t)k * PT_NR;
        pt_im2col_row(d, m->x + (size_t)c * plane, kh, kw, n0, nc, pstride, o);
        if (tail) {
            float *t = o + (size_t)(npanels - 1) * pstride + (PT_NR - tail);
            for (int i = 0; i < tail; i++) t[i] = 0.0f;
        }
    }
}

/* ------------------------------------------------------------------ swapped pointwise */

typedef struct {
    const pt_conv *c;
    const float *apack; /* the pixels as packed A: [pixel panel][K][PT_MR] */
    float *t;           /* the product, pixels x channels, leading dimension ldt */
    int ldt, groups;
    float *y;
    const pt_epilogue *ep;
} pt_swap_job;

/* Channel panels of group `task`: GEMM into t, then transposed into y with the epilogue. */
static void pt_swap_task(void *vctx, int task, int tid) {
    (void)tid;
    const pt_swap_job *j = (const pt_swap_job *)vctx;
    const pt_conv2d_desc *d = &j->c->d;
    int K = d->C, P = d->OH * d->OW;
    int npan = (d->M + PT_NR - 1) / PT_NR;
    int q0 = (int)((long)npan * task / j->groups), q1 = (int)((long)npan * (task + 1) / j->groups);
    if (q0 >= q1) return;
    int m0 = q0 * PT_NR, m1 = q1 * PT_NR < d->M ? q1 * PT_NR : d->M;
    pt_gemm_pp(P, m1 - m0, K, j->apack, j->c->w + (size_t)q0 * (size_t)K * PT_NR, j->t + m0, j->ldt);
    for (int m = m0; m < m1; m++) {
        float *yr = j->y + (size_t)m * (size_t)P;
        for (int p = 0; p < P; p++) yr[p] = j->t[(size_t)p * (size_t)j->ldt + (size_t)m];
        if (j->ep)
            pt_epilogue_row(j->ep, m, yr, j->ep->residual ? j->ep->residual + (size_t)m * (size_t)P : NULL, P);
    }
}

static void pt_swap_run(const pt_conv *c, const float *x, float *y, const pt_epilogue *ep) {
    const pt_conv2d_desc *d = &c->d;
    int K = d->C, P = d->OH * d->OW;
    int ppan = (P + PT_MR - 1) / PT_MR, npan = (d->M + PT_NR - 1) / PT_NR;
    int ldt = npan * PT_NR;
    float *apack = (float *)pt_workspace(0, 1, (size_t)ppan * (size_t)K * PT_MR * sizeof(float));
    float *t = (float *)pt_workspace(0, 3, (size_t)P * (size_t)ldt * sizeof(float));
    if (!apack || !t) return;
    for (int b = 0; b < d->N; b++) {
        const float *xb = x + (size_t)b * (size_t)K * (size_t)P;
        pt_gemm_pack_a_into(P, K, xb, P, 1, apack);
        pt_epilogue e, *ep2 = NULL;
        size_t yoff = (size_t)b * (size_t)d->M * (size_t)P;
        if (ep) {
            e = *ep;
            if (e.residual) e.residual += yoff;
            ep2 = &e;
        }
        int groups = pt_get_threads() < npan ? pt_get_threads() : npan;
        pt_swap_job j = {c, apack, t, ldt, groups, y + yoff, ep2};
        pt_parallel_for_tid(groups, pt_swap_task, &j);
    }
}

/* ------------------------------------------------------------------ run */

void pt_conv2d_run(const void *prepared, const float *x, float *y, const pt_epilogue *ep,
                   void *scratch) {
    (void)scratch;
    const pt_conv *c = (const pt_conv *)prepared;
    if (!c) return;
    const pt_conv2d_desc *d = &c->d;
    size_t plane_in = (size_t)d->H * (size_t)d->W, plane_out = (size_t)d->OH * (size_t)d->OW;
    if (c->mode == PT_CONV_SWAP) {
        pt_swap_run(c, x, y, ep);
        return;
    }
    if (c->mode == PT_CONV_WINO) {
        for (int b = 0; b < d->N; b++) {
            size_t yoff = (size_t)b * (size_t)d->M * plane_out;
            pt_epilogue e, *ep2 = NULL;
            if (ep) {
                e = *ep;
                if (e.residual) e.residual += yoff;
                ep2 = &e;
            }
            pt_wino_run(c->wino, x + (size_t)b * (size_t)d->C * plane_in, y + yoff, ep2);
        }
        return;
    }
    if (c->mode == PT_CONV_DW) {
        pt_dw_run(c->direct, x, y, ep);
        return;
    }
    if (c->mode == PT_CONV_DIRECT) {
        pt_cd_run(c->direct, x, y, ep);
        return;
    }
    for (int b = 0; b < d->N; b++) {
        for (int g = 0; g < d->G; g++) {
            pt_im2col m;
            m.d = d;
            m.x = x + ((size_t)b * (size_t)d->C + (size_t)g * (size_t)c->Cg) * plane_in;
            size_t yoff = ((size_t)b * (size_t)d->M + (size_t)g * (size_t)c->Mg) * plane_out;
            pt_epilogue e, *ep2 = NULL;
            if (ep) {
                e = *ep;
                if (e.bias) e.bias += (size_t)g * (size_t)c->Mg;
                if (e.residual) e.residual += yoff;
                ep2 = &e;
            }
            int pointwise = d->KH == 1 && d->KW == 1 && d->SH == 1 && d->SW == 1 && d->PT == 0 &&
                            d->PL == 0 && d->PB == 0 && d->PR == 0;
            if (pointwise && c->Mg <= PT_DIRECT_B_MAX_M)
                /* few output channels reuse a packed B too little: read the input in place */
                pt_gemm_run_b(c->Mg, (int)plane_out, c->Kg, c->w + (size_t)g * c->gstride,
                              pt_pack_b_im2col, &m, m.x, (int)plane_in, y + yoff, (int)plane_out,
                              ep2);
            else
                pt_gemm_run(c->Mg, (int)plane_out, c->Kg, c->w + (size_t)g * c->gstride,
                            pt_pack_b_im2col, &m, y + yoff, (int)plane_out, ep2);
        }
    }
}
