/* pt_io.h: reading and writing single tensors as TensorProto (.pb) or numpy (.npy) files. */
#ifndef PT_IO_H
#define PT_IO_H

#include <stddef.h>
#include <stdint.h>

#define PT_MAX_RANK 16

/* A tensor read from a file; dtype is the ONNX code. */
typedef struct {
  int dtype;
  int rank;
  int64_t dims[PT_MAX_RANK];
  void *data;   /* 64-byte aligned, `bytes` long (freed by pt_tensor_free) */
  size_t bytes;
  char name[256];
} pt_tensor;

/* Bytes per element of an ONNX dtype code this runtime handles; 0 if unsupported. */
size_t pt_dtype_size(int code);
/* Bits per element of an ONNX dtype code (4 or 2 for the packed sub-byte types); 0 if
   unsupported. */
size_t pt_dtype_bits(int code);
/* Bytes of `n` elements (sub-byte types packed, rounded up). */
size_t pt_dtype_bytes(int code, size_t n);
/* The ONNX name of a dtype code ("float", "int64", ...). */
const char *pt_dtype_name(int code);
/* Reads a .npy (by extension) or .pb file. Returns 0, or non-zero with pt_last_error set. */
int pt_read_tensor(const char *path, pt_tensor *t);
void pt_tensor_free(pt_tensor *t);
/* Writes a tensor atomically (temp file + rename) as .npy (by extension) or .pb. */
int pt_write_tensor(const char *path, const char *name, int dtype, int rank, const int64_t *dims,
                    const void *data);

#endif
