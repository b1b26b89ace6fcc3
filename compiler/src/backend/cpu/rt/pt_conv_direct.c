/* pt_conv_direct.c: direct dense convolution for few input channels (the first layer of an
 * image network: C = 3, 3x3 or 7x7, stride 2), called by pt_conv.c for descriptors that
 * pt_cd_eligible accepts (one group, C <= PT_CD_MAX_C, any kernel size, stride, dilation and
 * padding).
 *
 * A task takes a block of output rows of one image. The input rows those need are copied, as
 * they are first needed, into a small per-thread ring per input channel of padded,
 * stride-phase-split rows (pt_conv_fill_row: padded column q of a row at phase q % SW, index
 * q / SW), so that every tap is one contiguous vector load along the output row. For each
 * output row, blocks of PT_CD_MB output channels times up to PT_CD_NV output vectors accumulate
 * the C * KH * KW taps in registers (input vectors loaded once per tap, weights broadcast);
 * bias, residual and ReLU / Clip are applied in registers before the store; other activations
 * after each row. */
#define PT_KERNELS_INTERNAL
#include "pt_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

/* Input channels per group up to this take the direct path. */
#define PT_CD_MAX_C 4
/* Kernel heights / widths up to this (row pointers and tap offsets on the stack). */
#define PT_CD_MAX_K 16

/* Register tile: PT_CD_MB output channels x up to PT_CD_NV vectors of PT_VL output pixels. */
#if PT_VL == 16 || defined(__aarch64__)
#define PT_CD_MB 8 /* 32 vector registers: 24 accumulators */
#else
#define PT_CD_MB 4 /* 16 vector registers: 12 accumulators */
#endif
#define PT_CD_NV 3

/* A splat that folds into the FMA's broadcast operand (x - 0 is exact for every x, so unlike
 * 0 + x it needs no add). */
#define PT_CD_SPLAT(x) ((x) - (pt_vf){0})

typedef struct {
    pt_conv2d_desc d;
    float *w;    /* [ceil(M / MB)][C * KH * KW][MB], zero channels past M */
    int nblk;    /* output channel blocks */
    int taps;    /* C * KH * KW */
    int Wq;      /* floats per stride phase of a padded row (a vector multiple) */
    int R;       /* ring rows per input channel (a power of two) */
    size_t rowf; /* floats per padded row: SW * Wq */
} pt_cd_plan;

int pt_cd_eligible(const pt_conv2d_desc *d) {
    if (!d || d->G != 1 || d->C > PT_CD_MAX_C || d->KH > PT_CD_MAX_K || d->KW > PT_CD_MAX_K)
        return 0;
    /* a row of output vectors amortises the per-row work; 1-D and tiny outputs stay on GEMM */
    return d->OW >= 2 * PT_VL && d->OH >= 2;
}

void *pt_cd_prepare(const pt_conv2d_desc *d, const float *weight) {
    if (!d || !weight || !pt_cd_eligible(d)) return NULL;
    pt_cd_plan *p = (pt_cd_plan *)calloc(1, sizeof *p);
    if (!p) return NULL;
    p->d = *d;
    p->taps = d->C * d->KH * d->KW;
    p->nblk = (d->M + PT_CD_MB - 1) / PT_CD_MB;
    size_t n = (size_t)p->nblk * (size_t)p->taps * PT_CD_MB;
    p->w = (float *)aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (!p->w) {
        free(p);
        return NULL;
    }
    for (int b = 0; b < p->nblk; b++)
        for (int t = 0; t < p->taps; t++)
            for (int r = 0; r < PT_CD_MB; r++) {
                int m = b * PT_CD_MB + r;
                p->w[((size_t)b * (size_t)p->taps + (size_t)t) * PT_CD_MB + (size_t)r] =
                    m < d->M ? weight[(size_t)m * (size_t)p->taps + (size_t)t] : 0.0f;
            }
    /* phase width: every input column, and every read of a row's vectors (the output count
     * rounded up to PT_VL plus the taps) */
    int wq = (d->PL + d->W + d->SW - 1) / d->SW;
    int need = (d->OW + PT_VL - 1) / PT_VL * PT_VL + ((d->KW - 1) * d->DW) / d->SW + 1;
    if (wq < need) wq = need;
    p->Wq = (wq + PT_VL - 1) / PT_VL * PT_VL;
    p->rowf = (size_t)d->SW * (size_t)p->Wq;
    int span = (d->KH - 1) * d->DH + 1;
    p->R = 1;
    while (p->R < span) p->R *= 2;
    return p;
}

void pt_cd_free(void *plan) {
    pt_cd_plan *p = (pt_cd_plan *)plan;
    if (!p) return;
    free(p->w);
    free(p);
}

/* ------------------------------------------------------------------ register kernel */

/* Output channels [m0, m0 + PT_CD_MB) (weights wp: [taps][MB]; the first mcount are stored),
 * nv output vectors from output column ow of one output row. rows[r] (r = c * KH + kh) is the
 * padded row of input channel c for kernel row kh, at the row's first output column; taps[kw]
 * the offset of kernel column kw in it. y: the output at (m0, row, ow), ystep floats between
 * channels; the last vector holds last_n outputs. bias: per channel (or NULL); res: the
 * residual laid out like y (or NULL); [lo, hi] clamps. */
static inline __attribute__((always_inline)) void
pt_cd_chunk(const int nv, const int KW, const float *const *rows, const int nrows, int ow,
            const size_t *taps, const float *wp, const float *bias, int mcount, float *y,
            size_t ystep, int last_n, const float *res, const pt_vf lo, const pt_vf hi) {
    pt_vf acc[PT_CD_MB][PT_CD_NV];
    for (int m = 0; m < PT_CD_MB; m++) {
        pt_vf b = bias && m < mcount ? PT_CD_SPLAT(bias[m]) : PT_VZERO;
        for (int i = 0; i < nv; i++) acc[m][i] = b;
    }
    for (int r = 0; r < nrows; r++) {
        const float *s0 = rows[r] + ow;
        for (int kw = 0; kw < KW; kw++) {
            const float *s = s0 + taps[kw];
            pt_vf xv[PT_CD_NV];
            for (int i = 0; i < nv; i++) xv[i] = PT_VLOAD(s + i * PT_VL);
            for (int m = 0; m < PT_CD_MB; m++) {
                pt_vf w = PT_CD_SPLAT(wp[m]);
                for (int i = 0; i < nv; i++) acc[m][i] += xv[i] * w;
            }
            wp += PT_CD_MB;
        }
    }
    for (int m = 0; m < PT_CD_MB; m++) {
        if (m < mcount) {
            float *ym = y + (size_t)m * ystep;
            const float *rm = res ? res + (size_t)m * ystep : NULL;
            for (int i = 0; i < nv; i++) {
                pt_vf v = acc[m][i];
                int full = i < nv - 1 || last_n == PT_VL;
                if (rm && full) {
                    v += PT_VLOAD(rm + i * PT_VL);
                } else if (rm) { /* the residual's row may end the buffer: no full load */
                    pt_vf r = PT_VZERO;
                    memcpy(&r, rm + i * PT_VL, (size_t)last_n * sizeof(float));
                    v += r;
                }
                v = pt_vmin(pt_vmax(v, lo), hi);
                if (full) PT_VSTORE(ym + i * PT_VL, v);
                else memcpy(ym + i * PT_VL, &v, (size_t)last_n * sizeof(float));
            }
        }
    }
}

/* pt_cd_chunk with nv and (for 3-wide kernels) KW constants. */
static void pt_cd_chunk_any(int nv, int KW, const float *const *rows, int nrows, int ow,
                            const size_t *taps, const float *wp, const float *bias, int mcount,
                            float *y, size_t ystep, int last_n, const float *res, pt_vf lo,
                            pt_vf hi) {
#define PT_CD_CASE(NV)                                                                         \
    do {                                                                                       \
        if (KW == 3)                                                                           \
            pt_cd_chunk(NV, 3, rows, nrows, ow, taps, wp, bias, mcount, y, ystep, last_n, res, \
                        lo, hi);                                                               \
        else                                                                                   \
            pt_cd_chunk(NV, KW, rows, nrows, ow, taps, wp, bias, mcount, y, ystep, last_n,     \
                        res, lo, hi);                                                          \
    } while (0)
    switch (nv) {
    case 3: PT_CD_CASE(3); break;
    case 2: PT_CD_CASE(2); break;
    default: PT_CD_CASE(1); break;
    }
#undef PT_CD_CASE
}

/* ------------------------------------------------------------------ tasks */

typedef struct {
    const pt_cd_plan *p;
    const float *x;
    float *y;
    const pt_epilogue *ep;
    int nrb; /* row blocks per image */
} pt_cd_job;

/* Output rows of row block `task % nrb` of image `task / nrb`, every output channel. */
static void pt_cd_task(void *vctx, int task, int tid) {
    const pt_cd_job *j = (const pt_cd_job *)vctx;
    const pt_cd_plan *p = j->p;
    const pt_conv2d_desc *d = &p->d;
    int C = d->C, KH = d->KH, KW = d->KW, OH = d->OH, OW = d->OW;
    int b = task / j->nrb, rb = task % j->nrb;
    int oh0 = (int)((long)OH * rb / j->nrb), oh1 = (int)((long)OH * (rb + 1) / j->nrb);
    size_t ringf = ((size_t)C * (size_t)p->R + 1) * p->rowf;
    size_t nslot = (size_t)C * (size_t)p->R;
    char *ws = (char *)pt_workspace(tid, 2, ringf * sizeof(float) + nslot * sizeof(int));
    if (!ws) return;
    float *ring = (float *)ws, *zero = ring + nslot * p->rowf;
    int *slot_ih = (int *)(ws + ringf * sizeof(float));
    /* pads stay zero: row copies for strides 1 and 2 write only the input columns */
    memset(ring, 0, ringf * sizeof(float));
    for (size_t s = 0; s < nslot; s++) slot_ih[s] = -1;
    size_t plane_in = (size_t)d->H * (size_t)d->W, plane_out = (size_t)OH * (size_t)OW;
    const float *xb = j->x + (size_t)b * (size_t)C * plane_in;
    float *yb = j->y + (size_t)b * (size_t)d->M * plane_out;
    const pt_epilogue *ep = j->ep;
    const float *resb = ep && ep->residual ? ep->residual + (yb - j->y) : NULL;
    /* epilogues with at most a clamp are applied in registers, residual included */
    int fused = !ep || ep->act == PT_ACT_NONE || ep->act == PT_ACT_RELU || ep->act == PT_ACT_CLIP;
    float flo = -INFINITY, fhi = INFINITY;
    if (fused && ep && ep->act == PT_ACT_RELU) flo = 0.0f;
    if (fused && ep && ep->act == PT_ACT_CLIP) flo = ep->lo, fhi = ep->hi;
    pt_vf vlo = PT_SPLAT(flo), vhi = PT_SPLAT(fhi);
    const float *bias = fused && ep ? ep->bias : NULL;
    size_t taps[PT_CD_MAX_K];
    for (int kw = 0; kw < KW; kw++) {
        int q = kw * d->DW;
        taps[kw] = (size_t)(q % d->SW) * (size_t)p->Wq + (size_t)(q / d->SW);
    }
    int nvec = (OW + PT_VL - 1) / PT_VL;
    int nch = (nvec + PT_CD_NV - 1) / PT_CD_NV;
    int last_n = OW - (nvec - 1) * PT_VL;
    const float *rows[PT_CD_MAX_C * PT_CD_MAX_K];
    for (int oh = oh0; oh < oh1; oh++) {
        for (int c = 0; c < C; c++)
            for (int kh = 0; kh < KH; kh++) {
                int ih = oh * d->SH - d->PT + kh * d->DH;
                const float *r = zero;
                if (ih >= 0 && ih < d->H) {
                    size_t s = (size_t)c * (size_t)p->R + (size_t)(ih & (p->R - 1));
                    float *br = ring + s * p->rowf;
                    if (slot_ih[s] != ih) {
                        pt_conv_fill_row(d, p->Wq, xb + (size_t)c * plane_in + (size_t)ih * (size_t)d->W, br);
                        slot_ih[s] = ih;
                    }
                    r = br;
                }
                rows[c * KH + kh] = r;
            }
        size_t yrow = (size_t)oh * (size_t)OW;
        for (int blk = 0; blk < p->nblk; blk++) {
            int m0 = blk * PT_CD_MB;
            int mcount = d->M - m0 < PT_CD_MB ? d->M - m0 : PT_CD_MB;
            const float *wp = p->w + (size_t)blk * (size_t)p->taps * PT_CD_MB;
            float *y = yb + (size_t)m0 * plane_out + yrow;
            const float *res = fused && resb ? resb + (size_t)m0 * plane_out + yrow : NULL;
            const float *bb = bias ? bias + m0 : NULL;
            int v0 = 0;
            for (int k = 0; k < nch; k++) {
                int nv = nvec / nch + (k < nvec % nch);
                int ln = v0 + nv == nvec ? last_n : PT_VL;
                size_t o = (size_t)v0 * PT_VL;
                pt_cd_chunk_any(nv, KW, rows, C * KH, (int)o, taps, wp, bb, mcount, y + o,
                                plane_out, ln, res ? res + o : NULL, vlo, vhi);
                v0 += nv;
            }
            if (!fused)
                for (int m = m0; m < m0 + mcount; m++)
                    pt_epilogue_row(ep, m, yb + (size_t)m * plane_out + yrow,
                                    resb ? resb + (size_t)m * plane_out + yrow : NULL, OW);
        }
    }
}

void pt_cd_run(const void *plan, const float *x, float *y, const pt_epilogue *ep) {
    const pt_cd_plan *p = (const pt_cd_plan *)plan;
    if (!p) return;
    const pt_conv2d_desc *d = &p->d;
    int T = pt_get_threads();
    /* one block per image on one thread; else about four per thread, none under two rows */
    int nrb = T == 1 ? 1 : 4 * T;
    if (nrb > (d->OH + 1) / 2) nrb = (d->OH + 1) / 2;
    if (nrb < 1) nrb = 1;
    pt_cd_job j = {p, x, y, ep, nrb};
    pt_parallel_for_tid(d->N * nrb, pt_cd_task, &j);
}
