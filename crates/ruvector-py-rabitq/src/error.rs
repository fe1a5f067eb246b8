//! The rabitq wheel's errors: only the base errors of the core (bad input,
//! dimension, missing id, empty index, persistence), which the pure engine
//! returns and the core converts to Python.

pub use ruvector_py_core::errors::{Error, Result};

/// The `ruvector_common.errors` classes this wheel raises besides the base
/// ones: none.
pub const CLASSES: &[&str] = &[];
