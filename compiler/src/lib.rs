//! petasos compiler: the library behind the `petasos` command line.
//!
//! Cost model, planner and backends arrive with later issues; today it holds model loading
//! (file or built-in name) and the `inspect` report shared by the CLI and, later, the viewer.

pub mod inspect;
pub mod load;
pub mod plan;
