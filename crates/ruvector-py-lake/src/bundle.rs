//! `Bundle`: the crate's `RuLakeBundle` (the `table.rulake.json` sidecar
//! and its SHAKE-256 witness) as a read-only Python object.

use std::path::PathBuf;

use crate::error::Error;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use ruvector_rulake::{Generation, RuLakeBundle};

use crate::args::no_panic;
use crate::snapshot;

/// A ruLake bundle: what a cache entry was built from, and its witness.
///
/// The witness is an unkeyed hash of `data_ref`, `dim`, `rotation_seed`,
/// `rerank_factor` and `generation`: it detects edits of those fields, not
/// deliberate forgery (anyone can recompute it).
#[pyclass(frozen, module = "ruvector_lake")]
pub struct Bundle {
    pub(crate) inner: RuLakeBundle,
}

impl Bundle {
    pub fn new(inner: RuLakeBundle) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl Bundle {
    /// Reads `dir/table.rulake.json` and verifies its witness
    /// (`WitnessMismatch` if the file was altered, `LakeError` if it is
    /// missing or malformed).
    #[staticmethod]
    fn read(
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
    ) -> PyResult<Self> {
        let b = py
            .detach(|| no_panic(|| snapshot::read_bundle(&dir)))?
            .ok_or_else(|| {
                Error::Lake(format!("{} has no {}", dir.display(), snapshot::SIDECAR))
            })?;
        Ok(Self::new(b))
    }

    /// Parses a bundle's JSON (the witness is not checked; see `verify`).
    #[staticmethod]
    fn from_json(#[pyo3(from_py_with = crate::args::text)] text: String) -> PyResult<Self> {
        Ok(Self::new(no_panic(|| snapshot::parse_bundle(&text))?))
    }

    /// The bundle as the crate's pretty-printed JSON.
    fn to_json(&self) -> PyResult<String> {
        Ok(self
            .inner
            .to_json()
            .map_err(|e| Error::Lake(format!("cannot serialize the bundle: {e}")))?)
    }

    /// Writes `dir/table.rulake.json` atomically; returns its path.
    fn write(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
    ) -> PyResult<String> {
        let p = py.detach(|| no_panic(|| snapshot::write_bundle(&self.inner, &dir)))?;
        Ok(p.to_string_lossy().into_owned())
    }

    /// Whether the witness matches the other fields.
    fn verify(&self) -> bool {
        self.inner.verify_witness()
    }

    /// The witness: 64 hex characters.
    #[getter]
    fn witness(&self) -> &str {
        &self.inner.rvf_witness
    }

    #[getter]
    fn data_ref(&self) -> &str {
        &self.inner.data_ref
    }

    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim
    }

    #[getter]
    fn rotation_seed(&self) -> u64 {
        self.inner.rotation_seed
    }

    #[getter]
    fn rerank_factor(&self) -> usize {
        self.inner.rerank_factor
    }

    #[getter]
    fn format_version(&self) -> u32 {
        self.inner.format_version
    }

    /// The backend's coherence token: an int or a str.
    #[getter]
    fn generation(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match &self.inner.generation {
            Generation::Num(n) => n.into_pyobject(py)?.into_any().unbind(),
            Generation::Opaque(s) => s.into_pyobject(py)?.into_any().unbind(),
        })
    }

    #[getter]
    fn pii_policy(&self) -> Option<&str> {
        self.inner.pii_policy.as_deref()
    }

    #[getter]
    fn lineage_id(&self) -> Option<&str> {
        self.inner.lineage_id.as_deref()
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> Py<PyAny> {
        let py = other.py();
        let Ok(other) = other.cast::<Bundle>() else {
            return py.NotImplemented();
        };
        let same = self.inner.to_json().ok() == other.get().inner.to_json().ok();
        match op {
            CompareOp::Eq => same
                .into_pyobject(py)
                .map(|b| b.to_owned().into_any().unbind()),
            CompareOp::Ne => (!same)
                .into_pyobject(py)
                .map(|b| b.to_owned().into_any().unbind()),
            _ => Ok(py.NotImplemented()),
        }
        .unwrap_or_else(|_| py.NotImplemented())
    }

    fn __repr__(&self) -> String {
        format!(
            "Bundle(data_ref={:?}, dim={}, generation={}, witness={:?})",
            self.inner.data_ref,
            self.inner.dim,
            match &self.inner.generation {
                Generation::Num(n) => n.to_string(),
                Generation::Opaque(s) => format!("{s:?}"),
            },
            self.inner.rvf_witness
        )
    }
}

/// Test hook: reads and verifies a sidecar with the crate's own
/// `RuLakeBundle::read_from_dir` (no SDK code), returning its witness.
#[pyfunction]
#[pyo3(name = "_crate_read_bundle")]
pub fn crate_read_bundle(
    #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
) -> PyResult<String> {
    RuLakeBundle::read_from_dir(&dir)
        .map(|b| b.rvf_witness)
        .map_err(|e| Error::Lake(format!("ruvector-rulake: {e}")).into())
}

/// Test hook: writes a sidecar with the crate's own `write_to_dir`.
#[pyfunction]
#[pyo3(name = "_crate_write_bundle")]
pub fn crate_write_bundle(
    #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
    #[pyo3(from_py_with = crate::args::data_ref)] data_ref: String,
    dim: usize,
    rotation_seed: u64,
    rerank_factor: usize,
    generation: u64,
) -> PyResult<String> {
    let b = RuLakeBundle::new(
        data_ref,
        dim,
        rotation_seed,
        rerank_factor,
        Generation::Num(generation),
    );
    b.write_to_dir(&dir)
        .map_err(|e| PyErr::from(Error::Lake(format!("ruvector-rulake: {e}"))))?;
    Ok(b.rvf_witness)
}
