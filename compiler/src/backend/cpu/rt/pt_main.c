/* pt_main.c: the `main` executable of a compiled model.
 *
 *   main [-i FILE]... [-o DIR] [--npy] [--weights FILE] [--threads N]
 *        [--random SEED] [--warmup N] [--runs N] [--profile-dir DIR]
 *
 * Reads one input per graph input (.pb TensorProto or .npy; checked against the model's
 * dtype and shape), or makes seeded random inputs with --random; runs the model --warmup
 * times untimed, then --runs times timed (printing `run_ms=<v>` per run and `median_ms=<v>`
 * last when --runs is given); writes output_N.pb (or .npy with --npy) into DIR. Built with
 * -DPT_PROFILE, --profile-dir DIR writes DIR/trace.json (Chrome trace of the last run) and
 * DIR/ops.csv (mean time per kernel). Exit status: 0 ok, 2 usage or input error, 3 model error. */
#define _POSIX_C_SOURCE 200809L
#include "model.h"
#include "pt_io.h"
#include "pt_rt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void) {
  fprintf(stderr,
          "usage: main [-i FILE]... [-o DIR] [--npy] [--weights FILE] [--threads N]\n"
          "            [--random SEED] [--warmup N] [--runs N] [--profile-dir DIR]\n");
}

static void shape_str(char *b, size_t n, int dtype, int rank, const int64_t *dims) {
  int k = snprintf(b, n, "%s[", pt_dtype_name(dtype));
  for (int i = 0; i < rank && k > 0 && (size_t)k < n; i++)
    k += snprintf(b + k, n - (size_t)k, "%s%lld", i ? "," : "", (long long)dims[i]);
  if (k > 0 && (size_t)k < n) snprintf(b + k, n - (size_t)k, "]");
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Seeded values: floats uniform in [-1, 1), integers in [0, 4), bools 0/1. */
static void fill_random(void *data, int dtype, size_t n, uint64_t *s) {
  for (size_t i = 0; i < n; i++) {
    uint64_t r = splitmix(s);
    float f = (float)((double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    switch (dtype) {
      case 1: ((float *)data)[i] = f; break;
      case 11: ((double *)data)[i] = f; break;
      case 10: ((uint16_t *)data)[i] = pt_f2h(f); break;
      case 16: ((uint16_t *)data)[i] = pt_f2bf(f); break;
      case 9: ((uint8_t *)data)[i] = (uint8_t)(r & 1); break;
      default: {
        uint64_t v = r & 3;
        memcpy((uint8_t *)data + i * pt_dtype_size(dtype), &v, pt_dtype_size(dtype));
      }
    }
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

#ifdef PT_PROFILE
static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20 || c >= 0x7F) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}
#endif

static int write_profile(const char *dir, uint64_t run_start, uint64_t run_dur, int runs,
                         double run_mean_ms) {
#ifdef PT_PROFILE
  char path[4200], tmp[4300];
  /* trace.json */
  snprintf(path, sizeof path, "%s/trace.json", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (!f) { fprintf(stderr, "main: cannot write %s\n", path); return 1; }
  fprintf(f, "{\"traceEvents\":[\n");
  fprintf(f, "{\"name\":\"model_run\",\"cat\":\"run\",\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":0,\"dur\":%.3f}",
          (double)run_dur / 1000.0);
  for (int k = 0; k < model_num_kernels; k++) {
    fprintf(f, ",\n{\"name\":");
    json_str(f, model_kernel_names[k]);
    fprintf(f, ",\"cat\":");
    json_str(f, model_kernel_ops[k]);
    fprintf(f, ",\"ph\":\"X\",\"pid\":1,\"tid\":1,\"ts\":%.3f,\"dur\":%.3f}",
            (double)(model_prof_start_ns[k] - run_start) / 1000.0,
            (double)model_prof_dur_ns[k] / 1000.0);
  }
  fprintf(f, "\n],\"displayTimeUnit\":\"ms\"}\n");
  if (fclose(f) != 0 || rename(tmp, path) != 0) { fprintf(stderr, "main: cannot write %s\n", path); return 1; }
  /* ops.csv */
  snprintf(path, sizeof path, "%s/ops.csv", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  f = fopen(tmp, "w");
  if (!f) { fprintf(stderr, "main: cannot write %s\n", path); return 1; }
  fprintf(f, "kernel,op,mean_ms,percent\n");
  double sum = 0;
  for (int k = 0; k < model_num_kernels; k++) sum += (double)model_prof_total_ns[k];
  for (int k = 0; k < model_num_kernels; k++) {
    double ms = (double)model_prof_total_ns[k] / 1e6 / runs;
    fprintf(f, "%s,%s,%.6f,%.2f\n", model_kernel_names[k], model_kernel_ops[k], ms,
            sum > 0 ? 100.0 * (double)model_prof_total_ns[k] / sum : 0.0);
  }
  if (fclose(f) != 0 || rename(tmp, path) != 0) { fprintf(stderr, "main: cannot write %s\n", path); return 1; }
  printf("profile_sum_ms=%.6f\nprofile_run_ms=%.6f\n", sum / 1e6 / runs, run_mean_ms);
  return 0;
#else
  (void)run_start; (void)run_dur; (void)runs; (void)run_mean_ms;
  fprintf(stderr, "main: --profile-dir %s: this executable was built without profiling (compile with --profile)\n", dir);
  return 1;
#endif
}

int main(int argc, char **argv) {
  /* Sizes come from the model's tables, not model.h's macros, so this file compiles once
     for every model (the conformance run caches its object). */
  const int NI = model_num_inputs, NO = model_num_outputs;
  const char **ins = (const char **)calloc((size_t)NI + 1, sizeof *ins);
  void **in_data = (void **)calloc((size_t)NI + 1, sizeof *in_data);
  void **out_data = (void **)calloc((size_t)NO + 1, sizeof *out_data);
  pt_tensor *tens = (pt_tensor *)calloc((size_t)NI + 1, sizeof *tens);
  if (!ins || !in_data || !out_data || !tens) { fprintf(stderr, "main: out of memory\n"); return 2; }
  int nin = 0, npy = 0, threads = model_default_threads, warmup = 0, runs = -1, random = 0;
  uint64_t seed = 0;
  const char *outdir = NULL, *weights = NULL, *profdir = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if ((!strcmp(a, "-i") || !strcmp(a, "--input")) && v) {
      if (nin >= NI) {
        fprintf(stderr, "main: the model takes %d inputs, more were given\n", NI);
        return 2;
      }
      ins[nin++] = v; i++;
    } else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && v) { outdir = v; i++; }
    else if (!strcmp(a, "--npy")) npy = 1;
    else if (!strcmp(a, "--weights") && v) { weights = v; i++; }
    else if (!strcmp(a, "--threads") && v) { threads = atoi(v); i++; }
    else if (!strcmp(a, "--warmup") && v) { warmup = atoi(v); i++; }
    else if (!strcmp(a, "--runs") && v) { runs = atoi(v); i++; }
    else if (!strcmp(a, "--random") && v) { random = 1; seed = strtoull(v, NULL, 10); i++; }
    else if (!strcmp(a, "--profile-dir") && v) { profdir = v; i++; }
    else { usage(); return 2; }
  }
  if (!random && nin != NI) {
    fprintf(stderr, "main: the model takes %d inputs, %d given with -i\n", NI, nin);
    return 2;
  }
  char wpath[4200];
  if (!weights) {
    const char *slash = strrchr(argv[0], '/');
    if (slash) snprintf(wpath, sizeof wpath, "%.*s/weights.bin", (int)(slash - argv[0]), argv[0]);
    else snprintf(wpath, sizeof wpath, "weights.bin");
    weights = wpath;
  }
  int status = 0;
  uint64_t rs = seed;
  for (int i = 0; i < NI; i++) {
    in_data[i] = NULL;
    char want[512], got[512];
    shape_str(want, sizeof want, model_input_dtypes[i], model_input_ranks[i], model_input_shapes[i]);
    if (random) {
      in_data[i] = pt_alloc(model_input_bytes[i]);
      if (!in_data[i]) { fprintf(stderr, "main: out of memory\n"); return 2; }
      fill_random(in_data[i], model_input_dtypes[i],
                  model_input_bytes[i] / (pt_dtype_size(model_input_dtypes[i]) ? pt_dtype_size(model_input_dtypes[i]) : 1), &rs);
      continue;
    }
    if (pt_read_tensor(ins[i], &tens[i])) {
      fprintf(stderr, "main: input %d '%s': %s\n", i, model_input_names[i], pt_last_error());
      return 2;
    }
    int ok = tens[i].dtype == model_input_dtypes[i] && tens[i].rank == model_input_ranks[i];
    for (int d = 0; ok && d < tens[i].rank; d++) ok = tens[i].dims[d] == model_input_shapes[i][d];
    if (!ok) {
      shape_str(got, sizeof got, tens[i].dtype, tens[i].rank, tens[i].dims);
      fprintf(stderr, "main: input %d '%s' must be %s, got %s (%s)\n", i, model_input_names[i], want, got, ins[i]);
      return 2;
    }
    in_data[i] = tens[i].data;
  }
  for (int i = 0; i < NO; i++) {
    out_data[i] = pt_alloc(model_output_bytes[i]);
    if (!out_data[i]) { fprintf(stderr, "main: out of memory\n"); return 2; }
  }
  pt_set_threads(threads < 1 ? 1 : threads);
  if (model_init(weights) != 0) {
    fprintf(stderr, "main: %s\n", model_last_error());
    return 3;
  }
  for (int r = 0; r < warmup; r++) {
    if (model_run((const void *const *)in_data, (void *const *)out_data) != 0) {
      fprintf(stderr, "main: %s\n", model_last_error());
      return 3;
    }
  }
  int n = runs < 1 ? 1 : runs;
  double *ms = (double *)malloc(sizeof(double) * (size_t)n);
  if (!ms) { fprintf(stderr, "main: out of memory\n"); return 2; }
  for (int k = 0; k < model_num_kernels; k++) model_prof_total_ns[k] = 0;
  uint64_t last_start = 0, last_dur = 0;
  double total = 0;
  for (int r = 0; r < n; r++) {
    uint64_t t0 = pt_now_ns();
    if (model_run((const void *const *)in_data, (void *const *)out_data) != 0) {
      fprintf(stderr, "main: %s\n", model_last_error());
      return 3;
    }
    uint64_t t1 = pt_now_ns();
    last_start = t0;
    last_dur = t1 - t0;
    ms[r] = (double)(t1 - t0) / 1e6;
    total += ms[r];
    if (runs > 0) printf("run_ms=%.6f\n", ms[r]);
  }
  if (outdir) {
    for (int i = 0; i < NO; i++) {
      char p[4200];
      snprintf(p, sizeof p, "%s/output_%d.%s", outdir, i, npy ? "npy" : "pb");
      if (pt_write_tensor(p, model_output_names[i], model_output_dtypes[i], model_output_ranks[i],
                          model_output_shapes[i], out_data[i]) != 0) {
        fprintf(stderr, "main: %s\n", pt_last_error());
        status = 2;
        break;
      }
    }
  }
  if (profdir && status == 0 && write_profile(profdir, last_start, last_dur, n, total / n) != 0) status = 2;
  if (runs > 0) {
    qsort(ms, (size_t)n, sizeof(double), cmp_double);
    double med = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
    printf("median_ms=%.6f\n", med);
  }
  free(ms);
  model_free();
  for (int i = 0; i < NO; i++) pt_free(out_data[i]);
  for (int i = 0; i < NI; i++) {
    if (random) pt_free(in_data[i]);
    else pt_tensor_free(&tens[i]);
  }
  free(ins); free(in_data); free(out_data); free(tens);
  return status;
}
