//! The C runtime files, embedded in the binary and copied into every artifact folder.
//!
//! `CORE` files are built into every model; the others only when a kernel asks for them
//! ([`super::lower::LowerCx::need_rt`]). To add a runtime file: put it in `rt/` and add one
//! line to [`FILES`].

/// Always built (the `.c` ones) or included.
pub const CORE: &[&str] = &["pt_rt.h", "pt_rt.c", "pt_io.h", "pt_io.c", "pt_main.c"];

/// The kernel files (`pt_kernels.h`'s implementation): built together whenever a kernel
/// needs any of them, and by the kernel tests.
pub const KERNELS: &[&str] = &[
    "pt_gemm.c",
    "pt_conv.c",
    "pt_wino.c",
    "pt_dw.c",
    "pt_conv_direct.c",
    "pt_pool.c",
    "pt_threads.c",
];

/// Every runtime file: (name, contents).
pub const FILES: &[(&str, &str)] = &[
    ("pt_rt.h", include_str!("rt/pt_rt.h")),
    ("pt_rt.c", include_str!("rt/pt_rt.c")),
    ("pt_io.h", include_str!("rt/pt_io.h")),
    ("pt_io.c", include_str!("rt/pt_io.c")),
    ("pt_main.c", include_str!("rt/pt_main.c")),
    ("pt_kernels.h", include_str!("rt/pt_kernels.h")),
    ("pt_gemm.c", include_str!("rt/pt_gemm.c")),
    ("pt_conv.c", include_str!("rt/pt_conv.c")),
    ("pt_wino.c", include_str!("rt/pt_wino.c")),
    ("pt_dw.c", include_str!("rt/pt_dw.c")),
    ("pt_conv_direct.c", include_str!("rt/pt_conv_direct.c")),
    ("pt_pool.c", include_str!("rt/pt_pool.c")),
    ("pt_blas.c", include_str!("rt/pt_blas.c")),
    ("pt_threads.c", include_str!("rt/pt_threads.c")),
    ("pt_types.h", include_str!("rt/pt_types.h")),
];

/// The contents of runtime file `name`.
pub fn file(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|x| x.1)
}
