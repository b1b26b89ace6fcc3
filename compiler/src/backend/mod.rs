//! Code-generating backends. `cpu`: the graph lowered to portable C11, compiled with the
//! system C compiler into a standalone executable and a shared library.

pub mod cpu;
