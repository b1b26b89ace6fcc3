//! `petasos-viewer`: the desktop viewer's entry point.
fn main() {}
