//! Shared Rust core linked into every ruvector Python wheel.
//!
//! Without its `python` feature (the default for the pure engine) it is
//! plain Rust: base errors, checks, the pool, files. With it, also the
//! Python glue every wheel shares.
//!
//! Pure:
//! * [`errors`] — the base error type (and, with `python`, its mapping onto
//!   the shared Python exception classes of `ruvector-common`).
//! * [`validate`] — the checks every vector goes through before it reaches
//!   an upstream crate; [`parallel`] — the rayon pool for batches, sized by
//!   [`threads`]; [`interrupt`] — cancel tokens for Ctrl-C.
//! * [`cpu`] — runtime CPU feature probe; [`io`] — checksummed,
//!   little-endian writing for the SDK's file formats; [`interrupt`] —
//!   Ctrl-C for long calls and all-or-nothing commits.
//!
//!
//! Python glue (feature `python`):
//! * [`arrays`] and [`args`] — zero-copy NumPy input views and checked
//!   scalar arguments;
//! * [`runtime`] — the lazily built tokio runtime and the exit-safe,
//!   fork-aware asyncio bridge; [`py_modules`] — Rust → Python look-ups;
//! * [`init_module`] — what a wheel calls first thing in its `#[pymodule]`.

pub mod cpu;
pub mod errors;
pub mod interrupt;
pub mod io;
pub mod parallel;
pub mod slot;
pub mod threads;
pub mod validate;

#[cfg(feature = "python")]
pub mod args;
#[cfg(feature = "python")]
pub mod arrays;
#[cfg(feature = "python")]
mod module;
#[cfg(feature = "python")]
pub mod py_modules;
#[cfg(feature = "python")]
pub mod runtime;

use std::sync::OnceLock;

#[cfg(feature = "python")]
pub use module::{add_thread_functions, init_module};

pub use errors::{Error, Result};

static COMPONENT: OnceLock<&'static str> = OnceLock::new();

/// Short name of the wheel this copy of the core is linked into (`"rabitq"`),
/// used in thread names and environment variables.
pub fn component() -> &'static str {
    COMPONENT.get().copied().unwrap_or("core")
}

/// Names this copy of the core after its wheel (first call wins).
pub fn set_component(name: &'static str) {
    let _ = COMPONENT.set(name);
}
