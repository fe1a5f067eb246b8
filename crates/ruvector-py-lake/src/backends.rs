//! The Python backend classes `LocalBackend` and `FsBackend`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, FromBase};
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use ruvector_py_core::arrays::{ids_u64, matrix_f32};
use ruvector_py_core::interrupt::catch_panic;

use crate::source::{FsSource, LocalSource, Source};

fn py_repr(py: Python<'_>, s: &str) -> PyResult<String> {
    Ok(pyo3::types::PyString::new(py, s).repr()?.to_string())
}

/// Reads `(ids, vectors)` arguments: an `(n, dim)` float32 matrix and `n`
/// unsigned 64-bit ids.
fn rows(
    ids: &Bound<'_, PyAny>,
    vectors: &Bound<'_, PyAny>,
) -> PyResult<(Vec<u64>, Vec<f32>, usize)> {
    let m = matrix_f32(vectors, "vectors")?;
    let shape = m.shape().to_vec();
    let (n, dim) = (shape[0], shape[1]);
    let ids = ids_u64(ids, n, "ids")?;
    Ok((ids, m.as_slice()?.to_vec(), dim))
}

/// An in-memory backend (the crate's `LocalBackend`). Collections are
/// created by the first `upsert`; every upsert (and every `remove` that
/// removes a row) bumps the collection's generation, so a `FRESH` lake sees
/// it on its next search.
#[pyclass(frozen, module = "ruvector_lake")]
pub struct LocalBackend {
    pub(crate) src: Arc<LocalSource>,
}

#[pymethods]
impl LocalBackend {
    #[new]
    fn new(#[pyo3(from_py_with = crate::args::name)] name: String) -> PyResult<Self> {
        Ok(Self {
            src: Arc::new(LocalSource::new(&name)?),
        })
    }

    /// Inserts the rows of `vectors` (shape `(n, dim)`, float32) under `ids`
    /// (n unique unsigned 64-bit ints), replacing rows whose id exists.
    /// Validated first: on error nothing changes.
    fn upsert(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let (ids, data, dim) = rows(ids, vectors)?;
        Ok(py.detach(|| catch_panic(|| self.src.upsert(&collection, &ids, &data, dim)))?)
    }

    /// Removes the rows of `ids` (a 1-D sequence of unsigned 64-bit ints)
    /// from `collection` and returns how many were removed; ids the
    /// collection does not hold are ignored, repeats count once. Removing
    /// at least one row bumps the collection's generation, so a `FRESH`
    /// lake re-primes on its next search and never returns a removed id
    /// again (`EVENTUAL` / `FROZEN` lakes keep serving their entry as
    /// documented). `NotFound` if there is no such collection.
    fn remove(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        ids: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let ids = crate::args::id_list(ids, "ids")?;
        Ok(py.detach(|| catch_panic(|| self.src.remove(&collection, &ids)))?)
    }

    /// The backend's name (unique within a lake).
    #[getter]
    fn name(&self) -> String {
        self.src.name().to_string()
    }

    /// Names of the collections, sorted.
    fn collections(&self) -> PyResult<Vec<String>> {
        Ok(self.src.collections()?)
    }

    /// Number of vectors in `collection` (`NotFound` if there is none).
    fn count(
        &self,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
    ) -> PyResult<usize> {
        self.src.count(&collection).ok_or_else(|| {
            Error::not_found(
                format!(
                    "backend {:?} has no collection {collection:?}",
                    self.src.name()
                ),
                None,
            )
            .into()
        })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("LocalBackend({})", py_repr(py, self.src.name())?))
    }
}

/// A backend over `ruvec1` files in one directory (the crate's format).
/// Generations follow every rewrite (nanosecond mtime, size, inode), and
/// file sizes are checked against their headers before reading.
#[pyclass(frozen, module = "ruvector_lake")]
pub struct FsBackend {
    pub(crate) src: Arc<FsSource>,
}

#[pymethods]
impl FsBackend {
    #[new]
    fn new(
        #[pyo3(from_py_with = crate::args::name)] name: String,
        #[pyo3(from_py_with = crate::args::root)] root: PathBuf,
    ) -> PyResult<Self> {
        Ok(Self {
            src: Arc::new(FsSource::new(&name, &root)?),
        })
    }

    /// Writes `collection` to `root/filename` (default `<collection>.ruvec`)
    /// atomically and registers it. Returns the file's path.
    #[pyo3(signature = (collection, ids, vectors, *, filename=None))]
    fn write(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
        filename: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let (ids, data, dim) = rows(ids, vectors)?;
        let filename = match filename.filter(|f| !f.is_none()) {
            Some(f) => crate::args::filename(f)?,
            None => format!("{collection}.ruvec"),
        };
        let path =
            py.detach(|| catch_panic(|| self.src.write(&collection, &filename, &ids, &data, dim)))?;
        Ok(path.to_string_lossy().into_owned())
    }

    /// Maps `collection` to an existing `ruvec1` file inside the root.
    /// Names with path separators, `..` or control characters are refused.
    fn register(
        &self,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        #[pyo3(from_py_with = crate::args::filename)] filename: String,
    ) -> PyResult<()> {
        Ok(self.src.register(&collection, &filename)?)
    }

    /// The backend's name (unique within a lake).
    #[getter]
    fn name(&self) -> String {
        self.src.name().to_string()
    }

    /// The directory holding the files.
    #[getter]
    fn root(&self) -> String {
        self.src.root().to_string_lossy().into_owned()
    }

    /// Names of the registered collections, sorted.
    fn collections(&self) -> PyResult<Vec<String>> {
        Ok(self.src.collections()?)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "FsBackend({}, {})",
            py_repr(py, self.src.name())?,
            py_repr(py, &self.src.root().to_string_lossy())?
        ))
    }
}
