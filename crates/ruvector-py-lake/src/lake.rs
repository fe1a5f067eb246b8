//! The Python classes `RuLake` and `LakeSession`.
//!
//! Every call that may touch a backend, build an index or scan runs with
//! the GIL released; awaitables run the same work on the wheel's tokio
//! runtime (`runtime::awaitable`). Python adapters re-acquire the GIL only
//! inside their callbacks (see `adapter.rs`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use numpy::{PyArray1, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use ruvector_py_core::args::int_in_range;
use ruvector_py_core::arrays::{matrix_f32, text_arg, vector_f32};
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::py_modules::named_tuples;
use ruvector_py_core::{runtime, validate};

use crate::error::{Error, FromBase};
use crate::py_modules::{
    BACKEND_ADAPTER, BACKEND_STATS, CACHE_STATS, CONSISTENCY, LAKE_HIT, REFRESH_RESULT,
};

use crate::adapter::PySource;
use crate::args::{interruptible, no_panic};
use crate::backends::{FsBackend, LocalBackend};
use crate::bundle::Bundle;
use crate::cache::{
    Ask, Cache, Config, Consistency, Key, Lookup, PerStats, Snapshot, MAX_K, MAX_RERANK_FACTOR,
};
use crate::snapshot;
use crate::source::{LResult, Source};
use ruvector_py_index::metric::Metric;

type Hits = Vec<(Key, u64, f32)>;

/// The hits as a list of `LakeHit(id, score, backend, collection)`.
fn hits_to_list(py: Python<'_>, hits: Hits) -> PyResult<Py<PyAny>> {
    let cls = LAKE_HIT.get(py)?;
    let rows = hits
        .into_iter()
        .map(|((b, c), id, score)| (id, score, b, c));
    Ok(named_tuples(&cls, rows)?.into_any().unbind())
}

fn one_to_hits(key: &Key, hits: Vec<(u64, f32)>) -> Hits {
    hits.into_iter()
        .map(|(id, s)| (key.clone(), id, s))
        .collect()
}

type Batch = (Vec<u64>, Vec<f32>, usize);

fn batch_to_numpy(py: Python<'_>, nq: usize, (ids, scores, k): Batch) -> PyResult<Py<PyAny>> {
    let ids = PyArray1::from_vec(py, ids).reshape([nq, k])?;
    let scores = PyArray1::from_vec(py, scores).reshape([nq, k])?;
    Ok(PyTuple::new(py, [ids.into_any(), scores.into_any()])?
        .into_any()
        .unbind())
}

/// `k`, default 10.
fn k_arg(k: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
    match k.filter(|o| !o.is_none()) {
        None => Ok(10),
        Some(k) => Ok(int_in_range(k, "k", 1, MAX_K as i128)? as usize),
    }
}

fn rf_arg(rf: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    rf.filter(|o| !o.is_none())
        .map(|o| int_in_range(o, "rerank_factor", 1, MAX_RERANK_FACTOR as i128).map(|v| v as usize))
        .transpose()
}

/// A search's options besides its query and `k`, owned (async calls move
/// them to the runtime): `rerank_factor`, `metric`, `filter`.
struct Opts {
    rf: Option<usize>,
    metric: Metric,
    filter: Option<Vec<u64>>,
}

impl Opts {
    fn parse(
        rerank_factor: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Self {
            rf: rf_arg(rerank_factor)?,
            metric: crate::args::metric(metric)?,
            filter: crate::args::filter(filter)?,
        })
    }

    fn ask(&self) -> Ask<'_> {
        Ask {
            rf: self.rf,
            metric: self.metric,
            filter: self.filter.as_deref(),
        }
    }
}

/// Builds `snap`'s index for `metric` if it has none yet (once per entry;
/// interruptible, it encodes every row), so the search itself is short.
fn ready(py: Python<'_>, snap: &Snapshot, metric: Metric) -> PyResult<()> {
    if snap.data.has_engine(metric) {
        return Ok(());
    }
    interruptible(py, |cancel| {
        snap.data.engine_for(metric, cancel).map(|_| ())
    })
}

/// One query on `snap`: its metric's index built first if needed
/// (interruptibly), then the search with the GIL released.
fn one_on(
    py: Python<'_>,
    snap: &Snapshot,
    q: &[f32],
    k: usize,
    o: &Opts,
) -> PyResult<Vec<(u64, f32)>> {
    ready(py, snap, o.metric)?;
    Ok(py.detach(|| no_panic(|| Cache::search_snapshot(snap, q, k, &o.ask(), &Cancel::new())))?)
}

/// A query as a float32 vector, finite and of sane norm (its dimension is
/// checked against each collection later).
fn query_arg(query: &Bound<'_, PyAny>) -> PyResult<Vec<f32>> {
    let q = vector_f32(query, "query", "search_batch")?;
    let q = q.as_slice()?.to_vec();
    if q.is_empty() {
        return Err(Error::invalid("query must hold at least one value, got shape (0,)").into());
    }
    validate::check_rows(&q, q.len(), "query", false)?;
    Ok(q)
}

fn queries_arg(queries: &Bound<'_, PyAny>) -> PyResult<(Vec<f32>, usize, usize)> {
    let m = matrix_f32(queries, "queries")?;
    let shape = m.shape().to_vec();
    let (nq, cols) = (shape[0], shape[1]);
    if cols == 0 {
        return Err(
            Error::invalid("queries must have at least one column, got shape (n, 0)").into(),
        );
    }
    let q = m.as_slice()?.to_vec();
    validate::check_rows(&q, cols, "queries", true)?;
    Ok((q, nq, cols))
}

/// `key`'s entry. The coherence check runs on this thread with the GIL
/// released (a Python adapter's callbacks take it back, so Ctrl-C reaches
/// them as usual); a prime, the long part, runs interruptibly.
fn entry(py: Python<'_>, engine: &Cache, key: &Key) -> PyResult<Snapshot> {
    match py.detach(|| no_panic(|| engine.lookup(key)))? {
        Lookup::Hit(snap) => Ok(snap),
        Lookup::Miss(miss) => interruptible(py, |cancel| engine.prime(key, miss, cancel)),
    }
}

/// Below this many multiply-adds (queries × rows × dim) a batch search
/// runs on this thread: too short for Ctrl-C to matter.
const INTERRUPTIBLE_BATCH_WORK: usize = 1 << 24;

/// A batch search on `snap`, interruptible when it is long (or when its
/// metric's index must be built first).
fn batch_on(
    py: Python<'_>,
    snap: &Snapshot,
    q: &[f32],
    cols: usize,
    k: usize,
    o: &Opts,
) -> PyResult<Batch> {
    ready(py, snap, o.metric)?;
    let work = (q.len() / cols.max(1))
        .saturating_mul(snap.data.ids.len())
        .saturating_mul(cols);
    let ask = o.ask();
    if work < INTERRUPTIBLE_BATCH_WORK {
        let cancel = Cancel::new();
        return Ok(py.detach(|| {
            no_panic(|| Cache::search_batch_snapshot(snap, q, cols, k, &ask, &cancel))
        })?);
    }
    interruptible(py, |cancel| {
        Cache::search_batch_snapshot(snap, q, cols, k, &ask, cancel)
    })
}

fn key_of(backend: &str, collection: &str) -> Key {
    (backend.to_string(), collection.to_string())
}

/// Federated targets: a collection name (that collection on every
/// registered backend, in registration order) or `(backend, collection)`
/// pairs, unique.
fn targets_arg(engine: &Cache, targets: &Bound<'_, PyAny>) -> PyResult<Vec<Key>> {
    if targets.is_instance_of::<PyString>() {
        let c = text_arg(targets, "targets")?;
        let keys: Vec<Key> = engine
            .backend_names()
            .into_iter()
            .map(|b| (b, c.clone()))
            .collect();
        if keys.is_empty() {
            return Err(Error::Lake("no backend is registered".into()).into());
        }
        return Ok(keys);
    }
    let bad = || {
        PyErr::from(Error::invalid(
            "targets must be a collection name or a sequence of (backend, collection) pairs of str",
        ))
    };
    let items: Vec<Bound<'_, PyAny>> = targets
        .try_iter()
        .map_err(|_| bad())?
        .collect::<PyResult<_>>()
        .map_err(|_| bad())?;
    if items.is_empty() {
        return Err(
            Error::invalid("targets must name at least one (backend, collection) pair").into(),
        );
    }
    let mut keys: Vec<Key> = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let pair: (Bound<'_, PyAny>, Bound<'_, PyAny>) = it.extract().map_err(|_| bad())?;
        if !pair.0.is_instance_of::<PyString>() || !pair.1.is_instance_of::<PyString>() {
            return Err(bad());
        }
        let k = (
            text_arg(&pair.0, &format!("targets[{i}][0]"))?,
            text_arg(&pair.1, &format!("targets[{i}][1]"))?,
        );
        if keys.contains(&k) {
            return Err(Error::invalid(format!(
                "targets[{i}] = {k:?} appears more than once: targets must be unique"
            ))
            .into());
        }
        keys.push(k);
    }
    Ok(keys)
}

fn stats_tuple(py: Python<'_>, s: &PerStats) -> PyResult<Py<PyAny>> {
    Ok(BACKEND_STATS
        .get(py)?
        .call1((s.hits, s.misses, s.primes, s.invalidations, s.shared_hits))?
        .unbind())
}

fn consistency_arg(
    consistency: Option<&Bound<'_, PyAny>>,
    ttl_ms: Option<&Bound<'_, PyAny>>,
) -> PyResult<Consistency> {
    let py = match consistency.or(ttl_ms) {
        Some(o) => o.py(),
        None => return Ok(Consistency::Fresh),
    };
    let cls = CONSISTENCY.get(py)?;
    let mode = match consistency.filter(|o| !o.is_none()) {
        None => "fresh".to_string(),
        Some(c) if c.is_instance(&cls)? => c.getattr("value")?.extract::<String>()?,
        Some(c) => {
            return Err(Error::invalid(format!(
                "consistency must be a Consistency member (Consistency.FRESH, \
                 Consistency.EVENTUAL or Consistency.FROZEN), got {}",
                c.repr()?
            ))
            .into())
        }
    };
    let ttl = ttl_ms.filter(|o| !o.is_none());
    match (mode.as_str(), ttl) {
        ("eventual", Some(t)) => Ok(Consistency::Eventual {
            ttl_ms: int_in_range(t, "ttl_ms", 1, u64::MAX as i128)? as u64,
        }),
        ("eventual", None) => Err(Error::invalid(
            "Consistency.EVENTUAL needs ttl_ms: how long (in milliseconds) a checked entry is \
             trusted without asking the backend",
        )
        .into()),
        (m, Some(_)) => Err(Error::invalid(format!(
            "ttl_ms applies only to Consistency.EVENTUAL, not to Consistency.{}",
            m.to_uppercase()
        ))
        .into()),
        ("frozen", None) => Ok(Consistency::Frozen),
        _ => Ok(Consistency::Fresh),
    }
}

/// A cache-first vector fabric: searches registered backends through a
/// cache of RaBitQ indexes (1-bit scan + exact rerank), kept as fresh as
/// the chosen `Consistency` demands.
#[pyclass(frozen, module = "ruvector_lake")]
pub struct RuLake {
    engine: Arc<Cache>,
}

impl RuLake {
    fn source_of(&self, backend: &Bound<'_, PyAny>) -> PyResult<Arc<dyn Source>> {
        if let Ok(b) = backend.cast::<LocalBackend>() {
            return Ok(b.get().src.clone());
        }
        if let Ok(b) = backend.cast::<FsBackend>() {
            return Ok(b.get().src.clone());
        }
        let py = backend.py();
        let base = BACKEND_ADAPTER.get(py)?;
        if backend.is_instance(&base)? {
            return Ok(Arc::new(PySource::new(backend)?));
        }
        Err(Error::invalid(format!(
            "register_backend takes a LocalBackend, an FsBackend or a BackendAdapter subclass \
             instance, got {}",
            backend.get_type().name()?
        ))
        .into())
    }
}

#[pymethods]
impl RuLake {
    /// A lake. `rerank_factor` (1..1024, default 20) sets the exact-rerank
    /// width of every cached index; `rotation_seed` (default 42) its
    /// rotation; `max_cache_entries` (default unbounded) evicts the least
    /// recently used entries; `consistency` (default `Consistency.FRESH`)
    /// with `ttl_ms` for `Consistency.EVENTUAL`.
    #[new]
    #[pyo3(signature = (*, rerank_factor=None, rotation_seed=None, max_cache_entries=None, consistency=None, ttl_ms=None))]
    fn new(
        rerank_factor: Option<&Bound<'_, PyAny>>,
        rotation_seed: Option<&Bound<'_, PyAny>>,
        max_cache_entries: Option<&Bound<'_, PyAny>>,
        consistency: Option<&Bound<'_, PyAny>>,
        ttl_ms: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let rerank_factor = match rerank_factor.filter(|o| !o.is_none()) {
            Some(o) => int_in_range(o, "rerank_factor", 1, MAX_RERANK_FACTOR as i128)? as usize,
            None => 20,
        };
        let rotation_seed = match rotation_seed.filter(|o| !o.is_none()) {
            Some(o) => int_in_range(o, "rotation_seed", 0, u64::MAX as i128)? as u64,
            None => 42,
        };
        let max_entries = max_cache_entries
            .filter(|o| !o.is_none())
            .map(|o| int_in_range(o, "max_cache_entries", 1, u32::MAX as i128).map(|v| v as usize))
            .transpose()?;
        let consistency = consistency_arg(consistency, ttl_ms)?;
        Ok(Self {
            engine: Arc::new(Cache::new(Config {
                rerank_factor,
                rotation_seed,
                max_entries,
                consistency,
            })),
        })
    }

    /// A `RuLakeBuilder` (chain `.rerank_factor(..)`, `.rotation_seed(..)`,
    /// `.max_cache_entries(..)`, `.consistency(..)`, then `.build()`).
    #[staticmethod]
    fn builder() -> RuLakeBuilder {
        RuLakeBuilder::default()
    }

    /// Adds a backend (`LocalBackend`, `FsBackend` or a `BackendAdapter`
    /// subclass instance). Names must be unique within the lake.
    fn register_backend(&self, backend: &Bound<'_, PyAny>) -> PyResult<()> {
        let src = self.source_of(backend)?;
        Ok(self.engine.register(src)?)
    }

    /// Names of the registered backends, in registration order.
    #[getter]
    fn backends(&self) -> Vec<String> {
        self.engine.backend_names()
    }

    #[getter]
    fn rerank_factor(&self) -> usize {
        self.engine.config().rerank_factor
    }

    #[getter]
    fn rotation_seed(&self) -> u64 {
        self.engine.config().rotation_seed
    }

    #[getter]
    fn max_cache_entries(&self) -> Option<usize> {
        self.engine.config().max_entries
    }

    /// The `Consistency` member this lake was built with.
    #[getter]
    fn consistency<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let name = match self.engine.config().consistency {
            Consistency::Fresh => "FRESH",
            Consistency::Eventual { .. } => "EVENTUAL",
            Consistency::Frozen => "FROZEN",
        };
        CONSISTENCY.get(py)?.getattr(name)
    }

    /// The `Consistency.EVENTUAL` time-to-live in milliseconds, else `None`.
    #[getter]
    fn ttl_ms(&self) -> Option<u64> {
        match self.engine.config().consistency {
            Consistency::Eventual { ttl_ms } => Some(ttl_ms),
            _ => None,
        }
    }

    /// The `k` best vectors of `collection` on `backend` as `LakeHit`s,
    /// best first by `metric`: `"l2"` (default) squared L2 ascending, the
    /// crate's results; `"ip"` inner product and `"cosine"` cosine
    /// similarity, descending (their index is built from the entry's
    /// vectors on first use, once: cosine a `RabitqPlusIndex`, ip a
    /// `FlatF32Index` up to 20,000 rows, else an `IvfRabitqIndex`).
    /// `filter`: only these of the backend's ids may be returned, applied
    /// inside the scan. `min(k, rows allowed)` hits; none for an empty
    /// collection.
    #[pyo3(signature = (backend, collection, query, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_one(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        query: &Bound<'_, PyAny>,
        k: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (q, k) = (query_arg(query)?, k_arg(k)?);
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let key = key_of(&backend, &collection);
        // A prime (pull, encode) stops at Ctrl-C; a cache hit costs a search.
        let snap = entry(py, &self.engine, &key)?;
        let hits = one_on(py, &snap, &q, k, &o)?;
        hits_to_list(py, one_to_hits(&key, hits))
    }

    /// Awaitable `search_one`, run on the wheel's tokio runtime.
    #[pyo3(signature = (backend, collection, query, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_one_async<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        query: &Bound<'py, PyAny>,
        k: Option<&Bound<'py, PyAny>>,
        rerank_factor: Option<&Bound<'py, PyAny>>,
        metric: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (q, k) = (query_arg(query)?, k_arg(k)?);
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let key = key_of(&backend, &collection);
        let engine = Arc::clone(&self.engine);
        runtime::awaitable(
            py,
            move || {
                Ok::<_, Error>(no_panic(|| {
                    // Cancelling the awaiting task drops the result instead.
                    let hits = engine.search_one(&key, &q, k, &o.ask(), &Cancel::new())?;
                    Ok(one_to_hits(&key, hits))
                }))
            },
            Box::new(|py, r: LResult<Hits>| hits_to_list(py, r?)),
        )
    }

    /// Searches several `(backend, collection)` targets in parallel and
    /// merges best first by `metric` (the crate's per-shard `k` over-request; per-shard
    /// rerank `max(5, rerank_factor / shards)` unless `rerank_factor` is
    /// given). `targets` may be a collection name: that collection on every
    /// registered backend.
    #[pyo3(signature = (targets, query, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_federated(
        &self,
        py: Python<'_>,
        targets: &Bound<'_, PyAny>,
        query: &Bound<'_, PyAny>,
        k: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let targets = targets_arg(&self.engine, targets)?;
        let (q, k) = (query_arg(query)?, k_arg(k)?);
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let hits = interruptible(py, |cancel| {
            self.engine
                .search_federated(&targets, &q, k, &o.ask(), cancel)
        })?;
        hits_to_list(py, hits)
    }

    /// Awaitable `search_federated`.
    #[pyo3(signature = (targets, query, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_federated_async<'py>(
        &self,
        py: Python<'py>,
        targets: &Bound<'py, PyAny>,
        query: &Bound<'py, PyAny>,
        k: Option<&Bound<'py, PyAny>>,
        rerank_factor: Option<&Bound<'py, PyAny>>,
        metric: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let targets = targets_arg(&self.engine, targets)?;
        let (q, k) = (query_arg(query)?, k_arg(k)?);
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let engine = Arc::clone(&self.engine);
        runtime::awaitable(
            py,
            move || {
                Ok::<_, Error>(no_panic(|| {
                    engine.search_federated(&targets, &q, k, &o.ask(), &Cancel::new())
                }))
            },
            Box::new(|py, r: LResult<Hits>| hits_to_list(py, r?)),
        )
    }

    /// Searches every row of `queries` (`(nq, dim)` float32) with one
    /// coherence check, in parallel, with `metric` and `filter` as
    /// `search_one`. Returns `(ids, scores)`: uint64 and float32 arrays of
    /// shape `(nq, min(k, m))`, `m` the rows the search may return; a row
    /// with fewer hits (only an approximate filtered search) is padded with
    /// id `2**64 - 1` (-1 as uint64) and the metric's worst score.
    #[pyo3(signature = (backend, collection, queries, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_batch(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        queries: &Bound<'_, PyAny>,
        k: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (q, nq, cols) = queries_arg(queries)?;
        let k = k_arg(k)?;
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let key = key_of(&backend, &collection);
        let snap = entry(py, &self.engine, &key)?;
        let batch = batch_on(py, &snap, &q, cols, k, &o)?;
        batch_to_numpy(py, nq, batch)
    }

    /// Awaitable `search_batch`.
    #[pyo3(signature = (backend, collection, queries, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_batch_async<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        queries: &Bound<'py, PyAny>,
        k: Option<&Bound<'py, PyAny>>,
        rerank_factor: Option<&Bound<'py, PyAny>>,
        metric: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let (q, nq, cols) = queries_arg(queries)?;
        let k = k_arg(k)?;
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let key = key_of(&backend, &collection);
        let engine = Arc::clone(&self.engine);
        runtime::awaitable(
            py,
            move || {
                Ok::<_, Error>(no_panic(|| {
                    engine.search_batch(&key, &q, cols, k, &o.ask(), &Cancel::new())
                }))
            },
            Box::new(move |py, r: LResult<Batch>| batch_to_numpy(py, nq, r?)),
        )
    }

    /// The backend's current bundle for `collection`.
    fn current_bundle(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
    ) -> PyResult<Bundle> {
        let key = key_of(&backend, &collection);
        Ok(Bundle::new(py.detach(|| {
            no_panic(|| self.engine.current_bundle(&key))
        })?))
    }

    /// Writes the backend's current bundle to `dir/table.rulake.json`
    /// (atomically) and returns it.
    fn publish_bundle(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
    ) -> PyResult<Bundle> {
        let key = key_of(&backend, &collection);
        let b = py.detach(|| {
            no_panic(|| {
                let b = self.engine.current_bundle(&key)?;
                snapshot::write_bundle(&b, &dir)?;
                Ok(b)
            })
        })?;
        Ok(Bundle::new(b))
    }

    /// Compares the bundle published in `dir` with the cached entry:
    /// `RefreshResult.BUNDLE_MISSING` (no sidecar), `UP_TO_DATE` (same
    /// witness, or nothing cached), or `INVALIDATED` (the entry was dropped;
    /// the next search re-primes). A tampered sidecar raises
    /// `WitnessMismatch` and changes nothing.
    fn refresh_from_bundle_dir<'py>(
        &self,
        py: Python<'py>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = key_of(&backend, &collection);
        let name = py.detach(|| -> LResult<&'static str> {
            let Some(b) = no_panic(|| snapshot::read_bundle(&dir))? else {
                return Ok("BUNDLE_MISSING");
            };
            Ok(match self.engine.witness_of(&key) {
                Some(w) if w != b.rvf_witness => {
                    self.engine.invalidate(&key);
                    "INVALIDATED"
                }
                _ => "UP_TO_DATE",
            })
        })?;
        REFRESH_RESULT.get(py)?.getattr(name)
    }

    /// Witness of the cached entry of `(backend, collection)`, or `None`.
    fn witness(
        &self,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
    ) -> Option<String> {
        self.engine.witness_of(&key_of(&backend, &collection))
    }

    /// Bundle of the cached entry (what its data was built from), or `None`.
    fn cached_bundle(
        &self,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
    ) -> Option<Bundle> {
        self.engine
            .cached(&key_of(&backend, &collection))
            .map(|s| Bundle::new(s.data.bundle.clone()))
    }

    /// Drops the cached entry of `(backend, collection)`; whether there was one.
    fn invalidate_cache(
        &self,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
    ) -> bool {
        self.engine.invalidate(&key_of(&backend, &collection))
    }

    /// Global counters as a `CacheStats`.
    fn cache_stats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let s = self.engine.stats();
        let n = self.engine.entry_count();
        let extra = PyDict::new(py);
        extra.set_item("refreshes", s.refreshes)?;
        extra.set_item("total_refresh_ms", s.total_refresh_ms)?;
        extra.set_item("last_refresh_ms", s.last_refresh_ms)?;
        Ok(CACHE_STATS
            .get(py)?
            .call(
                (
                    s.hits,
                    s.misses,
                    s.primes,
                    s.invalidations,
                    s.shared_hits,
                    s.evictions,
                    s.warm_installs,
                    s.total_prime_ms,
                    s.last_prime_ms,
                    n,
                ),
                Some(&extra),
            )?
            .unbind())
    }

    /// `{backend: BackendStats}` for every backend that saw a search.
    fn cache_stats_by_backend<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (b, s) in self.engine.stats_by_backend() {
            d.set_item(b, stats_tuple(py, &s)?)?;
        }
        Ok(d)
    }

    /// `{(backend, collection): BackendStats}`.
    fn cache_stats_by_collection<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, s) in self.engine.stats_by_collection() {
            d.set_item(k, stats_tuple(py, &s)?)?;
        }
        Ok(d)
    }

    /// Number of distinct cached indexes.
    #[getter]
    fn cache_entry_count(&self) -> usize {
        self.engine.entry_count()
    }

    /// Saves the cached entry of `(backend, collection)` to `dir`
    /// (`lake.cache` with its ids, and the entry's own bundle as
    /// `table.rulake.json`), atomically. `CacheMissError` if nothing is
    /// cached. Returns the cache file's path.
    fn save_cache_to_dir(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
    ) -> PyResult<String> {
        let key = key_of(&backend, &collection);
        let p = py.detach(|| no_panic(|| snapshot::save(&self.engine, &key, &dir)))?;
        Ok(p.to_string_lossy().into_owned())
    }

    /// Loads a cache saved by `save_cache_to_dir` under `(backend,
    /// collection)`, checking sizes, checksum and witness first. Returns the
    /// number of vectors. Under `FRESH` the next search still asks the
    /// backend and re-primes if its data moved on.
    fn warm_from_dir(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        #[pyo3(from_py_with = crate::args::dir)] dir: PathBuf,
    ) -> PyResult<usize> {
        let key = key_of(&backend, &collection);
        // Interruptible until the entry is installed: every saved code is
        // checked against a fresh encoding, which takes a while.
        let (n, probe) = interruptible(py, |cancel| {
            snapshot::warm(&self.engine, &key, &dir, cancel)
        })?;
        // Loading evicted the CPU caches; one search down the whole path a
        // caller's search takes (arguments, entry lookup, consistency check,
        // scan, result objects) brings the first real one to about
        // steady-state speed. Its outcome does not matter.
        if !probe.is_empty() {
            let q = PyArray1::from_vec(py, probe);
            let _ = crate::cache::without_counting_hits(|| {
                self.search_one(py, backend, collection, q.as_any(), None, None, None, None)
            });
        }
        Ok(n)
    }

    /// A `LakeSession`: each `(backend, collection)` is checked once, at its
    /// first use in the session, and then answered from that same entry
    /// (repeatable reads) until the session closes.
    fn session(&self) -> LakeSession {
        LakeSession {
            engine: Arc::clone(&self.engine),
            snaps: Mutex::new(Some(HashMap::new())),
        }
    }

    /// `(backend, collection) in lake`: whether that pair is cached now.
    fn __contains__(&self, key: &Bound<'_, PyAny>) -> bool {
        match key.extract::<(String, String)>() {
            Ok(k) => self.engine.witness_of(&k).is_some(),
            Err(_) => false,
        }
    }

    fn __repr__(&self) -> String {
        let c = self.engine.config();
        format!(
            "RuLake(backends={:?}, rerank_factor={}, rotation_seed={}, consistency={:?}, \
             max_cache_entries={:?}, entries={})",
            self.engine.backend_names(),
            c.rerank_factor,
            c.rotation_seed,
            c.consistency,
            c.max_entries,
            self.engine.entry_count()
        )
    }
}

/// A consistent view of a lake (from `lake.session()`): every
/// `(backend, collection)` is resolved once and then served from that
/// entry, even if the lake re-primes meanwhile. Use it as a context
/// manager; a closed session refuses searches.
#[pyclass(frozen, module = "ruvector_lake")]
pub struct LakeSession {
    engine: Arc<Cache>,
    snaps: Mutex<Option<HashMap<Key, Snapshot>>>,
}

impl LakeSession {
    /// The session's snapshot of `key`, if it has one; `LakeError` once closed.
    fn known(&self, key: &Key) -> LResult<Option<Snapshot>> {
        let g = self.snaps.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_ref() {
            None => Err(Error::Lake("this session is closed".into()).into()),
            Some(m) => Ok(m.get(key).cloned()),
        }
    }

    /// Keeps `s` as the session's snapshot of `key` (the first one wins).
    fn keep(&self, key: &Key, s: Snapshot) -> LResult<Snapshot> {
        let mut g = self.snaps.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            None => Err(Error::Lake("this session is closed".into()).into()),
            Some(m) => Ok(m.entry(key.clone()).or_insert(s).clone()),
        }
    }

    /// `key` from the session's view, resolving it now on first use (from a
    /// worker thread of a federated search).
    fn resolve(&self, key: &Key, cancel: &Cancel) -> LResult<Snapshot> {
        if let Some(s) = self.known(key)? {
            return Ok(s);
        }
        let s = self.engine.ensure(key, cancel)?;
        self.keep(key, s)
    }

    /// [`LakeSession::resolve`] from the caller's thread (see [`entry`]).
    fn resolve_here(&self, py: Python<'_>, key: &Key) -> PyResult<Snapshot> {
        if let Some(s) = self.known(key)? {
            return Ok(s);
        }
        let s = entry(py, &self.engine, key)?;
        Ok(self.keep(key, s)?)
    }
}

#[pymethods]
impl LakeSession {
    /// As `RuLake.search_one`, from the session's view.
    #[pyo3(signature = (backend, collection, query, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_one(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        query: &Bound<'_, PyAny>,
        k: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (q, k) = (query_arg(query)?, k_arg(k)?);
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let key = key_of(&backend, &collection);
        let s = self.resolve_here(py, &key)?;
        let hits = one_on(py, &s, &q, k, &o)?;
        hits_to_list(py, one_to_hits(&key, hits))
    }

    /// As `RuLake.search_federated`, from the session's view.
    #[pyo3(signature = (targets, query, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_federated(
        &self,
        py: Python<'_>,
        targets: &Bound<'_, PyAny>,
        query: &Bound<'_, PyAny>,
        k: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let targets = targets_arg(&self.engine, targets)?;
        let (q, k) = (query_arg(query)?, k_arg(k)?);
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let global = self.engine.config().rerank_factor;
        let hits = interruptible(py, |cancel| {
            Cache::federated_with(
                &targets,
                &q,
                k,
                &o.ask(),
                global,
                &|t| self.resolve(t, cancel),
                cancel,
            )
        })?;
        hits_to_list(py, hits)
    }

    /// As `RuLake.search_batch`, from the session's view.
    #[pyo3(signature = (backend, collection, queries, k=None, *, rerank_factor=None, metric=None, filter=None))]
    #[allow(clippy::too_many_arguments)] // the Python signature
    fn search_batch(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
        queries: &Bound<'_, PyAny>,
        k: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let (q, nq, cols) = queries_arg(queries)?;
        let k = k_arg(k)?;
        let o = Opts::parse(rerank_factor, metric, filter)?;
        let key = key_of(&backend, &collection);
        let s = self.resolve_here(py, &key)?;
        let batch = batch_on(py, &s, &q, cols, k, &o)?;
        batch_to_numpy(py, nq, batch)
    }

    /// Witness of the entry this session uses for the pair, or `None` if
    /// the session has not used it yet.
    fn witness(
        &self,
        #[pyo3(from_py_with = crate::args::backend)] backend: String,
        #[pyo3(from_py_with = crate::args::collection)] collection: String,
    ) -> Option<String> {
        let g = self.snaps.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref()?
            .get(&key_of(&backend, &collection))
            .map(|s| s.data.bundle.rvf_witness.clone())
    }

    /// Whether the session is still open.
    #[getter]
    fn closed(&self) -> bool {
        self.snaps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    /// Releases the session's entries; later searches raise `LakeError`.
    fn close(&self) {
        self.snaps.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, PyTuple>) -> bool {
        self.close();
        false
    }
}

/// Collects settings, then :meth:`build` makes the lake (and checks them).
///
/// >>> import ruvector_lake as rl
/// >>> lake = rl.RuLake.builder().rerank_factor(10).consistency(rl.Consistency.FROZEN).build()
/// >>> lake.rerank_factor, lake.consistency
/// (10, <Consistency.FROZEN: 'frozen'>)
#[pyclass(module = "ruvector_lake", name = "RuLakeBuilder")]
#[derive(Default)]
pub struct RuLakeBuilder {
    rerank_factor: Option<Py<PyAny>>,
    rotation_seed: Option<Py<PyAny>>,
    max_cache_entries: Option<Py<PyAny>>,
    consistency: Option<Py<PyAny>>,
    ttl_ms: Option<Py<PyAny>>,
}

#[pymethods]
impl RuLakeBuilder {
    #[new]
    fn py_new() -> Self {
        Self::default()
    }

    /// Exact-rerank width of every cached index (1..1024, default 20).
    fn rerank_factor(mut slf: PyRefMut<'_, Self>, value: Py<PyAny>) -> PyRefMut<'_, Self> {
        slf.rerank_factor = Some(value);
        slf
    }

    /// Seed of the random rotation (0..2**64-1, default 42).
    fn rotation_seed(mut slf: PyRefMut<'_, Self>, value: Py<PyAny>) -> PyRefMut<'_, Self> {
        slf.rotation_seed = Some(value);
        slf
    }

    /// Most cached indexes; the least recently used is evicted (default: no limit).
    fn max_cache_entries(mut slf: PyRefMut<'_, Self>, value: Py<PyAny>) -> PyRefMut<'_, Self> {
        slf.max_cache_entries = Some(value);
        slf
    }

    /// Coherence mode; ``ttl_ms`` is required for ``Consistency.EVENTUAL`` only.
    #[pyo3(signature = (mode, *, ttl_ms=None))]
    fn consistency(
        mut slf: PyRefMut<'_, Self>,
        mode: Py<PyAny>,
        ttl_ms: Option<Py<PyAny>>,
    ) -> PyRefMut<'_, Self> {
        slf.consistency = Some(mode);
        slf.ttl_ms = ttl_ms;
        slf
    }

    /// The configured lake (``InvalidArgument`` names a bad setting).
    fn build(&self, py: Python<'_>) -> PyResult<RuLake> {
        let arg = |v: &Option<Py<PyAny>>| v.as_ref().map(|v| v.bind(py).clone());
        RuLake::new(
            arg(&self.rerank_factor).as_ref(),
            arg(&self.rotation_seed).as_ref(),
            arg(&self.max_cache_entries).as_ref(),
            arg(&self.consistency).as_ref(),
            arg(&self.ttl_ms).as_ref(),
        )
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut parts = Vec::new();
        for (name, value) in [
            ("rerank_factor", &self.rerank_factor),
            ("rotation_seed", &self.rotation_seed),
            ("max_cache_entries", &self.max_cache_entries),
            ("consistency", &self.consistency),
            ("ttl_ms", &self.ttl_ms),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={}", v.bind(py).repr()?));
            }
        }
        Ok(format!("RuLakeBuilder({})", parts.join(", ")))
    }
}
