//! Rust → Python look-ups: a Python object (a class, a function) that Rust
//! code needs, imported on first use and kept. The core's own are listed
//! at the end of this file; each wheel lists all of its look-ups in its own
//! `py_modules.rs`, so a grep for a Python name from Rust lands in one
//! place per crate.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

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

/// The asyncio side of the runtime bridge (see [`crate::runtime`]).
pub static AIO_RUN: LazyPyImport = LazyPyImport::new("ruvector_common._aio", "run");
/// Delivers a result to an asyncio future on its loop.
pub static AIO_DELIVER: LazyPyImport = LazyPyImport::new("ruvector_common._aio", "deliver");
