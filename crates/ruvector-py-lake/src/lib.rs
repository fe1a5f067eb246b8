//! `ruvector_lake._native`: ruLake, the cache-first vector fabric, for Python.
//!
//! * [`source`] — backends as the engine sees them (`LocalBackend`,
//!   `FsBackend` over the crate's formats) and the shared error carrier;
//! * [`adapter`] — backends implemented in Python, called back from Rust
//!   threads;
//! * [`cache`] — the witness-addressed cache of index engines, coherence
//!   and search;
//! * [`snapshot`] — bundles and cache snapshots on disk, checked and atomic;
//! * [`backends`], [`bundle`], [`lake`] — the Python classes (`RuLake`,
//!   its builder, sessions, backends, bundles);
//! * [`args`] — text and path arguments, and Ctrl-C for the long calls;
//! * [`error`] — the lake's errors; [`py_modules`] — its Python look-ups.

pub mod adapter;
pub mod args;
pub mod backends;
pub mod bundle;
pub mod cache;
pub mod error;
pub mod lake;
pub mod py_modules;
pub mod snapshot;
pub mod source;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ruvector_py_core::init_module(
        m,
        "lake",
        "ruvector-lake",
        env!("CARGO_PKG_VERSION"),
        error::CLASSES,
    )?;
    // NumPy's C API now, not lazily at the first returned array (where a
    // failed import would be a panic).
    ruvector_py_core::arrays::init_numpy(m.py())?;
    ruvector_py_core::add_thread_functions(m)?;
    m.add_class::<lake::RuLake>()?;
    m.add_class::<lake::RuLakeBuilder>()?;
    m.add_class::<lake::LakeSession>()?;
    m.add_class::<backends::LocalBackend>()?;
    m.add_class::<backends::FsBackend>()?;
    m.add_class::<bundle::Bundle>()?;
    m.add_function(wrap_pyfunction!(bundle::crate_read_bundle, m)?)?;
    m.add_function(wrap_pyfunction!(bundle::crate_write_bundle, m)?)?;
    m.add("MAX_DIM", source::MAX_LAKE_DIM)?;
    m.add("MAX_RERANK_FACTOR", cache::MAX_RERANK_FACTOR)?;
    m.add("MAX_K", cache::MAX_K)?;
    m.add("MAX_ID", source::MAX_LAKE_ID)?;
    m.add("PAD_ID", cache::PAD_ID)?;
    Ok(())
}
