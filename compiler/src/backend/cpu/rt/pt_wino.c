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
 * are fewer than threads, into ranges of output channels. A task copies each input channel's
 * rows of its block zero-padded, transforms them (vector loads deinterleaved into even / odd
 * columns) straight into the packed-B layout of the GEMM micro-kernel (V[xi][panel][c][tile],
 * planes a cache line apart from a 4 KiB multiple so that they do not share L1 sets), then,
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
#ifndef PT_WINO_MC
#define PT_WINO_MC (PT_MR * 8)
#endif
/* Fewest 2x2 output tiles per image for Winograd: with fewer, each transformed weight (16/9
 * the size of the direct one) is used too rarely and its memory traffic dominates. */
#ifndef PT_WINO_MIN_TILES
#define PT_WINO_MIN_TILES 40
#endif
/* Floats of transformed input per block aimed at (L2 share). */
#ifndef PT_WINO_VBUDGET
#define PT_WINO_VBUDGET (96 * 1024)
#endif

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

/* Input transform of the tiles [tw, tw + n) of tile row th (n <= PT_NR) from the zero-padded
 * input rows rows[0..3] (padded column 0 = input column -PL; wide enough for whole-vector
 * reads past the segment), written at V + k for the k-th tile, `xs` floats between the 16
 * transformed planes; `room` floats from V + 0 may be written (what lies past the n tiles is
 * rewritten later, by the next segment or the panel's tail zeroing). The 4 columns of tile k
 * are the even and odd columns at 2 (tw + k) and 2 (tw + k) + 2 of each row: deinterleaved
 * from unit-stride vector loads where the compiler has vector shuffles. */
static void pt_wino_in(const float *const rows[4], int tw, int n, float *V, size_t xs, int room) {
#ifndef PT_HAVE_DEINT
    float E[4][PT_NR + 1 + PT_VL], O[4][PT_NR + 1 + PT_VL];
    for (int i = 0; i < 4; i++)
        for (int q = 0; q <= n; q++) {
            E[i][q] = rows[i][2 * (tw + q)];
            O[i][q] = rows[i][2 * (tw + q) + 1];
        }
#endif
    for (int k = 0; k < n; k += PT_VL) {
        pt_vf u[4][4];
        for (int i = 0; i < 4; i++) { /* d B (columns) */
#ifdef PT_HAVE_DEINT
            const float *s = rows[i] + 2 * (tw + k);
            pt_vf a = PT_VLOAD(s), b = PT_VLOAD(s + PT_VL);
            pt_vf c = PT_VLOAD(s + 2), e = PT_VLOAD(s + 2 + PT_VL);
            pt_vf e0 = PT_EVEN(a, b), o0 = PT_ODD(a, b), e1 = PT_EVEN(c, e), o1 = PT_ODD(c, e);
#else
            pt_vf e0 = PT_VLOAD(E[i] + k), o0 = PT_VLOAD(O[i] + k);
            pt_vf e1 = PT_VLOAD(E[i] + k + 1), o1 = PT_VLOAD(O[i] + k + 1);
#endif
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
    float o[2][2 * PT_NR + 2 * PT_VL];
#ifdef PT_HAVE_DEINT
    /* whole vectors of tiles (lanes past n read the next row or the plane's padding, never
     * stored), the even and odd output columns interleaved with vector shuffles */
    for (int k = 0; k < n; k += PT_VL) {
        pt_vf r[2][4];
        for (int c = 0; c < 4; c++) { /* A^T (rows) */
            pt_vf m0 = PT_VLOAD(mrow + (size_t)(0 + c) * ms + k);
            pt_vf m1 = PT_VLOAD(mrow + (size_t)(4 + c) * ms + k);
            pt_vf m2 = PT_VLOAD(mrow + (size_t)(8 + c) * ms + k);
            pt_vf m3 = PT_VLOAD(mrow + (size_t)(12 + c) * ms + k);
            r[0][c] = m0 + m1 + m2;
            r[1][c] = m1 - m2 - m3;
        }
        for (int a = 0; a < 2; a++) { /* A (columns) */
            pt_vf ev = r[a][0] + r[a][1] + r[a][2], od = r[a][1] - r[a][2] - r[a][3];
            PT_VSTORE(o[a] + 2 * k, PT_ZIPLO(ev, od));
            PT_VSTORE(o[a] + 2 * k + PT_VL, PT_ZIPHI(ev, od));
        }
    }
#else
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
#endif
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
    /* zero-padded input rows of the block's tile rows: padded row r0 + i at pad + i * Wb */
    int r0 = 2 * (t0 / p->TW), nr = 2 * ((t1 - 1) / p->TW) + 4 - r0;
    int Wb = 2 * p->TW + 2 * PT_VL + 2;
    float *pad = (float *)pt_workspace(tid, 0, (size_t)nr * (size_t)Wb * sizeof(float));
    if (!pad) return;
    int wcopy = d->W < Wb - d->PL ? d->W : Wb - d->PL;
    for (int c = 0; c < C; c++) {
        const float *xc = j->x + (size_t)c * plane;
        for (int i = 0; i < nr; i++) {
            float *pr = pad + (size_t)i * (size_t)Wb;
            int ih = r0 + i - d->PT;
            if (ih < 0 || ih >= d->H) {
                memset(pr, 0, (size_t)Wb * sizeof(float));
                continue;
            }
            memset(pr, 0, (size_t)d->PL * sizeof(float));
            memcpy(pr + d->PL, xc + (size_t)ih * (size_t)d->W, (size_t)wcopy * sizeof(float));
            memset(pr + d->PL + wcopy, 0, (size_t)(Wb - d->PL - wcopy) * sizeof(float));
        }
        for (int rel = 0; rel < nt;) {
            int t = t0 + rel, th = t / p->TW, tw = t % p->TW;
            int q = rel / PT_NR, r = rel % PT_NR;
            int n = p->TW - tw;
            if (n > nt - rel) n = nt - rel;
            if (n > PT_NR - r) n = PT_NR - r;
            float *v = V + ((size_t)q * (size_t)C + (size_t)c) * PT_NR + r;
            const float *rows[4];
            for (int i = 0; i < 4; i++) rows[i] = pad + (size_t)(2 * th - r0 + i) * (size_t)Wb;
            pt_wino_in(rows, tw, n, v, xs, PT_NR - r);
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
