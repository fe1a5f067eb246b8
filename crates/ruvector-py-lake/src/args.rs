//! Python arguments of the lake's classes (text and paths checked into
//! ruvector errors, see `ruvector_py_core::arrays::{text_arg, path_arg}`),
//! and running long calls so that Ctrl-C reaches them.

use std::path::PathBuf;

use pyo3::prelude::*;
use ruvector_py_core::arrays::{path_arg, text_arg};
use ruvector_py_core::interrupt::{catch_panic, run_interruptible, Cancel};
use ruvector_py_core::{parallel, Error as BaseError};

use crate::error::Error;

use crate::source::LResult;

macro_rules! text_args {
    ($($name:ident),*) => {$(
        #[doc = concat!("The `", stringify!($name), "` argument: a `str` of valid Unicode.")]
        pub fn $name(obj: &Bound<'_, PyAny>) -> PyResult<String> {
            text_arg(obj, stringify!($name))
        }
    )*};
}
text_args!(backend, collection, name, filename, text, data_ref);

/// The `dir` argument: a `str` or `os.PathLike[str]` the file system can
/// represent.
pub fn dir(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    path_arg(obj, "dir")
}

/// The `root` argument, as [`dir`].
pub fn root(obj: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    path_arg(obj, "root")
}

/// Runs `work` with the GIL released and Ctrl-C honoured between its
/// chunks (`ruvector_py_core::interrupt::run_interruptible`); a panic is an
/// internal error. Called from a backend adapter's callback (a thread of
/// this wheel's pool), the work runs inline on that thread instead: waiting
/// there for another pool task could deadlock a small pool, and signals
/// only reach the main thread anyway.
pub fn interruptible<T, W>(py: Python<'_>, work: W) -> PyResult<T>
where
    T: Send,
    W: FnOnce(&Cancel) -> LResult<T> + Send,
{
    let on_pool = parallel::pool()?.current_thread_index().is_some();
    if on_pool {
        return Ok(py.detach(|| catch_panic(|| work(&Cancel::new())))?);
    }
    let out = run_interruptible(py, |cancel| match work(cancel) {
        Err(f) if matches!(f.err(), Error::Base(BaseError::Interrupted)) => {
            Err(BaseError::Interrupted)
        }
        other => Ok(other),
    })?;
    Ok(out?)
}

/// `work` for the wheel's async runtime: a panic becomes an internal error
/// (a panicking task would leave its awaiter waiting forever).
pub fn no_panic<T>(work: impl FnOnce() -> LResult<T>) -> LResult<T> {
    catch_panic(work)
}
