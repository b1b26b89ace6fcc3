/* pt_conv.c: 2-D convolution. 3x3 stride-1 convolutions with enough channels go to the
 * Winograd kernel (pt_wino.c). Grouped and dense convolutions run as one GEMM per (image,
 * group): the packed weight [M/G x C/G*KH*KW] times the implicit im2col matrix, which is never
 * materialised: the GEMM's B packer reads it straight from the input (zero padding, strides,
 * dilations included), a contiguous copy per output-row run when SW == 1 (a vector
 * deinterleave when SW == 2). Dense convolutions with few output pixels whose register tiles
 * waste less that way run with swapped operands (pt_swap_*: the pixels broadcast, the output
 * channels as vectors, the product transposed into the output). Depthwise convolutions
 * (C/G == 1) go to the direct kernel in pt_dw.c, dense convolutions with few input channels
 * (the first layer) to the one in pt_conv_direct.c. */
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

/* Convolutions with at most this many output pixels may run with swapped operands. */
#ifndef PT_SWAP_MAX_PIXELS
#define PT_SWAP_MAX_PIXELS 400
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
    int rows;           /* SWAP: pixels per packed A panel */
} pt_conv;

/* Estimated cost (cycles x 2) per k step of the register tiles of mr rows covering n columns:
 * a tile of nrv vectors issues mr * nrv FMAs (two per cycle) but no fewer cycles than its mr
 * broadcasts, plus a cycle of overhead (fitted to measured times of 7x7 and 14x14 convs). */
static double pt_tile_cost(long mr, long nrv) {
    long fma = mr * nrv, bcast = 2 * mr;
    return (double)(fma > bcast ? fma : bcast) + 2.0;
}

static double pt_tiles_cost(int mr, long n) {
    long full = n / PT_NR, tail = (n % PT_NR + PT_VL - 1) / PT_VL;
    double cost = (double)full * pt_tile_cost(mr, PT_NRV);
    if (tail) cost += pt_tile_cost(mr, tail);
    return cost;
}

/* Whether a dense, ungrouped convolution runs with swapped operands (pixels broadcast,
 * channels as vectors): when the estimated cost of its register tiles plus the transposition of
 * the product (a cycle per output) is below that of the usual orientation. Sets *rows to the
 * pixel panel height that pads the pixels least. */
static int pt_swap_pick(const pt_conv2d_desc *d, int *rows) {
    long P = (long)d->OH * d->OW;
    if (d->G != 1 || P > PT_SWAP_MAX_PIXELS || d->M < PT_VL) return 0;
    int best = PT_MR;
    long bestp = (P + PT_MR - 1) / PT_MR * PT_MR;
    for (int r = PT_MR - 1; r >= pt_gemm_rows_min(); r--) {
        long padded = (P + r - 1) / r * r;
        if (padded < bestp) best = r, bestp = padded;
    }
    *rows = best;
    double K = (double)d->C * d->KH * d->KW;
    double normal = (double)((d->M + PT_MR - 1) / PT_MR) * pt_tiles_cost(PT_MR, P) * K;
    double swapped = (double)(bestp / best) * pt_tiles_cost(best, d->M) * K + 2.0 * (double)P * d->M;
#ifdef PT_SWAP_FORCE
    (void)normal, (void)swapped;
    return PT_SWAP_FORCE;
#else
    return swapped < normal;
#endif
}

int pt_conv_check(const pt_conv2d_desc *d) {
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
    if (c->mode == PT_CONV_GEMM && pt_swap_pick(d, &c->rows)) {
        /* few pixels: the weight is the vector operand (W^T, K x M in PT_NR-column panels) */
        int K = c->Kg, npan = (d->M + PT_NR - 1) / PT_NR;
        size_t ka = (size_t)(K > 0 ? K : 1);
        size_t n = (size_t)npan * ka * PT_NR;
        c->w = (float *)aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
        if (!c->w) {
            free(c);
            return NULL;
        }
        for (int q = 0; q < npan; q++)
            for (int k = 0; k < K; k++)
                for (int r = 0; r < PT_NR; r++) {
                    int m = q * PT_NR + r;
                    c->w[((size_t)q * ka + (size_t)k) * PT_NR + r] =
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

/* dst[q] = row[start + 2q] for q < n, zero where that column is outside [0, W): the stride-2
 * gather of an im2col row, with vector deinterleaving inside the row where available. */
static void pt_copy_stride2(float *dst, int n, const float *row, int W, int start) {
    int q = 0;
#ifdef PT_HAVE_DEINT
    int lo = start >= 0 ? 0 : (1 - start) / 2;      /* first q with start + 2q >= 0 */
    int qv = W - start > 0 ? (W - start) / 2 : 0;   /* q + PT_VL <= qv: a block's loads fit */
    int hi = qv < n ? qv : n;
    if (hi - lo >= PT_VL) {
        for (q = 0; q < lo; q++) dst[q] = 0.0f;
        for (; q + PT_VL <= hi; q += PT_VL) {
            const float *s = row + start + 2 * q;
            PT_VSTORE(dst + q, PT_EVEN(PT_VLOAD(s), PT_VLOAD(s + PT_VL)));
        }
        if (q < hi) { /* the last block, overlapping the previous one */
            const float *s = row + start + 2 * (hi - PT_VL);
            PT_VSTORE(dst + hi - PT_VL, PT_EVEN(PT_VLOAD(s), PT_VLOAD(s + PT_VL)));
        }
        q = hi;
    }
#endif
    for (; q < n; q++) {
        int c = start + 2 * q;
        dst[q] = c >= 0 && c < W ? row[c] : 0.0f;
    }
}

/* Writes row k of the im2col matrix, columns [n0, n0 + nc), into panels of pw columns: column n
 * goes to dst[((n - n0) / pw) * pstride + (n - n0) % pw] (dst already offset to row k). */
static void pt_im2col_row(const pt_conv2d_desc *d, const float *xc, int kh, int kw, int n0,
                          int nc, int pw, size_t pstride, float *dst) {
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
            int q = rel / pw, r = rel % pw;
            int len = pw - r;
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
            } else if (d->SW == 2) {
                pt_copy_stride2(o, len, row, W, (ow + j) * 2 + off);
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
        pt_im2col_row(d, m->x + (size_t)c * plane, kh, kw, n0, nc, PT_NR, pstride, o);
        if (tail) {
            float *t = o + (size_t)(npanels - 1) * pstride + (PT_NR - tail);
            for (int i = 0; i < tail; i++) t[i] = 0.0f;
        }
    }
}

/* ------------------------------------------------------------------ swapped operands */

/* Convolutions with few output pixels run with the operands swapped: the pixels (im2col rows,
 * packed in panels of c->rows pixels) are the broadcast side, the output channels (the packed
 * transposed weight) the vector side, so that neither a short pixel tail nor a short channel
 * tail wastes most of a register tile. The product (pixels x channels) goes to a buffer and is
 * transposed into the output with the epilogue. */
typedef struct {
    const pt_conv *c;
    const float *x;     /* one image */
    float *apack;       /* the pixels as packed A: [pixel panel][K][rows] */
    float *t;           /* the product, pixels x channels, leading dimension ldt */
    int ldt, kchunk;    /* k rows per packing task */
    int cgroups, pgroups; /* GEMM tasks: channel-vector ranges x pixel-panel ranges */
    float *y;
    const pt_epilogue *ep;
} pt_swap_job;

/* Copies the P floats of one im2col row into the pixel panels: chunk q of R floats to
 * dst + q * pstride, zeros past P (R a constant in the callers below, so every chunk is a
 * fixed-size move). */
static inline __attribute__((always_inline)) void pt_swap_scatter(const int R, const float *row,
                                                                  int P, float *dst,
                                                                  size_t pstride) {
    int q = 0;
    for (; (q + 1) * R <= P; q++) memcpy(dst + (size_t)q * pstride, row + q * R, (size_t)R * sizeof(float));
    if (q * R < P) {
        float *o = dst + (size_t)q * pstride;
        int n = P - q * R;
        for (int i = 0; i < n; i++) o[i] = row[q * R + i];
        for (int i = n; i < R; i++) o[i] = 0.0f;
    }
}

/* Panel q of R pixels lies in one output row (OW a multiple of R): row k's chunk is R
 * consecutive floats of the padded, stride-phase-split input plane (as the depthwise kernel's):
 * padded column p of padded row r at buf[r * SW * Wq + (p % SW) * Wq + p / SW]. */
static inline __attribute__((always_inline)) void pt_swap_rows_chunks(
    const int R, const pt_conv2d_desc *d, const float *buf, size_t rowf, int Wq, int kh, int kw,
    int ppan, float *o, size_t pstride) {
    int pc = kw * d->DW;
    const float *tap = buf + (size_t)(kh * d->DH) * rowf + (size_t)(pc % d->SW) * (size_t)Wq + (size_t)(pc / d->SW);
    for (int q = 0; q < ppan; q++) {
        int oh = q * R / d->OW, ow0 = q * R % d->OW;
        memcpy(o + (size_t)q * pstride, tap + (size_t)(oh * d->SH) * rowf + (size_t)ow0,
               (size_t)R * sizeof(float));
    }
}

/* Packing task: im2col rows [task * kchunk, ...) of every pixel panel. */
static void pt_swap_pack(void *vctx, int task, int tid) {
    const pt_swap_job *j = (const pt_swap_job *)vctx;
    const pt_conv2d_desc *d = &j->c->d;
    int K = j->c->Kg, R = j->c->rows, P = d->OH * d->OW;
    int k0 = task * j->kchunk, k1 = k0 + j->kchunk < K ? k0 + j->kchunk : K;
    int kk = d->KH * d->KW;
    int pointwise = kk == 1 && d->SH == 1 && d->SW == 1 && d->PT == 0 && d->PL == 0 &&
                    d->PB == 0 && d->PR == 0;
    size_t plane = (size_t)d->H * (size_t)d->W, pstride = (size_t)K * (size_t)R;
    if (kk > 1 && d->OW % R == 0) {
        int Hp = (d->OH - 1) * d->SH + (d->KH - 1) * d->DH + 1;
        int Wp = (d->OW - 1) * d->SW + (d->KW - 1) * d->DW + 1;
        int SW = d->SW, Wq = (Wp + SW - 1) / SW, ppan = P / R;
        size_t rowf = (size_t)SW * (size_t)Wq;
        float *buf = (float *)pt_workspace(tid, 2, (size_t)Hp * rowf * sizeof(float));
        if (!buf) return;
        int cur = -1;
        for (int k = k0; k < k1; k++) {
            int c = k / kk, r = k % kk;
            if (c != cur) { /* the padded plane of channel c */
                const float *xc = j->x + (size_t)c * plane;
                for (int row = 0; row < Hp; row++) {
                    float *br = buf + (size_t)row * rowf;
                    int ih = row - d->PT;
                    if (ih < 0 || ih >= d->H) {
                        memset(br, 0, rowf * sizeof(float));
                        continue;
                    }
                    for (int ph = 0; ph < SW; ph++)
                        pt_strided_copy(br + (size_t)ph * (size_t)Wq, Wq, xc + (size_t)ih * (size_t)d->W,
                                        d->W, SW, ph - d->PL, 0.0f);
                }
                cur = c;
            }
            float *o = j->apack + (size_t)k * (size_t)R;
            int kh = r / d->KW, kw = r % d->KW;
            switch (R) {
            case 8: pt_swap_rows_chunks(8, d, buf, rowf, Wq, kh, kw, ppan, o, pstride); break;
            case 7: pt_swap_rows_chunks(7, d, buf, rowf, Wq, kh, kw, ppan, o, pstride); break;
            default: pt_swap_rows_chunks(R, d, buf, rowf, Wq, kh, kw, ppan, o, pstride); break;
            }
        }
        return;
    }
    float tmp[PT_SWAP_MAX_PIXELS];
    for (int k = k0; k < k1; k++) {
        int c = k / kk, r = k % kk;
        const float *xc = j->x + (size_t)c * plane, *row = xc;
        if (!pointwise) {
            pt_im2col_row(d, xc, r / d->KW, r % d->KW, 0, P, P, 0, tmp);
            row = tmp;
        }
        float *o = j->apack + (size_t)k * (size_t)R;
        switch (R) {
        case 8: pt_swap_scatter(8, row, P, o, pstride); break;
        case 7: pt_swap_scatter(7, row, P, o, pstride); break;
        case 6: pt_swap_scatter(6, row, P, o, pstride); break;
        case 5: pt_swap_scatter(5, row, P, o, pstride); break;
        default: pt_swap_scatter(R, row, P, o, pstride); break;
        }
    }
}

/* y[m][p] = epilogue(t[p][m]) for channels [m0, m1) and pixels [p0, p1): the bias and a clamp
 * applied on the way, other epilogues to the rows of y afterwards. */
static void pt_swap_store(const pt_swap_job *j, int m0, int m1, int p0, int p1) {
    const pt_epilogue *ep = j->ep;
    int P = j->c->d.OH * j->c->d.OW;
    size_t ldt = (size_t)j->ldt;
    int act = ep ? ep->act : PT_ACT_NONE;
    int fused = !ep || (!ep->residual && (act == PT_ACT_NONE || act == PT_ACT_RELU || act == PT_ACT_CLIP));
    float lo = -INFINITY, hi = INFINITY;
    if (fused && act == PT_ACT_RELU) lo = 0.0f;
    if (fused && act == PT_ACT_CLIP) lo = ep->lo, hi = ep->hi;
    for (int m = m0; m < m1; m++) {
        float *yr = j->y + (size_t)m * (size_t)P;
        const float *tc = j->t + m;
        float b = fused && ep && ep->bias ? ep->bias[m] : 0.0f;
        if (act == PT_ACT_NONE || !fused) {
            for (int p = p0; p < p1; p++) yr[p] = tc[(size_t)p * ldt] + b;
        } else { /* as the GEMM tile store's vector max / min */
            for (int p = p0; p < p1; p++) {
                float v = tc[(size_t)p * ldt] + b;
                v = v > lo ? v : lo;
                yr[p] = v < hi ? v : hi;
            }
        }
    }
    if (!fused)
        for (int m = m0; m < m1; m++)
            pt_epilogue_row(ep, m, j->y + (size_t)m * (size_t)P + p0,
                            ep->residual ? ep->residual + (size_t)m * (size_t)P + p0 : NULL, p1 - p0);
}

/* GEMM task: channel vectors and pixel panels of its range, then the transpose into y. */
static void pt_swap_task(void *vctx, int task, int tid) {
    (void)tid;
    const pt_swap_job *j = (const pt_swap_job *)vctx;
    const pt_conv2d_desc *d = &j->c->d;
    int K = j->c->Kg, R = j->c->rows, P = d->OH * d->OW, M = d->M;
    int cg = task % j->cgroups, pg = task / j->cgroups;
    int nvec = (M + PT_VL - 1) / PT_VL, ppan = (P + R - 1) / R;
    int v0 = (int)((long)nvec * cg / j->cgroups), v1 = (int)((long)nvec * (cg + 1) / j->cgroups);
    int q0 = (int)((long)ppan * pg / j->pgroups), q1 = (int)((long)ppan * (pg + 1) / j->pgroups);
    int m0 = v0 * PT_VL, m1 = v1 * PT_VL < M ? v1 * PT_VL : M;
    int p0 = q0 * R, p1 = q1 * R < P ? q1 * R : P;
    if (m0 >= m1 || p0 >= p1) return;
    pt_gemm_rows(p1 - p0, R, m0, m1, K, j->apack + (size_t)q0 * (size_t)K * (size_t)R, j->c->w,
                 j->t + (size_t)p0 * (size_t)j->ldt, j->ldt);
    pt_swap_store(j, m0, m1, p0, p1);
}

static void pt_swap_run(const pt_conv *c, const float *x, float *y, const pt_epilogue *ep) {
    const pt_conv2d_desc *d = &c->d;
    int K = c->Kg, P = d->OH * d->OW, R = c->rows, T = pt_get_threads();
    int ppan = (P + R - 1) / R, npan = (d->M + PT_NR - 1) / PT_NR, nvec = (d->M + PT_VL - 1) / PT_VL;
    int ldt = npan * PT_NR;
    float *apack = (float *)pt_workspace(0, 1, (size_t)ppan * (size_t)(K > 0 ? K : 1) * (size_t)R * sizeof(float));
    float *t = (float *)pt_workspace(0, 3, (size_t)P * (size_t)ldt * sizeof(float));
    if (!apack || !t) return;
    pt_swap_job j;
    j.c = c;
    j.apack = apack;
    j.t = t;
    j.ldt = ldt;
    /* packing: about 4 tasks per thread, none under 64 rows */
    j.kchunk = (K + 4 * T - 1) / (4 * T);
    if (j.kchunk < 64) j.kchunk = 64;
    /* GEMM: channel ranges first (each streams its own part of the weight), pixel ranges when
     * the channels are too few to keep the threads busy */
    j.cgroups = T < nvec ? T : nvec;
    j.pgroups = (T + j.cgroups - 1) / j.cgroups;
    if (j.pgroups > ppan) j.pgroups = ppan;
    for (int b = 0; b < d->N; b++) {
        size_t yoff = (size_t)b * (size_t)d->M * (size_t)P;
        pt_epilogue e, *ep2 = NULL;
        if (ep) {
            e = *ep;
            if (e.residual) e.residual += yoff;
            ep2 = &e;
        }
        j.x = x + (size_t)b * (size_t)d->C * (size_t)d->H * (size_t)d->W;
        j.y = y + yoff;
        j.ep = ep2;
        if (K > 0) pt_parallel_for_tid((K + j.kchunk - 1) / j.kchunk, pt_swap_pack, &j);
        pt_parallel_for_tid(j.cgroups * j.pgroups, pt_swap_task, &j);
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
