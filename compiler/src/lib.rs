//! petasos compiler: cost model, planner, backends (later issues) and the CLI's commands.
