//! A backend implemented in Python (a subclass of
//! `ruvector_lake.BackendAdapter`), called back from Rust threads.
//!
//! Every call re-acquires the GIL only for the duration of the Python call
//! and the conversion of its result; no lake lock is held meanwhile, so an
//! adapter may itself call the lake. A Python exception, a wrong return type
//! or shape becomes `BackendError` naming the backend, with the original
//! exception as `__cause__`; a `BaseException` that is not an `Exception`
//! (`KeyboardInterrupt`, `SystemExit`) reaches the caller unchanged.
//!
//! The adapter supplies `generation(collection)`; the engine builds the
//! bundle from it and never pulls just to learn the dimension (the crate's
//! default `current_bundle` pulled every vector on every search). The
//! dimension is remembered per `(collection, generation)`; only the first
//! check of a new generation pulls, and that pull is reused for the prime.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::{Error, FromBase};
use numpy::PyUntypedArrayMethods;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use ruvector_py_core::arrays::{ids_u64, matrix_f32, type_name};
use ruvector_py_core::runtime::InflightGuard;
use ruvector_rulake::{Generation, RuLakeBundle};

use crate::source::{
    check_name, Delta, Failure, LResult, Pulled, Source, MAX_COLLECTION_VECTORS, MAX_LAKE_DIM,
};

pub struct PySource {
    name: String,
    obj: Py<PyAny>,
    dims: Mutex<HashMap<String, (Generation, usize)>>,
    /// Whether the adapter's class overrides `changes_since`.
    deltas: bool,
}

impl PySource {
    pub fn new(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        let name: String = obj.getattr("name")?.extract().map_err(|_| {
            PyErr::from(Error::invalid(
                "a BackendAdapter's name must be a str (pass it to BackendAdapter.__init__)",
            ))
        })?;
        check_name("backend name", &name)?;
        let base = crate::py_modules::BACKEND_ADAPTER.get(obj.py())?;
        let deltas = !obj
            .get_type()
            .getattr("changes_since")?
            .is(&base.getattr("changes_since")?);
        Ok(Self {
            name,
            obj: obj.clone().unbind(),
            dims: Mutex::new(HashMap::new()),
            deltas,
        })
    }

    fn fail(&self, method: &str, collection: &str, msg: String, cause: Option<PyErr>) -> Failure {
        let err = Error::Backend {
            message: format!(
                "backend {:?} failed in {method}({collection:?}): {msg}",
                self.name
            ),
            backend: self.name.clone(),
        };
        Failure::new(err, cause)
    }

    /// Calls `method(collection)` with the GIL held only for this call and
    /// `convert`.
    fn call<T>(
        &self,
        method: &str,
        collection: &str,
        convert: impl FnOnce(&Bound<'_, PyAny>) -> Result<T, (String, Option<PyErr>)>,
    ) -> LResult<T> {
        let Some(_guard) = InflightGuard::enter() else {
            return Err(self.fail(
                method,
                collection,
                "the interpreter is exiting".into(),
                None,
            ));
        };
        Python::attach(|py| {
            let out = self
                .obj
                .bind(py)
                .call_method1(method, (collection,))
                .map_err(|e| {
                    let text = e.to_string();
                    self.fail(method, collection, format!("raised {text}"), Some(e))
                })?;
            convert(&out).map_err(|(m, c)| self.fail(method, collection, m, c))
        })
    }

    fn pull_now(&self, collection: &str) -> LResult<Pulled> {
        self.call("pull", collection, |out| {
            let pair = out
                .cast::<PyTuple>()
                .ok()
                .filter(|t| t.len() == 2)
                .ok_or_else(|| {
                    (
                        format!(
                            "pull must return a tuple (ids, vectors), got {}",
                            type_name(out)
                        ),
                        None,
                    )
                })?;
            let vectors = pair.get_item(1).map_err(|e| (e.to_string(), None))?;
            let m = matrix_f32(&vectors, "vectors")
                .map_err(|e| (format!("it returned bad vectors: {e}"), Some(e)))?;
            let shape = m.shape().to_vec();
            let (n, dim) = (shape[0], shape[1]);
            if dim == 0 || dim > MAX_LAKE_DIM {
                return Err((
                    format!("vectors must have between 1 and {MAX_LAKE_DIM} columns, got {dim}"),
                    None,
                ));
            }
            let data = m.as_slice().map_err(|e| (e.to_string(), None))?.to_vec();
            let ids_obj = pair.get_item(0).map_err(|e| (e.to_string(), None))?;
            let ids = ids_u64(&ids_obj, n, "ids")
                .map_err(|e| (format!("it returned bad ids: {e}"), Some(e)))?;
            Ok(Pulled { ids, data, dim })
        })
    }

    fn generation(&self, collection: &str) -> LResult<Generation> {
        self.call("generation", collection, |out| {
            generation_of(out, "generation must return")
        })
    }

    /// The adapter's `changes_since(collection, since)`, converted and
    /// bounded (see [`check_delta`] for the checks against the entry).
    fn delta(&self, collection: &str, since: &Generation) -> LResult<Option<Delta>> {
        let Some(_guard) = InflightGuard::enter() else {
            return Err(self.fail(
                "changes_since",
                collection,
                "the interpreter is exiting".into(),
                None,
            ));
        };
        Python::attach(|py| {
            let since_obj: Py<PyAny> = match since {
                Generation::Num(n) => pyo3::types::PyInt::new(py, *n).into_any().unbind(),
                Generation::Opaque(s) => PyString::new(py, s).into_any().unbind(),
            };
            let out = self
                .obj
                .bind(py)
                .call_method1("changes_since", (collection, since_obj))
                .map_err(|e| {
                    let text = e.to_string();
                    self.fail(
                        "changes_since",
                        collection,
                        format!("raised {text}"),
                        Some(e),
                    )
                })?;
            if out.is_none() {
                return Ok(None);
            }
            delta_of(&out)
                .map(Some)
                .map_err(|(m, c)| self.fail("changes_since", collection, m, c))
        })
    }

    fn data_ref(&self, collection: &str) -> LResult<String> {
        self.call("data_ref", collection, |out| {
            let s: String = out.extract().map_err(|_| {
                (
                    format!("data_ref must return a str, got {}", type_name(out)),
                    None,
                )
            })?;
            if s.is_empty() || s.len() > 4096 {
                return Err(("data_ref must be 1 to 4096 bytes long".into(), None));
            }
            Ok(s)
        })
    }
}

/// A generation returned by an adapter (`method` starts the message): an int in `0..2**64` or a str of at
/// most 1024 bytes (exactly its text).
fn generation_of(
    out: &Bound<'_, PyAny>,
    method: &str,
) -> Result<Generation, (String, Option<PyErr>)> {
    if out.is_instance_of::<pyo3::types::PyBool>() {
        return Err((format!("{method} an int or a str, got bool"), None));
    }
    if let Ok(s) = out.cast::<PyString>() {
        // Exactly the text: a lossy conversion would map two different
        // generations onto one.
        let s = s.to_cow().map_err(|e| {
            (
                "a str generation must be valid Unicode (it holds a lone surrogate)".to_string(),
                Some(e),
            )
        })?;
        let s = s.into_owned();
        if s.len() > 1024 {
            return Err(("a str generation must be at most 1024 bytes".into(), None));
        }
        return Ok(Generation::Opaque(s));
    }
    if let Ok(n) = out.extract::<u64>() {
        return Ok(Generation::Num(n));
    }
    Err((
        format!(
            "{method} an int in 0..2**64 or a str, got {}",
            out.repr()
                .map(|r| r.to_string())
                .unwrap_or_else(|_| type_name(out))
        ),
        None,
    ))
}

/// Converts what `changes_since` returned (not `None`): a 4-tuple
/// `(upserted_ids, upserted_vectors, removed_ids, generation)`, e.g. a
/// `Changes`. Vectors are checked for shape here, the rest by
/// [`check_delta`].
fn delta_of(out: &Bound<'_, PyAny>) -> Result<Delta, (String, Option<PyErr>)> {
    let t = out
        .cast::<PyTuple>()
        .ok()
        .filter(|t| t.len() == 4)
        .ok_or_else(|| {
            (
                format!(
                    "changes_since must return None or a Changes (upserted_ids, \
                     upserted_vectors, removed_ids, generation), got {}",
                    type_name(out)
                ),
                None,
            )
        })?;
    let item = |i: usize| t.get_item(i).map_err(|e| (e.to_string(), None));
    let (ids_obj, vec_obj, removed_obj) = (item(0)?, item(1)?, item(2)?);
    let generation = generation_of(&item(3)?, "the generation of changes_since must be")?;
    let length = |o: &Bound<'_, PyAny>, what: &str| {
        o.len().map_err(|e| {
            (
                format!("{what} must be a sequence, got {}", type_name(o)),
                Some(e),
            )
        })
    };
    let n = length(&ids_obj, "upserted_ids")?;
    if n > MAX_COLLECTION_VECTORS {
        return Err((
            format!("{n} upserted ids exceed the limit of {MAX_COLLECTION_VECTORS}"),
            None,
        ));
    }
    let (data, dim) = if n == 0 {
        if length(&vec_obj, "upserted_vectors")? != 0 {
            return Err((
                "upserted_vectors must be empty when no id is upserted".into(),
                None,
            ));
        }
        (Vec::new(), 0)
    } else {
        let m = matrix_f32(&vec_obj, "upserted_vectors")
            .map_err(|e| (format!("it returned bad upserted_vectors: {e}"), Some(e)))?;
        let shape = m.shape().to_vec();
        if shape[0] != n {
            return Err((
                format!("got {n} upserted ids for {} upserted vectors", shape[0]),
                None,
            ));
        }
        if shape[1] == 0 || shape[1] > MAX_LAKE_DIM {
            return Err((
                format!(
                    "upserted_vectors must have between 1 and {MAX_LAKE_DIM} columns, got {}",
                    shape[1]
                ),
                None,
            ));
        }
        (
            m.as_slice().map_err(|e| (e.to_string(), None))?.to_vec(),
            shape[1],
        )
    };
    let upserted = ids_u64(&ids_obj, n, "upserted_ids")
        .map_err(|e| (format!("it returned bad upserted_ids: {e}"), Some(e)))?;
    let r = length(&removed_obj, "removed_ids")?;
    if r > MAX_COLLECTION_VECTORS {
        return Err((
            format!("{r} removed ids exceed the limit of {MAX_COLLECTION_VECTORS}"),
            None,
        ));
    }
    let removed = ids_u64(&removed_obj, r, "removed_ids")
        .map_err(|e| (format!("it returned bad removed_ids: {e}"), Some(e)))?;
    Ok(Delta {
        upserted,
        data,
        dim,
        removed,
        generation,
    })
}

impl Source for PySource {
    fn name(&self) -> &str {
        &self.name
    }

    fn current(
        &self,
        collection: &str,
        seed: u64,
        rf: usize,
        base_dim: Option<usize>,
    ) -> LResult<(RuLakeBundle, Option<Pulled>)> {
        let generation = self.generation(collection)?;
        let data_ref = self.data_ref(collection)?;
        let known = self
            .dims
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(collection)
            .filter(|(g, _)| *g == generation)
            .map(|(_, d)| *d);
        // A new generation of a cached collection whose adapter answers
        // deltas: no pull now (the refresh asks `changes_since` first).
        let assumed = base_dim.filter(|_| self.deltas);
        let (dim, pulled) = match known.or(assumed) {
            Some(d) => (d, None),
            None => {
                let p = self.pull_now(collection)?;
                self.dims
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(collection.to_string(), (generation.clone(), p.dim));
                (p.dim, Some(p))
            }
        };
        let bundle = RuLakeBundle::new(data_ref, dim, seed, rf, generation);
        Ok((bundle, pulled))
    }

    fn pull(&self, collection: &str) -> LResult<Pulled> {
        self.pull_now(collection)
    }

    fn has_deltas(&self) -> bool {
        self.deltas
    }

    fn changes_since(&self, collection: &str, since: &Generation) -> LResult<Option<Delta>> {
        if !self.deltas {
            return Ok(None);
        }
        self.delta(collection, since)
    }

    fn collections(&self) -> LResult<Vec<String>> {
        let Some(_guard) = InflightGuard::enter() else {
            return Err(self.fail("collections", "", "the interpreter is exiting".into(), None));
        };
        Python::attach(|py| {
            let out = self.obj.bind(py).call_method0("collections").map_err(|e| {
                let text = e.to_string();
                self.fail("collections", "", format!("raised {text}"), Some(e))
            })?;
            out.extract::<Vec<String>>().map_err(|e| {
                self.fail(
                    "collections",
                    "",
                    "it must return a list of str".into(),
                    Some(e),
                )
            })
        })
    }
}
