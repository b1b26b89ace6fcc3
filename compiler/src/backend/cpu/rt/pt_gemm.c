/* pt_gemm.c: packed, cache-blocked fp32 GEMM (the engine of conv and matmul) and epilogues.
 *
 * C = A * B is computed in register tiles of PT_MR rows x PT_NR columns by a micro-kernel that
 * broadcasts A (packed in PT_MR-row panels) and loads B (packed in PT_NR-column panels) as
 * vectors, keeping the tile in PT_MR * PT_NRV vector accumulators. Blocking: a KC-deep slice of
 * an A panel stays in L1 while the micro-kernel walks the NC-wide packed B block held in L2.
 * The epilogue (bias, residual, activation) is applied to a tile when its last K block is
 * done; full tiles with at most a clamp are stored straight from the accumulators. Work is
 * split over NC-wide column blocks (with threads: blocks even in vectors) and, when those
 * cannot go evenly to the threads, over row ranges. pt_gemm_rows is the single-thread variant
 * for A panels of fewer rows, prefetching the next B slice (the swapped-operand convolution). */
#define PT_KERNELS_INTERNAL
#include "pt_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#ifndef PT_KC
#define PT_KC 256
#endif
#ifndef PT_PF_LOC
#define PT_PF_LOC 2
#endif
#ifndef PT_KC_ROWS
#define PT_KC_ROWS (PT_KC * 2)
#endif
#ifndef PT_NC
#define PT_NC (PT_NR * 10)
#endif
/* Floats ahead of the current A step that the micro-kernel prefetches. */
#ifndef PT_A_PREFETCH
#define PT_A_PREFETCH (PT_MR * 64)
#endif

/* ------------------------------------------------------------------ epilogue */

float pt_act_apply(const pt_epilogue *ep, float v) {
    switch (ep ? ep->act : PT_ACT_NONE) {
    case PT_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case PT_ACT_CLIP: return v < ep->lo ? ep->lo : (v > ep->hi ? ep->hi : v);
    case PT_ACT_LEAKY_RELU: return v >= 0.0f ? v : ep->lo * v;
    case PT_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case PT_ACT_HARDSIGMOID: {
        float t = ep->lo * v + ep->hi;
        return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    }
    case PT_ACT_HARDSWISH: {
        float t = v / 6.0f + 0.5f;
        return v * (t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t));
    }
    case PT_ACT_TANH: return tanhf(v);
    default: return v;
    }
}

void pt_epilogue_row(const pt_epilogue *ep, int row, float *y, const float *res, int n) {
    if (!ep) return;
    float b = ep->bias ? ep->bias[row] : 0.0f;
    if (res) {
        for (int i = 0; i < n; i++) y[i] += b + res[i];
    } else if (b != 0.0f) {
        for (int i = 0; i < n; i++) y[i] += b;
    }
    switch (ep->act) {
    case PT_ACT_NONE: break;
    case PT_ACT_RELU:
        for (int i = 0; i < n; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        break;
    case PT_ACT_CLIP: {
        float lo = ep->lo, hi = ep->hi;
        for (int i = 0; i < n; i++) y[i] = y[i] < lo ? lo : (y[i] > hi ? hi : y[i]);
        break;
    }
    default:
        for (int i = 0; i < n; i++) y[i] = pt_act_apply(ep, y[i]);
    }
}

/* ------------------------------------------------------------------ packing A */

size_t pt_gemm_packed_a_floats(int M, int K) {
    size_t panels = (size_t)((M + PT_MR - 1) / PT_MR);
    return panels * (size_t)(K > 0 ? K : 1) * PT_MR;
}

void pt_gemm_pack_a_into(int M, int K, const float *A, int lda, int transA, float *dst) {
    for (int p0 = 0; p0 < M; p0 += PT_MR) {
        int mr = M - p0 < PT_MR ? M - p0 : PT_MR;
        float *d = dst + (size_t)p0 * (size_t)K;
        for (int k = 0; k < K; k++) {
            for (int r = 0; r < mr; r++) {
                size_t i = (size_t)(p0 + r), kk = (size_t)k;
                d[(size_t)k * PT_MR + r] = transA ? A[kk * (size_t)lda + i] : A[i * (size_t)lda + kk];
            }
            for (int r = mr; r < PT_MR; r++) d[(size_t)k * PT_MR + r] = 0.0f;
        }
    }
}

/* ------------------------------------------------------------------ micro-kernel */

/* One C tile: rows [row, row + mv) and columns [col, col + nv) of C, at c (= &C[row][col]). */
typedef struct {
    float *c;
    int ldc, row, col, mv, nv, first, last;
    const pt_epilogue *ep;
    size_t bs; /* floats between successive k steps of B (PT_NR when packed) */
    const float *pf; /* or NULL: lines to prefetch into L2 while the tile runs, from pf on */
    size_t pfstep;   /* lines per k step, 16.16 fixed point */
} pt_tile;

/* Stores the accumulated tile acc[PT_MR][nrv] (row stride PT_NRV) into C with the epilogue. */
static void pt_store_tile(const pt_vf *acc, int nrv, const pt_tile *t) {
    const pt_epilogue *ep = t->last ? t->ep : NULL;
    int act = ep ? ep->act : PT_ACT_NONE;
    int fast_act = act == PT_ACT_NONE || act == PT_ACT_RELU || act == PT_ACT_CLIP;
    for (int i = 0; i < t->mv; i++) {
        float *c = t->c + (size_t)i * (size_t)t->ldc;
        const float *res =
            ep && ep->residual ? ep->residual + (size_t)(t->row + i) * (size_t)t->ldc + t->col : NULL;
        pt_vf bias = PT_SPLAT(ep && ep->bias ? ep->bias[t->row + i] : 0.0f);
        for (int j = 0; j < nrv; j++) {
            pt_vf v = acc[i * PT_NRV + j];
            int n = t->nv - j * PT_VL;
            if (n > PT_VL) n = PT_VL;
            if (n <= 0) break;
            float *cj = c + j * PT_VL;
            if (n == PT_VL) {
                if (!t->first) v += *(const pt_vfu *)cj;
                if (ep) {
                    v += bias;
                    if (res) v += *(const pt_vfu *)(res + j * PT_VL);
                    if (act == PT_ACT_RELU) v = pt_vmax(v, PT_SPLAT(0.0f));
                    else if (act == PT_ACT_CLIP)
                        v = pt_vmin(pt_vmax(v, PT_SPLAT(ep->lo)), PT_SPLAT(ep->hi));
                }
                *(pt_vfu *)cj = v;
            } else {
                float tmp[PT_VL];
                memcpy(tmp, &v, sizeof tmp);
                if (!t->first)
                    for (int l = 0; l < n; l++) tmp[l] += cj[l];
                if (ep) {
                    float b = ep->bias ? ep->bias[t->row + i] : 0.0f;
                    for (int l = 0; l < n; l++) {
                        float x = tmp[l] + b + (res ? res[j * PT_VL + l] : 0.0f);
                        tmp[l] = fast_act ? pt_act_apply(ep, x) : x;
                    }
                }
                memcpy(cj, tmp, (size_t)n * sizeof(float));
            }
        }
        if (ep && !fast_act)
            for (int l = 0; l < t->nv; l++) c[l] = pt_act_apply(ep, c[l]);
    }
}

#define PT_Z PT_VZERO
#define PT_LDB(j) (nrv > (j) ? (pt_vf)PT_VLOAD(b + (j) * PT_VL) : PT_Z) /* B may be unpacked */
#define PT_ROW(i)                                                                          \
    if (mr > (i)) {                                                                        \
        float ai = a[i];                                                                   \
        c##i##0 += b0 * ai;                                                                \
        if (nrv > 1) c##i##1 += b1 * ai;                                                   \
        if (nrv > 2) c##i##2 += b2 * ai;                                                   \
        if (nrv > 3) c##i##3 += b3 * ai;                                                   \
    }
#define PT_DECL(i) pt_vf c##i##0 = PT_Z, c##i##1 = PT_Z, c##i##2 = PT_Z, c##i##3 = PT_Z;
#define PT_SAVE(i)                                                                         \
    if (mr > (i)) {                                                                        \
        acc[(i) * PT_NRV + 0] = c##i##0;                                                   \
        if (nrv > 1) acc[(i) * PT_NRV + 1] = c##i##1;                                      \
        if (nrv > 2) acc[(i) * PT_NRV + 2] = c##i##2;                                      \
        if (nrv > 3) acc[(i) * PT_NRV + 3] = c##i##3;                                      \
    }

/* One vector of a full tile's row: accumulate onto C unless the first K block, then bias,
 * residual and clamp when the epilogue is due (ep set), then store. */
#define PT_FAST_V(i, j)                                                                    \
    {                                                                                      \
        pt_vf v = c##i##j;                                                                 \
        float *cp = c + (size_t)(i) * ldc + (j) * PT_VL;                                   \
        if (!first) v += PT_VLOAD(cp);                                                     \
        if (ep) {                                                                          \
            v += bi;                                                                       \
            if (res) v += PT_VLOAD(res + (size_t)(i) * ldc + (j) * PT_VL);                 \
            if (clamp) {                                                                   \
                v = pt_vmax(v, act == PT_ACT_CLIP ? lo : PT_VZERO);                        \
                if (act == PT_ACT_CLIP) v = pt_vmin(v, hi);                                \
            }                                                                              \
        }                                                                                  \
        PT_VSTORE(cp, v);                                                                  \
    }
#define PT_FAST_ROW(i)                                                                     \
    if (mr > (i)) {                                                                        \
        pt_vf bi = PT_SPLAT(bias ? bias[i] : 0.0f);                                        \
        (void)bi;                                                                          \
        PT_FAST_V(i, 0)                                                                    \
        if (nrv > 1) PT_FAST_V(i, 1)                                                       \
        if (nrv > 2) PT_FAST_V(i, 2)                                                       \
        if (nrv > 3) PT_FAST_V(i, 3)                                                       \
    }

#if PT_NRV > 4 || PT_MR > 8
#error "micro-kernel supports at most 8 rows and 4 vectors"
#endif

/* kc steps of the rank-1 update of an mr x (nrv * PT_VL) tile (mr <= PT_MR); a: mr floats per
 * step, b: nrv vectors per step, t->bs floats apart (unaligned loads). */
static inline __attribute__((always_inline)) void pt_ukr_mn(const int mr, const int nrv, int kc,
                                                            const float *restrict a,
                                                            const float *restrict b,
                                                            const pt_tile *t) {
    const size_t bs = t->bs;
    PT_DECL(0) PT_DECL(1) PT_DECL(2) PT_DECL(3) PT_DECL(4) PT_DECL(5) PT_DECL(6) PT_DECL(7)
    const float *pf = t->pf;
    size_t pacc = 0, pstep = t->pfstep;
    (void)pf, (void)pacc, (void)pstep;
    for (int k = 0; k < kc; k++) {
#ifndef PT_NO_PREFETCH
        if (pf) { /* the caller's next operand slice, spread over the tiles that precede it */
            __builtin_prefetch(pf + (pacc >> 16) * 16, 0, PT_PF_LOC);
            pacc += pstep;
        } else { /* the A panel streams from L3 when few B columns reuse it: fetch ahead */
            __builtin_prefetch(a + PT_A_PREFETCH / PT_MR * mr, 0, 3);
        }
#endif
        pt_vf b0 = PT_LDB(0), b1 = PT_LDB(1), b2 = PT_LDB(2), b3 = PT_LDB(3);
        (void)b1; (void)b2; (void)b3;
        PT_ROW(0) PT_ROW(1) PT_ROW(2) PT_ROW(3) PT_ROW(4) PT_ROW(5) PT_ROW(6) PT_ROW(7)
        a += mr;
        b += bs;
    }
    const pt_epilogue *ep = t->last ? t->ep : NULL;
    int act = ep ? ep->act : PT_ACT_NONE;
    if (t->mv == mr && t->nv == nrv * PT_VL &&
        (act == PT_ACT_NONE || act == PT_ACT_RELU || act == PT_ACT_CLIP)) {
        /* a full tile with at most a clamp: stored straight from the registers */
        const size_t ldc = (size_t)t->ldc;
        const int first = t->first, clamp = act != PT_ACT_NONE;
        const float *bias = ep && ep->bias ? ep->bias + t->row : NULL;
        const float *res = ep && ep->residual
                               ? ep->residual + (size_t)t->row * ldc + (size_t)t->col
                               : NULL;
        const pt_vf lo = PT_SPLAT(act == PT_ACT_CLIP ? ep->lo : 0.0f);
        const pt_vf hi = PT_SPLAT(act == PT_ACT_CLIP ? ep->hi : 0.0f);
        float *c = t->c;
        (void)lo, (void)hi;
        PT_FAST_ROW(0) PT_FAST_ROW(1) PT_FAST_ROW(2) PT_FAST_ROW(3) PT_FAST_ROW(4)
        PT_FAST_ROW(5) PT_FAST_ROW(6) PT_FAST_ROW(7)
        return;
    }
    pt_vf acc[PT_MR * PT_NRV];
    PT_SAVE(0) PT_SAVE(1) PT_SAVE(2) PT_SAVE(3) PT_SAVE(4) PT_SAVE(5) PT_SAVE(6) PT_SAVE(7)
    pt_store_tile(acc, nrv, t);
}

#define pt_ukr(nrv, kc, a, b, t) pt_ukr_mn(PT_MR, nrv, kc, a, b, t)

static void pt_ukr_1(int kc, const float *a, const float *b, const pt_tile *t) { pt_ukr(1, kc, a, b, t); }
#if PT_NRV >= 2
static void pt_ukr_2(int kc, const float *a, const float *b, const pt_tile *t) { pt_ukr(2, kc, a, b, t); }
#endif
#if PT_NRV >= 3
static void pt_ukr_3(int kc, const float *a, const float *b, const pt_tile *t) { pt_ukr(3, kc, a, b, t); }
#endif
#if PT_NRV >= 4
static void pt_ukr_4(int kc, const float *a, const float *b, const pt_tile *t) { pt_ukr(4, kc, a, b, t); }
#endif

static void pt_ukr_n(int nrv, int kc, const float *a, const float *b, const pt_tile *t) {
    switch (nrv) {
#if PT_NRV >= 4
    case 4: pt_ukr_4(kc, a, b, t); break;
#endif
#if PT_NRV >= 3
    case 3: pt_ukr_3(kc, a, b, t); break;
#endif
#if PT_NRV >= 2
    case 2: pt_ukr_2(kc, a, b, t); break;
#endif
    default: pt_ukr_1(kc, a, b, t); break;
    }
}

/* ------------------------------------------------------------------ driver */

typedef struct {
    int M, N, K, kc_max, nc, nblocks, mchunks, mpanels;
    int even; /* column blocks split evenly in vectors (else nc wide, the last shorter) */
    const float *apacked;
    pt_pack_b_fn pack_b;
    const void *bctx;
    float *C;
    int ldc;
    const pt_epilogue *ep;
    const float *bdirect; /* B row-major (ldb) read in place for full panels, or NULL */
    int ldb;
} pt_gemm_job;

static void pt_gemm_task(void *vctx, int task, int tid) {
    const pt_gemm_job *j = (const pt_gemm_job *)vctx;
    int nb = task % j->nblocks, mc = task / j->nblocks;
    int n0 = nb * j->nc;
    int nc = j->N - n0 < j->nc ? j->N - n0 : j->nc;
    if (j->even) { /* blocks even in whole vectors: the threads get equal work */
        long nvec = (j->N + PT_VL - 1) / PT_VL;
        long v0 = nvec * nb / j->nblocks, v1 = nvec * (nb + 1) / j->nblocks;
        n0 = (int)(v0 * PT_VL);
        nc = (int)(v1 * PT_VL < j->N ? v1 * PT_VL : j->N) - n0;
    }
    int p_lo = (int)((long)j->mpanels * mc / j->mchunks);
    int p_hi = (int)((long)j->mpanels * (mc + 1) / j->mchunks);
    if (nc <= 0 || p_lo >= p_hi) return;
    int npanels = (nc + PT_NR - 1) / PT_NR;
    float *bbuf = (float *)pt_workspace(tid, 0, (size_t)npanels * (size_t)j->kc_max * PT_NR * sizeof(float));
    if (!bbuf) return;
    int K = j->K;
    int kblocks = K > 0 ? (K + j->kc_max - 1) / j->kc_max : 1;
    for (int kb = 0; kb < kblocks; kb++) {
        /* even split of K into kblocks pieces */
        int k0 = (int)((long)K * kb / kblocks), k1 = (int)((long)K * (kb + 1) / kblocks);
        int kc = k1 - k0;
        if (kc > 0 && !j->bdirect) j->pack_b(j->bctx, k0, kc, n0, nc, bbuf);
        if (kc > 0 && j->bdirect && nc % PT_NR)
            j->pack_b(j->bctx, k0, kc, n0 + nc / PT_NR * PT_NR, nc % PT_NR, bbuf);
        for (int p = p_lo; p < p_hi; p++) {
            int row = p * PT_MR;
            int mv = j->M - row < PT_MR ? j->M - row : PT_MR;
            const float *a = j->apacked + (size_t)p * (size_t)(K > 0 ? K : 1) * PT_MR + (size_t)k0 * PT_MR;
            for (int q = 0; q < npanels; q++) {
                int col = n0 + q * PT_NR;
                int nv = j->N - col < PT_NR ? j->N - col : PT_NR;
                if (nv > nc - q * PT_NR) nv = nc - q * PT_NR;
                pt_tile t = {j->C + (size_t)row * (size_t)j->ldc + col, j->ldc, row, col, mv, nv,
                             kb == 0, kb == kblocks - 1, j->ep, PT_NR, NULL, 0};
                int nrv = (nv + PT_VL - 1) / PT_VL;
                const float *b = bbuf + (size_t)q * (size_t)kc * PT_NR;
                if (j->bdirect && nv == PT_NR) { /* full panel: B read in place */
                    b = j->bdirect + (size_t)k0 * (size_t)j->ldb + (size_t)col;
                    t.bs = (size_t)j->ldb;
                } else if (j->bdirect) {
                    b = bbuf; /* the short last panel, packed alone */
                }
                pt_ukr_n(nrv, kc, a, b, &t);
            }
        }
    }
}

void pt_gemm_pp(int M, int N, int K, const float *apacked, const float *bpacked, float *C,
                int ldc) {
    if (M <= 0 || N <= 0) return;
    int kblocks = K > 0 ? (K + PT_KC - 1) / PT_KC : 1;
    int mpanels = (M + PT_MR - 1) / PT_MR, npanels = (N + PT_NR - 1) / PT_NR;
    size_t ka = (size_t)(K > 0 ? K : 1);
    for (int kb = 0; kb < kblocks; kb++) {
        int k0 = (int)((long)K * kb / kblocks), k1 = (int)((long)K * (kb + 1) / kblocks);
        int kc = k1 - k0;
        for (int p = 0; p < mpanels; p++) {
            int row = p * PT_MR;
            int mv = M - row < PT_MR ? M - row : PT_MR;
            const float *a = apacked + (size_t)p * ka * PT_MR + (size_t)k0 * PT_MR;
            for (int q = 0; q < npanels; q++) {
                int col = q * PT_NR;
                int nv = N - col < PT_NR ? N - col : PT_NR;
                pt_tile t = {C + (size_t)row * (size_t)ldc + col, ldc, row, col, mv, nv,
                             kb == 0, kb == kblocks - 1, NULL, PT_NR, NULL, 0};
                pt_ukr_n((nv + PT_VL - 1) / PT_VL, kc, a,
                         bpacked + (size_t)q * ka * PT_NR + (size_t)k0 * PT_NR, &t);
            }
        }
    }
}

/* The micro-kernel for A panels of mr rows (PT_MR - 3 <= mr <= PT_MR), any nrv. */
#define PT_NRV_CAP(n) ((n) <= PT_NRV ? (n) : PT_NRV)
#define PT_UKR_ROWS(name, mr)                                                              \
    static void name(int nrv, int kc, const float *a, const float *b, const pt_tile *t) {  \
        switch (nrv) {                                                                     \
        case 4: pt_ukr_mn(mr, PT_NRV_CAP(4), kc, a, b, t); break;                          \
        case 3: pt_ukr_mn(mr, PT_NRV_CAP(3), kc, a, b, t); break;                          \
        case 2: pt_ukr_mn(mr, PT_NRV_CAP(2), kc, a, b, t); break;                          \
        default: pt_ukr_mn(mr, 1, kc, a, b, t); break;                                     \
        }                                                                                  \
    }
PT_UKR_ROWS(pt_ukr_r1, PT_MR - 1)
#if PT_MR > 2
PT_UKR_ROWS(pt_ukr_r2, PT_MR - 2)
#endif
#if PT_MR > 3
PT_UKR_ROWS(pt_ukr_r3, PT_MR - 3)
#endif

static void pt_ukr_rows(int mr, int nrv, int kc, const float *a, const float *b,
                        const pt_tile *t) {
    switch (PT_MR - mr) {
    case 1: pt_ukr_r1(nrv, kc, a, b, t); break;
#if PT_MR > 2
    case 2: pt_ukr_r2(nrv, kc, a, b, t); break;
#endif
#if PT_MR > 3
    case 3: pt_ukr_r3(nrv, kc, a, b, t); break;
#endif
    default: pt_ukr_n(nrv, kc, a, b, t); break;
    }
}

int pt_gemm_rows_min(void) { return PT_MR > 3 ? PT_MR - 3 : 1; }

void pt_gemm_rows(int M, int mr, int c0, int c1, int K, const float *apacked,
                  const float *bpacked, float *C, int ldc) {
    if (M <= 0 || c1 <= c0 || mr < pt_gemm_rows_min() || mr > PT_MR) return;
    int kblocks = K > 0 ? (K + PT_KC_ROWS - 1) / PT_KC_ROWS : 1;
    int mpanels = (M + mr - 1) / mr;
    size_t ka = (size_t)(K > 0 ? K : 1);
    for (int kb = 0; kb < kblocks; kb++) {
        int k0 = (int)((long)K * kb / kblocks), k1 = (int)((long)K * (kb + 1) / kblocks);
        int kc = k1 - k0;
        for (int c = c0; c < c1;) {
            int q = c / PT_NR, off = c % PT_NR;
            int nv = PT_NR - off < c1 - c ? PT_NR - off : c1 - c;
            const float *b = bpacked + (size_t)q * ka * PT_NR + (size_t)k0 * PT_NR + (size_t)off;
            /* the next B slice (next column panel, or the first of the next K block) streams
             * from memory: the tiles of this slice prefetch it, each a share of its lines */
            const float *nb = NULL;
            size_t nlines = 0;
            if (c + nv < c1) {
                nb = bpacked + (size_t)(q + 1) * ka * PT_NR + (size_t)k0 * PT_NR;
                nlines = (size_t)kc * PT_NR / 16;
            } else if (kb + 1 < kblocks) {
                int n0 = (int)((long)K * (kb + 2) / kblocks);
                nb = bpacked + (size_t)(c0 / PT_NR) * ka * PT_NR + (size_t)k1 * PT_NR;
                nlines = (size_t)(n0 - k1) * PT_NR / 16;
            }
            size_t share = (nlines + (size_t)mpanels - 1) / (size_t)mpanels;
            for (int p = 0; p < mpanels; p++) {
                int row = p * mr;
                int mv = M - row < mr ? M - row : mr;
                const float *a = apacked + (size_t)p * ka * (size_t)mr + (size_t)k0 * (size_t)mr;
                pt_tile t = {C + (size_t)row * (size_t)ldc + c, ldc, row, c, mv, nv,
                             kb == 0, kb == kblocks - 1, NULL, PT_NR, NULL, 0};
                if (nb && kc > 0 && (size_t)p * share < nlines) {
                    size_t mine = nlines - (size_t)p * share < share ? nlines - (size_t)p * share : share;
                    t.pf = nb + (size_t)p * share * 16;
                    t.pfstep = (mine << 16) / (size_t)kc;
                }
                pt_ukr_rows(mr, (nv + PT_VL - 1) / PT_VL, kc, a, b, &t);
            }
            c += nv;
        }
    }
}

void pt_gemm_run(int M, int N, int K, const float *apacked, pt_pack_b_fn pack_b, const void *bctx,
                 float *C, int ldc, const pt_epilogue *ep) {
    pt_gemm_run_b(M, N, K, apacked, pack_b, bctx, NULL, 0, C, ldc, ep);
}

void pt_gemm_run_b(int M, int N, int K, const float *apacked, pt_pack_b_fn pack_b,
                   const void *bctx, const float *bdirect, int ldb, float *C, int ldc,
                   const pt_epilogue *ep) {
    if (M <= 0 || N <= 0) return;
    int T = pt_get_threads();
    pt_gemm_job j;
    j.M = M;
    j.N = N;
    j.K = K;
    j.kc_max = PT_KC;
    j.mpanels = (M + PT_MR - 1) / PT_MR;
    /* column blocks: at most PT_NC wide; with threads, a multiple of T of them when N allows,
     * evened out. When few blocks still leave the threads unequal work (a count not a multiple
     * of T, or a short last block), the rows are split too (each row chunk packs its own B
     * block; with many blocks the dynamic claiming balances and B is packed once). */
    int npan = (N + PT_NR - 1) / PT_NR;
    int maxp = PT_NC / PT_NR;
    int nb = (npan + maxp - 1) / maxp;
    if (T > 1) nb = (nb + T - 1) / T * T;
    if (nb > npan) nb = npan;
    int per = (npan + nb - 1) / nb;
    j.nc = per * PT_NR;
    j.nblocks = (N + j.nc - 1) / j.nc;
    j.mchunks = 1;
    j.even = 0;
    if (T > 1) {
        /* nb blocks even in vectors (a block's short tail tile costs less than a thread
         * idling for a panel); the rows are split too when the blocks cannot go evenly to
         * the threads (each row chunk packs its own B block) */
        int nvec = (N + PT_VL - 1) / PT_VL;
        j.even = 1;
        j.nblocks = nb < nvec ? nb : nvec;
        if (j.nblocks < 4 * T && j.nblocks % T != 0) {
            j.mchunks = T;
            if (j.mchunks > j.mpanels) j.mchunks = j.mpanels;
        }
    }
    j.apacked = apacked;
    j.pack_b = pack_b;
    j.bctx = bctx;
    j.C = C;
    j.ldc = ldc;
    j.ep = ep;
    j.bdirect = bdirect;
    j.ldb = ldb;
    pt_parallel_for_tid(j.nblocks * j.mchunks, pt_gemm_task, &j);
}

/* ------------------------------------------------------------------ plain GEMM */

typedef struct {
    const float *B;
    int ldb, transB;
} pt_mat_b;

static void pt_pack_b_mat(const void *vctx, int k0, int kc, int n0, int nc, float *dst) {
    const pt_mat_b *m = (const pt_mat_b *)vctx;
    size_t ldb = (size_t)m->ldb;
    for (int q = 0; q * PT_NR < nc; q++) {
        int w = nc - q * PT_NR < PT_NR ? nc - q * PT_NR : PT_NR;
        float *d = dst + (size_t)q * (size_t)kc * PT_NR;
        int c0 = n0 + q * PT_NR;
        if (!m->transB) {
            for (int k = 0; k < kc; k++) {
                const float *s = m->B + (size_t)(k0 + k) * ldb + c0;
                float *dk = d + (size_t)k * PT_NR;
                memcpy(dk, s, (size_t)w * sizeof(float));
                for (int r = w; r < PT_NR; r++) dk[r] = 0.0f;
            }
        } else {
            for (int r = 0; r < w; r++) {
                const float *s = m->B + (size_t)(c0 + r) * ldb + k0;
                for (int k = 0; k < kc; k++) d[(size_t)k * PT_NR + r] = s[k];
            }
            for (int k = 0; k < kc; k++)
                for (int r = w; r < PT_NR; r++) d[(size_t)k * PT_NR + r] = 0.0f;
        }
    }
}

typedef struct {
    int M, K;
    float data[];
} pt_packed_a;

void *pt_sgemm_pack_a(int M, int K, const float *A, int lda, int transA) {
    if (M < 0 || K < 0) return NULL;
    size_t n = pt_gemm_packed_a_floats(M, K);
    size_t bytes = sizeof(pt_packed_a) + n * sizeof(float);
    pt_packed_a *p = (pt_packed_a *)aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!p) return NULL;
    p->M = M;
    p->K = K;
    pt_gemm_pack_a_into(M, K, A, lda, transA, p->data);
    return p;
}

void pt_packed_free(void *packed) { free(packed); }

/* Row vector times matrix: C[1 x N] (M == 1); no packing. Columns are split into chunks
 * over the threads (the matrix streams from memory once). */
typedef struct {
    int N, K, lda, transA, ldb, transB;
    const float *A, *B;
    float *C;
    const pt_epilogue *ep;
    int chunk;
} pt_gemv_job;

static void pt_gemv_task(void *vctx, int task, int tid) {
    (void)tid;
    const pt_gemv_job *j = (const pt_gemv_job *)vctx;
    int n0 = task * j->chunk, n1 = n0 + j->chunk < j->N ? n0 + j->chunk : j->N;
    int K = j->K;
    const float *A = j->A, *B = j->B;
    float *C = j->C;
    size_t sa = j->transA ? (size_t)j->lda : 1;
    if (j->transB) {
        for (int n = n0; n < n1; n++) {
            const float *b = B + (size_t)n * (size_t)j->ldb;
            float s = 0.0f;
            int k = 0;
            if (sa == 1) {
                pt_vf acc0 = PT_VZERO, acc1 = PT_VZERO;
                for (; k + 2 * PT_VL <= K; k += 2 * PT_VL) {
                    acc0 += PT_VLOAD(A + k) * PT_VLOAD(b + k);
                    acc1 += PT_VLOAD(A + k + PT_VL) * PT_VLOAD(b + k + PT_VL);
                }
                acc0 += acc1;
                float part[PT_VL];
                memcpy(part, &acc0, sizeof part);
                for (int l = 0; l < PT_VL; l++) s += part[l];
            }
            for (; k < K; k++) s += A[(size_t)k * sa] * b[k];
            C[n] = s;
        }
    } else {
        for (int n = n0; n < n1; n++) C[n] = 0.0f;
        for (int k = 0; k < K; k++) {
            float a = A[(size_t)k * sa];
            const float *b = B + (size_t)k * (size_t)j->ldb;
            for (int n = n0; n < n1; n++) C[n] += a * b[n];
        }
    }
    const pt_epilogue *ep = j->ep;
    pt_epilogue_row(ep, 0, C + n0, ep && ep->residual ? ep->residual + n0 : NULL, n1 - n0);
}

static void pt_gemv(int N, int K, const float *A, int lda, int transA, const float *B, int ldb,
                    int transB, float *C, const pt_epilogue *ep) {
    int T = pt_get_threads();
    int chunk = N;
    if (T > 1 && N >= 64 * T) chunk = (N + 4 * T - 1) / (4 * T);
    pt_gemv_job j = {N, K, lda, transA, ldb, transB, A, B, C, ep, chunk};
    pt_parallel_for_tid((N + chunk - 1) / chunk, pt_gemv_task, &j);
}

void pt_sgemm_packed(const void *packed_a, int N, const float *B, int ldb, int transB, float *C,
                     int ldc, const pt_epilogue *ep) {
    const pt_packed_a *p = (const pt_packed_a *)packed_a;
    pt_mat_b mb = {B, ldb, transB};
    pt_gemm_run(p->M, N, p->K, p->data, pt_pack_b_mat, &mb, C, ldc, ep);
}

void pt_sgemm(int M, int N, int K, const float *A, int lda, int transA, const float *B, int ldb,
              int transB, float *C, int ldc, const pt_epilogue *ep) {
    if (M <= 0 || N <= 0) return;
    if (M == 1) {
        pt_gemv(N, K, A, lda, transA, B, ldb, transB, C, ep);
        return;
    }
    float *ap = (float *)pt_workspace(0, 1, pt_gemm_packed_a_floats(M, K) * sizeof(float));
    if (!ap) return;
    pt_gemm_pack_a_into(M, K, A, lda, transA, ap);
    pt_mat_b mb = {B, ldb, transB};
    pt_gemm_run(M, N, K, ap, pt_pack_b_mat, &mb, C, ldc, ep);
}
