//! `Einsum` lowering: the equation (explicit or implicit output, ellipsis broadcast,
//! repeated indices as diagonals) is resolved at compile time into labels with sizes and a
//! stride per operand, then emitted as one loop nest: the output labels outside, the summed
//! labels inside, accumulating in `double` for floats (in the interpreter's order) and in
//! wrapping `uint64_t` for integers.

use super::reduce_nest::{is_float, is_int};
use super::{CTensor, LowerCx, LowerError, Registry};
use petasos_ir::ops::linalg::einsum::Einsum;
use std::collections::BTreeMap;

/// Registers this file's lowering.
pub fn register(r: &mut Registry) {
    r.op("Einsum", lower_einsum);
}

/// An axis label: an ellipsis dim (numbered in the common broadcast ellipsis) or a letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Label {
    Ell(usize),
    Letter(char),
}

/// One side of a term: letters before the ellipsis and, when it has one, letters after it.
#[derive(Clone, Debug, PartialEq)]
struct Term {
    before: Vec<char>,
    after: Option<Vec<char>>,
}

impl Term {
    fn parse(s: &str) -> Result<Term, String> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let letters = |p: &str| -> Result<Vec<char>, String> {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        Ok(c)
                    } else {
                        Err(format!("invalid character '{c}' in term '{s}'"))
                    }
                })
                .collect()
        };
        match s.find("...") {
            Some(i) => {
                let rest = &s[i + 3..];
                if rest.contains('.') {
                    return Err(format!("more than one ellipsis in term '{s}'"));
                }
                Ok(Term {
                    before: letters(&s[..i])?,
                    after: Some(letters(rest)?),
                })
            }
            None => Ok(Term {
                before: letters(&s)?,
                after: None,
            }),
        }
    }

    fn letters(&self) -> impl Iterator<Item = &char> {
        self.before.iter().chain(self.after.iter().flatten())
    }

    fn n_letters(&self) -> usize {
        self.letters().count()
    }

    /// Labels of an operand of `rank` whose ellipsis covers the last dims of a common
    /// ellipsis of `ell` dims.
    fn labels(&self, rank: usize, ell: usize) -> Result<Vec<Label>, String> {
        let nl = self.n_letters();
        let mut v: Vec<Label> = self.before.iter().map(|&c| Label::Letter(c)).collect();
        match &self.after {
            None if rank != nl => Err(format!("term has {nl} indices, operand rank {rank}")),
            None => Ok(v),
            Some(_) if rank < nl => Err(format!("term has {nl} indices, operand rank {rank}")),
            Some(after) => {
                let e = rank - nl;
                v.extend((0..e).map(|j| Label::Ell(ell - e + j)));
                v.extend(after.iter().map(|&c| Label::Letter(c)));
                Ok(v)
            }
        }
    }
}

/// The resolved summation: label sizes (output labels first), and per operand its strides
/// along every label (summed for repeated labels, 0 for broadcast dims of size 1).
#[derive(Debug)]
struct Plan {
    sizes: Vec<usize>,
    n_out: usize,
    strides: Vec<Vec<usize>>,
}

/// Resolves `equation` for operands of the given shapes.
fn plan(equation: &str, shapes: &[&[usize]]) -> Result<Plan, String> {
    let (lhs, rhs) = match equation.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (equation, None),
    };
    let terms: Vec<Term> = lhs.split(',').map(Term::parse).collect::<Result<_, _>>()?;
    if terms.len() != shapes.len() {
        return Err(format!(
            "equation has {} inputs, the node {}",
            terms.len(),
            shapes.len()
        ));
    }
    let ell = terms
        .iter()
        .zip(shapes)
        .filter(|(t, _)| t.after.is_some())
        .map(|(t, s)| s.len().saturating_sub(t.n_letters()))
        .max()
        .unwrap_or(0);
    let has_ell = terms.iter().any(|t| t.after.is_some());
    let ins: Vec<Vec<Label>> = terms
        .iter()
        .zip(shapes)
        .map(|(t, s)| t.labels(s.len(), ell))
        .collect::<Result<_, _>>()?;
    let out: Vec<Label> = match rhs {
        Some(r) => {
            let o = Term::parse(r)?;
            let mut seen = Vec::new();
            for c in o.letters() {
                if seen.contains(c) {
                    return Err(format!("index '{c}' repeated in the output"));
                }
                if !terms.iter().any(|t| t.letters().any(|x| x == c)) {
                    return Err(format!("output index '{c}' is in no input"));
                }
                seen.push(*c);
            }
            if o.after.is_some() && !has_ell {
                return Err("output has an ellipsis but no input does".into());
            }
            if o.after.is_none() && has_ell && ell > 0 {
                return Err("output must keep the ellipsis dims".into());
            }
            let rank = o.n_letters() + if o.after.is_some() { ell } else { 0 };
            o.labels(rank, ell)?
        }
        None => {
            let mut counts: BTreeMap<char, usize> = BTreeMap::new();
            for t in &terms {
                for c in t.letters() {
                    *counts.entry(*c).or_default() += 1;
                }
            }
            (0..ell)
                .map(Label::Ell)
                .chain(
                    counts
                        .into_iter()
                        .filter(|(_, n)| *n == 1)
                        .map(|(c, _)| Label::Letter(c)),
                )
                .collect()
        }
    };
    let mut all = out.clone();
    for l in ins.iter().flatten() {
        if !all.contains(l) {
            all.push(*l);
        }
    }
    let mut sizes = vec![1usize; all.len()];
    let mut fixed = vec![false; all.len()];
    let mut strides = Vec::new();
    for (labels, shape) in ins.iter().zip(shapes) {
        let mut st = vec![0usize; all.len()];
        let mut s = 1usize;
        for (l, &d) in labels.iter().zip(shape.iter()).rev() {
            let i = all.iter().position(|x| x == l).unwrap_or(0);
            if d != 1 {
                if fixed[i] && sizes[i] != d {
                    return Err(format!(
                        "index {l:?} has inconsistent sizes {} and {d}",
                        sizes[i]
                    ));
                }
                sizes[i] = d;
                fixed[i] = true;
                st[i] += s;
            }
            s *= d;
        }
        strides.push(st);
    }
    Ok(Plan {
        sizes,
        n_out: out.len(),
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
    for _ in 0..p.n_out {
        cx.line("}");
    }
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
