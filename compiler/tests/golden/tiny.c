/* model.c: the model 'tiny' lowered to C by petasos (do not edit).
   2 kernels, arena 128 bytes, scratch 0 bytes, weights 256 bytes. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "pt_rt.h"

#define PT_ARENA_BYTES 128u
#define PT_SCRATCH_BYTES 0u
#define PT_WEIGHTS_BYTES 256u
#define PT_WEIGHTS_HASH UINT64_C(0x1bbab6bec58fd09d)

static uint8_t *pt_arena;
static uint8_t *pt_scratch;
static const uint8_t *pt_weights;
static pt_mapping pt_weights_map;
static const void *const *pt_in;
static void *const *pt_out;

/* Inputs and outputs. */
const int model_num_inputs = 1;
const int model_num_outputs = 2;
static const int64_t pt_input_shape_0[] = {2, 3, 4};
const char *const model_input_names[] = {"x"};
const int model_input_dtypes[] = {1};
const int model_input_ranks[] = {3};
const int64_t *const model_input_shapes[] = {pt_input_shape_0};
const size_t model_input_bytes[] = {96u};
static const int64_t pt_output_shape_0[] = {1, 24};
static const int64_t pt_output_shape_1[] = {2, 3, 4};
const char *const model_output_names[] = {"y", "sum"};
const int model_output_dtypes[] = {1, 1};
const int model_output_ranks[] = {2, 3};
const int64_t *const model_output_shapes[] = {pt_output_shape_0, pt_output_shape_1};
const size_t model_output_bytes[] = {96u, 96u};

/* Kernels. */
const int model_num_kernels = 2;
const char *const model_kernel_names[] = {"k0_Add", "k1_Flatten"};
const char *const model_kernel_ops[] = {"Add+Relu", "Flatten"};
uint64_t model_prof_start_ns[2];
uint64_t model_prof_dur_ns[2];
uint64_t model_prof_total_ns[2];

/* kernel 0: */
/*   Add '/Add' */
/*   + Relu '/Relu' */
static void k0_Add(void) {
  const float *const in0 PT_UNUSED = ((const float *)pt_in[0]); /* x float[2, 3, 4] */
  const float *const in1 PT_UNUSED = ((const float *)(pt_weights + 64)); /* w float[2, 3, 4] */
  float *const out0 PT_UNUSED = ((float *)pt_out[1]); /* add float[2, 3, 4] */
  const float *const n1_in0 PT_UNUSED = ((const float *)pt_out[1]); /* add float[2, 3, 4] */
  float *const n1_out0 PT_UNUSED = ((float *)(pt_arena + 0)); /* relu float[2, 3, 4] */
  /* fused elementwise region: Add -> Relu */
  for (size_t i0 = 0; i0 < 24; i0++) {
    float v0;
    {
      const float x0 = in0[i0];
      const float x1 = in1[i0];
      v0 = (float)(x0 + x1);
    }
    out0[i0] = (float)(v0);
    float v1;
    {
      const float x0 = v0;
      v1 = (float)(x0 > ((float)0.0) ? x0 : ((float)0.0));
    }
    n1_out0[i0] = (float)(v1);
  }
}

/* kernel 1: */
/*   Flatten '/Flatten' */
static void k1_Flatten(void) {
  const float *const in0 PT_UNUSED = ((const float *)(pt_arena + 0)); /* reshape float[6, 4] */
  float *const out0 PT_UNUSED = ((float *)pt_out[0]); /* flatten float[1, 24] */
  memcpy(out0, in0, 96);
}

const char *model_last_error(void) { return pt_last_error(); }

void model_free(void) {
  pt_free(pt_arena);
  pt_arena = NULL;
  pt_free(pt_scratch);
  pt_scratch = NULL;
  pt_unmap(&pt_weights_map);
  pt_weights = NULL;
}

static int pt_init_kernels(void) {
  return 0;
}

int model_init(const char *weights_path) {
  model_free();
  pt_weights = pt_map_weights(weights_path ? weights_path : "weights.bin", PT_WEIGHTS_BYTES,
                              PT_WEIGHTS_HASH, &pt_weights_map);
  if (!pt_weights) return 1;
  pt_arena = (uint8_t *)pt_alloc(PT_ARENA_BYTES);
  pt_scratch = (uint8_t *)pt_alloc(PT_SCRATCH_BYTES);
  if (!pt_arena || !pt_scratch) {
    pt_set_error("out of memory allocating %u arena bytes", (unsigned)PT_ARENA_BYTES);
    model_free();
    return 1;
  }
  if (pt_init_kernels() != 0) {
    if (!pt_last_error()[0]) pt_set_error("kernel initialisation failed");
    model_free();
    return 1;
  }
  return 0;
}

#ifdef PT_PROFILE
#define PT_CALL(k, f) do { uint64_t t0_ = pt_now_ns(); f(); uint64_t d_ = pt_now_ns() - t0_; \
  model_prof_start_ns[k] = t0_; model_prof_dur_ns[k] = d_; model_prof_total_ns[k] += d_; } while (0)
#else
#define PT_CALL(k, f) f()
#endif

int model_run(const void *const *inputs, void *const *outputs) {
  if (!pt_weights) {
    pt_set_error("model_run called before a successful model_init");
    return 1;
  }
  pt_in = inputs;
  pt_out = outputs;
  pt_set_error("%s", ""); /* kernels report bad run-time values (indices, sizes) here */
  PT_CALL(0, k0_Add);
  PT_CALL(1, k1_Flatten);
  pt_in = NULL;
  pt_out = NULL;
  return pt_last_error()[0] ? 1 : 0;
}

const int model_default_threads = 1;
