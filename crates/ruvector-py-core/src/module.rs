//! What every wheel's `#[pymodule]` runs first.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{component, cpu, errors, parallel, runtime};

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

/// `set_num_threads(n)`: the size of this wheel's thread pool from now on
/// (1 to 1024; like `faiss.omp_set_num_threads`). Calls already running
/// finish on the old pool. Overrides `RUVECTOR_NUM_THREADS`.
#[pyfunction]
fn set_num_threads(n: &Bound<'_, PyAny>) -> PyResult<()> {
    let n = crate::args::int_in_range(n, "n", 1, parallel::MAX_THREADS as i128)?;
    Ok(parallel::set_num_threads(n)?)
}

/// `get_num_threads()`: the size of this wheel's thread pool (the value set
/// by `set_num_threads`, else the environment variable, else the CPU count).
#[pyfunction]
fn get_num_threads() -> PyResult<usize> {
    Ok(parallel::num_threads()?)
}

/// Adds `set_num_threads` and `get_num_threads` to a wheel whose batch
/// calls run on the core's pool (one implementation for every wheel).
pub fn add_thread_functions(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    Ok(())
}

/// Sets up a wheel's native module: checks the shared exceptions (the base
/// classes and `error_classes`, the names of the wheel's own), adds
/// `__version__`, `_error_classes`, `cpu_features`, `runtime_info`, and
/// registers the exit and fork hooks of the runtime bridge. Starts no
/// threads.
pub fn init_module(
    m: &Bound<'_, PyModule>,
    component: &'static str,
    dist: &str,
    version: &str,
    error_classes: &[&str],
) -> PyResult<()> {
    let py = m.py();
    errors::check_errors_module(py, dist, error_classes)?;
    // The asyncio helper must import now, not on the first awaitable.
    crate::py_modules::AIO_RUN.get(py)?;
    crate::set_component(component);
    m.add("__version__", version)?;
    // Every class this wheel can raise, for the test that checks them
    // against ruvector_common.errors.__all__.
    let raised: Vec<&str> = errors::BASE_CLASSES
        .iter()
        .chain(error_classes)
        .copied()
        .collect();
    m.add("_error_classes", raised)?;
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
