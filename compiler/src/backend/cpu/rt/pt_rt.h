/* pt_rt.h: the petasos C runtime shared by generated models and kernels.
 *
 * Types and conversions (f16/bf16 storage as uint16_t, computed in float), errors, aligned
 * allocation, the weights mapping, a monotonic timer, and the thread-pool API (implemented
 * by pt_threads.c; pt_rt.c has serial weak fallbacks so a model without it still links).
 * C11, no dependency beyond libc/libm (and pthreads for pt_threads.c). */
#ifndef PT_RT_H
#define PT_RT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if defined(__GNUC__) || defined(__clang__)
#define PT_UNUSED __attribute__((unused))
#define PT_WEAK __attribute__((weak))
#else
#define PT_UNUSED
#define PT_WEAK
#endif

/* ---- f16 / bf16 <-> float (round to nearest even; NaN kept quiet) ---- */
static inline float pt_bits2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t pt_f2bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static inline float pt_h2f(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0x1F) return pt_bits2f(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return pt_bits2f(sign);
    /* subnormal: man * 2^-24 */
    float f = (float)man * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  return pt_bits2f(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t pt_f2h(float f) {
  uint32_t u = pt_f2bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return (uint16_t)(sign | 0x7E00u | ((a >> 13) & 0x3FFu));
  if (a >= 0x477FF000u) return (uint16_t)(sign | 0x7C00u); /* overflow (rounds to inf) */
  if (a < 0x38800000u) { /* result is subnormal or zero */
    if (a < 0x33000000u) return sign; /* below half the smallest subnormal */
    uint32_t e = a >> 23, m = (a & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126u - e; /* 14..24 */
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = a - 0x38000000u; /* rebias 127 -> 15 */
  uint32_t m = r >> 13, rem = r & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (m & 1u))) m++;
  return (uint16_t)(sign | m);
}

static inline float pt_bf2f(uint16_t b) { return pt_bits2f((uint32_t)b << 16); }

static inline uint16_t pt_f2bf(float f) {
  uint32_t u = pt_f2bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

/* ---- errors ---- */
/* Sets the message model_last_error() returns (printf format). */
void pt_set_error(const char *fmt, ...);
const char *pt_last_error(void);

/* ---- memory ---- */
/* 64-byte aligned, zeroed; never NULL for 0 bytes unless out of memory. */
void *pt_alloc(size_t bytes);
void pt_free(void *p);

/* A read-only file mapping. */
typedef struct { void *base; size_t len; } pt_mapping;
/* Maps the weights file, checks its header against the size and hash compiled into the
   model; NULL (and pt_set_error) on failure. */
const uint8_t *pt_map_weights(const char *path, uint64_t bytes, uint64_t hash, pt_mapping *m);
void pt_unmap(pt_mapping *m);

/* ---- time ---- */
static inline uint64_t pt_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- threads (pt_threads.c) ---- */
/* A task: called as fn(ctx, i) for each i of a parallel loop. */
typedef void (*pt_task)(void *ctx, int64_t i);
/* Sets the number of threads (>= 1; the caller's thread counts as one). */
void pt_set_threads(int n);
int pt_get_threads(void);
/* Calls fn(ctx, i) for every i in [0, n) spread over the threads; returns when all are
   done. Nested calls run serially on the calling thread. */
void pt_parallel_for(int64_t n, pt_task fn, void *ctx);

#endif
