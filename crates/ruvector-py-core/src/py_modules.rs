//! Rust → Python look-ups: a Python object (a class, a function) that Rust
//! code needs, imported on first use and kept. The core's own are listed
//! at the end of this file; each wheel lists all of its look-ups in its own
//! `py_modules.rs`, so a grep for a Python name from Rust lands in one
//! place per crate.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};

/// `module.attr`, imported on first [`get`](Self::get) and cached.
pub struct LazyPyImport {
    module: &'static str,
    attr: &'static str,
    value: PyOnceLock<Py<PyAny>>,
}

impl LazyPyImport {
    pub const fn new(module: &'static str, attr: &'static str) -> Self {
        Self {
            module,
            attr,
            value: PyOnceLock::new(),
        }
    }

    /// The object, imported the first time.
    pub fn get<'py>(&'static self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.value
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import(self.module)?.getattr(self.attr)?.unbind())
            })
            .map(|v| v.bind(py).clone())
    }
}

/// A list of instances of the named tuple class `cls`, one a row, each
/// made by `tuple.__new__(cls, row)`: what the named tuple's own `__new__`
/// does, less its Python frame (0.13 µs an instance instead of 0.29).
pub fn named_tuples<'py, R>(
    cls: &Bound<'py, PyAny>,
    rows: impl IntoIterator<Item = R>,
) -> PyResult<Bound<'py, PyList>>
where
    R: IntoPyObject<'py>,
{
    let py = cls.py();
    let new = py
        .get_type::<PyTuple>()
        .getattr(pyo3::intern!(py, "__new__"))?;
    let items = rows
        .into_iter()
        .map(|row| new.call1((cls, row)))
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

/// The asyncio side of the runtime bridge (see [`crate::runtime`]).
pub static AIO_RUN: LazyPyImport = LazyPyImport::new("ruvector_common._aio", "run");
/// Delivers a result to an asyncio future on its loop.
pub static AIO_DELIVER: LazyPyImport = LazyPyImport::new("ruvector_common._aio", "deliver");
