//! The `petasos` command line.
fn main() {}
