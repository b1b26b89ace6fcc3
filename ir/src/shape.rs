//! Shapes whose dimensions may be symbolic, and the value types (dtype + shape) of graph edges.
//!
//! A [`Dim`] is a known size, a named symbol (`batch`, `seq`) or a small expression over them
//! (`seq + 1`, `ceil(h / 2)`), so one graph serves many concrete sizes and shape inference works
//! before sizes are known. Expressions are simplified when both sides are known.

use crate::dtype::DType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// One dimension of a shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    /// A known size.
    Known(u64),
    /// A named size such as `batch`.
    Sym(Arc<str>),
    /// An expression over other dims.
    Expr(Box<DimExpr>),
}

/// A binary expression over dims.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DimExpr {
    pub op: DimOp,
    pub lhs: Dim,
    pub rhs: Dim,
}

/// The operators a [`DimExpr`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DimOp {
    Add,
    Sub,
    Mul,
    FloorDiv,
    CeilDiv,
    Max,
    Min,
}

impl Dim {
    /// A named symbol.
    pub fn sym(name: &str) -> Dim {
        Dim::Sym(Arc::from(name))
    }

    /// The known size, if any.
    pub fn known(&self) -> Option<u64> {
        match self {
            Dim::Known(v) => Some(*v),
            _ => None,
        }
    }

    fn bin(op: DimOp, a: &Dim, b: &Dim) -> Dim {
        if let (Some(x), Some(y)) = (a.known(), b.known()) {
            let v = match op {
                DimOp::Add => x.checked_add(y),
                DimOp::Sub => x.checked_sub(y),
                DimOp::Mul => x.checked_mul(y),
                DimOp::FloorDiv => x.checked_div(y),
                DimOp::CeilDiv => {
                    if y == 0 {
                        None
                    } else {
                        Some(x.div_ceil(y))
                    }
                }
                DimOp::Max => Some(x.max(y)),
                DimOp::Min => Some(x.min(y)),
            };
            if let Some(v) = v {
                return Dim::Known(v);
            }
        }
        match (op, a.known(), b.known()) {
            (DimOp::Add | DimOp::Sub, _, Some(0)) => return a.clone(),
            (DimOp::Add, Some(0), _) => return b.clone(),
            (DimOp::Mul | DimOp::FloorDiv | DimOp::CeilDiv, _, Some(1)) => return a.clone(),
            (DimOp::Mul, Some(1), _) => return b.clone(),
            _ => {}
        }
        if (op == DimOp::Max || op == DimOp::Min) && a == b {
            return a.clone();
        }
        Dim::Expr(Box::new(DimExpr {
            op,
            lhs: a.clone(),
            rhs: b.clone(),
        }))
    }

    pub fn add(&self, o: &Dim) -> Dim {
        Dim::bin(DimOp::Add, self, o)
    }
    pub fn sub(&self, o: &Dim) -> Dim {
        Dim::bin(DimOp::Sub, self, o)
    }
    pub fn mul(&self, o: &Dim) -> Dim {
        Dim::bin(DimOp::Mul, self, o)
    }
    pub fn floor_div(&self, o: &Dim) -> Dim {
        Dim::bin(DimOp::FloorDiv, self, o)
    }
    pub fn ceil_div(&self, o: &Dim) -> Dim {
        Dim::bin(DimOp::CeilDiv, self, o)
    }
    pub fn max(&self, o: &Dim) -> Dim {
        Dim::bin(DimOp::Max, self, o)
    }

    /// This dim with every symbol replaced by `value(name)`; parts that become known are
    /// computed with checked arithmetic (an overflowing or undefined part stays an expression).
    pub fn bind(&self, value: &mut dyn FnMut(&str) -> u64) -> Dim {
        match self {
            Dim::Known(_) => self.clone(),
            Dim::Sym(s) => Dim::Known(value(s)),
            Dim::Expr(e) => Dim::bin(e.op, &e.lhs.bind(value), &e.rhs.bind(value)),
        }
    }

    /// Evaluates the dim with the given symbol values.
    pub fn eval(&self, env: &HashMap<String, u64>) -> Option<u64> {
        match self {
            Dim::Known(v) => Some(*v),
            Dim::Sym(s) => env.get(&**s).copied(),
            Dim::Expr(e) => {
                let a = e.lhs.eval(env)?;
                let b = e.rhs.eval(env)?;
                match Dim::bin(e.op, &Dim::Known(a), &Dim::Known(b)) {
                    Dim::Known(v) => Some(v),
                    _ => None,
                }
            }
        }
    }
}

impl From<u64> for Dim {
    fn from(v: u64) -> Dim {
        Dim::Known(v)
    }
}
impl From<usize> for Dim {
    fn from(v: usize) -> Dim {
        Dim::Known(v as u64)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(v) => write!(f, "{v}"),
            Dim::Sym(s) => write!(f, "{s}"),
            Dim::Expr(e) => match e.op {
                DimOp::Add => write!(f, "({} + {})", e.lhs, e.rhs),
                DimOp::Sub => write!(f, "({} - {})", e.lhs, e.rhs),
                DimOp::Mul => write!(f, "{}*{}", e.lhs, e.rhs),
                DimOp::FloorDiv => write!(f, "floor({} / {})", e.lhs, e.rhs),
                DimOp::CeilDiv => write!(f, "ceil({} / {})", e.lhs, e.rhs),
                DimOp::Max => write!(f, "max({}, {})", e.lhs, e.rhs),
                DimOp::Min => write!(f, "min({}, {})", e.lhs, e.rhs),
            },
        }
    }
}

/// A shape: a list of dims.
pub type Shape = Vec<Dim>;

/// Builds a shape of known dims.
pub fn known_shape(dims: &[usize]) -> Shape {
    dims.iter().map(|&d| Dim::Known(d as u64)).collect()
}

/// All dims known, as `usize`.
pub fn shape_known(s: &[Dim]) -> Option<Vec<usize>> {
    s.iter().map(|d| d.known().map(|v| v as usize)).collect()
}

/// Renders a shape as `[1, 3, batch, 224]`.
pub fn shape_string(s: &[Dim]) -> String {
    let parts: Vec<String> = s.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// The type of a value: element type and shape (`None` when even the rank is unknown).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ValueType {
    pub dtype: DType,
    pub shape: Option<Shape>,
}

impl ValueType {
    pub fn new(dtype: DType, shape: Shape) -> ValueType {
        ValueType {
            dtype,
            shape: Some(shape),
        }
    }
    /// This type with every symbolic dim bound by `value` (see [`Dim::bind`]).
    pub fn bind(&self, value: &mut dyn FnMut(&str) -> u64) -> ValueType {
        ValueType {
            dtype: self.dtype,
            shape: self
                .shape
                .as_ref()
                .map(|s| s.iter().map(|d| d.bind(value)).collect()),
        }
    }
    pub fn unranked(dtype: DType) -> ValueType {
        ValueType { dtype, shape: None }
    }
    pub fn known(dtype: DType, dims: &[usize]) -> ValueType {
        ValueType::new(dtype, known_shape(dims))
    }
    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(|s| s.len())
    }
    /// Number of elements when every dim is known.
    pub fn numel(&self) -> Option<u64> {
        let s = self.shape.as_ref()?;
        s.iter()
            .try_fold(1u64, |acc, d| acc.checked_mul(d.known()?))
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.shape {
            Some(s) => write!(f, "{}{}", self.dtype, shape_string(s)),
            None => write!(f, "{}[?]", self.dtype),
        }
    }
}

/// Multidirectional (numpy) broadcasting of two symbolic shapes.
///
/// Unknown pairs of dims yield `max(a, b)`; a pair of different known dims neither of which is 1
/// is an error.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Shape, String> {
    let n = a.len().max(b.len());
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let da = if i + a.len() >= n {
            Some(&a[i + a.len() - n])
        } else {
            None
        };
        let db = if i + b.len() >= n {
            Some(&b[i + b.len() - n])
        } else {
            None
        };
        let d = match (da, db) {
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (Some(x), Some(y)) => match (x.known(), y.known()) {
                (Some(1), _) => y.clone(),
                (_, Some(1)) => x.clone(),
                (Some(p), Some(q)) if p == q => x.clone(),
                (Some(p), Some(q)) => {
                    return Err(format!(
                        "cannot broadcast {} with {}: dim {p} vs {q}",
                        shape_string(a),
                        shape_string(b)
                    ))
                }
                _ if x == y => x.clone(),
                (Some(_), None) => x.clone(),
                (None, Some(_)) => y.clone(),
                _ => x.max(y),
            },
            (None, None) => Dim::Known(1),
        };
        out.push(d);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_replaces_symbols_and_computes_what_becomes_known() {
        let e = Dim::sym("S").add(&Dim::sym("T")).ceil_div(&Dim::Known(2));
        let mut seen = Vec::new();
        let b = e.bind(&mut |n| {
            seen.push(n.to_string());
            if n == "S" {
                3
            } else {
                4
            }
        });
        assert_eq!(b, Dim::Known(4));
        assert_eq!(seen, ["S", "T"]);
        // An overflowing part stays an expression rather than wrapping.
        let big = Dim::sym("a").mul(&Dim::sym("b"));
        assert_eq!(big.bind(&mut |_| u64::MAX).known(), None);
    }

    #[test]
    fn dims_simplify() {
        let s = Dim::sym("seq");
        assert_eq!(Dim::Known(3).add(&Dim::Known(4)), Dim::Known(7));
        assert_eq!(s.add(&Dim::Known(0)), s);
        assert_eq!(s.add(&Dim::Known(1)).to_string(), "(seq + 1)");
        let mut env = HashMap::new();
        env.insert("seq".to_string(), 7);
        assert_eq!(
            s.add(&Dim::Known(1)).ceil_div(&Dim::Known(2)).eval(&env),
            Some(4)
        );
    }

    #[test]
    fn broadcasting() {
        let b = Dim::sym("b");
        let r = broadcast_shapes(
            &[b.clone(), Dim::Known(1), Dim::Known(4)],
            &[Dim::Known(3), Dim::Known(1)],
        )
        .unwrap();
        assert_eq!(r, vec![b, Dim::Known(3), Dim::Known(4)]);
        assert!(broadcast_shapes(&[Dim::Known(2)], &[Dim::Known(3)]).is_err());
    }
}
