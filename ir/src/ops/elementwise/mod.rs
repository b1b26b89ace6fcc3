//! Elementwise ops: unary math, activations, broadcasting binary/variadic ops, casts, `Dropout`.

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
