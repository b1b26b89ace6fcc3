//! Elementwise ops: unary math and activations, broadcasting binary ops, variadic ops, `Where`,
//! `Clip`, casts, `Dropout` and the random elementwise ops.

mod activation;
mod binary;
mod cast;
mod math;
mod random;
mod select;
mod unary;
mod variadic;

use super::Registry;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    unary::register(r);
    activation::register(r);
    binary::register(r);
    variadic::register(r);
    select::register(r);
    cast::register(r);
    random::register(r);
}
