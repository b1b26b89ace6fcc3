//! `Einsum` lowering: the equation (explicit or implicit output, ellipsis broadcast,
//! repeated indices as diagonals) is resolved at compile time by the interpreter's planner
//! into labels with sizes, and a stride per operand and label, then emitted as one loop nest: the output labels outside, the summed
//! labels inside, accumulating in `double` for floats (in the interpreter's order) and in
//! wrapping `uint64_t` for integers.

use super::reduce_nest::{is_float, is_int};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::linalg::einsum::{plan_equation, Einsum};

/// Registers this file's lowering.
pub fn register(r: &mut Registry) {
    r.op("Einsum", lower_einsum);
}

/// The resolved summation: label sizes (output labels first), and per operand its strides
/// along every label (summed for repeated labels, 0 for broadcast dims of size 1).
#[derive(Debug)]
struct Plan {
    sizes: Vec<usize>,
    n_out: usize,
    strides: Vec<Vec<usize>>,
}

/// Resolves `equation` for operands of the given shapes with the interpreter's planner, then
/// turns each operand's per-axis labels into strides per label.
fn plan(equation: &str, shapes: &[&[usize]]) -> Result<Plan, String> {
    let p = plan_equation(equation, shapes)?;
    let strides = p
        .axes
        .iter()
        .zip(shapes)
        .map(|(axes, shape)| {
            let mut st = vec![0usize; p.sizes.len()];
            let mut s = 1usize;
            for (&i, &d) in axes.iter().zip(shape.iter()).rev() {
                if d != 1 {
                    st[i] += s;
                }
                s *= d;
            }
            st
        })
        .collect();
    Ok(Plan {
        sizes: p.sizes,
        n_out: p.n_out,
        strides,
    })
}

/// Lowers `Einsum` as one loop nest over every label.
fn lower_einsum(cx: &mut LowerCx<'_>) -> Result<(), LowerError> {
    let eq = cx.op::<Einsum>()?.equation.clone();
    let ins: Vec<CTensor> = (0..cx.num_inputs())
        .map(|i| cx.input(i).cloned())
        .collect::<Result<_, _>>()?;
    let y = cx.output(0)?.clone();
    let Some(first) = ins.first() else {
        return Err(cx.invalid("no inputs".into()));
    };
    let dt = first.dtype;
    for t in &ins {
        cx.ctype_of(t)?;
        if t.dtype != dt {
            return Err(cx.unsupported(format!("mixed input types {dt} and {}", t.dtype)));
        }
    }
    let float = is_float(dt);
    if !float && !is_int(dt) {
        return Err(cx.unsupported(format!("Einsum of {dt}")));
    }
    let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
    let p = plan(&eq, &shapes).map_err(|e| cx.invalid(format!("equation '{eq}': {e}")))?;
    if p.sizes[..p.n_out] != y.shape[..] {
        return Err(cx.invalid(format!(
            "output shape {:?} differs from the equation's {:?}",
            y.shape,
            &p.sizes[..p.n_out]
        )));
    }
    cx.line(format!("/* {} */", super::comment(&eq)));
    if y.numel() == 0 {
        return Ok(());
    }
    let acc_t = if float { "double" } else { "uint64_t" };
    let (zero, one) = if float { ("0.0", "1.0") } else { ("0", "1") };
    let sums_empty = p.sizes[p.n_out..].contains(&0);
    let ostr = super::reduce_nest::contiguous(&p.sizes[..p.n_out]);
    let mut yoff: Vec<String> = Vec::new();
    for (l, &size) in p.sizes[..p.n_out].iter().enumerate() {
        cx.line(format!("for (size_t l{l} = 0; l{l} < {size}; l{l}++) {{"));
        if ostr[l] != 0 && size != 1 {
            yoff.push(format!("l{l} * {}", ostr[l]));
        }
    }
    cx.line(format!("{acc_t} acc = {zero};"));
    if !sums_empty {
        for (l, &size) in p.sizes.iter().enumerate().skip(p.n_out) {
            cx.line(format!("for (size_t l{l} = 0; l{l} < {size}; l{l}++) {{"));
        }
        cx.line(format!("{acc_t} prod = {one};"));
        for (t, st) in ins.iter().zip(&p.strides) {
            let terms: Vec<String> = st
                .iter()
                .enumerate()
                .filter(|(_, &s)| s != 0)
                .map(|(l, s)| format!("l{l} * {s}"))
                .collect();
            let off = if terms.is_empty() {
                "0".to_string()
            } else {
                terms.join(" + ")
            };
            if float {
                cx.line(format!("prod *= (double){};", t.load(&off)));
            } else {
                cx.line(format!("prod *= (uint64_t){}[{off}];", t.expr));
            }
        }
        cx.line("acc += prod;");
        for _ in p.n_out..p.sizes.len() {
            cx.line("}");
        }
    }
    let yi = if yoff.is_empty() {
        "0".to_string()
    } else {
        yoff.join(" + ")
    };
    if float {
        cx.line(y.store(&yi, "acc"));
    } else {
        cx.line(format!("{}[{yi}] = ({})acc;", y.expr, y.ctype()));
    }
    cx.close(p.n_out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_diagonals_broadcasts_and_implicit_outputs() {
        // Batch diagonal: "...ii->...i" on (3, 2, 2): output (3, 2); the input's stride
        // along i is the sum of its two axes' strides.
        let p = plan("...ii->...i", &[&[3, 2, 2]]).unwrap();
        assert_eq!(p.sizes, vec![3, 2]);
        assert_eq!(p.n_out, 2);
        assert_eq!(p.strides[0], vec![4, 3]);
        // Implicit output: letters appearing once, alphabetically.
        let p = plan("ji", &[&[2, 3]]).unwrap();
        assert_eq!(&p.sizes[..p.n_out], &[3, 2]);
        assert_eq!(p.strides[0], vec![1, 3]);
        // Broadcast dim of size 1 contributes stride 0.
        let p = plan("...ij,...jk->...ik", &[&[1, 2, 3], &[2, 3, 1]]).unwrap();
        assert_eq!(&p.sizes[..p.n_out], &[2, 2, 1]);
        assert_eq!(p.strides[0][0], 0);
        assert!(plan("ij->k", &[&[2, 3]]).is_err());
        assert!(plan("ij,jk", &[&[2, 3], &[4, 5]]).is_err());
    }
}
