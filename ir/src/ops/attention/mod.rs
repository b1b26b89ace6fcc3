//! Ops of the `attention` family: `Attention` and `RotaryEmbedding`.

mod rotary;
mod sdpa;

pub use rotary::RotaryEmbedding;
pub use sdpa::Attention;

use super::Registry;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("Attention", sdpa::build);
    r.add("RotaryEmbedding", rotary::build);
}
