//! `ruvector_rabitq._native`: RaBitQ vector indexes for Python.
//!
//! The engine (the crate's index kinds made safe and fast, the IVF index,
//! `.rbpx` files) is the shared `ruvector-py-index` crate, which the lake
//! wheel links too; this crate holds the Python classes ([`index`]).

pub mod error;
pub mod index;
pub mod py_modules;

use pyo3::prelude::*;
use ruvector_py_index::{engine, ivf};

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ruvector_py_core::init_module(
        m,
        "rabitq",
        "ruvector-rabitq",
        env!("CARGO_PKG_VERSION"),
        error::CLASSES,
    )?;
    // NumPy's C API now, not lazily at the first returned array (where a
    // failed import would be a panic).
    ruvector_py_core::arrays::init_numpy(m.py())?;
    ruvector_py_core::add_thread_functions(m)?;
    m.add_class::<index::IndexBase>()?;
    m.add_class::<index::FlatF32Index>()?;
    m.add_class::<index::RabitqIndex>()?;
    m.add_class::<index::RabitqPlusIndex>()?;
    m.add_class::<index::RabitqAsymIndex>()?;
    m.add_class::<index::IvfRabitqIndex>()?;
    m.add_class::<index::VectorIter>()?;
    m.add_class::<index::IdSet>()?;
    m.add("MAX_K", ruvector_py_core::validate::MAX_K)?;
    m.add("MAX_DIM", ruvector_py_core::validate::MAX_DIM)?;
    m.add("MAX_HAAR_DIM", engine::MAX_HAAR_DIM)?;
    m.add("MAX_RERANK_FACTOR", engine::MAX_RERANK_FACTOR)?;
    m.add("MAX_VECTORS", engine::MAX_VECTORS)?;
    m.add("MAX_NLIST", ivf::MAX_NLIST)?;
    Ok(())
}
