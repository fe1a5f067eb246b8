//! The embedders' errors: the base errors of the core plus `EmbedError`,
//! converted to Python once, here.

use std::fmt;

use pyo3::prelude::*;

pub use ruvector_py_core::errors::FromBase;
use ruvector_py_core::errors::{named_error, Error as BaseError};

/// An error of the embedders. Base errors (bad input…) keep their class.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A base error (see `ruvector_py_core::errors`).
    Base(BaseError),
    /// `EmbedError`: model resolution, verification or inference failed.
    Embed(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The `ruvector_common.errors` classes this wheel raises besides the base
/// ones (checked at import).
pub const CLASSES: &[&str] = &["EmbedError"];

impl From<BaseError> for Error {
    fn from(e: BaseError) -> Self {
        Error::Base(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Base(e) => e.fmt(f),
            Error::Embed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        match e {
            Error::Base(e) => e.into(),
            Error::Embed(m) => named_error("EmbedError", (m,)),
        }
    }
}
