/* pt_wino.c: Winograd F(2x2, 3x3) convolution for 3x3, stride-1, undilated, ungrouped convs.
 *
 * Every 2x2 output tile is computed from the 4x4 input patch d above it as
 *   Y = A^T [ sum_c (G g_c G^T) .* (B^T d_c B) ] A,
 * i.e. 16 independent GEMMs (one per position xi of the 4x4 transformed tile) of the
 * transformed weight U_xi [M x C] times the transformed input V_xi [C x tiles], 2.25x fewer
 * multiplications than the direct convolution. The transforms only add, subtract and halve,
 * so the rounding error stays close to the direct GEMM's.
 *
 * Work is cut into blocks of tiles (sized so that V of a block stays in L2) and, when blocks
 * are fewer than threads, into ranges of output channels. A task transforms its block's input
 * straight into the packed-B layout of the GEMM micro-kernel (V[xi][panel][c][tile]), then,
 * per chunk of output channels, runs the 16 GEMMs into a small buffer and transforms that
 * back into the output rows with the epilogue (bias, residual, activation). */
#define PT_KERNELS_INTERNAL
#include "pt_kernels.h"

#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

/* Output channels per GEMM chunk (a multiple of PT_MR). */
#define PT_WINO_MC (PT_MR * 8)
/* Fewest 2x2 output tiles per image for Winograd: with fewer, each transformed weight (16/9
 * the size of the direct one) is used too rarely and its memory traffic dominates. */
#ifndef PT_WINO_MIN_TILES
#define PT_WINO_MIN_TILES 40
#endif
/* Floats of transformed input per block aimed at (L2 share). */
#define PT_WINO_VBUDGET (96 * 1024)

typedef struct {
    pt_conv2d_desc d;
    int C, M, TH, TW; /* tiles per column and row */
    size_t ustride;   /* floats per packed U_xi */
    float *u;         /* 16 packed A operands (U_xi, M x C) */
} pt_wino;

int pt_wino_eligible(const pt_conv2d_desc *d) {
#ifdef PT_NO_WINOGRAD
    (void)d;
    return 0;
#else
    if (d->KH != 3 || d->KW != 3 || d->SH != 1 || d->SW != 1 || d->DH != 1 || d->DW != 1 ||
        d->G != 1)
        return 0;
    /* small channel counts leave the transforms dominant; tiny outputs waste tiles */
    return d->C >= 16 && d->M >= 16 && d->OH >= 4 && d->OW >= 4 &&
           ((d->OH + 1) / 2) * ((d->OW + 1) / 2) >= PT_WINO_MIN_TILES;
#endif
}

void *pt_wino_prepare(const pt_conv2d_desc *d, const float *weight) {
    if (!pt_wino_eligible(d)) return NULL;
    pt_wino *p = (pt_wino *)calloc(1, sizeof *p);
    if (!p) return NULL;
    p->d = *d;
    p->C = d->C;
    p->M = d->M;
    p->TH = (d->OH + 1) / 2;
    p->TW = (d->OW + 1) / 2;
    p->ustride = (pt_gemm_packed_a_floats(d->M, d->C) + 15) & ~(size_t)15;
    size_t full = (size_t)d->M * (size_t)d->C;
    float *tmp = (float *)malloc(16 * full * sizeof(float));
    p->u = (float *)aligned_alloc(64, ((16 * p->ustride * sizeof(float)) + 63) & ~(size_t)63);
    if (!tmp || !p->u) {
        free(tmp);
        free(p->u);
        free(p);
        return NULL;
    }
    for (size_t mc = 0; mc < full; mc++) {
        const float *g = weight + mc * 9;
        float t[4][3], u[4][4];
        for (int j = 0; j < 3; j++) { /* t = G g */
            t[0][j] = g[j];
            t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
            t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
            t[3][j] = g[6 + j];
        }
        for (int i = 0; i < 4; i++) { /* u = t G^T */
            u[i][0] = t[i][0];
            u[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
            u[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
            u[i][3] = t[i][2];
        }
        for (int xi = 0; xi < 16; xi++) tmp[(size_t)xi * full + mc] = u[xi / 4][xi % 4];
    }
    for (int xi = 0; xi < 16; xi++)
        pt_gemm_pack_a_into(d->M, d->C, tmp + (size_t)xi * full, d->C, 0,
                            p->u + (size_t)xi * p->ustride);
    free(tmp);
    return p;
}

void pt_wino_free(void *prepared) {
    pt_wino *p = (pt_wino *)prepared;
    if (!p) return;
    free(p->u);
    free(p);
}

typedef struct {
    const pt_wino *p;
    const float *x;
    float *y;
    const pt_epilogue *ep;
    int nblocks, mgroups; /* tile blocks; output channel groups per block */
} pt_wino_job;

/* E[q] = row[start + 2q], O[q] = row[start + 2q + 1] for q < n, zero outside [0, W): the even
 * and odd columns of an input row, deinterleaved with vector shuffles inside the row. */
static void pt_wino_deint(float *E, float *O, int n, const float *row, int W, int start) {
    int lo = start >= 0 ? 0 : (1 - start) / 2; /* first q with both columns >= 0 */
    int qin = W - start > 0 ? (W - start) / 2 : 0; /* q < qin: both columns < W */
    int hi = qin < n ? qin : n;
    int q = 0;
#ifdef PT_HAVE_DEINT
    if (hi - lo >= PT_VL) {
        for (q = lo; q + PT_VL <= hi; q += PT_VL) {
            const float *s = row + start + 2 * q;
            pt_vf a = PT_VLOAD(s), b = PT_VLOAD(s + PT_VL);
            PT_VSTORE(E + q, PT_EVEN(a, b));
            PT_VSTORE(O + q, PT_ODD(a, b));
        }
        if (q < hi) { /* the last block, overlapping the previous one */
            const float *s = row + start + 2 * (hi - PT_VL);
            pt_vf a = PT_VLOAD(s), b = PT_VLOAD(s + PT_VL);
            PT_VSTORE(E + hi - PT_VL, PT_EVEN(a, b));
            PT_VSTORE(O + hi - PT_VL, PT_ODD(a, b));
        }
        for (q = 0; q < lo; q++) {
            int c = start + 2 * q;
            E[q] = c >= 0 && c < W ? row[c] : 0.0f;
            O[q] = c + 1 >= 0 && c + 1 < W ? row[c + 1] : 0.0f;
        }
        q = hi;
    }
#else
    (void)lo, (void)hi;
#endif
    for (; q < n; q++) {
        int c = start + 2 * q;
        E[q] = c >= 0 && c < W ? row[c] : 0.0f;
        O[q] = c + 1 >= 0 && c + 1 < W ? row[c + 1] : 0.0f;
    }
}

/* Input transform of channel plane xc for the tiles [t0, t0 + n) of one tile row segment
 * (row th, first column tw), written at V + k for the k-th tile, `xs` floats between the
 * 16 transformed planes; `room` floats from V + 0 may be written (what lies past the n tiles
 * is rewritten later, by the next segment or the panel's tail zeroing). Each of the 4 input rows is split into even and odd columns, so that
 * the 4 columns of tile k are E[k], O[k], E[k + 1], O[k + 1]: unit-stride vector loads. */
static void pt_wino_in(const pt_wino *p, const float *xc, int th, int tw, int n, float *V,
                       size_t xs, int room) {
    const pt_conv2d_desc *d = &p->d;
    /* lanes past n + 1 of the last vector are read but never stored */
    float E[4][PT_NR + 1 + PT_VL], O[4][PT_NR + 1 + PT_VL];
    int iw0 = 2 * tw - d->PL;
    for (int i = 0; i < 4; i++) {
        int ih = 2 * th - d->PT + i;
        if (ih < 0 || ih >= d->H) {
            memset(E[i], 0, (size_t)(n + 1) * sizeof(float));
            memset(O[i], 0, (size_t)(n + 1) * sizeof(float));
            continue;
        }
        pt_wino_deint(E[i], O[i], n + 1, xc + (size_t)ih * (size_t)d->W, d->W, iw0);
    }
    for (int k = 0; k < n; k += PT_VL) {
        pt_vf u[4][4];
        for (int i = 0; i < 4; i++) { /* d B (columns) */
            pt_vf e0 = PT_VLOAD(E[i] + k), o0 = PT_VLOAD(O[i] + k);
            pt_vf e1 = PT_VLOAD(E[i] + k + 1), o1 = PT_VLOAD(O[i] + k + 1);
            u[i][0] = e0 - e1;
            u[i][1] = o0 + e1;
            u[i][2] = e1 - o0;
            u[i][3] = o0 - o1;
        }
        int cnt = n - k < PT_VL ? n - k : PT_VL;
        if (k + PT_VL <= room) cnt = PT_VL;
        for (int j = 0; j < 4; j++) { /* B^T (rows) */
            pt_vf v[4] = {u[0][j] - u[2][j], u[1][j] + u[2][j], u[2][j] - u[1][j],
                          u[1][j] - u[3][j]};
            for (int i = 0; i < 4; i++) {
                float *dst = V + (size_t)(4 * i + j) * xs + k;
                if (cnt == PT_VL) PT_VSTORE(dst, v[i]);
                else memcpy(dst, &v[i], (size_t)cnt * sizeof(float));
            }
        }
    }
}

/* Output transform of channel m for the tiles of one row segment: mrow points at the first
 * tile's value in the xi = 0 plane, `ms` floats between planes. Writes rows 2th, 2th + 1. */
static void pt_wino_out(const pt_wino_job *j, int m, int th, int tw, int n, const float *mrow,
                        size_t ms) {
    const pt_conv2d_desc *d = &j->p->d;
    float o[2][2 * PT_NR];
    float r[2][4][PT_NR];
    for (int c = 0; c < 4; c++) { /* A^T (rows) */
        const float *m0 = mrow + (size_t)(0 + c) * ms, *m1 = mrow + (size_t)(4 + c) * ms;
        const float *m2 = mrow + (size_t)(8 + c) * ms, *m3 = mrow + (size_t)(12 + c) * ms;
        for (int k = 0; k < n; k++) {
            r[0][c][k] = m0[k] + m1[k] + m2[k];
            r[1][c][k] = m1[k] - m2[k] - m3[k];
        }
    }
    for (int a = 0; a < 2; a++) /* A (columns) */
        for (int k = 0; k < n; k++) {
            o[a][2 * k] = r[a][0][k] + r[a][1][k] + r[a][2][k];
            o[a][2 * k + 1] = r[a][1][k] - r[a][2][k] - r[a][3][k];
        }
    int ow0 = 2 * tw, len = 2 * n;
    if (len > d->OW - ow0) len = d->OW - ow0;
    size_t plane = (size_t)d->OH * (size_t)d->OW;
    for (int a = 0; a < 2; a++) {
        int oh = 2 * th + a;
        if (oh >= d->OH) break;
        size_t off = (size_t)m * plane + (size_t)oh * (size_t)d->OW + (size_t)ow0;
        float *y = j->y + off;
        memcpy(y, o[a], (size_t)len * sizeof(float));
        if (j->ep)
            pt_epilogue_row(j->ep, m, y, j->ep->residual ? j->ep->residual + off : NULL, len);
    }
}

/* Task = block * mgroups + group. */
static void pt_wino_task(void *vctx, int task, int tid) {
    const pt_wino_job *j = (const pt_wino_job *)vctx;
    const pt_wino *p = j->p;
    const pt_conv2d_desc *d = &p->d;
    int blk = task / j->mgroups, grp = task % j->mgroups;
    int T = p->TH * p->TW;
    int t0 = (int)((long)T * blk / j->nblocks), t1 = (int)((long)T * (blk + 1) / j->nblocks);
    int nt = t1 - t0;
    int mpanels = (p->M + PT_MR - 1) / PT_MR;
    int pm0 = (int)((long)mpanels * grp / j->mgroups), pm1 = (int)((long)mpanels * (grp + 1) / j->mgroups);
    if (nt <= 0 || pm0 >= pm1) return;
    int C = p->C, npan = (nt + PT_NR - 1) / PT_NR;
    int ldm = npan * PT_NR;
    /* floats per V_xi; one cache line more than the panels, so that the 16 planes written
     * together do not fall into one L1 set (their sizes are multiples of 4 KiB) */
    size_t xs = (size_t)npan * (size_t)C * PT_NR + 16;
    float *V = (float *)pt_workspace(tid, 2, 16 * xs * sizeof(float));
    size_t ms = (size_t)PT_WINO_MC * (size_t)ldm + 16; /* floats per M_xi chunk (as xs) */
    float *Mb = (float *)pt_workspace(tid, 3, 16 * ms * sizeof(float));
    if (!V || !Mb) return;
    /* input transform: tile t0 + rel goes to panel rel / PT_NR, column rel % PT_NR */
    size_t plane = (size_t)d->H * (size_t)d->W;
    for (int c = 0; c < C; c++) {
        const float *xc = j->x + (size_t)c * plane;
        for (int rel = 0; rel < nt;) {
            int t = t0 + rel, th = t / p->TW, tw = t % p->TW;
            int q = rel / PT_NR, r = rel % PT_NR;
            int n = p->TW - tw;
            if (n > nt - rel) n = nt - rel;
            if (n > PT_NR - r) n = PT_NR - r;
            float *v = V + ((size_t)q * (size_t)C + (size_t)c) * PT_NR + r;
            pt_wino_in(p, xc, th, tw, n, v, xs, PT_NR - r);
            rel += n;
        }
    }
    /* zero the unused columns of the last panel (the GEMM reads them) */
    int tail = npan * PT_NR - nt;
    if (tail)
        for (int xi = 0; xi < 16; xi++)
            for (int c = 0; c < C; c++)
                memset(V + (size_t)xi * xs + ((size_t)(npan - 1) * (size_t)C + (size_t)c) * PT_NR +
                           (PT_NR - tail),
                       0, (size_t)tail * sizeof(float));
    for (int pm = pm0; pm < pm1; pm += PT_WINO_MC / PT_MR) {
        int m0 = pm * PT_MR;
        int mc = (pm1 - pm) * PT_MR;
        if (mc > PT_WINO_MC) mc = PT_WINO_MC;
        if (mc > p->M - m0) mc = p->M - m0;
        for (int xi = 0; xi < 16; xi++)
            pt_gemm_pp(mc, nt, C, p->u + (size_t)xi * p->ustride + (size_t)m0 * (size_t)C,
                       V + (size_t)xi * xs, Mb + (size_t)xi * ms, ldm);
        for (int mi = 0; mi < mc; mi++)
            for (int rel = 0; rel < nt;) {
                int t = t0 + rel, th = t / p->TW, tw = t % p->TW;
                int n = p->TW - tw;
                if (n > nt - rel) n = nt - rel;
                if (n > PT_NR) n = PT_NR;
                pt_wino_out(j, m0 + mi, th, tw, n, Mb + (size_t)mi * (size_t)ldm + rel, ms);
                rel += n;
            }
    }
}

void pt_wino_run(const void *prepared, const float *x, float *y, const pt_epilogue *ep) {
    const pt_wino *p = (const pt_wino *)prepared;
    if (!p) return;
    int T = p->TH * p->TW;
    int per = PT_WINO_VBUDGET / (16 * p->C * PT_NR); /* panels per block */
    if (per < 1) per = 1;
    int nblocks = (T + per * PT_NR - 1) / (per * PT_NR);
    int threads = pt_get_threads();
    /* a multiple of the thread count (blocks are evened out over the tiles) */
    if (threads > 1 && T >= threads * PT_NR) nblocks = (nblocks + threads - 1) / threads * threads;
    int mpanels = (p->M + PT_MR - 1) / PT_MR;
    int mgroups = 1;
    if (nblocks < threads) {
        mgroups = (threads + nblocks - 1) / nblocks;
        if (mgroups > mpanels) mgroups = mpanels;
    }
    pt_wino_job j = {p, x, y, ep, nblocks, mgroups};
    pt_parallel_for_tid(nblocks * mgroups, pt_wino_task, &j);
}
