//! The C emitter: lowers every kernel of a [`Schedule`] through the registry and writes
//! `model.c` (kernel functions, init/run/free, I/O tables) and `model.h` (the C API).
//!
//! Output is a pure function of the graph and the schedule (no timestamps, no hash-map
//! iteration order), so compiling twice gives identical text.

use super::lower::{
    comment, ctype, node_label, op_key, storage_ctype, CTensor, KernelCode, LowerCx, LowerError,
    Registry,
};
use super::sanitize::{c_string, Namer};
use super::schedule::{Loc, Schedule};
use super::specialise::Frozen;
use super::weights::Blob;
use petasos_ir::graph::{Graph, ValueRef};
use petasos_ir::DType;
use std::collections::BTreeSet;
use std::fmt::Write;

/// Constants up to this many elements are decoded into [`CTensor::constant`].
const CONST_VALUES_LIMIT: usize = 1 << 16;

/// The generated sources.
#[derive(Debug, Clone)]
pub struct Generated {
    pub model_c: String,
    pub model_h: String,
    /// Runtime files the kernels need (besides the always-built core).
    pub rt: BTreeSet<&'static str>,
    /// Per kernel: (C function name, op types joined by `+`, anchor node name).
    pub kernels: Vec<(String, String, String)>,
    pub scratch_bytes: u64,
}

/// A value's C pointer expression for its location.
fn addr(loc: Loc, ct: &str, is_input: bool, blob: &Blob) -> String {
    let q = if is_input { "const " } else { "" };
    match loc {
        Loc::Input(i) => format!("((const {ct} *)pt_in[{i}])"),
        Loc::Output(i) => format!("(({q}{ct} *)pt_out[{i}])"),
        Loc::Arena(o) => format!("(({q}{ct} *)(pt_arena + {o}))"),
        Loc::Weight(j) => format!(
            "((const {ct} *)(pt_weights + {}))",
            blob.offsets.get(j).copied().unwrap_or(0)
        ),
    }
}

/// The tensor of value `v` for a lowering, or an error naming the unsupported dtype
/// (`exotic`: the kernel handles minifloat and sub-byte dtypes).
#[allow(clippy::too_many_arguments)]
fn tensor(
    g: &Graph,
    sched: &Schedule,
    blob: &Blob,
    v: ValueRef,
    local: String,
    is_input: bool,
    exotic: bool,
    fail: &dyn Fn(String) -> LowerError,
) -> Result<CTensor, LowerError> {
    let val =
        g.g.node_weight(v.node)
            .and_then(|n| n.outputs.get(v.out))
            .ok_or_else(|| fail("internal: dangling value".into()))?;
    let dtype = val.ty.dtype;
    let ct = if exotic {
        storage_ctype(dtype)
    } else {
        ctype(dtype)
    }
    .ok_or_else(|| fail(format!("dtype {dtype} of value '{}'", comment(&val.name))))?;
    let shape: Vec<usize> = val
        .ty
        .shape
        .as_ref()
        .and_then(|s| s.iter().map(|d| d.known().map(|x| x as usize)).collect())
        .ok_or_else(|| fail(format!("value '{}' has no static shape", val.name)))?;
    let loc = *sched
        .loc
        .get(&v)
        .ok_or_else(|| fail(format!("internal: value '{}' has no location", val.name)))?;
    let c = g.constant(v.node);
    let constant = match c {
        Some(c) if c.numel() <= CONST_VALUES_LIMIT => c.to_tensor().ok(),
        _ => None,
    };
    Ok(CTensor {
        expr: local,
        addr: addr(loc, ct, is_input, blob),
        dtype,
        shape,
        constant,
        is_const: c.is_some(),
        name: val.name.clone(),
    })
}

/// Lowers all kernels and writes the sources.
pub fn generate(
    g: &Graph,
    sched: &Schedule,
    reg: &Registry,
    blob: &Blob,
    threads: usize,
    frozen: &[Frozen],
) -> Result<Generated, LowerError> {
    let mut namer = Namer::new();
    for r in [
        "pt_arena",
        "pt_scratch",
        "pt_weights",
        "pt_in",
        "pt_out",
        "model_init",
        "model_run",
        "model_free",
    ] {
        namer.reserve(r);
    }
    let mut funcs = String::new();
    let mut globals = String::new();
    let mut init = String::new();
    let mut free = String::new();
    let mut rt: BTreeSet<&'static str> = BTreeSet::new();
    let mut scratch = 0u64;
    let mut kernels = Vec::new();
    for (k, ker) in sched.kernels.iter().enumerate() {
        let anchor = &g.g[ker.nodes[0]];
        let key = op_key(anchor);
        let label = node_label(anchor);
        let fail_unsup = |what: String| LowerError::Unsupported {
            op: key.clone(),
            node: label.clone(),
            what,
        };
        let f = reg.lowering(&key).ok_or_else(|| LowerError::NoLowering {
            op: key.clone(),
            node: label.clone(),
        })?;
        let exotic = reg.handles_exotic(&key);
        let mut ins = Vec::new();
        let mut outs = Vec::new();
        let mut header = String::new();
        let mut locals = String::new();
        for (j, &n) in ker.nodes.iter().enumerate() {
            let node = &g.g[n];
            let pre = if j == 0 {
                String::new()
            } else {
                format!("n{j}_")
            };
            let _ = writeln!(
                header,
                "/*   {}{} '{}'{} */",
                if j == 0 { "" } else { "+ " },
                comment(&op_key(node)),
                comment(&node_label(node)),
                if node.provenance.layer_path.is_empty() {
                    String::new()
                } else {
                    format!(" at {}", comment(&node.provenance.layer_path))
                }
            );
            let mut node_ins = Vec::new();
            for (i, v) in g.node_inputs(n).into_iter().enumerate() {
                let Some(v) = v else {
                    node_ins.push(None);
                    continue;
                };
                let local = format!("{pre}in{i}");
                let t = tensor(g, sched, blob, v, local.clone(), true, exotic, &fail_unsup)?;
                let _ = writeln!(
                    locals,
                    "  const {} *const {local} PT_UNUSED = {}; /* {} {}{:?} */",
                    t.ctype(),
                    t.addr,
                    comment(&t.name),
                    t.dtype,
                    t.shape
                );
                node_ins.push(Some(t));
            }
            let mut node_outs = Vec::new();
            for i in 0..node.outputs.len() {
                let v = ValueRef { node: n, out: i };
                let local = format!("{pre}out{i}");
                let t = tensor(g, sched, blob, v, local.clone(), false, exotic, &fail_unsup)?;
                let _ = writeln!(
                    locals,
                    "  {} *const {local} PT_UNUSED = {}; /* {} {}{:?} */",
                    t.ctype(),
                    t.addr,
                    comment(&t.name),
                    t.dtype,
                    t.shape
                );
                node_outs.push(t);
            }
            ins.push(node_ins);
            outs.push(node_outs);
        }
        let fn_name = namer.ident(&format!("k{k}_"), &label);
        let mut cx = LowerCx::new(g, ker.nodes.clone(), ins, outs, fn_name.clone(), &mut namer);
        f(&mut cx)?;
        let code: KernelCode = cx.finish();
        let ops: Vec<String> = ker.nodes.iter().map(|&n| op_key(&g.g[n])).collect();
        let _ = writeln!(
            funcs,
            "/* kernel {k}: */\n{header}static void {fn_name}(void) {{"
        );
        funcs.push_str(&locals);
        funcs.push_str(&code.body);
        funcs.push_str("}\n\n");
        globals.push_str(&code.globals);
        if !code.init.is_empty() {
            let _ = write!(init, "  {{ /* {fn_name} */\n{}  }}\n", code.init);
        }
        free.push_str(&code.free);
        rt.extend(code.rt.iter().copied());
        scratch = scratch.max(code.scratch);
        kernels.push((fn_name, ops.join("+"), label));
    }
    let model_h = header_file(g)?;
    let mut model_c = source_file(
        g, sched, blob, &funcs, &globals, &init, &free, &rt, &kernels, scratch, frozen,
    )?;
    let _ = writeln!(
        model_c,
        "\nconst int model_default_threads = {};",
        threads.max(1)
    );
    Ok(Generated {
        model_c,
        model_h,
        rt,
        kernels,
        scratch_bytes: scratch,
    })
}

/// Name, dtype and static shape of a graph input or output.
type IoValue = (String, DType, Vec<usize>);

/// Name, dtype and static shape of each graph input and output.
fn io_values(g: &Graph) -> (Vec<IoValue>, Vec<IoValue>) {
    let shape = |t: &petasos_ir::ValueType| -> Vec<usize> {
        t.shape
            .as_ref()
            .map(|s| s.iter().map(|d| d.known().unwrap_or(0) as usize).collect())
            .unwrap_or_default()
    };
    let ins = g
        .inputs
        .iter()
        .map(|&n| {
            let v = &g.g[n].outputs[0];
            (v.name.clone(), v.ty.dtype, shape(&v.ty))
        })
        .collect();
    let outs = g
        .outputs
        .iter()
        .map(|o| {
            let t = g.value_type(o.value);
            (
                o.name.clone(),
                t.map_or(DType::F32, |t| t.dtype),
                t.map(shape).unwrap_or_default(),
            )
        })
        .collect();
    (ins, outs)
}

/// `model.h`: the C API.
fn header_file(g: &Graph) -> Result<String, LowerError> {
    let (ins, outs) = io_values(g);
    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* model.h: C API of the compiled model '{}' (generated by petasos; do not edit). */",
        comment(&g.name)
    );
    h.push_str(
        "#ifndef PT_MODEL_H\n#define PT_MODEL_H\n#include <stddef.h>\n#include <stdint.h>\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n",
    );
    let _ = writeln!(h, "#define MODEL_NUM_INPUTS {}", ins.len());
    let _ = writeln!(h, "#define MODEL_NUM_OUTPUTS {}", outs.len());
    h.push_str("/* The same counts as variables (for code compiled once for every model). */\nextern const int model_num_inputs;\nextern const int model_num_outputs;\n");
    h.push_str(
        r#"
/* Maps the weights file (NULL: "weights.bin" in the working folder) and prepares the kernels.
   Returns 0 on success; otherwise model_last_error() says why. */
int model_init(const char *weights_path);
/* Runs the model: inputs[i] points to input i (row-major, the dtype and shape of the tables
   below), outputs[i] to a caller buffer of output i's size. Buffers must not overlap.
   Not reentrant: one run at a time. Returns 0 on success. */
int model_run(const void *const *inputs, void *const *outputs);
/* Releases everything model_init acquired. */
void model_free(void);
/* The last error message (empty when none). */
const char *model_last_error(void);

/* Inputs and outputs: names, ONNX dtype codes (1 float, 11 double, 10 float16, 16 bfloat16,
   3 int8, 5 int16, 6 int32, 7 int64, 2 uint8, 4 uint16, 12 uint32, 13 uint64, 9 bool),
   ranks, shapes, sizes in bytes. */
extern const char *const model_input_names[];
extern const int model_input_dtypes[];
extern const int model_input_ranks[];
extern const int64_t *const model_input_shapes[];
extern const size_t model_input_bytes[];
extern const char *const model_output_names[];
extern const int model_output_dtypes[];
extern const int model_output_ranks[];
extern const int64_t *const model_output_shapes[];
extern const size_t model_output_bytes[];

/* Kernels (for profiles): count, C function names, op types; with -DPT_PROFILE, model_run
   records each kernel's start and duration of the last run (ns) and the sum over runs. */
extern const int model_num_kernels;
/* The thread count `main` uses unless told otherwise (petasos compile --threads). */
extern const int model_default_threads;
extern const char *const model_kernel_names[];
extern const char *const model_kernel_ops[];
extern uint64_t model_prof_start_ns[];
extern uint64_t model_prof_dur_ns[];
extern uint64_t model_prof_total_ns[];

#ifdef __cplusplus
}
#endif
#endif
"#,
    );
    Ok(h)
}

/// Appends the line `DECL[] = {ITEMS};` to `c`: a C array of `items`, or `{0}` for an empty
/// list (C forbids empty initialisers).
fn c_array(c: &mut String, decl: &str, items: &[String]) {
    let body = if items.is_empty() {
        "0".to_string()
    } else {
        items.join(", ")
    };
    let _ = writeln!(c, "{decl}[] = {{{body}}};");
}

/// `model.c`.
#[allow(clippy::too_many_arguments)]
fn source_file(
    g: &Graph,
    sched: &Schedule,
    blob: &Blob,
    funcs: &str,
    globals: &str,
    init: &str,
    free: &str,
    rt: &BTreeSet<&'static str>,
    kernels: &[(String, String, String)],
    scratch: u64,
    frozen: &[Frozen],
) -> Result<String, LowerError> {
    let (ins, outs) = io_values(g);
    let mut c = String::new();
    let _ = writeln!(
        c,
        "/* model.c: the model '{}' lowered to C by petasos (do not edit).\n   {} kernels, arena {} bytes, scratch {} bytes, weights {} bytes. */",
        comment(&g.name),
        kernels.len(),
        sched.plan.arena_bytes,
        scratch,
        blob.bytes.len()
    );
    c.push_str("#include <math.h>\n#include <stdint.h>\n#include <stdlib.h>\n#include <string.h>\n#include \"model.h\"\n#include \"pt_rt.h\"\n");
    for f in rt.iter().filter(|f| f.ends_with(".h")) {
        let _ = writeln!(c, "#include \"{f}\"");
    }
    let _ = writeln!(c, "\n#define PT_ARENA_BYTES {}u", sched.plan.arena_bytes);
    let _ = writeln!(c, "#define PT_SCRATCH_BYTES {scratch}u");
    let _ = writeln!(c, "#define PT_WEIGHTS_BYTES {}u", blob.bytes.len());
    let _ = writeln!(c, "#define PT_WEIGHTS_HASH UINT64_C(0x{:016x})", blob.hash);
    c.push_str(
        "\nstatic uint8_t *pt_arena;\nstatic uint8_t *pt_scratch;\nstatic const uint8_t *pt_weights;\nstatic pt_mapping pt_weights_map;\nstatic const void *const *pt_in;\nstatic void *const *pt_out;\n",
    );
    c.push_str("\n/* Inputs and outputs. */\n");
    let _ = writeln!(
        c,
        "const int model_num_inputs = {};\nconst int model_num_outputs = {};",
        ins.len(),
        outs.len()
    );
    for (what, vals) in [("input", &ins), ("output", &outs)] {
        let mut shapes = Vec::new();
        for (i, (_, _, s)) in vals.iter().enumerate() {
            let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
            c_array(
                &mut c,
                &format!("static const int64_t pt_{what}_shape_{i}"),
                &dims,
            );
            shapes.push(format!("pt_{what}_shape_{i}"));
        }
        let names: Vec<String> = vals.iter().map(|v| c_string(&v.0)).collect();
        let codes: Vec<String> = vals.iter().map(|v| v.1.onnx_code().to_string()).collect();
        let ranks: Vec<String> = vals.iter().map(|v| v.2.len().to_string()).collect();
        let bytes: Vec<String> = vals
            .iter()
            .map(|v| format!("{}u", v.1.bytes_for(v.2.iter().product())))
            .collect();
        c_array(
            &mut c,
            &format!("const char *const model_{what}_names"),
            &names,
        );
        c_array(&mut c, &format!("const int model_{what}_dtypes"), &codes);
        c_array(&mut c, &format!("const int model_{what}_ranks"), &ranks);
        c_array(
            &mut c,
            &format!("const int64_t *const model_{what}_shapes"),
            &shapes,
        );
        c_array(&mut c, &format!("const size_t model_{what}_bytes"), &bytes);
    }
    let nk = kernels.len();
    let kn: Vec<String> = kernels.iter().map(|k| c_string(&k.0)).collect();
    let ko: Vec<String> = kernels.iter().map(|k| c_string(&k.1)).collect();
    let _ = writeln!(c, "\n/* Kernels. */\nconst int model_num_kernels = {nk};");
    c_array(&mut c, "const char *const model_kernel_names", &kn);
    c_array(&mut c, "const char *const model_kernel_ops", &ko);
    let n1 = nk.max(1);
    let _ = writeln!(c, "uint64_t model_prof_start_ns[{n1}];\nuint64_t model_prof_dur_ns[{n1}];\nuint64_t model_prof_total_ns[{n1}];");
    for f in frozen.iter().filter(|f| !f.bytes.is_empty()) {
        let b: Vec<String> = f.bytes.iter().map(|x| x.to_string()).collect();
        let _ = writeln!(
            c,
            "/* The value input {} was frozen to at compile time. */\nstatic const uint8_t pt_frozen_{}[{}] = {{{}}};",
            f.input,
            f.input,
            f.bytes.len(),
            b.join(", ")
        );
    }
    if !globals.is_empty() {
        c.push_str("\n/* Kernel state. */\n");
        c.push_str(globals);
    }
    c.push('\n');
    c.push_str(funcs);
    c.push_str(
        "const char *model_last_error(void) { return pt_last_error(); }\n\nvoid model_free(void) {\n",
    );
    c.push_str(free);
    c.push_str("  pt_free(pt_arena);\n  pt_arena = NULL;\n  pt_free(pt_scratch);\n  pt_scratch = NULL;\n  pt_unmap(&pt_weights_map);\n  pt_weights = NULL;\n}\n\n");
    c.push_str("static int pt_init_kernels(void) {\n");
    c.push_str(init);
    c.push_str("  return 0;\n}\n\n");
    c.push_str(
        r#"int model_init(const char *weights_path) {
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
"#,
    );
    for f in frozen.iter().filter(|f| !f.bytes.is_empty()) {
        let _ = writeln!(
            c,
            "  if (memcmp(pt_in[{i}], pt_frozen_{i}, {n}) != 0) {{\n    pt_set_error(\"input {i} '%s' differs from the value it was frozen to at compile time (--freeze-input)\", {name});\n    pt_in = NULL;\n    pt_out = NULL;\n    return 1;\n  }}",
            i = f.input,
            n = f.bytes.len(),
            name = c_string(&f.name),
        );
    }
    for (k, kn) in kernels.iter().enumerate() {
        let guard = sched.guards.get(k).map(Vec::as_slice).unwrap_or_default();
        if guard.is_empty() {
            let _ = writeln!(c, "  PT_CALL({k}, {});", kn.0);
            continue;
        }
        // An inlined If branch: run only when its conditions hold.
        let mut terms = Vec::new();
        for &(v, pol) in guard {
            let (Some(&loc), Some(t)) = (sched.loc.get(&v), g.value_type(v)) else {
                return Err(LowerError::Invalid {
                    op: "If".into(),
                    node: kn.2.clone(),
                    msg: "internal: a branch condition has no location".into(),
                });
            };
            let ct = ctype(t.dtype).ok_or_else(|| LowerError::Unsupported {
                op: "If".into(),
                node: kn.2.clone(),
                what: format!("a condition of {}", t.dtype),
            })?;
            let p = addr(loc, ct, true, blob);
            terms.push(format!("({p}[0] {} 0)", if pol { "!=" } else { "==" }));
        }
        let _ = writeln!(c, "  if ({}) PT_CALL({k}, {});", terms.join(" && "), kn.0);
    }
    for &(i, src) in &sched.output_copies {
        let (_, d, s) = &outs[i];
        let bytes = d.bytes_for(s.iter().product());
        let from = addr(src, "uint8_t", true, blob);
        if bytes > 0 {
            let _ = writeln!(c, "  memcpy(pt_out[{i}], {from}, {bytes});");
        }
    }
    c.push_str("  pt_in = NULL;\n  pt_out = NULL;\n  return pt_last_error()[0] ? 1 : 0;\n}\n");
    Ok(c)
}
