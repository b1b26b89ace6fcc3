/* pt_io.c: TensorProto (.pb) and numpy (.npy) tensor files for the generated `main`.
   The .pb reader handles dims, data_type, name, raw_data and the typed repeated fields
   (float_data, int32_data, int64_data, double_data, uint64_data; packed or not); external
   data is refused. All writes are atomic (temp file in the same folder, then rename). */
#define _POSIX_C_SOURCE 200809L
#include "pt_io.h"
#include "pt_rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t pt_dtype_size(int code) {
  switch (code) {
    case 1: case 6: case 12: return 4;
    case 7: case 11: case 13: return 8;
    case 10: case 16: case 5: case 4: return 2;
    case 2: case 3: case 9: case 17: case 18: case 19: case 20: case 24: return 1;
    default: return 0;
  }
}

size_t pt_dtype_bits(int code) {
  switch (code) {
    case 21: case 22: case 23: return 4; /* uint4, int4, float4e2m1: two per byte */
    case 25: case 26: return 2;          /* uint2, int2: four per byte */
    default: return 8 * pt_dtype_size(code);
  }
}

size_t pt_dtype_bytes(int code, size_t n) { return (n * pt_dtype_bits(code) + 7) / 8; }

const char *pt_dtype_name(int code) {
  switch (code) {
    case 1: return "float"; case 2: return "uint8"; case 3: return "int8";
    case 4: return "uint16"; case 5: return "int16"; case 6: return "int32";
    case 7: return "int64"; case 9: return "bool"; case 10: return "float16";
    case 11: return "double"; case 12: return "uint32"; case 13: return "uint64";
    case 16: return "bfloat16"; case 17: return "float8e4m3fn"; case 18: return "float8e4m3fnuz";
    case 19: return "float8e5m2"; case 20: return "float8e5m2fnuz"; case 21: return "uint4";
    case 22: return "int4"; case 23: return "float4e2m1"; case 24: return "float8e8m0";
    case 25: return "uint2"; case 26: return "int2"; default: return "unsupported";
  }
}

static int read_file(const char *path, uint8_t **buf, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) { pt_set_error("cannot open %s: %s", path, strerror(errno)); return 1; }
  size_t cap = 1 << 16, n = 0;
  uint8_t *b = (uint8_t *)malloc(cap);
  while (b) {
    size_t r = fread(b + n, 1, cap - n, f);
    n += r;
    if (n < cap) break;
    cap *= 2;
    uint8_t *nb = (uint8_t *)realloc(b, cap);
    if (!nb) { free(b); b = NULL; }
    else b = nb;
  }
  int bad = ferror(f);
  fclose(f);
  if (!b || bad) { free(b); pt_set_error("cannot read %s", path); return 1; }
  *buf = b;
  *len = n;
  return 0;
}

static int64_t numel_of(const pt_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) n *= t->dims[i];
  return n;
}

/* ---- protobuf ---- */
typedef struct { const uint8_t *p, *end; int bad; } pb_cur;

static uint64_t pb_varint(pb_cur *c) {
  uint64_t v = 0;
  for (int s = 0; s < 64; s += 7) {
    if (c->p >= c->end) { c->bad = 1; return 0; }
    uint8_t b = *c->p++;
    v |= (uint64_t)(b & 0x7F) << s;
    if (!(b & 0x80)) return v;
  }
  c->bad = 1;
  return 0;
}

static int pb_skip(pb_cur *c, int wt) {
  switch (wt) {
    case 0: pb_varint(c); break;
    case 1: if (c->end - c->p < 8) c->bad = 1; else c->p += 8; break;
    case 2: { uint64_t n = pb_varint(c); if ((uint64_t)(c->end - c->p) < n) c->bad = 1; else c->p += n; break; }
    case 5: if (c->end - c->p < 4) c->bad = 1; else c->p += 4; break;
    default: c->bad = 1;
  }
  return !c->bad;
}

/* Stores element `i` of the decoded tensor from a 64-bit carrier (integer fields). */
static void put_int(pt_tensor *t, int64_t i, uint64_t v) {
  uint8_t *d = (uint8_t *)t->data;
  size_t w = pt_dtype_size(t->dtype);
  if (t->dtype == 9) v = v != 0;
  memcpy(d + (size_t)i * w, &v, w); /* little-endian hosts: the low bytes */
}

static int parse_pb(const uint8_t *b, size_t len, pt_tensor *t, const char *path) {
  memset(t, 0, sizeof *t);
  t->dtype = 1;
  const uint8_t *raw = NULL;
  size_t raw_len = 0;
  int have_raw = 0;
  /* pass 1: header fields */
  pb_cur c = {b, b + len, 0};
  while (c.p < c.end && !c.bad) {
    uint64_t key = pb_varint(&c);
    int f = (int)(key >> 3), wt = (int)(key & 7);
    if (f == 1 && wt == 0) {
      if (t->rank >= PT_MAX_RANK) { c.bad = 1; break; }
      t->dims[t->rank++] = (int64_t)pb_varint(&c);
    } else if (f == 1 && wt == 2) {
      uint64_t n = pb_varint(&c);
      if ((uint64_t)(c.end - c.p) < n) { c.bad = 1; break; }
      pb_cur s = {c.p, c.p + n, 0};
      while (s.p < s.end && !s.bad) {
        if (t->rank >= PT_MAX_RANK) { s.bad = 1; break; }
        t->dims[t->rank++] = (int64_t)pb_varint(&s);
      }
      c.bad |= s.bad;
      c.p += n;
    } else if (f == 2 && wt == 0) {
      t->dtype = (int)pb_varint(&c);
    } else if ((f == 8 || f == 9) && wt == 2) {
      uint64_t n = pb_varint(&c);
      if ((uint64_t)(c.end - c.p) < n) { c.bad = 1; break; }
      if (f == 8) {
        size_t k = n < sizeof t->name - 1 ? (size_t)n : sizeof t->name - 1;
        memcpy(t->name, c.p, k);
        t->name[k] = 0;
      } else {
        raw = c.p; raw_len = (size_t)n; have_raw = 1;
      }
      c.p += n;
    } else if ((f == 13 && wt == 2) || (f == 14 && wt == 0)) {
      uint64_t v = f == 14 ? pb_varint(&c) : 1;
      if (f == 13 || v == 1) { pt_set_error("%s: external tensor data is not supported", path); return 1; }
    } else if (!pb_skip(&c, wt)) {
      break;
    }
  }
  if (c.bad) { pt_set_error("%s: not a valid TensorProto", path); return 1; }
  size_t w = pt_dtype_size(t->dtype);
  if (!pt_dtype_bits(t->dtype)) { pt_set_error("%s: dtype code %d is not supported", path, t->dtype); return 1; }
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] < 0) { pt_set_error("%s: negative dim", path); return 1; }
  int64_t n = numel_of(t);
  t->bytes = pt_dtype_bytes(t->dtype, (size_t)n);
  t->data = pt_alloc(t->bytes);
  if (!t->data) { pt_set_error("%s: out of memory", path); return 1; }
  if (have_raw) {
    if (raw_len != t->bytes) {
      pt_set_error("%s: raw_data has %zu bytes, shape needs %zu", path, raw_len, t->bytes);
      return 1;
    }
    memcpy(t->data, raw, raw_len);
    return 0;
  }
  /* pass 2: typed repeated fields: one value per entry, except the packed sub-byte types
     whose int32_data entries are the bytes of the packed data */
  if (!w) n = (int64_t)t->bytes;
  int64_t k = 0;
  c.p = b; c.end = b + len; c.bad = 0;
  while (c.p < c.end && !c.bad) {
    uint64_t key = pb_varint(&c);
    int f = (int)(key >> 3), wt = (int)(key & 7);
    int typed = f == 4 || f == 5 || f == 7 || f == 10 || f == 11;
    if (!typed) { if (!pb_skip(&c, wt)) break; continue; }
    const uint8_t *s = c.p, *e = c.end;
    int packed = wt == 2;
    if (packed) {
      uint64_t m = pb_varint(&c);
      if ((uint64_t)(c.end - c.p) < m) { c.bad = 1; break; }
      s = c.p; e = c.p + m; c.p = e;
    }
    pb_cur sc = {s, e, 0};
    pb_cur *cur = packed ? &sc : &c;
    do {
      if (k >= n) { pt_set_error("%s: more values than the shape holds", path); return 1; }
      uint8_t *d = (uint8_t *)t->data;
      if (f == 4) {
        if (cur->end - cur->p < 4) { cur->bad = 1; break; }
        if (t->dtype != 1) { cur->bad = 1; break; }
        memcpy(d + (size_t)k * 4, cur->p, 4); cur->p += 4;
      } else if (f == 10) {
        if (cur->end - cur->p < 8) { cur->bad = 1; break; }
        if (t->dtype != 11) { cur->bad = 1; break; }
        memcpy(d + (size_t)k * 8, cur->p, 8); cur->p += 8;
      } else if (!w) {
        d[k] = (uint8_t)pb_varint(cur);
      } else {
        put_int(t, k, pb_varint(cur));
      }
      k++;
    } while (packed && sc.p < sc.end && !sc.bad);
    c.bad |= sc.bad;
  }
  if (c.bad) { pt_set_error("%s: not a valid TensorProto", path); return 1; }
  if (k != n) { pt_set_error("%s: %lld values, shape needs %lld", path, (long long)k, (long long)n); return 1; }
  return 0;
}

/* ---- npy ---- */
static const struct { const char *d; int code; } npy_types[] = {
  {"f4", 1}, {"f8", 11}, {"f2", 10}, {"i1", 3}, {"i2", 5}, {"i4", 6}, {"i8", 7},
  {"u1", 2}, {"u2", 4}, {"u4", 12}, {"u8", 13}, {"b1", 9},
};

static int parse_npy(const uint8_t *b, size_t len, pt_tensor *t, const char *path) {
  memset(t, 0, sizeof *t);
  if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) { pt_set_error("%s: not a .npy file", path); return 1; }
  size_t hl, start;
  if (b[6] == 1) { hl = (size_t)b[8] | ((size_t)b[9] << 8); start = 10; }
  else if (len >= 12) { hl = (size_t)b[8] | ((size_t)b[9] << 8) | ((size_t)b[10] << 16) | ((size_t)b[11] << 24); start = 12; }
  else { pt_set_error("%s: bad .npy header", path); return 1; }
  if (start + hl > len || hl > 65536) { pt_set_error("%s: truncated .npy header", path); return 1; }
  char h[65537];
  memcpy(h, b + start, hl);
  h[hl] = 0;
  const char *d = strstr(h, "'descr'");
  const char *fo = strstr(h, "'fortran_order'");
  const char *sh = strstr(h, "'shape'");
  if (!d || !sh) { pt_set_error("%s: .npy header lacks descr or shape", path); return 1; }
  if (fo && strstr(fo, "True") && strstr(fo, "True") < fo + 24) { pt_set_error("%s: Fortran-order .npy is not supported", path); return 1; }
  d = strchr(d + 7, '\'');
  if (!d) { pt_set_error("%s: bad descr", path); return 1; }
  d++;
  if (*d == '>') { pt_set_error("%s: big-endian .npy is not supported", path); return 1; }
  if (*d == '<' || *d == '|' || *d == '=') d++;
  t->dtype = 0;
  for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
    if (strncmp(d, npy_types[i].d, 2) == 0 && d[2] == '\'') t->dtype = npy_types[i].code;
  if (!t->dtype) { pt_set_error("%s: .npy dtype is not supported", path); return 1; }
  const char *p = strchr(sh, '(');
  if (!p) { pt_set_error("%s: bad shape", path); return 1; }
  p++;
  while (*p && *p != ')') {
    while (*p == ' ' || *p == ',') p++;
    if (*p == ')') break;
    char *endp;
    long long v = strtoll(p, &endp, 10);
    if (endp == p || v < 0 || t->rank >= PT_MAX_RANK) { pt_set_error("%s: bad shape", path); return 1; }
    t->dims[t->rank++] = v;
    p = endp;
  }
  t->bytes = (size_t)numel_of(t) * pt_dtype_size(t->dtype);
  size_t off = start + hl;
  if (len - off < t->bytes) { pt_set_error("%s: .npy data is truncated", path); return 1; }
  t->data = pt_alloc(t->bytes);
  if (!t->data) { pt_set_error("%s: out of memory", path); return 1; }
  memcpy(t->data, b + off, t->bytes);
  return 0;
}

static int ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

int pt_read_tensor(const char *path, pt_tensor *t) {
  uint8_t *b;
  size_t len;
  memset(t, 0, sizeof *t);
  if (read_file(path, &b, &len)) return 1;
  int r = ends_with(path, ".npy") ? parse_npy(b, len, t, path) : parse_pb(b, len, t, path);
  free(b);
  if (r) pt_tensor_free(t);
  return r;
}

void pt_tensor_free(pt_tensor *t) {
  pt_free(t->data);
  t->data = NULL;
}

/* ---- writing ---- */
typedef struct { uint8_t *b; size_t n, cap; int oom; } buf_t;

static void put(buf_t *o, const void *p, size_t n) {
  if (o->oom) return;
  if (o->n + n > o->cap) {
    size_t cap = (o->cap ? o->cap * 2 : 4096);
    while (cap < o->n + n) cap *= 2;
    uint8_t *nb = (uint8_t *)realloc(o->b, cap);
    if (!nb) { o->oom = 1; return; }
    o->b = nb; o->cap = cap;
  }
  memcpy(o->b + o->n, p, n);
  o->n += n;
}

static void put_varint(buf_t *o, uint64_t v) {
  uint8_t t[10];
  int k = 0;
  do { t[k] = (uint8_t)(v & 0x7F); v >>= 7; if (v) t[k] |= 0x80; k++; } while (v);
  put(o, t, (size_t)k);
}

int pt_write_tensor(const char *path, const char *name, int dtype, int rank, const int64_t *dims,
                    const void *data) {
  size_t n = 1;
  for (int i = 0; i < rank; i++) n *= (size_t)dims[i];
  size_t bytes = pt_dtype_bytes(dtype, n);
  buf_t o = {0};
  if (ends_with(path, ".npy")) {
    const char *descr = NULL;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
      if (npy_types[i].code == dtype) descr = npy_types[i].d;
    if (!descr) { pt_set_error("%s: dtype %s cannot be written as .npy", path, pt_dtype_name(dtype)); return 1; }
    char h[1024];
    int k = snprintf(h, sizeof h, "{'descr': '%c%s', 'fortran_order': False, 'shape': (",
                     (descr[1] == '1') ? '|' : '<', descr);
    for (int i = 0; i < rank && k < 900; i++)
      k += snprintf(h + k, sizeof h - (size_t)k, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (rank == 1) h[k++] = ',';
    k += snprintf(h + k, sizeof h - (size_t)k, "), }");
    while ((10 + k + 1) % 64 != 0) h[k++] = ' ';
    h[k++] = '\n';
    put(&o, "\x93NUMPY\x01\x00", 8);
    uint8_t hl[2] = {(uint8_t)(k & 0xFF), (uint8_t)(k >> 8)};
    put(&o, hl, 2);
    put(&o, h, (size_t)k);
    put(&o, data, bytes);
  } else {
    for (int i = 0; i < rank; i++) { put_varint(&o, 1 << 3); put_varint(&o, (uint64_t)dims[i]); }
    put_varint(&o, 2 << 3);
    put_varint(&o, (uint64_t)dtype);
    size_t nl = strlen(name);
    put_varint(&o, (8 << 3) | 2); put_varint(&o, nl); put(&o, name, nl);
    put_varint(&o, (9 << 3) | 2); put_varint(&o, bytes); put(&o, data, bytes);
  }
  if (o.oom) { free(o.b); pt_set_error("out of memory writing %s", path); return 1; }
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  int ok = f && fwrite(o.b, 1, o.n, f) == o.n;
  if (f && fclose(f) != 0) ok = 0;
  free(o.b);
  if (!ok || rename(tmp, path) != 0) {
    remove(tmp);
    pt_set_error("cannot write %s: %s", path, strerror(errno));
    return 1;
  }
  return 0;
}
