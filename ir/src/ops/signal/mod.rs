//! Ops of the `signal` family: `DFT`, `STFT`, the window generators and `MelWeightMatrix`.

mod dft;
mod window;

pub use dft::{Dft, Stft};
pub use window::{MelWeightMatrix, Window, WindowKind};

use super::Registry;

/// Registers this family's builders.
pub fn register(r: &mut Registry) {
    r.add("DFT", dft::build_dft);
    r.add("STFT", dft::build_stft);
    r.add("HannWindow", window::build_hann);
    r.add("HammingWindow", window::build_hamming);
    r.add("BlackmanWindow", window::build_blackman);
    r.add("MelWeightMatrix", window::build_mel);
}
