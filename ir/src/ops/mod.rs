//! The op library: one module per op family, each registering its ONNX builders.
//!
//! A builder turns an ONNX node (its attributes, opset and arity, seen through [`NodeCtx`]) into a
//! typed op. Ops the library does not know import as [`core::Opaque`] so the graph can still be
//! viewed; evaluating one names the missing op.

pub mod attention;
pub mod control;
pub mod core;
pub mod elementwise;
pub mod linalg;
pub mod nn;
pub mod quant;
pub mod recent;
pub mod recurrent;
pub mod reduce;
pub mod shape_ops;
pub mod signal;
pub mod text;
pub mod tfidf;
pub mod training;
pub mod util;

use crate::onnx::attrs::NodeCtx;
use crate::op::Op;
use crate::Result;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Builds a typed op from an ONNX node.
pub type Builder = fn(&NodeCtx<'_>) -> Result<Box<dyn Op>>;

/// Builders by `(domain, op_type)`; the default domain is `""`.
#[derive(Default)]
pub struct Registry {
    map: HashMap<(String, String), Builder>,
}

/// Domains whose ops are aliases of one another (QONNX's three spellings).
pub const QONNX_DOMAINS: [&str; 3] = [
    "qonnx.custom_op.general",
    "onnx.brevitas",
    "finn.custom_op.general",
];

impl Registry {
    /// Registers a builder for an op of the default domain.
    pub fn add(&mut self, op_type: &str, b: Builder) {
        self.map.insert((String::new(), op_type.to_string()), b);
    }
    /// Registers a builder for an op of a named domain.
    pub fn add_domain(&mut self, domain: &str, op_type: &str, b: Builder) {
        self.map
            .insert((domain.to_string(), op_type.to_string()), b);
    }
    /// The builder for `(domain, op_type)`; `ai.onnx` is the default domain.
    pub fn get(&self, domain: &str, op_type: &str) -> Option<Builder> {
        let d = if domain == "ai.onnx" { "" } else { domain };
        self.map.get(&(d.to_string(), op_type.to_string())).copied()
    }
    /// Number of registered `(domain, op)` pairs.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Registered op names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .map
            .keys()
            .map(|(d, o)| {
                if d.is_empty() {
                    o.clone()
                } else {
                    format!("{d}.{o}")
                }
            })
            .collect();
        v.sort();
        v
    }
}

/// The registry of all built-in ops.
pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        let mut r = Registry::default();
        core::register(&mut r);
        control::register(&mut r);
        elementwise::register(&mut r);
        reduce::register(&mut r);
        nn::register(&mut r);
        shape_ops::register(&mut r);
        linalg::register(&mut r);
        quant::register(&mut r);
        attention::register(&mut r);
        recent::register(&mut r);
        recurrent::register(&mut r);
        signal::register(&mut r);
        text::register(&mut r);
        tfidf::register(&mut r);
        training::register(&mut r);
        r
    })
}
