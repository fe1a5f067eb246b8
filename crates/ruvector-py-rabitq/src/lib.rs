//! `ruvector_rabitq._native`: RaBitQ vector indexes for Python.
//!
//! * [`engine`] — the four index kinds over the `ruvector-rabitq` crate,
//!   and the SDK's own IVF kind ([`ivf`], [`kmeans`]), with every input
//!   validated first;
//! * [`store`] — ids and kept vectors; [`topk`] — the crate's top-k rules;
//! * [`persist`] — `.rbpx` files, checked and atomic;
//! * [`index`] — the Python classes.

pub mod codes;
pub mod distance;
pub mod engine;
pub mod fastscan;
pub mod index;
pub mod ivf;
pub mod kmeans;
pub mod persist;
pub mod rotation;
pub mod store;
pub mod topk;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    ruvector_py_core::init_module(m, "rabitq", "ruvector-rabitq", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<index::IndexBase>()?;
    m.add_class::<index::FlatF32Index>()?;
    m.add_class::<index::RabitqIndex>()?;
    m.add_class::<index::RabitqPlusIndex>()?;
    m.add_class::<index::RabitqAsymIndex>()?;
    m.add_class::<index::IvfRabitqIndex>()?;
    m.add_class::<index::VectorIter>()?;
    m.add("MAX_DIM", ruvector_py_core::validate::MAX_DIM)?;
    m.add("MAX_HAAR_DIM", engine::MAX_HAAR_DIM)?;
    m.add("MAX_RERANK_FACTOR", engine::MAX_RERANK_FACTOR)?;
    m.add("MAX_VECTORS", engine::MAX_VECTORS)?;
    m.add("MAX_NLIST", ivf::MAX_NLIST)?;
    Ok(())
}
