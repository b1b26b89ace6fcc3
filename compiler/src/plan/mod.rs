//! Planning what a model needs on a device before running it: the static memory plan
//! ([`memory`]: activation liveness, arena offsets, peak/weight/KV-cache memory) and host
//! calibration ([`calibrate`]: measured throughput, bandwidth and overheads written as the
//! `host` device profile).

pub mod calibrate;
pub mod memory;

pub use memory::{
    kv_cache, kv_cache_bytes, plan, Buffer, BufferKind, Fit, KvCache, MemoryPlan, Order, PlanError,
    PlanOptions, Strategy,
};
