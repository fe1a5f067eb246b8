//! Python arguments of the lake's classes (text and paths checked into
//! ruvector errors, see `ruvector_py_core::arrays::{text_arg, path_arg}`),
//! and running long calls so that Ctrl-C reaches them.

use std::path::PathBuf;

use pyo3::prelude::*;
use ruvector_py_core::arrays::{path_arg, text_arg};
use ruvector_py_core::interrupt::{catch_panic, run_interruptible, Cancel};
use ruvector_py_core::{parallel, Error as BaseError};

use crate::error::{Error, FromBase};
use ruvector_py_index::metric::Metric;

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

/// Ids of any count (`remove`'s ids, a search's `filter`): a 1-D integer
/// array or sequence of non-negative values below 2**64. Other dtypes,
/// negative values and other shapes raise `InvalidArgument` naming what
/// was expected and what came.
pub fn id_list(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    use numpy::PyUntypedArrayMethods;
    let py = obj.py();
    let arr = match obj.cast::<numpy::PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => py
            .import("numpy")?
            .call_method1("asarray", (obj,))
            .map_err(|e| {
                PyErr::from(Error::invalid(format!(
                    "{what} must be a 1-D sequence of integer ids, got {} ({})",
                    ruvector_py_core::arrays::type_name(obj),
                    e.value(py)
                )))
            })?
            .cast_into::<numpy::PyUntypedArray>()?,
    };
    if arr.ndim() != 1 {
        return Err(Error::invalid(format!(
            "{what} must be a 1-D sequence of integer ids, got shape {}",
            ruvector_py_core::arrays::shape_text(arr.shape())
        ))
        .into());
    }
    let n = arr.shape()[0];
    ruvector_py_core::arrays::ids_u64(obj, n, what)
}

/// A search's `metric`: `"l2"` (default), `"ip"` or `"cosine"`, parsed as
/// the indexes parse it.
pub fn metric(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Metric> {
    match obj.filter(|o| !o.is_none()) {
        None => Ok(Metric::L2),
        Some(o) => {
            let Ok(s) = o.cast::<pyo3::types::PyString>() else {
                return Err(Error::invalid(format!(
                    "metric must be \"l2\", \"ip\" or \"cosine\", got {}",
                    o.repr()?
                ))
                .into());
            };
            Ok(Metric::parse(&s.to_cow()?).map_err(Error::from)?)
        }
    }
}

/// A search's `filter`: `None`, or the allowed ids (the backend's ids),
/// at least one.
pub fn filter(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<u64>>> {
    let Some(o) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    let ids = id_list(o, "filter")?;
    if ids.is_empty() {
        return Err(Error::invalid(
            "filter must hold at least one allowed id, got an empty sequence (to search \
             everything pass filter=None)",
        )
        .into());
    }
    Ok(Some(ids))
}
