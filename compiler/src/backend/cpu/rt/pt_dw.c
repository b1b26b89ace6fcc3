/* pt_dw.c: direct depthwise convolution (one input channel per group, any channel multiplier,
 * kernel size, stride, dilation and padding), called by pt_conv.c for C / G == 1. Three paths,
 * chosen at prepare:
 *
 * - Channel lanes (multiplier 1, rows narrow enough; the small planes of an image network's
 *   last blocks, and stride 2 up to ~80 wide): PT_VL channels at once, one per vector lane.
 *   Input rows are transposed into a per-thread ring of padded rows [Wp][PT_VL], each output
 *   pixel is KH * KW FMAs with per-lane weights, and bands of output rows are transposed back.
 *   No per-plane overhead, and no lanes idle on planes narrower than a vector.
 * - Stride-1 3x3 in place (pad 1 each side, rows at least two vectors wide): per plane, every
 *   tap loaded straight from the input rows; the edge taps shift a zero lane in.
 * - Per plane otherwise: the input rows a plane needs are copied, as they are first needed,
 *   into a small per-thread ring of padded, stride-phase-split rows (padded column p of a row at
 *   phase p % SW, index p / SW), which stays in L1; rows outside the input point at a shared
 *   zero row. Stride-2 rows are deinterleaved with vector permutes. Every tap is then one
 *   contiguous vector load along the output row; the weights of a 3x3 kernel sit in registers,
 *   and several output vectors (or, for planes no wider than a vector, four output rows)
 *   accumulate at once.
 *
 * Bias and ReLU / Clip are applied in registers (the channel-lane path adds the residual there
 * too); other epilogues after each row or plane. */
#define PT_KERNELS_INTERNAL
#include "pt_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

/* Undilated 3x3 stride-1 planes with one column of padding read the input in place (1) or
 * through the ring of copied rows (0). */
#ifndef PT_DW_DIRECT_S1
#define PT_DW_DIRECT_S1 1
#endif
/* Bytes of input rows the 3x3 path copies ahead of reading them. */
#ifndef PT_DW_BLOCK_BYTES
#define PT_DW_BLOCK_BYTES (8 * 1024)
#endif
/* Kernel widths up to this get a tap-offset table (wider ones take the scalar path). */
#define PT_DW_MAX_KW 32
/* Kernel heights up to this take the vector path (row pointers on the stack). */
#define PT_DW_MAX_KH 32

typedef struct {
    pt_conv2d_desc d;
    float *w;    /* [M][KH * KW] */
    int Wq;      /* floats per stride phase of a padded row (a vector multiple) */
    int R;       /* rows in the per-plane ring (a power of two) */
    int OB;      /* output rows per block of the 3x3 path (their input rows are copied first) */
    size_t rowf; /* floats per padded row: SW * Wq */
    /* channel-lane path (small planes, multiplier 1): PT_VL channels at once, one per lane */
    float *wl;   /* [ceil(C / PT_VL)][KH * KW][PT_VL], zero lanes past C; NULL: path unused */
    int Wp;      /* pixels per padded row: PL + W + PR, or more to cover every tap */
    int LR;      /* rows in the ring (slot of input row ih: ih % LR) */
    int LB;      /* output rows per band */
    int whole;   /* the ring holds every input row: filled at once, in blocks across rows */
    int *ipos;   /* whole: [H * W], the ring pixel (in vectors) of each input pixel */
} pt_dw_plan;

/* Kernel heights / widths up to this take the channel-lane path. */
#define PT_DWL_MAX_K 16
/* Planes whose ring of transposed rows (PT_VL channels) is at most this many bytes take the
 * channel-lane path (wider rows: the per-plane path, whose rows stay in L1). */
#ifndef PT_DWL_MAX_RING
#define PT_DWL_MAX_RING (20 * 1024)
#endif
/* Planes whose ring of all input rows (PT_VL channels) is at most this many bytes are
 * transposed whole at once. */
#ifndef PT_DWL_WHOLE
#define PT_DWL_WHOLE (24 * 1024)
#endif
/* Bytes of a band of output rows (PT_VL channels). */
#ifndef PT_DWL_BAND
#define PT_DWL_BAND (16 * 1024)
#endif

void *pt_dw_prepare(const pt_conv2d_desc *d, const float *weight) {
    if (!d || !weight || d->C != d->G) return NULL;
    pt_dw_plan *p = (pt_dw_plan *)calloc(1, sizeof *p);
    if (!p) return NULL;
    p->d = *d;
    size_t n = (size_t)d->M * (size_t)(d->KH * d->KW);
    p->w = (float *)aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (!p->w) {
        free(p);
        return NULL;
    }
    memcpy(p->w, weight, n * sizeof(float));
    /* phase width: every input column, and every read of a row's vectors (the output count
     * rounded up to PT_VL plus the taps) */
    int wq = (d->PL + d->W + d->SW - 1) / d->SW;
    int need = (d->OW + PT_VL - 1) / PT_VL * PT_VL + ((d->KW - 1) * d->DW) / d->SW + 1;
    if (wq < need) wq = need;
    p->Wq = (wq + PT_VL - 1) / PT_VL * PT_VL;
    p->rowf = (size_t)d->SW * (size_t)p->Wq;
    /* the rows of four output rows at once, rounded up to a power of two (slot: ih & (R - 1)) */
    int span = (d->KH - 1) * d->DH + 1 + 3 * d->SH;
    /* 3x3 blocks: the input rows of OB output rows (PT_DW_BLOCK_BYTES) are copied before any is
     * read, so that loads do not wait on the copy's fresh stores */
    int rows = (int)((size_t)PT_DW_BLOCK_BYTES / (p->rowf * sizeof(float)));
    p->OB = rows > 3 ? (rows - 3) / d->SH + 1 : 1;
    if (p->OB > d->OH) p->OB = d->OH;
    if (span < (p->OB - 1) * d->SH + 3) span = (p->OB - 1) * d->SH + 3;
    p->R = 1;
    while (p->R < span) p->R *= 2;
    /* every input column, and every column a tap reads (the right pad may be short of the
     * last window when the division of the output size truncates) */
    p->Wp = d->PL + d->W + d->PR;
    if (p->Wp < (d->OW - 1) * d->SW + (d->KW - 1) * d->DW + 1)
        p->Wp = (d->OW - 1) * d->SW + (d->KW - 1) * d->DW + 1;
    int lr0 = (d->KH - 1) * d->DH + 1; /* the rows of one output row */
    /* stride-1 3x3 planes at least two vectors wide are faster read in place, per plane */
    int s1 = PT_DW_DIRECT_S1 && PT_VL > 1 && d->KH == 3 && d->KW == 3 && d->SH == 1 &&
             d->SW == 1 && d->DH == 1 && d->DW == 1 && d->PL == 1 && d->PR == 1 &&
             d->OW >= 2 * PT_VL;
    if (PT_VL > 1 && d->M == d->C && !s1 && d->KH <= PT_DWL_MAX_K && d->KW <= PT_DWL_MAX_K &&
        (size_t)lr0 * (size_t)p->Wp * PT_VL * sizeof(float) <= PT_DWL_MAX_RING) {
        int ng = (d->C + PT_VL - 1) / PT_VL, kk = d->KH * d->KW;
        size_t nl = (size_t)ng * (size_t)kk * PT_VL;
        p->wl = (float *)aligned_alloc(64, (nl * sizeof(float) + 63) & ~(size_t)63);
        if (!p->wl) {
            pt_dw_free(p);
            return NULL;
        }
        for (int g = 0; g < ng; g++)
            for (int t = 0; t < kk; t++)
                for (int l = 0; l < PT_VL; l++) {
                    int c = g * PT_VL + l;
                    p->wl[((size_t)g * (size_t)kk + (size_t)t) * PT_VL + (size_t)l] =
                        c < d->C ? weight[(size_t)c * (size_t)kk + (size_t)t] : 0.0f;
                }
        p->LR = lr0;
        /* small planes: the ring holds them whole (blocks of PT_VL pixels need not start
         * each row, so that narrow rows do not waste the transposes' lanes) */
        int lr = d->H > lr0 ? d->H : lr0;
        if ((size_t)lr * (size_t)p->Wp * PT_VL * sizeof(float) <= PT_DWL_WHOLE) {
            p->LR = lr;
            p->whole = 1;
            p->ipos = (int *)malloc((size_t)d->H * (size_t)d->W * sizeof(int));
            if (!p->ipos) {
                pt_dw_free(p);
                return NULL;
            }
            for (int ih = 0; ih < d->H; ih++)
                for (int iw = 0; iw < d->W; iw++)
                    p->ipos[ih * d->W + iw] = ih * p->Wp + d->PL + iw;
        }
        p->LB = (int)(PT_DWL_BAND / ((size_t)d->OW * PT_VL * sizeof(float)));
        if (p->LB < 1) p->LB = 1;
        if (p->LB > d->OH) p->LB = d->OH;
    }
    return p;
}

void pt_dw_free(void *plan) {
    pt_dw_plan *p = (pt_dw_plan *)plan;
    if (!p) return;
    free(p->w);
    free(p->wl);
    free(p->ipos);
    free(p);
}

/* ------------------------------------------------------------------ row copies */

#if PT_VL == 16
#define PT_EVENS 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30
#define PT_ODDS 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31
#elif PT_VL == 8
#define PT_EVENS 0, 2, 4, 6, 8, 10, 12, 14
#define PT_ODDS 1, 3, 5, 7, 9, 11, 13, 15
#elif PT_VL == 4
#define PT_EVENS 0, 2, 4, 6
#define PT_ODDS 1, 3, 5, 7
#endif

void pt_conv_fill_row(const pt_conv2d_desc *d, int Wq, const float *src, float *br) {
    int W = d->W, PL = d->PL;
    if (d->SW == 1) {
        float *o = br + PL;
        int i = 0;
        for (; i + PT_VL <= W; i += PT_VL) PT_VSTORE(o + i, PT_VLOAD(src + i));
        if (i < W && W >= PT_VL) { /* the last vector overlaps the one before */
            PT_VSTORE(o + W - PT_VL, PT_VLOAD(src + W - PT_VL));
            i = W;
        }
        for (; i < W; i++) o[i] = src[i];
    } else if (d->SW == 2) {
        /* input column 2k goes to phase PL % 2, index k + PL / 2; 2k + 1 to the other phase,
         * index k + (PL + 1) / 2 */
        float *ev = br + (size_t)(PL % 2) * (size_t)Wq + PL / 2;
        float *od = br + (size_t)((PL + 1) % 2) * (size_t)Wq + (PL + 1) / 2;
        int k = 0;
#if PT_VL > 1 && defined(PT_EVENS)
        for (; 2 * k + 2 * PT_VL <= W; k += PT_VL) {
            pt_vf a = PT_VLOAD(src + 2 * k), b = PT_VLOAD(src + 2 * k + PT_VL);
            PT_VSTORE(ev + k, __builtin_shufflevector(a, b, PT_EVENS));
            PT_VSTORE(od + k, __builtin_shufflevector(a, b, PT_ODDS));
        }
        if (2 * k < W && W >= 2 * PT_VL) {
            /* the last pair of vectors overlaps the one before (same values rewritten); an odd
             * W leaves its last column to the scalar loop */
            k = (W - 2 * PT_VL) / 2;
            pt_vf a = PT_VLOAD(src + 2 * k), b = PT_VLOAD(src + 2 * k + PT_VL);
            PT_VSTORE(ev + k, __builtin_shufflevector(a, b, PT_EVENS));
            PT_VSTORE(od + k, __builtin_shufflevector(a, b, PT_ODDS));
            k += PT_VL;
        }
#endif
        for (; 2 * k < W; k++) {
            ev[k] = src[2 * k];
            if (2 * k + 1 < W) od[k] = src[2 * k + 1];
        }
    } else {
        for (int ph = 0; ph < d->SW; ph++)
            pt_strided_copy(br + (size_t)ph * (size_t)Wq, Wq, src, W, d->SW, ph - PL, 0.0f);
    }
}

/* Writes input row `src` into padded row `br` of the plan's ring. */
static inline void pt_dw_fill_row(const pt_dw_plan *p, const float *src, float *br) {
    pt_conv_fill_row(&p->d, p->Wq, src, br);
}

/* ------------------------------------------------------------------ vector chunks */

/* nv output vectors. Vector i, tap (kh, kw) reads rp[i * rs + kh * DH] + i * cs + taps[kw]
 * (rp: padded-row pointers of consecutive padded rows) and stores to y + i * ystep: n floats
 * for all but the last, last_n for the last; a short vector is stored in full when the `room`
 * floats from y cover it (what it overwrites belongs to outputs stored later). The bias starts
 * the accumulators, [lo, hi] clamps them. wv: the KH * KW weights, splatted. */
static inline __attribute__((always_inline)) void
pt_dw_chunk(const int nv, const float *const *rp, int rs, size_t cs, const size_t *taps,
            const pt_vf *wv, const int KH, const int KW, const int DH, const pt_vf bias, float *y,
            size_t ystep, int n, int last_n, const pt_vf lo, const pt_vf hi, size_t room) {
    pt_vf a0 = bias, a1 = bias, a2 = bias, a3 = bias;
    pt_vf b0 = PT_VZERO, b1 = PT_VZERO, b2 = PT_VZERO, b3 = PT_VZERO;
    for (int kh = 0; kh < KH; kh++) {
        const float *r0 = rp[kh * DH], *r1 = NULL, *r2 = NULL, *r3 = NULL;
        if (nv > 1) r1 = rp[rs + kh * DH] + cs;
        if (nv > 2) r2 = rp[2 * rs + kh * DH] + 2 * cs;
        if (nv > 3) r3 = rp[3 * rs + kh * DH] + 3 * cs;
        for (int kw = 0; kw < KW; kw++) {
            pt_vf w = wv[kh * KW + kw];
            size_t t = taps[kw];
            /* two accumulator sets (even / odd kernel rows) halve the FMA chains */
            if (kh % 2 == 0) {
                a0 += PT_VLOAD(r0 + t) * w;
                if (nv > 1) a1 += PT_VLOAD(r1 + t) * w;
                if (nv > 2) a2 += PT_VLOAD(r2 + t) * w;
                if (nv > 3) a3 += PT_VLOAD(r3 + t) * w;
            } else {
                b0 += PT_VLOAD(r0 + t) * w;
                if (nv > 1) b1 += PT_VLOAD(r1 + t) * w;
                if (nv > 2) b2 += PT_VLOAD(r2 + t) * w;
                if (nv > 3) b3 += PT_VLOAD(r3 + t) * w;
            }
        }
    }
    pt_vf t[4] = {a0 + b0, a1 + b1, a2 + b2, a3 + b3};
    for (int i = 0; i < nv; i++) {
        pt_vf v = pt_vmin(pt_vmax(t[i], lo), hi);
        int cnt = i == nv - 1 ? last_n : n;
        if (cnt == PT_VL || (size_t)i * ystep + PT_VL <= room) PT_VSTORE(y + (size_t)i * ystep, v);
        else memcpy(y + (size_t)i * ystep, &v, (size_t)cnt * sizeof(float));
    }
}

/* pt_dw_chunk with the kernel shape a constant for undilated 3x3 kernels. */
#define PT_DW_CHUNK(nv, ...)                                                                  \
    do {                                                                                      \
        if (k33)                                                                              \
            pt_dw_chunk(nv, rp, rs, cs, taps, wv, 3, 3, 1, __VA_ARGS__);                      \
        else                                                                                  \
            pt_dw_chunk(nv, rp, rs, cs, taps, wv, KH, KW, DH, __VA_ARGS__);                   \
    } while (0)

/* ------------------------------------------------------------------ planes */

typedef struct {
    const pt_dw_plan *p;
    const float *x;
    float *y;
    const pt_epilogue *ep;
    int per; /* planes per task */
} pt_dw_job;

/* Per-task state: the ring of padded rows and which input row each slot holds. */
typedef struct {
    float *ring, *zero;
    int *slot_ih;
} pt_dw_ring;

/* The padded row for input row ih of plane xp (copied into the ring if not there yet). */
static inline const float *pt_dw_row(const pt_dw_plan *p, pt_dw_ring *g, const float *xp,
                                     int ih) {
    const pt_conv2d_desc *d = &p->d;
    if (ih < 0 || ih >= d->H) return g->zero;
    int s = ih & (p->R - 1);
    float *br = g->ring + (size_t)s * p->rowf;
    if (g->slot_ih[s] != ih) {
        pt_dw_fill_row(p, xp + (size_t)ih * (size_t)d->W, br);
        g->slot_ih[s] = ih;
    }
    return br;
}

/* One output vector of an undilated 3x3 kernel: padded rows r0..r2 at the output column, column
 * taps 0, t1, t2; three short FMA chains. */
#define PT_DW3_VEC(o)                                                                          \
    (vb + PT_VLOAD(r0 + (o)) * w0 + PT_VLOAD(r0 + (o) + t1) * w1 + PT_VLOAD(r0 + (o) + t2) * w2 + \
     (PT_VLOAD(r1 + (o)) * w3 + PT_VLOAD(r1 + (o) + t1) * w4 + PT_VLOAD(r1 + (o) + t2) * w5) +   \
     (PT_VLOAD(r2 + (o)) * w6 + PT_VLOAD(r2 + (o) + t1) * w7 + PT_VLOAD(r2 + (o) + t2) * w8))

/* Output plane yo of an undilated 3x3 kernel (weights w), every row through the ring; bias and
 * [lo, hi] in registers (the caller applies any other epilogue afterwards). */
static __attribute__((noinline)) void pt_dw3_plane(const pt_dw_plan *p, pt_dw_ring *g, const float *xp, const float *w,
                         float *yo, pt_vf vb, pt_vf vlo, pt_vf vhi) {
    const pt_conv2d_desc *d = &p->d;
    int OW = d->OW, OH = d->OH;
    size_t t1 = (size_t)(1 % d->SW) * (size_t)p->Wq + (size_t)(1 / d->SW);
    size_t t2 = (size_t)(2 % d->SW) * (size_t)p->Wq + (size_t)(2 / d->SW);
    pt_vf w0 = PT_SPLAT(w[0]), w1 = PT_SPLAT(w[1]), w2 = PT_SPLAT(w[2]);
    pt_vf w3 = PT_SPLAT(w[3]), w4 = PT_SPLAT(w[4]), w5 = PT_SPLAT(w[5]);
    pt_vf w6 = PT_SPLAT(w[6]), w7 = PT_SPLAT(w[7]), w8 = PT_SPLAT(w[8]);
    size_t plane = (size_t)OH * (size_t)OW;
    for (int oh = 0; oh < OH; oh++) {
        int ih = oh * d->SH - d->PT;
        if (oh % p->OB == 0) {
            int last = (oh + p->OB < OH ? oh + p->OB : OH) - 1;
            for (int t = ih; t <= last * d->SH - d->PT + 2; t++) pt_dw_row(p, g, xp, t);
        }
        const float *r0 = pt_dw_row(p, g, xp, ih);
        const float *r1 = pt_dw_row(p, g, xp, ih + 1);
        const float *r2 = pt_dw_row(p, g, xp, ih + 2);
        float *y = yo + (size_t)oh * (size_t)OW;
        int ow = 0;
        for (; ow + 4 * PT_VL <= OW; ow += 4 * PT_VL) {
            pt_vf v0 = PT_DW3_VEC(ow), v1 = PT_DW3_VEC(ow + PT_VL);
            pt_vf v2 = PT_DW3_VEC(ow + 2 * PT_VL), v3 = PT_DW3_VEC(ow + 3 * PT_VL);
            PT_VSTORE(y + ow, pt_vmin(pt_vmax(v0, vlo), vhi));
            PT_VSTORE(y + ow + PT_VL, pt_vmin(pt_vmax(v1, vlo), vhi));
            PT_VSTORE(y + ow + 2 * PT_VL, pt_vmin(pt_vmax(v2, vlo), vhi));
            PT_VSTORE(y + ow + 3 * PT_VL, pt_vmin(pt_vmax(v3, vlo), vhi));
        }
        for (; ow < OW; ow += PT_VL) {
            pt_vf v = pt_vmin(pt_vmax(PT_DW3_VEC(ow), vlo), vhi);
            /* a short last vector is stored in full where the rest of the plane covers it
             * (the next row overwrites the excess) */
            size_t at = (size_t)oh * (size_t)OW + (size_t)ow;
            if (at + PT_VL <= plane) PT_VSTORE(y + ow, v);
            else memcpy(y + ow, &v, (size_t)(OW - ow) * sizeof(float));
        }
    }
}

#if PT_VL == 16
#define PT_SHR1 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30
#define PT_SHL1 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
#elif PT_VL == 8
#define PT_SHR1 7, 8, 9, 10, 11, 12, 13, 14
#define PT_SHL1 1, 2, 3, 4, 5, 6, 7, 8
#elif PT_VL == 4
#define PT_SHR1 3, 4, 5, 6
#define PT_SHL1 1, 2, 3, 4
#endif

#if PT_VL > 1 && defined(PT_SHR1)
/* Output plane yo of an undilated 3x3 stride-1 kernel with one column of padding each side
 * (OW == W >= 2 * PT_VL), read straight from the input: interior vectors load the input rows
 * in place; the first vector's left tap and the last vector's right tap shift a zero lane in
 * (the last vector ends on the row's end, overlapping the one before it); rows outside the
 * input read the zero row. Bias and [lo, hi] in registers. */
static __attribute__((noinline)) void pt_dw3_plane_s1(const pt_dw_plan *p, const float *zero,
                                                      const float *xp, const float *w, float *yo,
                                                      pt_vf vb, pt_vf vlo, pt_vf vhi) {
    const pt_conv2d_desc *d = &p->d;
    int W = d->W, OH = d->OH;
    pt_vf w0 = PT_SPLAT(w[0]), w1 = PT_SPLAT(w[1]), w2 = PT_SPLAT(w[2]);
    pt_vf w3 = PT_SPLAT(w[3]), w4 = PT_SPLAT(w[4]), w5 = PT_SPLAT(w[5]);
    pt_vf w6 = PT_SPLAT(w[6]), w7 = PT_SPLAT(w[7]), w8 = PT_SPLAT(w[8]);
    const pt_vf z = PT_VZERO;
    for (int oh = 0; oh < OH; oh++) {
        int ih = oh - d->PT;
        const float *r0 = ih >= 0 && ih < d->H ? xp + (size_t)ih * (size_t)W : zero;
        const float *r1 = ih + 1 >= 0 && ih + 1 < d->H ? xp + (size_t)(ih + 1) * (size_t)W : zero;
        const float *r2 = ih + 2 >= 0 && ih + 2 < d->H ? xp + (size_t)(ih + 2) * (size_t)W : zero;
        float *y = yo + (size_t)oh * (size_t)W;
        {
            pt_vf a0 = PT_VLOAD(r0), a1 = PT_VLOAD(r1), a2 = PT_VLOAD(r2);
            pt_vf v = vb + __builtin_shufflevector(z, a0, PT_SHR1) * w0 + a0 * w1 +
                      PT_VLOAD(r0 + 1) * w2 +
                      (__builtin_shufflevector(z, a1, PT_SHR1) * w3 + a1 * w4 + PT_VLOAD(r1 + 1) * w5) +
                      (__builtin_shufflevector(z, a2, PT_SHR1) * w6 + a2 * w7 + PT_VLOAD(r2 + 1) * w8);
            PT_VSTORE(y, pt_vmin(pt_vmax(v, vlo), vhi));
        }
        const float *q0 = r0 - 1, *q1 = r1 - 1, *q2 = r2 - 1;
        int ow = PT_VL;
#define PT_DWS_VEC(o)                                                                          \
    (vb + PT_VLOAD(q0 + (o)) * w0 + PT_VLOAD(q0 + (o) + 1) * w1 + PT_VLOAD(q0 + (o) + 2) * w2 + \
     (PT_VLOAD(q1 + (o)) * w3 + PT_VLOAD(q1 + (o) + 1) * w4 + PT_VLOAD(q1 + (o) + 2) * w5) +   \
     (PT_VLOAD(q2 + (o)) * w6 + PT_VLOAD(q2 + (o) + 1) * w7 + PT_VLOAD(q2 + (o) + 2) * w8))
        for (; ow + 4 * PT_VL <= W - 1; ow += 4 * PT_VL) {
            pt_vf v0 = PT_DWS_VEC(ow), v1 = PT_DWS_VEC(ow + PT_VL);
            pt_vf v2 = PT_DWS_VEC(ow + 2 * PT_VL), v3 = PT_DWS_VEC(ow + 3 * PT_VL);
            PT_VSTORE(y + ow, pt_vmin(pt_vmax(v0, vlo), vhi));
            PT_VSTORE(y + ow + PT_VL, pt_vmin(pt_vmax(v1, vlo), vhi));
            PT_VSTORE(y + ow + 2 * PT_VL, pt_vmin(pt_vmax(v2, vlo), vhi));
            PT_VSTORE(y + ow + 3 * PT_VL, pt_vmin(pt_vmax(v3, vlo), vhi));
        }
        for (; ow + PT_VL <= W - 1; ow += PT_VL)
            PT_VSTORE(y + ow, pt_vmin(pt_vmax(PT_DWS_VEC(ow), vlo), vhi));
#undef PT_DWS_VEC
        {
            int o = W - PT_VL;
            pt_vf a0 = PT_VLOAD(r0 + o), a1 = PT_VLOAD(r1 + o), a2 = PT_VLOAD(r2 + o);
            pt_vf v = vb + PT_VLOAD(r0 + o - 1) * w0 + a0 * w1 +
                      __builtin_shufflevector(a0, z, PT_SHL1) * w2 +
                      (PT_VLOAD(r1 + o - 1) * w3 + a1 * w4 + __builtin_shufflevector(a1, z, PT_SHL1) * w5) +
                      (PT_VLOAD(r2 + o - 1) * w6 + a2 * w7 + __builtin_shufflevector(a2, z, PT_SHL1) * w8);
            PT_VSTORE(y + o, pt_vmin(pt_vmax(v, vlo), vhi));
        }
    }
}
#endif

/* Output plane `task` (= b * M + m). */
static void pt_dw_plane(const pt_dw_job *j, pt_dw_ring *g, int task) {
    const pt_dw_plan *p = j->p;
    const pt_conv2d_desc *d = &p->d;
    int b = task / d->M, m = task % d->M;
    int ci = m / (d->M / d->G);
    int KH = d->KH, KW = d->KW, DH = d->DH, SH = d->SH, OW = d->OW, OH = d->OH;
    const float *xp = j->x + ((size_t)b * (size_t)d->C + (size_t)ci) * (size_t)d->H * (size_t)d->W;
    for (int s = 0; s < p->R; s++) g->slot_ih[s] = -1;
    const float *w = p->w + (size_t)m * (size_t)(KH * KW);
    float *yo = j->y + ((size_t)b * (size_t)d->M + (size_t)m) * (size_t)OH * (size_t)OW;
    const pt_epilogue *ep = j->ep;
    const float *res = ep && ep->residual ? ep->residual + (yo - j->y) : NULL;
    /* epilogues without residual and with at most a clamp are applied in registers */
    int fused = !ep || (!ep->residual && (ep->act == PT_ACT_NONE || ep->act == PT_ACT_RELU ||
                                          ep->act == PT_ACT_CLIP));
    float fb = ep && ep->bias ? ep->bias[m] : 0.0f;
    float flo = -INFINITY, fhi = INFINITY;
    if (fused && ep && ep->act == PT_ACT_RELU) flo = 0.0f;
    if (fused && ep && ep->act == PT_ACT_CLIP) flo = ep->lo, fhi = ep->hi;
    pt_vf vb = fused ? PT_SPLAT(fb) : PT_VZERO, vlo = PT_SPLAT(flo), vhi = PT_SPLAT(fhi);
    int vec = KW <= PT_DW_MAX_KW && KH <= PT_DW_MAX_KH;
    int k33 = KH == 3 && KW == 3 && DH == 1;
    size_t taps[PT_DW_MAX_KW];
    pt_vf wv[PT_DW_MAX_KW * 4];
    int nw = KH * KW <= PT_DW_MAX_KW * 4 ? KH * KW : 0;
    if (vec) {
        for (int kw = 0; kw < KW; kw++) {
            int q = kw * d->DW;
            taps[kw] = (size_t)(q % d->SW) * (size_t)p->Wq + (size_t)(q / d->SW);
        }
        if (nw == 0) vec = 0; /* more taps than weight registers: scalar path */
        for (int t = 0; t < nw; t++) wv[t] = PT_SPLAT(w[t]);
    }
    if (vec && k33 && d->DW == 1 && d->SW <= 2 && OW > PT_VL) { /* pt_dw3_plane: DW 1 */
#if PT_VL > 1 && defined(PT_SHR1)
        if (PT_DW_DIRECT_S1 && d->SW == 1 && d->SH == 1 && d->DW == 1 && d->PL == 1 &&
            d->PR == 1 && OW >= 2 * PT_VL)
            pt_dw3_plane_s1(p, g->zero, xp, w, yo, vb, vlo, vhi);
        else
#endif
            pt_dw3_plane(p, g, xp, w, yo, vb, vlo, vhi);
        if (!fused)
            for (int oh = 0; oh < OH; oh++)
                pt_epilogue_row(ep, m, yo + (size_t)oh * (size_t)OW,
                                res ? res + (size_t)oh * (size_t)OW : NULL, OW);
        return;
    }
    const float *rp[PT_DW_MAX_KH * 2 + 4 * 8];
    int span1 = (KH - 1) * DH + 1;
    /* a plane whose rows all fit the ring is copied before any is read (no loads waiting on
     * the copy's fresh stores) */
    if ((OH - 1) * SH + span1 <= p->R)
        for (int t = 0; t < (OH - 1) * SH + span1; t++) pt_dw_row(p, g, xp, t - d->PT);
    for (int oh = 0; oh < OH; oh++) {
        float *yr = yo + (size_t)oh * (size_t)OW;
        int ih0 = oh * SH - d->PT;
        if (vec && OW <= PT_VL && oh + 4 <= OH && span1 + 3 * SH <= (int)(sizeof rp / sizeof rp[0])) {
            /* narrow rows: four output rows at a time (independent FMA chains) */
            for (int t = 0; t < span1 + 3 * SH; t++) rp[t] = pt_dw_row(p, g, xp, ih0 + t);
            int rs = SH;
            size_t cs = 0;
            size_t room = (size_t)(OH - oh) * (size_t)OW;
            PT_DW_CHUNK(4, vb, yr, (size_t)OW, OW, OW, vlo, vhi, room);
            if (!fused)
                for (int r = 0; r < 4; r++)
                    pt_epilogue_row(ep, m, yr + (size_t)r * (size_t)OW,
                                    res ? res + (size_t)(oh + r) * (size_t)OW : NULL, OW);
            oh += 3;
            continue;
        }
        if (vec) {
            const float *rowp[PT_DW_MAX_KH * 2 + 4 * 8];
            for (int t = 0; t < span1; t++) rowp[t] = pt_dw_row(p, g, xp, ih0 + t);
            int rs = 0;
            size_t cs = PT_VL;
            for (int ow = 0; ow < OW; ow += 4 * PT_VL) {
                int left = OW - ow;
                int nv = left >= 4 * PT_VL ? 4 : (left + PT_VL - 1) / PT_VL;
                int last_n = left - (nv - 1) * PT_VL;
                if (last_n > PT_VL) last_n = PT_VL;
                size_t room = (size_t)(OH - oh) * (size_t)OW - (size_t)ow;
                for (int t = 0; t < span1; t++) rp[t] = rowp[t] + ow;
                switch (nv) {
                case 4: PT_DW_CHUNK(4, vb, yr + ow, PT_VL, PT_VL, last_n, vlo, vhi, room); break;
                case 3: PT_DW_CHUNK(3, vb, yr + ow, PT_VL, PT_VL, last_n, vlo, vhi, room); break;
                case 2: PT_DW_CHUNK(2, vb, yr + ow, PT_VL, PT_VL, last_n, vlo, vhi, room); break;
                default: PT_DW_CHUNK(1, vb, yr + ow, PT_VL, PT_VL, last_n, vlo, vhi, room); break;
                }
            }
        } else {
            for (int ow = 0; ow < OW; ow++) {
                float acc = 0.0f;
                for (int kh = 0; kh < KH; kh++) {
                    const float *br = pt_dw_row(p, g, xp, ih0 + kh * DH) + ow;
                    for (int kw = 0; kw < KW; kw++) {
                        int q = kw * d->DW;
                        acc += br[(size_t)(q % d->SW) * (size_t)p->Wq + (size_t)(q / d->SW)] *
                               w[kh * KW + kw];
                    }
                }
                yr[ow] = acc;
            }
        }
        if (!(vec && fused)) pt_epilogue_row(ep, m, yr, res ? res + (size_t)oh * (size_t)OW : NULL, OW);
    }
}

/* ------------------------------------------------------------------ channel lanes */

/* Channel lanes: PT_VL channels of one image at a time, channel c0 + l in lane l. Input rows
 * are transposed (PT_VL x PT_VL blocks of channels x pixels), as they are first needed, into a
 * per-thread ring of padded rows [Wp][PT_VL] whose pads stay zero; each output pixel is then
 * KH * KW vector FMAs with per-lane weights. A band of output rows [OW][PT_VL] is transposed
 * back into the planes, with bias, residual and ReLU / Clip applied in registers. */

#if PT_VL == 16
#define PT_ILO 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define PT_IHI 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#elif PT_VL == 8
#define PT_ILO 0, 8, 1, 9, 2, 10, 3, 11
#define PT_IHI 4, 12, 5, 13, 6, 14, 7, 15
#elif PT_VL == 4
#define PT_ILO 0, 4, 1, 5
#define PT_IHI 2, 6, 3, 7
#endif

/* Transposes the PT_VL x PT_VL matrix whose rows are r[0..PT_VL) in place. */
static inline __attribute__((always_inline)) void pt_dwl_transpose(pt_vf *r) {
#if PT_VL == 16
    /* 4x4 transposes inside each 128-bit lane (in-lane interleaves of floats, then of pairs),
     * then two rounds of 128-bit lane shuffles */
    pt_vf t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 0, 16, 1, 17, 4, 20, 5, 21, 8,
                                           24, 9, 25, 12, 28, 13, 29);
        t[2 * i + 1] = __builtin_shufflevector(r[2 * i], r[2 * i + 1], 2, 18, 3, 19, 6, 22, 7,
                                               23, 10, 26, 11, 27, 14, 30, 15, 31);
    }
    for (int i = 0; i < 4; i++)
        for (int h = 0; h < 2; h++) {
            pt_vf a = t[4 * i + h], b = t[4 * i + h + 2];
            u[4 * i + 2 * h] = __builtin_shufflevector(a, b, 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24,
                                                       25, 12, 13, 28, 29);
            u[4 * i + 2 * h + 1] = __builtin_shufflevector(a, b, 2, 3, 18, 19, 6, 7, 22, 23, 10,
                                                           11, 26, 27, 14, 15, 30, 31);
        }
    /* u[4 i + j], lane k: column 4 k + j of rows 4 i .. 4 i + 3 */
    for (int j = 0; j < 4; j++) {
        pt_vf s0 = __builtin_shufflevector(u[j], u[4 + j], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18,
                                           19, 24, 25, 26, 27);
        pt_vf s1 = __builtin_shufflevector(u[j], u[4 + j], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21,
                                           22, 23, 28, 29, 30, 31);
        pt_vf s2 = __builtin_shufflevector(u[8 + j], u[12 + j], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17,
                                           18, 19, 24, 25, 26, 27);
        pt_vf s3 = __builtin_shufflevector(u[8 + j], u[12 + j], 4, 5, 6, 7, 12, 13, 14, 15, 20,
                                           21, 22, 23, 28, 29, 30, 31);
        r[j] = __builtin_shufflevector(s0, s2, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25,
                                       26, 27);
        r[4 + j] = __builtin_shufflevector(s1, s3, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24,
                                           25, 26, 27);
        r[8 + j] = __builtin_shufflevector(s0, s2, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23,
                                           28, 29, 30, 31);
        r[12 + j] = __builtin_shufflevector(s1, s3, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23,
                                            28, 29, 30, 31);
    }
#elif PT_VL > 1 && defined(PT_ILO)
    /* log2(PT_VL) rounds of interleaving row j with row j + PT_VL / 2: each round rotates the
     * bits of (row, column) by one, so that afterwards they are (column, row) */
    for (int s = 1; s < PT_VL; s *= 2) {
        pt_vf t[PT_VL];
        for (int j = 0; j < PT_VL / 2; j++) {
            t[2 * j] = __builtin_shufflevector(r[j], r[j + PT_VL / 2], PT_ILO);
            t[2 * j + 1] = __builtin_shufflevector(r[j], r[j + PT_VL / 2], PT_IHI);
        }
        for (int j = 0; j < PT_VL; j++) r[j] = t[j];
    }
#else
    (void)r;
#endif
}

/* One output row of a channel group: o[ow] = vb + sum of the taps over the ring rows r[kh]
 * (padded rows at the row's first tap), clamped to [lo, hi]. KH, KW, SW constants when inlined
 * with them (stride-1 neighbours then share their loads). */
static inline __attribute__((always_inline)) void
pt_dwl_row(const float *const *r, const pt_vf *wv, const int KH, const int KW, const int SW,
           int DW, int OW, pt_vf vb, pt_vf lo, pt_vf hi, float *o) {
    size_t ps = (size_t)SW * PT_VL, dw = (size_t)DW * PT_VL;
    int ow = 0;
#define PT_DWL_ACC(n)                                                                          \
    for (; ow + (n) <= OW; ow += (n)) {                                                        \
        pt_vf a[n];                                                                            \
        for (int i = 0; i < (n); i++) a[i] = vb;                                               \
        for (int kh = 0; kh < KH; kh++) {                                                      \
            const float *t = r[kh] + (size_t)ow * ps;                                          \
            for (int kw = 0; kw < KW; kw++) {                                                  \
                pt_vf w = wv[kh * KW + kw];                                                    \
                for (int i = 0; i < (n); i++)                                                  \
                    a[i] += *(const pt_vf *)(t + (size_t)i * ps + (size_t)kw * dw) * w;        \
            }                                                                                  \
        }                                                                                      \
        for (int i = 0; i < (n); i++)                                                          \
            *(pt_vf *)(o + (size_t)(ow + i) * PT_VL) = pt_vmin(pt_vmax(a[i], lo), hi);         \
    }
    PT_DWL_ACC(8)
    PT_DWL_ACC(4)
    PT_DWL_ACC(1)
#undef PT_DWL_ACC
}

typedef struct {
    const pt_dw_plan *p;
    const float *x;
    float *y;
    const pt_epilogue *ep;
    int per; /* channel groups per task */
} pt_dwl_job;

/* Per-thread buffers of the channel-lane path. */
typedef struct {
    float *ring; /* R padded rows of Wp * PT_VL floats */
    float *zero; /* one zero row */
    float *out;  /* a band of output rows, whole blocks of PT_VL pixels */
    int *slot_ih;
} pt_dwl_ws;

/* Transposes input row ih of channels [c0, c0 + nc) of image b into ring row `dst` (the
 * interior; the pads are left as they are). */
static void pt_dwl_fill(const pt_dwl_job *j, int b, int c0, int nc, int ih, float *dst) {
    const pt_conv2d_desc *d = &j->p->d;
    size_t HW = (size_t)d->H * (size_t)d->W, total = (size_t)d->N * (size_t)d->C * HW;
    size_t xo = ((size_t)b * (size_t)d->C + (size_t)c0) * HW + (size_t)ih * (size_t)d->W;
    float *o = dst + (size_t)d->PL * PT_VL;
    for (int w0 = 0; w0 < d->W; w0 += PT_VL) {
        int np = d->W - w0 < PT_VL ? d->W - w0 : PT_VL;
        pt_vf r[PT_VL];
        for (int l = 0; l < PT_VL; l++) {
            size_t at = xo + (size_t)l * HW + (size_t)w0;
            /* a short block reads on into the next row, except at the end of the input */
            if (l >= nc) r[l] = PT_VZERO;
            else if (at + PT_VL <= total) r[l] = PT_VLOAD(j->x + at);
            else {
                r[l] = PT_VZERO;
                memcpy(&r[l], j->x + at, (size_t)np * sizeof(float));
            }
        }
        pt_dwl_transpose(r);
        for (int i = 0; i < np; i++) *(pt_vf *)(o + (size_t)(w0 + i) * PT_VL) = r[i];
    }
}

/* Transposes the whole input plane of channels [c0, c0 + nc) of image b into the ring (row ih
 * at slot ih, the ring as long as the plane), in blocks of PT_VL pixels across rows. */
static void pt_dwl_fill_whole(const pt_dwl_job *j, int b, int c0, int nc, float *ring) {
    const pt_conv2d_desc *d = &j->p->d;
    size_t HW = (size_t)d->H * (size_t)d->W, total = (size_t)d->N * (size_t)d->C * HW;
    size_t xo = ((size_t)b * (size_t)d->C + (size_t)c0) * HW;
    const int *ipos = j->p->ipos;
    for (size_t p0 = 0; p0 < HW; p0 += PT_VL) {
        /* a short last block ends on the plane's end instead (overlapping the one before) */
        if (p0 + PT_VL > HW && HW >= PT_VL) p0 = HW - PT_VL;
        size_t np = HW - p0 < PT_VL ? HW - p0 : PT_VL;
        pt_vf r[PT_VL];
        for (int l = 0; l < PT_VL; l++) {
            size_t at = xo + (size_t)l * HW + p0;
            if (l >= nc) r[l] = PT_VZERO;
            else if (at + PT_VL <= total) r[l] = PT_VLOAD(j->x + at);
            else {
                r[l] = PT_VZERO;
                memcpy(&r[l], j->x + at, np * sizeof(float));
            }
        }
        pt_dwl_transpose(r);
        for (size_t i = 0; i < np; i++) *(pt_vf *)(ring + (size_t)ipos[p0 + i] * PT_VL) = r[i];
    }
}

/* Transposes output pixels [q0, q1) (band buffer `out`, from pixel q0) of channels
 * [c0, c0 + nc) back into the planes, adding the residual and clamping to [lo, hi] when res. */
static void pt_dwl_store(const pt_dwl_job *j, const float *out, size_t yo, int nc, size_t q0,
                         size_t q1, int res, pt_vf lo, pt_vf hi) {
    const pt_conv2d_desc *d = &j->p->d;
    size_t OHW = (size_t)d->OH * (size_t)d->OW;
    for (size_t p0 = q0; p0 < q1; p0 += PT_VL) {
        /* a short last block ends on the band's end instead (overlapping the one before; the
         * overlap is stored twice with the same values) */
        if (p0 + PT_VL > q1 && q1 - q0 >= PT_VL) p0 = q1 - PT_VL;
        pt_vf r[PT_VL];
        size_t np = q1 - p0 < PT_VL ? q1 - p0 : PT_VL;
        for (int i = 0; i < PT_VL; i++)
            r[i] = *(const pt_vf *)(out + (p0 - q0 + (size_t)i) * PT_VL);
        pt_dwl_transpose(r);
        for (int l = 0; l < nc; l++) {
            size_t at = yo + (size_t)l * OHW + p0;
            pt_vf v = r[l];
            if (np == PT_VL) {
                if (res) v = pt_vmin(pt_vmax(v + PT_VLOAD(j->ep->residual + at), lo), hi);
                PT_VSTORE(j->y + at, v);
            } else {
                if (res) {
                    pt_vf rv = PT_VZERO;
                    memcpy(&rv, j->ep->residual + at, np * sizeof(float));
                    v = pt_vmin(pt_vmax(v + rv, lo), hi);
                }
                memcpy(j->y + at, &v, np * sizeof(float));
            }
        }
    }
}

/* Channel group q: image q / ngroups, channels (q % ngroups) * PT_VL ... */
static void pt_dwl_group(const pt_dwl_job *j, pt_dwl_ws *g, int q) {
    const pt_dw_plan *p = j->p;
    const pt_conv2d_desc *d = &p->d;
    int C = d->C, ng = (C + PT_VL - 1) / PT_VL, KH = d->KH, KW = d->KW, kk = KH * KW;
    int OH = d->OH, OW = d->OW;
    int b = q / ng, gi = q % ng, c0 = gi * PT_VL;
    int nc = C - c0 < PT_VL ? C - c0 : PT_VL;
    size_t rowf = (size_t)p->Wp * PT_VL;
    for (int s = 0; s < p->LR; s++) g->slot_ih[s] = -1;
    if (p->whole) {
        pt_dwl_fill_whole(j, b, c0, nc, g->ring);
        for (int s = 0; s < d->H; s++) g->slot_ih[s] = s;
    }
    const pt_epilogue *ep = j->ep;
    int fused = !ep || ep->act == PT_ACT_NONE || ep->act == PT_ACT_RELU || ep->act == PT_ACT_CLIP;
    float flo = -INFINITY, fhi = INFINITY;
    if (fused && ep && ep->act == PT_ACT_RELU) flo = 0.0f;
    if (fused && ep && ep->act == PT_ACT_CLIP) flo = ep->lo, fhi = ep->hi;
    pt_vf vb = PT_VZERO, vlo = PT_SPLAT(flo), vhi = PT_SPLAT(fhi);
    if (fused && ep && ep->bias) memcpy(&vb, ep->bias + c0, (size_t)nc * sizeof(float));
    const pt_vf *wv = (const pt_vf *)(p->wl + (size_t)gi * (size_t)kk * PT_VL);
    /* with a residual the clamp waits for it (added in the transpose out) */
    int res = fused && ep && ep->residual;
    pt_vf clo = res ? PT_SPLAT(-INFINITY) : vlo, chi = res ? PT_SPLAT(INFINITY) : vhi;
    size_t yo = ((size_t)b * (size_t)C + (size_t)c0) * (size_t)OH * (size_t)OW;
    const float *r[PT_DWL_MAX_K];
    for (int oh0 = 0; oh0 < OH; oh0 += p->LB) {
        int oh1 = oh0 + p->LB < OH ? oh0 + p->LB : OH;
        for (int oh = oh0; oh < oh1; oh++) {
            for (int kh = 0; kh < KH; kh++) {
                int ih = oh * d->SH - d->PT + kh * d->DH;
                if (ih < 0 || ih >= d->H) {
                    r[kh] = g->zero;
                    continue;
                }
                int s = ih % p->LR;
                float *br = g->ring + (size_t)s * rowf;
                if (g->slot_ih[s] != ih) {
                    pt_dwl_fill(j, b, c0, nc, ih, br);
                    g->slot_ih[s] = ih;
                }
                r[kh] = br;
            }
            float *o = g->out + (size_t)(oh - oh0) * (size_t)OW * PT_VL;
            if (KH == 3 && KW == 3 && d->SW == 1 && d->DW == 1)
                pt_dwl_row(r, wv, 3, 3, 1, 1, OW, vb, clo, chi, o);
            else if (KH == 3 && KW == 3 && d->SW == 2 && d->DW == 1)
                pt_dwl_row(r, wv, 3, 3, 2, 1, OW, vb, clo, chi, o);
            else if (KH == 5 && KW == 5 && d->SW == 1 && d->DW == 1)
                pt_dwl_row(r, wv, 5, 5, 1, 1, OW, vb, clo, chi, o);
            else if (KH == 5 && KW == 5 && d->SW == 2 && d->DW == 1)
                pt_dwl_row(r, wv, 5, 5, 2, 1, OW, vb, clo, chi, o);
            else
                pt_dwl_row(r, wv, KH, KW, d->SW, d->DW, OW, vb, clo, chi, o);
        }
        pt_dwl_store(j, g->out, yo, nc, (size_t)oh0 * (size_t)OW, (size_t)oh1 * (size_t)OW, res,
                     vlo, vhi);
    }
    if (!fused)
        for (int l = 0; l < nc; l++) {
            size_t at = yo + (size_t)l * (size_t)OH * (size_t)OW;
            pt_epilogue_row(ep, c0 + l, j->y + at, ep->residual ? ep->residual + at : NULL,
                            OH * OW);
        }
}

static void pt_dwl_task(void *vctx, int task, int tid) {
    const pt_dwl_job *j = (const pt_dwl_job *)vctx;
    const pt_dw_plan *p = j->p;
    const pt_conv2d_desc *d = &p->d;
    size_t rowf = (size_t)p->Wp * PT_VL;
    size_t ringf = (size_t)(p->LR + 1) * rowf;
    /* the band's blocks of PT_VL pixels may read one block past it */
    size_t outf = ((size_t)p->LB * (size_t)d->OW + PT_VL) * PT_VL;
    char *ws = (char *)pt_workspace(tid, 2, (ringf + outf) * sizeof(float) +
                                                (size_t)p->LR * sizeof(int));
    if (!ws) return;
    pt_dwl_ws g;
    g.ring = (float *)ws;
    g.zero = g.ring + (size_t)p->LR * rowf;
    g.out = g.ring + ringf;
    g.slot_ih = (int *)(ws + (ringf + outf) * sizeof(float));
    memset(g.ring, 0, (ringf + outf) * sizeof(float)); /* pads stay zero */
    int n = d->N * ((d->C + PT_VL - 1) / PT_VL);
    int q1 = (task + 1) * j->per < n ? (task + 1) * j->per : n;
    for (int q = task * j->per; q < q1; q++) pt_dwl_group(j, &g, q);
}

static void pt_dwl_run(const pt_dw_plan *p, const float *x, float *y, const pt_epilogue *ep) {
    const pt_conv2d_desc *d = &p->d;
    int groups = d->N * ((d->C + PT_VL - 1) / PT_VL), T = pt_get_threads();
    /* about 4 tasks per thread */
    pt_dwl_job j = {p, x, y, ep, (groups + 4 * T - 1) / (4 * T)};
    if (j.per < 1) j.per = 1;
    pt_parallel_for_tid((groups + j.per - 1) / j.per, pt_dwl_task, &j);
}

/* Planes [task * per, (task + 1) * per): several per task, so that small planes do not turn
 * the threads' task claiming into the bottleneck. */
static void pt_dw_task(void *vctx, int task, int tid) {
    const pt_dw_job *j = (const pt_dw_job *)vctx;
    const pt_dw_plan *p = j->p;
    size_t ringf = (size_t)(p->R + 1) * p->rowf;
    char *ws = (char *)pt_workspace(tid, 2, ringf * sizeof(float) + (size_t)p->R * sizeof(int));
    if (!ws) return;
    pt_dw_ring g;
    g.ring = (float *)ws;
    g.zero = g.ring + (size_t)p->R * p->rowf;
    g.slot_ih = (int *)(ws + ringf * sizeof(float));
    /* pads stay zero: row copies for strides 1 and 2 write only the input columns */
    memset(g.ring, 0, ringf * sizeof(float));
    int n = p->d.N * p->d.M;
    int p1 = (task + 1) * j->per < n ? (task + 1) * j->per : n;
    for (int q = task * j->per; q < p1; q++) pt_dw_plane(j, &g, q);
}

void pt_dw_run(const void *plan, const float *x, float *y, const pt_epilogue *ep) {
    const pt_dw_plan *p = (const pt_dw_plan *)plan;
    if (!p) return;
    if (p->wl) {
        pt_dwl_run(p, x, y, ep);
        return;
    }
    const pt_conv2d_desc *d = &p->d;
    pt_dw_job j = {p, x, y, ep, 1};
    int planes = d->N * d->M, T = pt_get_threads();
    /* about 8 tasks per thread, none under ~4K outputs unless that leaves a thread idle */
    j.per = (planes + 8 * T - 1) / (8 * T);
    int minp = 4096 / (d->OH * d->OW) + 1;
    if (j.per < minp) j.per = minp;
    if (j.per > (planes + T - 1) / T) j.per = (planes + T - 1) / T;
    if (j.per < 1) j.per = 1;
    pt_parallel_for_tid((planes + j.per - 1) / j.per, pt_dw_task, &j);
}
