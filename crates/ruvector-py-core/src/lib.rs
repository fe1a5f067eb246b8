//! Shared Rust core linked into every ruvector Python wheel.
//!
//! * [`errors`] — the error type and its mapping onto the shared Python
//!   exception classes of `ruvector-common`.
//! * [`arrays`] and [`validate`] — zero-copy NumPy input views and the checks
//!   every vector goes through before it reaches an upstream crate.
//! * [`runtime`] — the lazily built tokio runtime and the exit-safe,
//!   fork-aware asyncio bridge; [`parallel`] — the rayon pool for batches.
//! * [`cpu`] — runtime CPU feature probe; [`io`] — checksummed,
//!   little-endian writing for the SDK's file formats; [`interrupt`] —
//!   Ctrl-C for long calls and all-or-nothing commits.
//!
//! A wheel calls [`init_module`] first thing in its `#[pymodule]`.

pub mod args;
pub mod arrays;
pub mod config;
pub mod cpu;
pub mod errors;
pub mod interrupt;
pub mod io;
pub mod parallel;
pub mod runtime;
pub mod slot;
pub mod validate;

use std::sync::OnceLock;

use pyo3::prelude::*;
use pyo3::types::PyDict;

pub use errors::{Error, Result};

static COMPONENT: OnceLock<&'static str> = OnceLock::new();

/// Short name of the wheel this copy of the core is linked into (`"rabitq"`),
/// used in thread names and environment variables.
pub fn component() -> &'static str {
    COMPONENT.get().copied().unwrap_or("core")
}

/// `cpu_features()` → `{"arch": "x86_64", "avx2": True, ...}`.
#[pyfunction]
fn cpu_features(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("arch", std::env::consts::ARCH)?;
    for (name, on) in cpu::features() {
        d.set_item(name, on)?;
    }
    Ok(d)
}

/// `runtime_info()` → state of this wheel's tokio runtime and rayon pool.
#[pyfunction]
fn runtime_info(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let (started, workers, blocking) = runtime::runtime_state();
    let d = PyDict::new(py);
    d.set_item("component", component())?;
    d.set_item("started", started)?;
    d.set_item("worker_threads", workers)?;
    d.set_item("max_blocking_threads", blocking)?;
    d.set_item("default_worker_threads", runtime::default_worker_threads())?;
    d.set_item("pool_threads", parallel::pool_threads())?;
    Ok(d)
}

/// Sets up a wheel's native module: checks the shared exceptions, adds
/// `__version__`, `cpu_features`, `runtime_info`, and registers the exit and
/// fork hooks of the runtime bridge. Starts no threads.
pub fn init_module(
    m: &Bound<'_, PyModule>,
    component: &'static str,
    dist: &str,
    version: &str,
) -> PyResult<()> {
    let py = m.py();
    errors::check_errors_module(py, dist)?;
    py.import("ruvector_common._aio")?;
    let _ = COMPONENT.set(component);
    m.add("__version__", version)?;
    m.add_function(wrap_pyfunction!(cpu_features, m)?)?;
    m.add_function(wrap_pyfunction!(runtime_info, m)?)?;

    let quiesce = wrap_pyfunction!(runtime::quiesce, m)?;
    py.import("atexit")?.call_method1("register", (quiesce,))?;
    let reset = wrap_pyfunction!(runtime::reset_after_fork, m)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("after_in_child", reset)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
