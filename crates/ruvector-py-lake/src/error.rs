//! The lake's errors: the base errors of the core plus the lake's own
//! classes of `ruvector_common.errors`, converted to Python once, here.

use std::fmt;

use pyo3::prelude::*;

pub use ruvector_py_core::errors::FromBase;
use ruvector_py_core::errors::{named_error, Error as BaseError};

/// An error of ruLake. Base errors (bad input, dimension, persistence…)
/// keep their class; the others map onto the lake's classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A base error (see `ruvector_py_core::errors`).
    Base(BaseError),
    /// `LakeError`: a failure that is none of the more specific ones below.
    Lake(String),
    /// `BackendError`: a backend (adapter) failed; names the backend.
    Backend { message: String, backend: String },
    /// `CacheMissError`: a required cache entry was missing.
    CacheMiss(String),
    /// `WitnessMismatch`: a bundle witness did not match.
    WitnessMismatch(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The `ruvector_common.errors` classes the lake raises besides the base
/// ones (checked at import).
pub const CLASSES: &[&str] = &[
    "LakeError",
    "BackendError",
    "CacheMissError",
    "WitnessMismatch",
];

impl From<BaseError> for Error {
    fn from(e: BaseError) -> Self {
        Error::Base(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Base(e) => e.fmt(f),
            Error::Lake(m)
            | Error::Backend { message: m, .. }
            | Error::CacheMiss(m)
            | Error::WitnessMismatch(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let message = e.to_string();
        match e {
            Error::Base(e) => e.into(),
            Error::Lake(_) => named_error("LakeError", (message,)),
            Error::Backend { backend, .. } => named_error("BackendError", (message, backend)),
            Error::CacheMiss(_) => named_error("CacheMissError", (message,)),
            Error::WitnessMismatch(_) => named_error("WitnessMismatch", (message,)),
        }
    }
}
