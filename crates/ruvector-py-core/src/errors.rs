//! The base errors every crate of the SDK shares, and (with the `python`
//! feature) their mapping onto the exception classes of `ruvector-common`.
//!
//! [`Error`] holds only the *base* classes of the hierarchy (bad input,
//! dimension, missing key, empty index, persistence, index failure): the
//! pure engine returns it without knowing Python. A wheel with classes of
//! its own (lake, embed, a2a) defines its own error enum in its
//! `error.rs`, wrapping this one, and converts it with [`named_error`]:
//! adding a wheel never edits this file.
//!
//! Each wheel is its own cdylib with its own copy of this crate, so classes
//! created here with `create_exception!` would differ per wheel and one
//! `except ruvector.RuVectorError` could not catch them all. The classes are
//! therefore *imported* from `ruvector_common.errors`, which exists once per
//! interpreter and is the one list of them.

use std::fmt;

/// Version of the exception contract this crate was written against; the
/// Python module `ruvector_common.errors` exports the same number as
/// `ERRORS_ABI`. Classes are only ever added, so a newer module is fine.
pub const REQUIRED_ERRORS_ABI: u32 = 1;

/// The Python module holding the shared exception classes.
pub const ERRORS_MODULE: &str = "ruvector_common.errors";

/// Declares the base classes once: the `py` module of imported classes and
/// the list that module init checks.
macro_rules! base_classes {
    ($($name:ident),* $(,)?) => {
        /// Python exception classes of the base errors, imported from
        /// `ruvector_common.errors`.
        #[cfg(feature = "python")]
        pub mod py {
            $(pyo3::import_exception!(ruvector_common.errors, $name);)*
        }
        /// Names of the base classes (checked at module init).
        pub const BASE_CLASSES: &[&str] = &[$(stringify!($name)),*];
    };
}

base_classes!(
    RuVectorError,
    InvalidArgument,
    DimensionMismatch,
    NotFound,
    VectorIndexError,
    EmptyIndex,
    PersistError,
);

/// A base error. Messages say what was expected and what was got; the
/// variant picks the Python class.
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

/// The base constructors on a wheel's own error enum (any type a base
/// [`Error`] converts into), so `Error::invalid(..)` reads the same in
/// every crate.
pub trait FromBase: From<Error> + Sized {
    fn invalid(msg: impl Into<String>) -> Self {
        Error::invalid(msg).into()
    }

    fn dimension(what: impl Into<String>, expected: usize, got: usize) -> Self {
        Error::dimension(what, expected, got).into()
    }

    fn persist(path: impl fmt::Display, msg: impl Into<String>) -> Self {
        Error::persist(path, msg).into()
    }

    fn not_found(msg: impl Into<String>, key: Option<u64>) -> Self {
        Error::NotFound {
            message: msg.into(),
            key,
        }
        .into()
    }
}

impl<T: From<Error>> FromBase for T {}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m)
            | Error::EmptyIndex(m)
            | Error::Index(m)
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

#[cfg(feature = "python")]
mod python {
    use pyo3::exceptions::{PyImportError, PyKeyboardInterrupt};
    use pyo3::prelude::*;

    use super::{py, Error, BASE_CLASSES, ERRORS_MODULE, REQUIRED_ERRORS_ABI};

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
                Error::Interrupted => PyKeyboardInterrupt::new_err(msg),
            }
        }
    }

    /// An instance of the `ruvector_common.errors` class `class`, built from
    /// `args` (the class's constructor arguments): how a wheel raises the
    /// classes of its own error enum. The class names a wheel uses are
    /// checked at import by [`check_errors_module`].
    pub fn named_error<A>(class: &str, args: A) -> PyErr
    where
        A: for<'py> pyo3::call::PyCallArgs<'py>,
    {
        Python::attach(|py| {
            let made = py
                .import(ERRORS_MODULE)
                .and_then(|m| m.getattr(class))
                .and_then(|cls| cls.call1(args));
            match made {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            }
        })
    }

    /// Imports the shared exception module, checks its contract version and
    /// resolves the base classes and `classes` (the wheel's own). Called
    /// first at module init, so a missing or too old `ruvector-common` is a
    /// clear `ImportError` at `import` time rather than a failure at the
    /// first error.
    pub fn check_errors_module(py: Python<'_>, dist: &str, classes: &[&str]) -> PyResult<()> {
        let module = py.import(ERRORS_MODULE).map_err(|e| {
            let err = PyImportError::new_err(format!(
                "{dist} needs the ruvector-common distribution (module {ERRORS_MODULE}); \
                 install it with: pip install 'ruvector-common>=0.1'"
            ));
            err.set_cause(py, Some(e));
            err
        })?;
        let abi: u32 = module.getattr("ERRORS_ABI")?.extract()?;
        if abi < REQUIRED_ERRORS_ABI {
            return Err(PyImportError::new_err(format!(
                "{dist} needs ruvector-common with ERRORS_ABI >= {REQUIRED_ERRORS_ABI}, \
                 but the installed one has ERRORS_ABI = {abi}; upgrade it with: \
                 pip install -U ruvector-common"
            )));
        }
        for name in BASE_CLASSES.iter().chain(classes) {
            module.getattr(*name).map_err(|_| {
                PyImportError::new_err(format!(
                    "{dist} raises {ERRORS_MODULE}.{name}, which the installed \
                     ruvector-common lacks; upgrade it with: pip install -U ruvector-common"
                ))
            })?;
        }
        Ok(())
    }
}

#[cfg(feature = "python")]
pub use python::{check_errors_module, named_error};

/// pyo3 as the core links it, for [`wheel_error!`]'s expansion.
#[cfg(feature = "python")]
#[doc(hidden)]
pub use pyo3 as __pyo3;

/// Declares a wheel's error enum: a `Base` variant wrapping a base [`Error`]
/// plus the wheel's own variants, each naming its `ruvector_common.errors`
/// class. It expands to the enum, `Result<T>`, `CLASSES` (the own class
/// names, checked at import by [`check_errors_module`]), `From<Error>`,
/// `Display` (a variant's first field is its message), `std::error::Error`
/// and the one conversion to `PyErr`. A variant's fields are all `String`s
/// and are, in order, the arguments of its Python class:
///
/// ```ignore
/// ruvector_py_core::wheel_error! {
///     /// An error of ruLake.
///     pub enum Error {
///         /// `LakeError`: any other lake failure.
///         Lake(message) => "LakeError",
///         /// `BackendError`: names the failing backend.
///         Backend { message, backend } => "BackendError",
///     }
/// }
/// ```
///
/// Every wheel therefore has the same error shape, written once here.
#[cfg(feature = "python")]
#[macro_export]
macro_rules! wheel_error {
    ($(#[$attr:meta])* pub enum $name:ident { $($body:tt)* }) => {
        $crate::wheel_error!(@munch [$(#[$attr])*] $name [] [] [] [] $($body)*);
    };
    // A variant holding only its message: `Name(message) => "Class"`.
    (@munch $attrs:tt $name:ident [$($decl:tt)*] [$($disp:tt)*] [$($py:tt)*] [$($cls:tt)*]
        $(#[$vattr:meta])* $variant:ident ( $msg:ident ) => $class:literal $(, $($tail:tt)*)?) => {
        $crate::wheel_error!(@munch $attrs $name
            [$($decl)* $(#[$vattr])* $variant(String),]
            [$($disp)* $name::$variant($msg) => $msg,]
            [$($py)* $name::$variant($msg) => $crate::errors::named_error($class, ($msg,)),]
            [$($cls)* $class,]
            $($($tail)*)?);
    };
    // A variant with more arguments: `Name { message, extra, .. } => "Class"`.
    (@munch $attrs:tt $name:ident [$($decl:tt)*] [$($disp:tt)*] [$($py:tt)*] [$($cls:tt)*]
        $(#[$vattr:meta])* $variant:ident { $msg:ident $(, $rest:ident)* $(,)? } => $class:literal
        $(, $($tail:tt)*)?) => {
        $crate::wheel_error!(@munch $attrs $name
            [$($decl)* $(#[$vattr])* $variant { $msg: String $(, $rest: String)* },]
            [$($disp)* $name::$variant { $msg, .. } => $msg,]
            [$($py)* $name::$variant { $msg $(, $rest)* } =>
                $crate::errors::named_error($class, ($msg, $($rest,)*)),]
            [$($cls)* $class,]
            $($($tail)*)?);
    };
    (@munch [$($attr:tt)*] $name:ident [$($decl:tt)*] [$($disp:tt)*] [$($py:tt)*] [$($cls:tt)*]) => {
        $($attr)*
        #[derive(Debug, Clone, PartialEq)]
        pub enum $name {
            /// A base error (see `ruvector_py_core::errors`): keeps its class.
            Base($crate::errors::Error),
            $($decl)*
        }

        /// The result of a fallible call of this wheel.
        pub type Result<T> = ::std::result::Result<T, $name>;

        /// The `ruvector_common.errors` classes this wheel raises besides
        /// the base ones (checked at import).
        pub const CLASSES: &[&str] = &[$($cls)*];

        impl ::std::convert::From<$crate::errors::Error> for $name {
            fn from(e: $crate::errors::Error) -> Self {
                $name::Base(e)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let message: &str = match self {
                    $name::Base(e) => return ::std::fmt::Display::fmt(e, f),
                    $($disp)*
                };
                f.write_str(message)
            }
        }

        impl ::std::error::Error for $name {}

        impl ::std::convert::From<$name> for $crate::errors::__pyo3::PyErr {
            fn from(e: $name) -> Self {
                match e {
                    $name::Base(e) => e.into(),
                    $($py)*
                }
            }
        }
    };
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
