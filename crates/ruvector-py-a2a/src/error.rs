//! The A2A errors: the base errors of the core plus the A2A classes of
//! `ruvector_common.errors`, converted to Python once, here.

use std::fmt;

use pyo3::prelude::*;

pub use ruvector_py_core::errors::FromBase;
use ruvector_py_core::errors::{named_error, Error as BaseError};

/// An error of the A2A client or server. Base errors (bad input, missing
/// task…) keep their class; the others map onto the A2A classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A base error (see `ruvector_py_core::errors`).
    Base(BaseError),
    /// `A2aError`: a failure that is none of the more specific ones below.
    A2a(String),
    /// `CardSignatureInvalid`: an agent card signature is missing,
    /// malformed or wrong.
    CardSignatureInvalid(String),
    /// `PolicyViolation`: a task policy was violated before sending.
    PolicyViolation(String),
    /// `BudgetExceeded`: the client-wide budget is spent.
    BudgetExceeded(String),
    /// `TransportError`: HTTP / SSE transport failure (including hostile
    /// peers).
    Transport(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// The `ruvector_common.errors` classes this wheel raises besides the base
/// ones (checked at import).
pub const CLASSES: &[&str] = &[
    "A2aError",
    "CardSignatureInvalid",
    "PolicyViolation",
    "BudgetExceeded",
    "TransportError",
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
            Error::A2a(m)
            | Error::CardSignatureInvalid(m)
            | Error::PolicyViolation(m)
            | Error::BudgetExceeded(m)
            | Error::Transport(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let (class, message) = match e {
            Error::Base(e) => return e.into(),
            Error::A2a(m) => ("A2aError", m),
            Error::CardSignatureInvalid(m) => ("CardSignatureInvalid", m),
            Error::PolicyViolation(m) => ("PolicyViolation", m),
            Error::BudgetExceeded(m) => ("BudgetExceeded", m),
            Error::Transport(m) => ("TransportError", m),
        };
        named_error(class, (message,))
    }
}
