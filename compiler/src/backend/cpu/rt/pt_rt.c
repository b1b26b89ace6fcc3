/* pt_rt.c: runtime support of generated models: error messages, aligned allocation, the
   weights mapping, and serial fallbacks of the thread-pool API (weak: pt_threads.c, when
   linked, provides the real pool). */
#define _POSIX_C_SOURCE 200809L
#include "pt_rt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char pt_err[512];

void pt_set_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pt_err, sizeof pt_err, fmt, ap);
  va_end(ap);
}

const char *pt_last_error(void) { return pt_err; }

void *pt_alloc(size_t bytes) {
  size_t n = (bytes + 63u) / 64u * 64u;
  if (n == 0) n = 64;
  void *p = NULL;
  if (posix_memalign(&p, 64, n) != 0) return NULL;
  memset(p, 0, n);
  return p;
}

void pt_free(void *p) { free(p); }

static uint64_t pt_le64(const uint8_t *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | b[i];
  return v;
}

const uint8_t *pt_map_weights(const char *path, uint64_t bytes, uint64_t hash, pt_mapping *m) {
  m->base = NULL;
  m->len = 0;
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    pt_set_error("cannot open weights file %s: %s", path, strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != bytes || bytes < 64) {
    pt_set_error("weights file %s has %lld bytes, this model needs %llu (wrong file?)", path,
                 (long long)st.st_size, (unsigned long long)bytes);
    close(fd);
    return NULL;
  }
  void *p = mmap(NULL, (size_t)bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    pt_set_error("cannot map weights file %s: %s", path, strerror(errno));
    return NULL;
  }
  const uint8_t *b = (const uint8_t *)p;
  if (memcmp(b, "PTWGHT01", 8) != 0 || pt_le64(b + 8) != bytes || pt_le64(b + 16) != hash) {
    munmap(p, (size_t)bytes);
    pt_set_error("weights file %s does not belong to this model (header mismatch)", path);
    return NULL;
  }
  m->base = p;
  m->len = (size_t)bytes;
  return b;
}

void pt_unmap(pt_mapping *m) {
  if (m->base) munmap(m->base, m->len);
  m->base = NULL;
  m->len = 0;
}

/* Serial fallbacks of the pool. */
static int pt_serial_threads = 1;
PT_WEAK void pt_set_threads(int n) { pt_serial_threads = n < 1 ? 1 : n; }
PT_WEAK int pt_get_threads(void) { return 1; }
PT_WEAK void pt_parallel_for(int64_t n, pt_task fn, void *ctx) {
  for (int64_t i = 0; i < n; i++) fn(ctx, i);
}
