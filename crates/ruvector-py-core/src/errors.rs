//! The one error type every wheel returns, mapped onto the shared Python
//! exception hierarchy of the pure-Python `ruvector-common` distribution.
//!
//! Each wheel is its own cdylib with its own copy of this crate, so classes
//! created here with `create_exception!` would differ per wheel and one
//! `except ruvector.RuVectorError` could not catch them all. The classes are
//! therefore *imported* from `ruvector_common.errors`, which exists once per
//! interpreter.

use std::fmt;

use pyo3::prelude::*;

/// Version of the exception contract this crate was written against; the
/// Python module `ruvector_common.errors` exports the same number as
/// `ERRORS_ABI`. Classes are only ever added, so a newer module is fine.
pub const REQUIRED_ERRORS_ABI: u32 = 1;

/// The Python module holding the shared exception classes.
pub const ERRORS_MODULE: &str = "ruvector_common.errors";

/// Python exception classes, imported from `ruvector_common.errors`.
pub mod py {
    pyo3::import_exception!(ruvector_common.errors, RuVectorError);
    pyo3::import_exception!(ruvector_common.errors, InvalidArgument);
    pyo3::import_exception!(ruvector_common.errors, DimensionMismatch);
    pyo3::import_exception!(ruvector_common.errors, NotFound);
    pyo3::import_exception!(ruvector_common.errors, VectorIndexError);
    pyo3::import_exception!(ruvector_common.errors, EmptyIndex);
    pyo3::import_exception!(ruvector_common.errors, PersistError);
    pyo3::import_exception!(ruvector_common.errors, LakeError);
    pyo3::import_exception!(ruvector_common.errors, BackendError);
    pyo3::import_exception!(ruvector_common.errors, CacheMissError);
    pyo3::import_exception!(ruvector_common.errors, WitnessMismatch);
    pyo3::import_exception!(ruvector_common.errors, EmbedError);
    pyo3::import_exception!(ruvector_common.errors, A2aError);
    pyo3::import_exception!(ruvector_common.errors, CardSignatureInvalid);
    pyo3::import_exception!(ruvector_common.errors, PolicyViolation);
    pyo3::import_exception!(ruvector_common.errors, BudgetExceeded);
    pyo3::import_exception!(ruvector_common.errors, TransportError);
}

/// An error on its way to Python. Messages say what was expected and what was
/// got; the variant picks the Python class.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Bad input that is not a dimension mismatch (dtype, shape, NaN, range).
    InvalidArgument(String),
    /// A vector's length differs from the index dimension.
    DimensionMismatch {
        what: String,
        expected: usize,
        got: usize,
    },
    /// A lookup of a key (an id, a name) that is not there.
    NotFound { message: String, key: Option<u64> },
    /// A search on an index holding no vectors.
    EmptyIndex(String),
    /// Saving or loading failed: I/O, format, checksum, limits.
    Persist {
        message: String,
        path: Option<String>,
    },
    /// A failure inside a vector index that is none of the above.
    Index(String),
    /// ruLake: a failure that is none of the more specific ones below.
    Lake(String),
    /// ruLake: a backend (adapter) failed; names the backend.
    Backend { message: String, backend: String },
    /// ruLake: a required cache entry was missing.
    CacheMiss(String),
    /// ruLake: a bundle witness did not match.
    WitnessMismatch(String),
    /// Embeddings: model resolution, verification or inference failed.
    Embed(String),
    /// A2A: a failure that is none of the more specific ones below.
    A2a(String),
    /// A2A: an agent card signature is missing, malformed or wrong.
    CardSignatureInvalid(String),
    /// A2A: a task policy was violated before sending.
    PolicyViolation(String),
    /// A2A: the client-wide budget is spent.
    BudgetExceeded(String),
    /// A2A: HTTP / SSE transport failure (including hostile peers).
    Transport(String),
    /// The call was cancelled by a signal (Ctrl-C) before it committed; see
    /// [`crate::interrupt`]. Normally the signal's own exception is raised.
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }

    pub fn dimension(what: impl Into<String>, expected: usize, got: usize) -> Self {
        Error::DimensionMismatch {
            what: what.into(),
            expected,
            got,
        }
    }

    pub fn persist(path: impl fmt::Display, msg: impl Into<String>) -> Self {
        Error::Persist {
            message: format!("{}: {}", path, msg.into()),
            path: Some(path.to_string()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m)
            | Error::EmptyIndex(m)
            | Error::Index(m)
            | Error::Lake(m)
            | Error::Backend { message: m, .. }
            | Error::CacheMiss(m)
            | Error::WitnessMismatch(m)
            | Error::Embed(m)
            | Error::A2a(m)
            | Error::CardSignatureInvalid(m)
            | Error::PolicyViolation(m)
            | Error::BudgetExceeded(m)
            | Error::Transport(m)
            | Error::NotFound { message: m, .. }
            | Error::Persist { message: m, .. } => f.write_str(m),
            Error::Interrupted => f.write_str("interrupted"),
            Error::DimensionMismatch {
                what,
                expected,
                got,
            } => write!(
                f,
                "{what} has dimension {got}, but the index has dimension {expected}"
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::InvalidArgument(_) => py::InvalidArgument::new_err(msg),
            Error::DimensionMismatch { expected, got, .. } => {
                py::DimensionMismatch::new_err((msg, expected, got))
            }
            Error::NotFound { key, .. } => py::NotFound::new_err((msg, key)),
            Error::EmptyIndex(_) => py::EmptyIndex::new_err(msg),
            Error::Persist { path, .. } => py::PersistError::new_err((msg, path)),
            Error::Index(_) => py::VectorIndexError::new_err(msg),
            Error::Lake(_) => py::LakeError::new_err(msg),
            Error::Backend { backend, .. } => py::BackendError::new_err((msg, backend)),
            Error::CacheMiss(_) => py::CacheMissError::new_err(msg),
            Error::WitnessMismatch(_) => py::WitnessMismatch::new_err(msg),
            Error::Embed(_) => py::EmbedError::new_err(msg),
            Error::A2a(_) => py::A2aError::new_err(msg),
            Error::CardSignatureInvalid(_) => py::CardSignatureInvalid::new_err(msg),
            Error::PolicyViolation(_) => py::PolicyViolation::new_err(msg),
            Error::BudgetExceeded(_) => py::BudgetExceeded::new_err(msg),
            Error::Transport(_) => py::TransportError::new_err(msg),
            Error::Interrupted => pyo3::exceptions::PyKeyboardInterrupt::new_err(msg),
        }
    }
}

/// Imports the shared exception module and checks its contract version.
/// Called first at module init, so a missing `ruvector-common` is a clear
/// `ImportError` at `import` time rather than a panic at the first error.
pub fn check_errors_module(py: Python<'_>, dist: &str) -> PyResult<()> {
    let module = py.import(ERRORS_MODULE).map_err(|e| {
        let err = pyo3::exceptions::PyImportError::new_err(format!(
            "{dist} needs the ruvector-common distribution (module {ERRORS_MODULE}); \
             install it with: pip install 'ruvector-common>=0.1'"
        ));
        err.set_cause(py, Some(e));
        err
    })?;
    let abi: u32 = module.getattr("ERRORS_ABI")?.extract()?;
    if abi < REQUIRED_ERRORS_ABI {
        return Err(pyo3::exceptions::PyImportError::new_err(format!(
            "{dist} needs ruvector-common with ERRORS_ABI >= {REQUIRED_ERRORS_ABI}, \
             but the installed one has ERRORS_ABI = {abi}; upgrade it with: \
             pip install -U ruvector-common"
        )));
    }
    // Resolve every class now: an import_exception! that fails later panics.
    for name in [
        "RuVectorError",
        "InvalidArgument",
        "DimensionMismatch",
        "NotFound",
        "VectorIndexError",
        "EmptyIndex",
        "PersistError",
        "LakeError",
        "BackendError",
        "CacheMissError",
        "WitnessMismatch",
        "EmbedError",
        "A2aError",
        "CardSignatureInvalid",
        "PolicyViolation",
        "BudgetExceeded",
        "TransportError",
    ] {
        module.getattr(name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_message_names_both_sizes() {
        let e = Error::dimension("query", 128, 64);
        assert_eq!(
            e.to_string(),
            "query has dimension 64, but the index has dimension 128"
        );
    }

    #[test]
    fn persist_message_starts_with_path() {
        let e = Error::persist("/tmp/x.rbpx", "truncated");
        assert_eq!(e.to_string(), "/tmp/x.rbpx: truncated");
        assert!(matches!(e, Error::Persist { path: Some(ref p), .. } if p == "/tmp/x.rbpx"));
    }
}
