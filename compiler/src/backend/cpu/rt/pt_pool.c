/* pt_pool.c: 2-D max / average pooling and global pooling over NCHW planes.
 *
 * Each (image, channel) plane is a task: it is copied once into a padded, stride-phase-split
 * buffer (padding = -inf for max, 0 for average) so that every window tap is a contiguous
 * vector load along the output row. Average divisors are separable (taps inside along H times
 * taps inside along W) and computed once per call. */
#define PT_KERNELS_INTERNAL
#include "pt_kernels.h"

#include <math.h>
#include <string.h>

#define PT_MAX_TAPS_W 32

typedef struct {
    const pt_pool2d_desc *d;
    const float *x;
    float *y;
    int is_max, Hp, Wq;
    const float *inv_h, *inv_w; /* average: 1 / taps counted along H (per oh), W (per ow) */
} pt_pool_job;

static void pt_pool_task(void *vctx, int task, int tid) {
    const pt_pool_job *j = (const pt_pool_job *)vctx;
    const pt_pool2d_desc *d = j->d;
    int SW = d->SW, Wq = j->Wq, Hp = j->Hp;
    size_t rowf = (size_t)SW * (size_t)Wq;
    float *buf = (float *)pt_workspace(tid, 2, (size_t)Hp * rowf * sizeof(float));
    if (!buf) return;
    float padv = j->is_max ? -INFINITY : 0.0f;
    const float *xp = j->x + (size_t)task * (size_t)d->H * (size_t)d->W;
    for (int r = 0; r < Hp; r++) {
        float *br = buf + (size_t)r * rowf;
        int ih = r - d->PT;
        if (ih < 0 || ih >= d->H) {
            for (size_t i = 0; i < rowf; i++) br[i] = padv;
            continue;
        }
        const float *src = xp + (size_t)ih * (size_t)d->W;
        for (int ph = 0; ph < SW; ph++)
            pt_strided_copy(br + (size_t)ph * (size_t)Wq, Wq, src, d->W, SW, ph - d->PL, padv);
    }
    int KH = d->KH, KW = d->KW, OW = d->OW;
    float *yo = j->y + (size_t)task * (size_t)d->OH * (size_t)OW;
    /* offset of tap (kh, kw) from the row start of output oh (kh part added per row) */
    size_t taps[PT_MAX_TAPS_W];
    int tabled = KW <= PT_MAX_TAPS_W;
    for (int kw = 0; kw < KW && tabled; kw++) {
        int p = kw * d->DW;
        taps[kw] = (size_t)(p % SW) * (size_t)Wq + (size_t)(p / SW);
    }
    for (int oh = 0; oh < d->OH; oh++) {
        float *yr = yo + (size_t)oh * (size_t)OW;
        /* whole vectors; the last may run past OW into the buffer's slop and is cut on store */
        for (int ow = 0; ow < OW; ow += PT_VL) {
            pt_vf acc = PT_VZERO + padv;
            for (int kh = 0; kh < KH; kh++) {
                const float *br = buf + (size_t)(oh * d->SH + kh * d->DH) * rowf + ow;
                for (int kw = 0; kw < KW; kw++) {
                    int p = kw * d->DW;
                    size_t off = tabled ? taps[kw] : (size_t)(p % SW) * (size_t)Wq + (size_t)(p / SW);
                    pt_vf v = PT_VLOAD(br + off);
                    if (j->is_max) acc = pt_vmax(v, acc);
                    else acc += v;
                }
            }
            if (!j->is_max) acc *= PT_VLOAD(j->inv_w + ow) * j->inv_h[oh];
            if (ow + PT_VL <= OW) PT_VSTORE(yr + ow, acc);
            else memcpy(yr + ow, &acc, (size_t)(OW - ow) * sizeof(float));
        }
    }
}

/* 1 / number of taps of output position o along one axis that count for the average. */
static void pt_pool_inv(int O, int S, int K, int D, int P0, int I, int P1, int include_pad,
                        float *inv) {
    for (int o = 0; o < O; o++) {
        int cnt = 0;
        for (int k = 0; k < K; k++) {
            int p = o * S + k * D; /* padded coordinate */
            if (include_pad ? p < I + P0 + P1 : (p >= P0 && p < P0 + I)) cnt++;
        }
        inv[o] = cnt > 0 ? 1.0f / (float)cnt : NAN;
    }
}

static void pt_pool_run(const pt_pool2d_desc *d, const float *x, float *y, int is_max) {
    if (d->N < 1 || d->C < 1 || d->OH < 1 || d->OW < 1 || d->SW < 1 || d->SH < 1) return;
    pt_pool_job j;
    j.d = d;
    j.x = x;
    j.y = y;
    j.is_max = is_max;
    j.Hp = (d->OH - 1) * d->SH + (d->KH - 1) * d->DH + 1;
    if (j.Hp < d->PT + d->H) j.Hp = d->PT + d->H;
    int wp = (d->OW - 1) * d->SW + (d->KW - 1) * d->DW + 1;
    if (wp < d->PL + d->W) wp = d->PL + d->W;
    j.Wq = (wp + d->SW - 1) / d->SW + 2 * PT_VL;
    j.inv_h = j.inv_w = NULL;
    if (!is_max) {
        float *inv = (float *)pt_workspace(0, 3, (size_t)(d->OH + d->OW + 2 * PT_VL) * sizeof(float));
        if (!inv) return;
        pt_pool_inv(d->OH, d->SH, d->KH, d->DH, d->PT, d->H, d->PB, d->count_include_pad, inv);
        pt_pool_inv(d->OW, d->SW, d->KW, d->DW, d->PL, d->W, d->PR, d->count_include_pad,
                    inv + d->OH);
        j.inv_h = inv;
        j.inv_w = inv + d->OH;
    }
    pt_parallel_for_tid(d->N * d->C, pt_pool_task, &j);
}

void pt_maxpool2d(const pt_pool2d_desc *d, const float *x, float *y) { pt_pool_run(d, x, y, 1); }
void pt_avgpool2d(const pt_pool2d_desc *d, const float *x, float *y) { pt_pool_run(d, x, y, 0); }

void pt_global_avgpool(int NC, int HW, const float *x, float *y) {
    for (int i = 0; i < NC; i++) {
        const float *r = x + (size_t)i * (size_t)HW;
        float part[16] = {0};
        int k = 0;
        for (; k + 16 <= HW; k += 16)
            for (int l = 0; l < 16; l++) part[l] += r[k + l];
        float s = 0.0f;
        for (; k < HW; k++) s += r[k];
        for (int l = 0; l < 16; l++) s += part[l];
        y[i] = HW > 0 ? s / (float)HW : NAN;
    }
}

void pt_global_maxpool(int NC, int HW, const float *x, float *y) {
    for (int i = 0; i < NC; i++) {
        const float *r = x + (size_t)i * (size_t)HW;
        float m = -INFINITY;
        for (int k = 0; k < HW; k++) m = r[k] > m ? r[k] : m;
        y[i] = m;
    }
}
