//! Ops of the `recurrent` family: `RNN`, `GRU` and `LSTM`.

mod cells;
mod common;

pub use cells::{Gru, Lstm, Rnn};
pub use common::{RnnAttrs, ACTIVATIONS};

use super::Registry;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("RNN", cells::build_rnn);
    r.add("GRU", cells::build_gru);
    r.add("LSTM", cells::build_lstm);
}
