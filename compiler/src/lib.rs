//! petasos compiler: the library behind the `petasos` command line.
//!
//! Model loading (file or built-in name), the `inspect` report, the cost model (`cost`: per-op
//! work, device profiles, roofline latency/energy/power, what-if), the memory planner (`plan`)
//! and charts (`charts`), shared by the CLI and, later, the viewer. The CPU backend (`backend::cpu`) lowers a graph to C and compiles it.

pub mod backend;
pub mod backend_cli;
pub mod charts;
pub mod cost;
pub mod inspect;
pub mod load;
pub mod plan;
pub mod prune_cli;
