//! The Python classes: `FlatF32Index`, `RabitqIndex`, `RabitqPlusIndex`,
//! `RabitqAsymIndex`, `IvfRabitqIndex`. They share one base class (`_IndexBase`) that owns the
//! engine behind a read-write lock: searches from many threads run together
//! with the GIL released; an add waits for them and excludes them.

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use rayon::prelude::*;

use ruvector_py_core::args::{bool_arg, int_in_range};
use ruvector_py_core::arrays::{self, ids_u64, matrix_f32, path_arg, readonly_view, vector_f32};
use ruvector_py_core::errors::py as pyerr;
use ruvector_py_core::interrupt::{self, catch_panic, Cancel};
use ruvector_py_core::py_modules::named_tuples;
use ruvector_py_core::{parallel, runtime, validate};

use ruvector_py_index::engine::{Engine, Kind, Params, Rotation, SearchOpts, MAX_RERANK_FACTOR};
use ruvector_py_index::filter::IdSet as EngineIdSet;
use ruvector_py_index::ivf::MAX_NLIST;
use ruvector_py_index::metric::Metric;
use ruvector_py_index::rbpx;

use crate::error::{Error, Result};
use crate::py_modules::SEARCH_HIT;

/// The hits as a list of `SearchHit(id, score)`.
fn hits_to_list(py: Python<'_>, hits: Vec<(u64, f32)>) -> PyResult<Py<PyAny>> {
    let cls = SEARCH_HIT.get(py)?;
    Ok(named_tuples(&cls, hits)?.into_any().unbind())
}

/// `(ids, squared L2 scores, k)` of a batch search, rows ascending.
type Batch = (Vec<i64>, Vec<f32>, usize);

/// Below this many multiply-adds a call runs on the calling thread with the
/// GIL released: it ends in about a millisecond, too soon for Ctrl-C to
/// matter, and a hand-off to another thread would cost more than it saves.
const INTERRUPTIBLE_WORK: usize = 1 << 22;

/// Runs `work` with the GIL released; when it is long (`work_size`
/// multiply-adds, roughly), with Ctrl-C honoured between its chunks: the
/// calling thread runs Python's signal handlers every
/// [`interrupt::POLL_INTERVAL`] and cancels the work when one raises (see
/// `ruvector_py_core::interrupt`). A panic is an internal error either way.
///
/// `interrupt::run_interruptible` runs the work on a thread of its own, not
/// as a pool job: the work takes the index's lock, which a pool thread must
/// never hold (see there).
fn long_call<T, W>(py: Python<'_>, work_size: usize, work: W) -> PyResult<T>
where
    T: Send,
    W: FnOnce(&Cancel) -> Result<T> + Send,
{
    if work_size < INTERRUPTIBLE_WORK {
        return Ok(py.detach(|| catch_panic(|| work(&Cancel::new())))?);
    }
    interrupt::run_interruptible(py, work)
}

/// Rough multiply-adds of encoding `rows` rows of `dim` (a dense rotation
/// is `dim²` per row).
fn add_work(rows: usize, dim: usize) -> usize {
    rows.saturating_mul(dim).saturating_mul(dim)
}

#[pyclass(subclass, frozen, module = "ruvector_rabitq", name = "_IndexBase")]
pub struct IndexBase {
    engine: Arc<RwLock<Engine>>,
    kind: Kind,
    dim: usize,
}

impl IndexBase {
    fn from_engine(engine: Engine) -> Self {
        let p = *engine.params();
        Self {
            engine: Arc::new(RwLock::new(engine)),
            kind: p.kind,
            dim: p.dim,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Engine> {
        self.engine.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Engine> {
        self.engine.write().unwrap_or_else(|p| p.into_inner())
    }

    /// [`IndexBase::read`] for a thread holding the GIL: a long add holds the
    /// write lock for seconds, so the wait happens with the GIL released
    /// (other threads, signal handlers and that add's own Ctrl-C poll keep
    /// running), then the lock is taken again with the GIL.
    fn read_py(&self, py: Python<'_>) -> RwLockReadGuard<'_, Engine> {
        loop {
            match self.engine.try_read() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => py.detach(|| drop(self.read())),
            }
        }
    }

    /// [`IndexBase::write`] for a thread holding the GIL (see [`IndexBase::read_py`]).
    fn write_py(&self, py: Python<'_>) -> RwLockWriteGuard<'_, Engine> {
        loop {
            match self.engine.try_write() {
                Ok(guard) => return guard,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => py.detach(|| drop(self.write())),
            }
        }
    }

    fn check_query(&self, query: &[f32], what: &str, matrix: bool) -> Result<()> {
        if !query.len().is_multiple_of(self.dim) || query.is_empty() {
            return Err(Error::dimension(what, self.dim, query.len()));
        }
        validate::check_rows(query, self.dim, what, matrix)
    }

    /// Checks the per-call search overrides against the index kind.
    fn search_opts<'py>(
        &self,
        rerank_factor: Option<&Bound<'py, PyAny>>,
        nprobe: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<SearchOpts<'static>> {
        fn given<'a, 'py>(o: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
            o.filter(|o| !o.is_none())
        }
        let nprobe = match given(nprobe) {
            None => None,
            Some(_) if self.kind != Kind::Ivf => {
                return Err(Error::invalid(format!(
                    "{} has no lists; nprobe applies to IvfRabitqIndex",
                    self.kind.class_name()
                ))
                .into())
            }
            Some(obj) => Some(int_in_range(obj, "nprobe", 1, MAX_NLIST as i128)? as usize),
        };
        let Some(obj) = given(rerank_factor) else {
            return Ok(SearchOpts {
                nprobe,
                ..SearchOpts::default()
            });
        };
        if !self.kind.reranks() {
            return Err(Error::invalid(format!(
                "{} does not rerank; rerank_factor applies to RabitqPlusIndex, \
                 RabitqAsymIndex and IvfRabitqIndex",
                self.kind.class_name()
            ))
            .into());
        }
        let rf = int_in_range(obj, "rerank_factor", 1, MAX_RERANK_FACTOR as i128)? as usize;
        if rf > 1 && !self.read_py(obj.py()).store().keeps_vectors() {
            return Err(Error::invalid(format!(
                "this {} was built with rerank_factor 1 and keeps no vectors to rerank with; \
                 got rerank_factor {rf} (build it with rerank_factor > 1)",
                self.kind.class_name()
            ))
            .into());
        }
        Ok(SearchOpts {
            rerank_factor: Some(rf),
            nprobe,
            filter: None,
        })
    }

    /// The arguments every search form shares, checked: `k` (the one k
    /// rule, `validate::check_k`), the per-call overrides and the filter.
    fn call_args<'py>(
        &self,
        k: &Bound<'py, PyAny>,
        rerank_factor: Option<&Bound<'py, PyAny>>,
        nprobe: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<CallArgs> {
        let k = int_in_range(k, "k", 1, validate::MAX_K as i128)? as usize;
        let opts = self.search_opts(rerank_factor, nprobe)?;
        let filter = filter_arg(filter, self.kind)?;
        Ok(CallArgs { k, opts, filter })
    }

    /// Checks one query against the index's dimension.
    fn query_slice(&self, q: &[f32]) -> Result<()> {
        if q.len() != self.dim {
            return Err(Error::dimension("query", self.dim, q.len()));
        }
        self.check_query(q, "query", false)
    }

    /// Checks a `(nq, cols)` block of queries; returns `nq`.
    fn queries_slice(&self, q: &[f32], cols: usize) -> Result<usize> {
        if cols != self.dim {
            return Err(Error::dimension("queries", self.dim, cols));
        }
        let nq = q.len() / self.dim;
        if nq > 0 {
            self.check_query(q, "queries", true)?;
        }
        Ok(nq)
    }

    /// One search under the read lock (the filter bound to its rows there).
    fn search_one(engine: &Engine, q: &[f32], args: &CallArgs) -> Result<Vec<(u64, f32)>> {
        validate::check_not_empty(engine.len())?;
        let rows = args.filter.as_ref().map(|f| engine.row_filter(f));
        let opts = SearchOpts {
            filter: rows.as_ref(),
            ..args.opts
        };
        engine.search(q, args.k, opts)
    }

    /// Searches every row of `queries`, checking `cancel` before each.
    fn search_many(
        engine: &Engine,
        queries: &[f32],
        dim: usize,
        args: &CallArgs,
        cancel: &Cancel,
    ) -> Result<Batch> {
        validate::check_not_empty(engine.len())?;
        let k = args.k;
        let nq = queries.len() / dim;
        validate::check_batch(nq, k)?;
        let rows = args.filter.as_ref().map(|f| engine.row_filter(f));
        let opts = SearchOpts {
            filter: rows.as_ref(),
            ..args.opts
        };
        let mut ids = vec![-1i64; nq * k];
        let mut scores = vec![engine.params().metric.pad_score(); nq * k];
        // Rows go in groups (an IVF index scans each probed list once per
        // group), as many groups as threads at least, at most GROUP rows
        // each so that Ctrl-C is seen between groups.
        const GROUP: usize = 128;
        let threads = if nq > 1 {
            parallel::pool()?.current_num_threads()
        } else {
            1
        };
        let group = nq.div_ceil(threads.max(1)).clamp(1, GROUP);
        let mut run = || {
            ids.par_chunks_mut(k * group)
                .zip(scores.par_chunks_mut(k * group))
                .zip(queries.par_chunks(dim * group))
                .try_for_each(|((ids, scores), q)| -> Result<()> {
                    cancel.check()?;
                    for (row, hits) in engine.search_group(q, k, opts)?.into_iter().enumerate() {
                        for (i, (id, score)) in hits.into_iter().enumerate() {
                            ids[row * k + i] = id as i64;
                            scores[row * k + i] = score;
                        }
                    }
                    Ok(())
                })
        };
        if nq > 1 {
            parallel::pool()?.install(run)?;
        } else {
            run()?;
        }
        Ok((ids, scores, k))
    }

    fn batch_to_numpy(py: Python<'_>, nq: usize, (ids, scores, k): Batch) -> PyResult<Py<PyAny>> {
        arrays::batch_to_numpy(py, nq, k, ids, scores)
    }

    /// Adds rows with the GIL released, interruptible by Ctrl-C until the
    /// commit point: a `KeyboardInterrupt` leaves the index as it was.
    fn add_rows(
        &self,
        py: Python<'_>,
        ids: Option<&[u64]>,
        data: &[f32],
        what: &str,
        matrix: bool,
    ) -> PyResult<()> {
        long_call(py, add_work(data.len() / self.dim, self.dim), |cancel| {
            let mut engine = self.write();
            match ids {
                Some(ids) => engine.add_with(ids, data, what, matrix, cancel),
                // Default ids are taken under the write lock, so concurrent
                // add_batch calls never pick the same ones.
                None => {
                    let start = engine.next_default_id(data.len() / self.dim);
                    let ids: Vec<u64> = (start..start + (data.len() / self.dim) as u64).collect();
                    engine.add_with(&ids, data, what, matrix, cancel)
                }
            }
        })
    }
}

#[pymethods]
impl IndexBase {
    /// The `k` nearest stored vectors to `query`, as a list of
    /// `SearchHit(id, score)` ascending by score (squared L2 distance):
    /// `min(k, available)` hits. `filter` (an `IdSet` or a 1-D array of
    /// ids) restricts the hits to those ids, inside the scan; an empty
    /// filter gives no hits.
    #[pyo3(signature = (query, k, *, rerank_factor=None, nprobe=None, filter=None))]
    fn search(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        k: &Bound<'_, PyAny>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        nprobe: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let q = vector_f32(query, "query", "search_batch")?;
        let q = q.as_slice()?;
        let args = self.call_args(k, rerank_factor, nprobe, filter)?;
        self.query_slice(q)?;
        let hits = py.detach(|| catch_panic(|| Self::search_one(&self.read(), q, &args)))?;
        hits_to_list(py, hits)
    }

    /// Searches every row of `queries` (shape `(nq, dim)`) in parallel with
    /// the GIL released. Returns `(ids, scores)`: int64 and float32 arrays
    /// of shape `(nq, k)`, each row ascending by score; rows with fewer
    /// than `k` hits are padded with id `-1` and score `+inf`. `filter` as
    /// in `search`.
    #[pyo3(signature = (queries, k, *, rerank_factor=None, nprobe=None, filter=None))]
    fn search_batch(
        &self,
        py: Python<'_>,
        queries: &Bound<'_, PyAny>,
        k: &Bound<'_, PyAny>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        nprobe: Option<&Bound<'_, PyAny>>,
        filter: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let m = matrix_f32(queries, "queries")?;
        let cols = m.as_array().ncols();
        let q = m.as_slice()?;
        let args = self.call_args(k, rerank_factor, nprobe, filter)?;
        let nq = self.queries_slice(q, cols)?;
        let dim = self.dim;
        // Interruptible when long: Ctrl-C stops the batch between queries.
        // Without waiting for the lock: if a writer holds it, call it long.
        let len = self.engine.try_read().map_or(usize::MAX, |e| e.len());
        let work = nq.saturating_mul(len).saturating_mul(dim);
        let batch = long_call(py, work, |cancel| {
            let engine = self.read();
            Self::search_many(&engine, q, dim, &args, cancel)
        })?;
        Self::batch_to_numpy(py, nq, batch)
    }

    /// Awaitable form of `search`, run on the wheel's runtime (the query is
    /// copied, so the caller may reuse its array at once).
    #[pyo3(signature = (query, k, *, rerank_factor=None, nprobe=None, filter=None))]
    fn search_async<'py>(
        &self,
        py: Python<'py>,
        query: &Bound<'py, PyAny>,
        k: &Bound<'py, PyAny>,
        rerank_factor: Option<&Bound<'py, PyAny>>,
        nprobe: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let q = vector_f32(query, "query", "search_batch")?;
        let q = q.as_slice()?.to_vec();
        let args = self.call_args(k, rerank_factor, nprobe, filter)?;
        self.query_slice(&q)?;
        let engine = Arc::clone(&self.engine);
        runtime::awaitable(
            py,
            move || {
                catch_panic(|| {
                    let engine = engine.read().unwrap_or_else(|p| p.into_inner());
                    Self::search_one(&engine, &q, &args)
                })
            },
            Box::new(hits_to_list),
        )
    }

    /// Awaitable form of `search_batch` (the queries are copied).
    #[pyo3(signature = (queries, k, *, rerank_factor=None, nprobe=None, filter=None))]
    fn search_batch_async<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        k: &Bound<'py, PyAny>,
        rerank_factor: Option<&Bound<'py, PyAny>>,
        nprobe: Option<&Bound<'py, PyAny>>,
        filter: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let m = matrix_f32(queries, "queries")?;
        let cols = m.as_array().ncols();
        let q = m.as_slice()?.to_vec();
        let args = self.call_args(k, rerank_factor, nprobe, filter)?;
        let nq = self.queries_slice(&q, cols)?;
        let (engine, dim) = (Arc::clone(&self.engine), self.dim);
        runtime::awaitable(
            py,
            move || {
                catch_panic(|| {
                    let engine = engine.read().unwrap_or_else(|p| p.into_inner());
                    // Cancelling the awaiting task drops the result instead.
                    Self::search_many(&engine, &q, dim, &args, &Cancel::new())
                })
            },
            Box::new(move |py, batch: Batch| Self::batch_to_numpy(py, nq, batch)),
        )
    }

    /// Adds one vector under `id`. The index is unchanged if anything is wrong.
    fn add(
        &self,
        py: Python<'_>,
        id: &Bound<'_, PyAny>,
        vector: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let id = int_in_range(id, "id", 0, self.kind.max_id() as i128)? as u64;
        let v = vector_f32(vector, "vector", "add_batch")?;
        let v = v.as_slice()?;
        if v.len() != self.dim {
            return Err(Error::dimension("vector", self.dim, v.len()).into());
        }
        self.add_rows(py, Some(&[id]), v, "vector", false)
    }

    /// Adds the rows of `vectors` (shape `(n, dim)`) under `ids`, by default
    /// `len(self) .. len(self) + n`, or, when one of those is held (after
    /// removals), from one above the largest id held. All or nothing.
    #[pyo3(signature = (vectors, ids=None))]
    fn add_batch(
        &self,
        py: Python<'_>,
        vectors: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let m = matrix_f32(vectors, "vectors")?;
        let (n, cols) = m.as_array().dim();
        if cols != self.dim {
            return Err(Error::dimension("vectors", self.dim, cols).into());
        }
        let ids = ids
            .filter(|i| !i.is_none())
            .map(|i| ids_u64(i, n, "ids"))
            .transpose()?;
        self.add_rows(py, ids.as_deref(), m.as_slice()?, "vectors", true)
    }

    /// Removes the vectors of `ids` (a 1-D sequence or array of ints);
    /// ids not held are ignored. Returns how many were removed. Removal is
    /// physical (`len`, `ids`, iteration and `save` agree at once); call
    /// `compact()` to give back the memory they held.
    fn remove(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = id_list(ids, "ids")?;
        let work = self
            .engine
            .try_read()
            .map_or(usize::MAX, |e| e.len() * self.dim);
        long_call(py, work, |_| Ok(self.write().remove(&ids)))
    }

    /// Replaces the vectors of the ids already held and adds the others
    /// (`vectors` of shape `(len(ids), dim)`); the upserted rows come last,
    /// in order. All or nothing: a bad row (NaN, wrong shape) or a repeated
    /// id changes nothing.
    fn upsert(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let m = matrix_f32(vectors, "vectors")?;
        let (n, cols) = m.as_array().dim();
        if cols != self.dim {
            return Err(Error::dimension("vectors", self.dim, cols).into());
        }
        let ids = ids_u64(ids, n, "ids")?;
        let data = m.as_slice()?;
        long_call(py, add_work(n, self.dim), |cancel| {
            self.write()
                .upsert_with(&ids, data, "vectors", true, cancel)
                .map(|_| ())
        })
    }

    /// `del index[id]`: removes one id; `NotFound` (a `KeyError`) if it is
    /// not held.
    fn __delitem__(&self, py: Python<'_>, id: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = int_in_range(id, "id", i64::MIN as i128, u64::MAX as i128)?;
        let removed = match u64::try_from(id) {
            Ok(v) => self.remove(py, &[v].into_pyobject(py)?.into_any())?,
            Err(_) => 0,
        };
        if removed == 0 {
            return Err(pyerr::NotFound::new_err((
                format!("id {id} is not in the index"),
                id as i64,
            )));
        }
        Ok(())
    }

    /// Gives back memory not in use after removals (vectors, codes, lists,
    /// id map), so `memory_bytes` matches a fresh build of the same rows.
    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        long_call(py, 0, |_| {
            self.write().compact();
            Ok(())
        })
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.read_py(py).len()
    }

    /// Dimension of the stored vectors.
    #[getter]
    fn dim(&self) -> usize {
        self.dim
    }

    /// Bytes held by the index: codes, rotation, kept vectors, ids.
    #[getter]
    fn memory_bytes(&self, py: Python<'_>) -> usize {
        self.read_py(py).memory_bytes()
    }

    /// Seed of the random rotation (`None` for `FlatF32Index`).
    #[getter]
    fn seed(&self, py: Python<'_>) -> Option<u64> {
        (self.kind != Kind::Flat).then(|| self.read_py(py).params().seed)
    }

    /// Candidates per result that are reranked exactly (1 = no rerank).
    #[getter]
    fn rerank_factor(&self, py: Python<'_>) -> usize {
        self.read_py(py).params().rerank_factor
    }

    #[setter]
    fn set_rerank_factor(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        if !self.kind.reranks() {
            return Err(Error::invalid(format!(
                "{} has no rerank_factor to set",
                self.kind.class_name()
            ))
            .into());
        }
        let rf = int_in_range(value, "rerank_factor", 1, MAX_RERANK_FACTOR as i128)? as usize;
        Ok(self.write_py(value.py()).set_rerank_factor(rf)?)
    }

    /// What the index ranks by, fixed at construction: `"l2"` (hits carry
    /// squared L2 distances, ascending), `"ip"` (inner products of the
    /// vectors as given, descending: MIPS; `FlatF32Index` and
    /// `IvfRabitqIndex` only) or `"cosine"` (cosine similarities,
    /// descending; vectors are stored normalised, so `index[id]` returns
    /// the unit vector).
    #[getter]
    fn metric(&self, py: Python<'_>) -> &'static str {
        self.read_py(py).params().metric.name()
    }

    /// `"haar"` or `"hadamard"` (`None` for `FlatF32Index`, which rotates nothing).
    #[getter]
    fn rotation(&self, py: Python<'_>) -> Option<&'static str> {
        (self.kind != Kind::Flat).then(|| self.read_py(py).params().rotation.name())
    }

    /// Whether the original vectors are kept (for `idx[id]`, iteration,
    /// `numpy.asarray(idx)`, exact rerank and `save`).
    #[getter]
    fn keeps_vectors(&self, py: Python<'_>) -> bool {
        self.read_py(py).store().keeps_vectors()
    }

    /// The stored ids in insertion order (an int64 copy).
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let ids: Vec<i64> = self
            .read_py(py)
            .store()
            .ids()
            .iter()
            .map(|&i| i as i64)
            .collect();
        PyArray1::from_vec(py, ids)
    }

    fn __contains__(&self, id: &Bound<'_, PyAny>) -> bool {
        match int_in_range(id, "id", 0, u64::MAX as i128) {
            Ok(v) => self.read_py(id.py()).store().contains(v as u64),
            Err(_) => false,
        }
    }

    /// The stored vector of `id` as a read-only float32 view (no copy).
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        id: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let id = int_in_range(id, "id", i64::MIN as i128, u64::MAX as i128)?;
        let Ok(id) = u64::try_from(id) else {
            return Err(pyerr::NotFound::new_err((
                format!("id {id} is not in the index: ids are >= 0"),
                id as i64,
            )));
        };
        let engine = self.read_py(py);
        let store = engine.store();
        if !store.keeps_vectors() {
            return Err(pyerr::NotFound::new_err((
                format!(
                    "{} keeps only 1-bit codes, not the original vectors; use RabitqPlusIndex \
                     (or RabitqAsymIndex with rerank_factor > 1) to read vectors back",
                    self.kind.class_name()
                ),
                id,
            )));
        }
        let pos = store.row_of(id).ok_or_else(|| Error::NotFound {
            message: format!("id {id} is not in the index"),
            key: Some(id),
        })?;
        let data = store.shared_vectors();
        drop(engine);
        readonly_view(py, data, pos * self.dim, None, self.dim)
    }

    /// Iterates `(id, vector)` pairs in insertion order over a snapshot.
    fn __iter__(&self, py: Python<'_>) -> PyResult<VectorIter> {
        let engine = self.read_py(py);
        let store = engine.store();
        if !store.keeps_vectors() {
            return Err(Error::invalid(format!(
                "{} keeps only 1-bit codes and cannot iterate over vectors; iterate over idx.ids",
                self.kind.class_name()
            ))
            .into());
        }
        Ok(VectorIter {
            ids: store.ids().to_vec(),
            data: store.shared_vectors(),
            dim: self.dim,
            next: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// `numpy.asarray(idx)`: the `(n, dim)` float32 matrix, read-only, no copy.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let engine = self.read_py(py);
        let store = engine.store();
        if !store.keeps_vectors() {
            return Err(Error::invalid(format!(
                "{} keeps only 1-bit codes, not the original vectors, so it has no array form",
                self.kind.class_name()
            ))
            .into());
        }
        let (n, data) = (store.len(), store.shared_vectors());
        drop(engine);
        let view = readonly_view(py, data, 0, Some(n), self.dim)?;
        let np = py.import("numpy")?;
        let dtype_differs = match dtype.filter(|d| !d.is_none()) {
            Some(d) => !np
                .call_method1("dtype", (d,))?
                .eq(np.getattr("float32")?.call0()?.getattr("dtype")?)?,
            None => false,
        };
        if copy == Some(false) && dtype_differs {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "a dtype other than float32 needs a copy, but copy=False was given",
            ));
        }
        if copy == Some(true) || dtype_differs {
            let kwargs = pyo3::types::PyDict::new(py);
            kwargs.set_item("dtype", dtype.unwrap_or(&np.getattr("float32")?))?;
            return np.call_method("array", (view,), Some(&kwargs));
        }
        Ok(view)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let engine = self.read_py(py);
        let p = engine.params();
        let mut s = format!(
            "{}(n={}, dim={}",
            self.kind.class_name(),
            engine.len(),
            p.dim
        );
        if self.kind != Kind::Flat {
            s.push_str(&format!(
                ", seed={}, rotation='{}'",
                p.seed,
                p.rotation.name()
            ));
        }
        if self.kind.reranks() {
            s.push_str(&format!(", rerank_factor={}", p.rerank_factor));
        }
        if p.metric != Metric::L2 {
            s.push_str(&format!(", metric='{}'", p.metric.name()));
        }
        if let Some(ivf) = engine.ivf() {
            s.push_str(&format!(
                ", nlist={}, nprobe={}",
                ivf.nlist(),
                engine.effective_nprobe()
            ));
        }
        s.push_str(&format!(", memory_bytes={})", engine.memory_bytes()));
        s
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<IndexBase>() else {
            return Ok(py.NotImplemented());
        };
        let equal = || -> bool {
            let other = other.get();
            if Arc::ptr_eq(&self.engine, &other.engine) {
                return true;
            }
            self.read_py(py).same_as(&other.read_py(py))
        };
        match op {
            CompareOp::Eq => Ok(equal().into_pyobject(py)?.to_owned().into_any().unbind()),
            CompareOp::Ne => Ok((!equal()).into_pyobject(py)?.to_owned().into_any().unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }

    /// Saves atomically to `path` (a `str` or `os.PathLike[str]`; see the
    /// package docs for the format). A `RabitqPlusIndex` with the Haar
    /// rotation and metric `"l2"` is written in the Rust crate's layout
    /// (which the crate reads) unless `crate_format=False`; every other
    /// index, and that one with `crate_format=False`, in the SDK's version 2
    /// layout, which `load(path, mmap=True)` can map. `compress=True`
    /// writes version 2 with the float32 vectors compressed losslessly
    /// (about 0.85 of their bytes for embeddings, every bit kept; the
    /// crate cannot read it and `load` needs `mmap=False`); a kind that
    /// keeps no vectors has nothing to compress and is written as usual.
    #[pyo3(signature = (path, *, crate_format=true, compress=false))]
    fn save(
        &self,
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        crate_format: bool,
        compress: bool,
    ) -> PyResult<()> {
        let path = path_arg(path, "path")?;
        Ok(py.detach(|| {
            catch_panic(|| rbpx::save_as(&self.read(), &path, crate_format, compress))
        })?)
    }

    // ── serialisation (to_bytes / from_bytes, pickle, copy) ────────────────

    /// The index as bytes (the `.rbpx` version 2 layout, CRC-checked), for
    /// `from_bytes`. One copy of the index, written with the GIL released;
    /// never compressed (`from_bytes` also reads the bytes of a file saved
    /// with `compress=True`).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        let engine = self.read_py(py);
        let len = rbpx::encoded_len(&engine) as usize;
        let engine: &Engine = &engine;
        pyo3::types::PyBytes::new_with(py, len, |buf| {
            // The new bytes object is not visible to any other thread yet.
            Ok(py.detach(|| catch_panic(|| rbpx::write_bytes(engine, buf)))?)
        })
    }

    /// An index from `to_bytes()` output: any C-contiguous buffer (`bytes`,
    /// `bytearray`, `memoryview`, `pickle.PickleBuffer`, `mmap`). Called on
    /// a class, the bytes must hold that kind (else `PersistError` naming
    /// both); on `_IndexBase`, any kind. The vectors are copied into the
    /// index (the buffer can be released afterwards).
    #[classmethod]
    fn from_bytes(
        cls: &Bound<'_, pyo3::types::PyType>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let py = cls.py();
        let expected = kind_of_class(cls)?;
        let type_name = data
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let not_buffer = |_| {
            PyErr::from(Error::invalid(format!(
                "data must be a bytes-like object (bytes, bytearray, memoryview, pickle.PickleBuffer), got {type_name}"
            )))
        };
        let view = py
            .import("builtins")?
            .getattr("memoryview")?
            .call1((data,))
            .map_err(not_buffer)?;
        let view = view.call_method1("cast", ("B",)).map_err(not_buffer)?;
        let array = py
            .import("numpy")?
            .call_method1("frombuffer", (view, "uint8"))?;
        let array = array.cast::<numpy::PyArray1<u8>>()?.readonly();
        let bytes = array.as_slice()?;
        let engine = long_call(py, bytes.len(), |cancel| {
            let loaded = rbpx::from_bytes(bytes, expected)?;
            cancel.check()?;
            rbpx::rebuild(loaded, cancel)
        })?;
        wrap_engine(py, engine)
    }

    /// Pickling: by value, as `to_bytes()`; with protocol 5 the bytes go
    /// out-of-band as a `pickle.PickleBuffer` (no copy into the pickle
    /// stream when the pickler has a `buffer_callback`).
    fn __reduce_ex__<'py>(
        slf: &Bound<'py, Self>,
        protocol: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let protocol: i64 = protocol.extract().unwrap_or(0);
        let payload = slf.get().to_bytes(py)?.into_any();
        let payload = if protocol >= 5 {
            py.import("pickle")?
                .getattr("PickleBuffer")?
                .call1((payload,))?
        } else {
            payload
        };
        let make = slf.get_type().getattr("from_bytes")?;
        Ok((make, (payload,)).into_pyobject(py)?.into_any())
    }

    /// `copy.copy(index)`: an independent index with equal contents (an
    /// index owns its data, so this is the same as `deepcopy`; a mapped
    /// index's copy holds its vectors in memory).
    fn __copy__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let engine = long_call(py, usize::MAX, |cancel| {
            let snapshot = rbpx::snapshot(&self.read());
            rbpx::rebuild(snapshot, cancel)
        })?;
        wrap_engine(py, engine)
    }

    /// `copy.deepcopy(index)`: see `__copy__`.
    fn __deepcopy__(&self, py: Python<'_>, _memo: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__copy__(py)
    }

    /// Whether the vectors are mapped read-only from a file
    /// (`load(path, mmap=True)`); the first change copies what it changes
    /// (the vectors, an IVF list's codes) into memory.
    #[getter]
    fn mapped(&self, py: Python<'_>) -> bool {
        self.read_py(py).is_mapped()
    }
}

/// The kind a class method was called on (`None` on `_IndexBase`).
fn kind_of_class(cls: &Bound<'_, pyo3::types::PyType>) -> PyResult<Option<Kind>> {
    Ok(if cls.is_subclass_of::<FlatF32Index>()? {
        Some(Kind::Flat)
    } else if cls.is_subclass_of::<RabitqIndex>()? {
        Some(Kind::Rabitq)
    } else if cls.is_subclass_of::<RabitqPlusIndex>()? {
        Some(Kind::Plus)
    } else if cls.is_subclass_of::<RabitqAsymIndex>()? {
        Some(Kind::Asym)
    } else if cls.is_subclass_of::<IvfRabitqIndex>()? {
        Some(Kind::Ivf)
    } else {
        None
    })
}

/// The Python object of the engine's kind.
fn wrap_engine(py: Python<'_>, engine: Engine) -> PyResult<Py<PyAny>> {
    let kind = engine.params().kind;
    let base = PyClassInitializer::from(IndexBase::from_engine(engine));
    Ok(match kind {
        Kind::Flat => Py::new(py, base.add_subclass(FlatF32Index))?.into_any(),
        Kind::Rabitq => Py::new(py, base.add_subclass(RabitqIndex))?.into_any(),
        Kind::Plus => Py::new(py, base.add_subclass(RabitqPlusIndex))?.into_any(),
        Kind::Asym => Py::new(py, base.add_subclass(RabitqAsymIndex))?.into_any(),
        Kind::Ivf => Py::new(py, base.add_subclass(IvfRabitqIndex))?.into_any(),
    })
}

/// Checked search arguments shared by every search form.
struct CallArgs {
    k: usize,
    opts: SearchOpts<'static>,
    filter: Option<Arc<EngineIdSet>>,
}

/// A 1-D sequence or array of ids of any length (`what` names it).
fn id_list(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<u64>> {
    if let Ok(arr) = obj.cast::<numpy::PyUntypedArray>() {
        use numpy::PyUntypedArrayMethods;
        if arr.ndim() != 1 {
            return Err(Error::invalid(format!(
                "{what} must be a 1-D sequence of ids, got an array of shape {}",
                arrays::shape_text(arr.shape())
            ))
            .into());
        }
        return ids_u64(obj, arr.shape()[0], what);
    }
    let n = obj.len().map_err(|_| {
        PyErr::from(Error::invalid(format!(
            "{what} must be a 1-D sequence of ids, got {}",
            arrays::type_name(obj)
        )))
    })?;
    ids_u64(obj, n, what)
}

/// The `filter=` argument: `None`, an `IdSet`, or a 1-D sequence of ids
/// between 0 and the kind's largest id.
fn filter_arg(obj: Option<&Bound<'_, PyAny>>, kind: Kind) -> PyResult<Option<Arc<EngineIdSet>>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else {
        return Ok(None);
    };
    if let Ok(set) = obj.cast::<IdSet>() {
        return Ok(Some(Arc::clone(&set.get().set)));
    }
    let ids = id_list(obj, "filter")?;
    let max = kind.max_id();
    if let Some((i, id)) = ids.iter().enumerate().find(|(_, &id)| id > max) {
        return Err(Error::invalid(format!(
            "filter[{i}] = {id} cannot be an id of {}: ids are between 0 and {max}",
            kind.class_name()
        ))
        .into());
    }
    Ok(Some(Arc::new(EngineIdSet::new(&ids))))
}

/// A precompiled, reusable set of allowed ids for `filter=`: built once
/// (sorted, duplicates dropped), shared by any number of searches and
/// indexes without converting the ids again.
#[pyclass(frozen, module = "ruvector_rabitq", name = "IdSet")]
pub struct IdSet {
    set: Arc<EngineIdSet>,
}

#[pymethods]
impl IdSet {
    /// `IdSet(ids)`: `ids` a 1-D sequence or array of ints between 0 and
    /// 2**63 - 1.
    #[new]
    fn new(ids: &Bound<'_, PyAny>) -> PyResult<Self> {
        let ids = id_list(ids, "ids")?;
        if let Some((i, id)) = ids.iter().enumerate().find(|(_, &id)| id > i64::MAX as u64) {
            return Err(Error::invalid(format!(
                "ids[{i}] = {id} is not an id: ids are between 0 and {}",
                i64::MAX
            ))
            .into());
        }
        Ok(Self {
            set: Arc::new(EngineIdSet::new(&ids)),
        })
    }

    /// Number of distinct ids.
    fn __len__(&self) -> usize {
        self.set.len()
    }

    fn __contains__(&self, id: &Bound<'_, PyAny>) -> bool {
        int_in_range(id, "id", 0, u64::MAX as i128).is_ok_and(|v| self.set.contains(v as u64))
    }

    /// The ids, ascending (an int64 copy).
    #[getter]
    fn ids<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        PyArray1::from_vec(py, self.set.ids().iter().map(|&i| i as i64).collect())
    }

    fn __repr__(&self) -> String {
        format!("IdSet(len={})", self.set.len())
    }
}

/// Iterator over `(id, vector)` pairs of an index snapshot.
#[pyclass(frozen, module = "ruvector_rabitq")]
pub struct VectorIter {
    ids: Vec<u64>,
    data: arrays::SharedF32,
    dim: usize,
    next: std::sync::atomic::AtomicUsize,
}

#[pymethods]
impl VectorIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<(u64, Bound<'py, PyAny>)>> {
        let pos = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(&id) = self.ids.get(pos) else {
            return Ok(None);
        };
        Ok(Some((
            id,
            readonly_view(py, Arc::clone(&self.data), pos * self.dim, None, self.dim)?,
        )))
    }
}

// ── the five concrete classes ───────────────────────────────────────────────

fn params_from(
    kind: Kind,
    dim: &Bound<'_, PyAny>,
    seed: &Bound<'_, PyAny>,
    rerank_factor: &Bound<'_, PyAny>,
    rotation: &str,
    metric: Metric,
) -> PyResult<Params> {
    let dim = int_in_range(dim, "dim", 1, validate::MAX_DIM as i128)? as usize;
    let seed = int_in_range(seed, "seed", 0, u64::MAX as i128)? as u64;
    let rerank_factor =
        int_in_range(rerank_factor, "rerank_factor", 1, MAX_RERANK_FACTOR as i128)? as usize;
    let p = Params {
        kind,
        dim,
        seed,
        rerank_factor,
        rotation: Rotation::parse(rotation)?,
        nlist: 0,
        nprobe: 0,
        metric,
        spill: false,
    };
    p.check()?;
    Ok(p)
}

/// Default seed of every index.
pub const DEFAULT_SEED: u64 = 42;
/// Default rerank factor of `IvfRabitqIndex`.
pub const IVF_DEFAULT_RERANK_FACTOR: usize = 10;

/// The `metric` argument: `"l2"` (default), `"ip"` or `"cosine"`.
fn metric_arg(metric: Option<&Bound<'_, PyAny>>) -> PyResult<Metric> {
    let Some(m) = metric.filter(|m| !m.is_none()) else {
        return Ok(Metric::L2);
    };
    let text: String = m.extract().map_err(|_| {
        Error::invalid(format!(
            "metric must be \"l2\", \"ip\" or \"cosine\", got {}",
            m.repr().map(|x| x.to_string()).unwrap_or_default()
        ))
    })?;
    Ok(Metric::parse(&text)?)
}

/// The options every constructor and `build` share, defaults filled in.
struct Options<'py> {
    seed: Bound<'py, PyAny>,
    rerank_factor: Bound<'py, PyAny>,
    rotation: &'static str,
    metric: Metric,
}

impl Options<'_> {
    fn params(&self, kind: Kind, dim: &Bound<'_, PyAny>) -> PyResult<Params> {
        params_from(
            kind,
            dim,
            &self.seed,
            &self.rerank_factor,
            self.rotation,
            self.metric,
        )
    }
}

/// Fills in defaults and refuses options that the kind does not have.
fn defaults<'py>(
    py: Python<'py>,
    kind: Kind,
    seed: Option<&Bound<'py, PyAny>>,
    rerank_factor: Option<&Bound<'py, PyAny>>,
    rotation: Option<&Bound<'py, PyAny>>,
    metric: Option<&Bound<'py, PyAny>>,
) -> PyResult<Options<'py>> {
    let name = kind.class_name();
    let given = |o: Option<&Bound<'py, PyAny>>| o.is_some_and(|o| !o.is_none());
    if !kind.reranks() && given(rerank_factor) {
        return Err(
            Error::invalid(format!("{name} does not rerank and takes no rerank_factor")).into(),
        );
    }
    if kind == Kind::Flat && (given(seed) || given(rotation)) {
        return Err(
            Error::invalid(format!("{name} is exact and takes no seed or rotation")).into(),
        );
    }
    let rotation = match rotation.filter(|r| !r.is_none()) {
        // IVF's Hadamard is the SDK's exact (padded) one, and the fast one.
        None if kind == Kind::Ivf => "hadamard",
        None => "haar",
        Some(r) => {
            let text: String = r.extract().map_err(|_| {
                Error::invalid(format!(
                    "rotation must be \"haar\" or \"hadamard\", got {}",
                    r.repr().map(|x| x.to_string()).unwrap_or_default()
                ))
            })?;
            Rotation::parse(&text)?.name()
        }
    };
    let default_rf: u64 = match kind {
        Kind::Plus => 20,
        Kind::Ivf => IVF_DEFAULT_RERANK_FACTOR as u64,
        _ => 1,
    };
    let seed = match seed.filter(|s| !s.is_none()) {
        Some(s) => s.clone(),
        None => DEFAULT_SEED.into_pyobject(py)?.into_any(),
    };
    let rf = match rerank_factor.filter(|r| !r.is_none()) {
        Some(r) => r.clone(),
        None => default_rf.into_pyobject(py)?.into_any(),
    };
    Ok(Options {
        seed,
        rerank_factor: rf,
        rotation,
        metric: metric_arg(metric)?,
    })
}

/// `nlist`, `nprobe` (0 = automatic) and `spill` (`None` = the metric's
/// default) of an `IvfRabitqIndex`.
#[derive(Clone, Copy)]
struct IvfArgs {
    nlist: usize,
    nprobe: usize,
    spill: Option<bool>,
}

impl IvfArgs {
    fn parse(
        nlist: Option<&Bound<'_, PyAny>>,
        nprobe: Option<&Bound<'_, PyAny>>,
        spill: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let spill = match spill.filter(|o| !o.is_none()) {
            None => None,
            Some(o) => Some(bool_arg(o, "spill")?),
        };
        let get = |o: Option<&Bound<'_, PyAny>>, name: &str| -> PyResult<usize> {
            match o.filter(|o| !o.is_none()) {
                None => Ok(0),
                Some(o) => Ok(int_in_range(o, name, 1, MAX_NLIST as i128)? as usize),
            }
        };
        Ok(Self {
            nlist: get(nlist, "nlist")?,
            nprobe: get(nprobe, "nprobe")?,
            spill,
        })
    }

    fn apply(self, mut params: Params) -> PyResult<Params> {
        params.nlist = self.nlist;
        params.nprobe = self.nprobe;
        params.spill = self.spill.unwrap_or(params.metric != Metric::Ip);
        params.check()?;
        Ok(params)
    }
}

fn new_base(params: Params) -> PyResult<IndexBase> {
    // Cheap: the rotation is built when the first rows are added.
    Ok(IndexBase::from_engine(catch_panic(|| Engine::new(params))?))
}

/// Builds an index from `vectors`; `params_for` turns the matrix's column
/// count into the index parameters (so `dim` is checked like a given one).
fn build_base<'py>(
    py: Python<'py>,
    vectors: &Bound<'py, PyAny>,
    ids: Option<&Bound<'py, PyAny>>,
    params_for: impl FnOnce(&Bound<'py, PyAny>) -> PyResult<Params>,
) -> PyResult<IndexBase> {
    let m = matrix_f32(vectors, "vectors")?;
    let (n, cols) = m.as_array().dim();
    let params = params_for(&cols.into_pyobject(py)?.into_any())?;
    let ids = match ids.filter(|i| !i.is_none()) {
        Some(i) => ids_u64(i, n, "ids")?,
        None => (0..n as u64).collect(),
    };
    let data = m.as_slice()?;
    // Interruptible when long: Ctrl-C stops the encoding / k-means between
    // chunks.
    let engine = long_call(py, add_work(n, cols), |cancel| {
        let mut engine = Engine::new(params)?;
        engine.add_with(&ids, data, "vectors", true, cancel)?;
        Ok(engine)
    })?;
    Ok(IndexBase::from_engine(engine))
}

fn load_base(
    py: Python<'_>,
    path: &Bound<'_, PyAny>,
    kind: Kind,
    mmap: bool,
    lean: bool,
) -> PyResult<IndexBase> {
    let path = path_arg(path, "path")?;
    let engine = long_call(py, usize::MAX, |cancel| {
        if lean {
            let (loaded, file) = rbpx::load_mapped_with_file(&path, Some(kind))?;
            cancel.check()?;
            return rbpx::rebuild_lean(loaded, file, cancel);
        }
        let loaded = if mmap {
            rbpx::load_mapped(&path, Some(kind))?
        } else {
            rbpx::load(&path, Some(kind))?
        };
        cancel.check()?;
        rbpx::rebuild(loaded, cancel)
    })?;
    Ok(IndexBase::from_engine(engine))
}

macro_rules! index_class {
    ($name:ident, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(extends = IndexBase, frozen, module = "ruvector_rabitq")]
        pub struct $name;

        #[pymethods]
        impl $name {
            /// An empty index of dimension `dim`, ranking by `metric`
            /// (`"l2"`, `"ip"` or `"cosine"`; see `metric`).
            #[new]
            #[pyo3(signature = (dim, *, seed=None, rerank_factor=None, rotation=None, metric=None))]
            fn new(
                py: Python<'_>,
                dim: &Bound<'_, PyAny>,
                seed: Option<&Bound<'_, PyAny>>,
                rerank_factor: Option<&Bound<'_, PyAny>>,
                rotation: Option<&Bound<'_, PyAny>>,
                metric: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<PyClassInitializer<Self>> {
                let options = defaults(py, $kind, seed, rerank_factor, rotation, metric)?;
                let params = options.params($kind, dim)?;
                Ok(PyClassInitializer::from(new_base(params)?).add_subclass($name))
            }

            /// Builds an index from the rows of an `(n, dim)` float32 array;
            /// `ids` defaults to `0..n`.
            #[classmethod]
            #[pyo3(signature = (vectors, ids=None, *, seed=None, rerank_factor=None, rotation=None, metric=None))]
            #[allow(clippy::too_many_arguments)]
            fn build(
                cls: &Bound<'_, pyo3::types::PyType>,
                vectors: &Bound<'_, PyAny>,
                ids: Option<&Bound<'_, PyAny>>,
                seed: Option<&Bound<'_, PyAny>>,
                rerank_factor: Option<&Bound<'_, PyAny>>,
                rotation: Option<&Bound<'_, PyAny>>,
                metric: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<$name>> {
                let py = cls.py();
                let options = defaults(py, $kind, seed, rerank_factor, rotation, metric)?;
                let base = build_base(py, vectors, ids, |dim| options.params($kind, dim))?;
                Py::new(py, PyClassInitializer::from(base).add_subclass($name))
            }

            /// Loads an index saved by `save` (or, for `RabitqPlusIndex`,
            /// by the Rust crate's `rbpx::save_index`) from `path` (a
            /// `str` or `os.PathLike[str]`). Streams: the peak memory is
            /// the index's size. `mmap=True` maps the vectors read-only
            /// from a version 2 file instead (processes share one copy; the
            /// whole file is checked first, then its pages are let go, so
            /// the index is not resident until searches touch it; the
            /// first change copies them; a file saved with `compress=True`
            /// cannot be mapped: `PersistError`).
            #[classmethod]
            #[pyo3(signature = (path, *, mmap=false))]
            fn load(cls: &Bound<'_, pyo3::types::PyType>, path: &Bound<'_, PyAny>, mmap: bool) -> PyResult<Py<$name>> {
                let py = cls.py();
                let base = load_base(py, path, $kind, mmap, false)?;
                Py::new(py, PyClassInitializer::from(base).add_subclass($name))
            }
        }
    };
}

index_class!(
    FlatF32Index,
    Kind::Flat,
    "Exact brute force over float32 vectors. Trade-off: exact answers and ids up to 2**63-1, at O(n*dim) per query and 4*dim bytes per vector; best below a few tens of thousands of vectors, and as ground truth."
);
index_class!(
    RabitqIndex,
    Kind::Rabitq,
    "1-bit RaBitQ codes only, no rerank. Trade-off: the smallest (about dim/8 bytes per vector) and fastest scan, but estimated distances only: low recall@10 (about 0.1-0.4). Keeps no original vectors, so it cannot be indexed or iterated (save keeps its codes)."
);
index_class!(
    RabitqPlusIndex,
    Kind::Plus,
    "1-bit RaBitQ scan, then exact float32 rerank of k*rerank_factor candidates. Trade-off: the recommended index; 1-bit scan speed with exact final distances; recall rises with rerank_factor (20 gives recall@10 near 1.0 on 128-d clustered data) at the cost of keeping the float32 vectors."
);
index_class!(
    RabitqAsymIndex,
    Kind::Asym,
    "Float32 query against 1-bit codes (the asymmetric RaBitQ estimator). Trade-off: better estimates than the symmetric scan but O(dim) per candidate, about 100x slower than RabitqPlusIndex at n=100k; rerank_factor > 1 keeps the vectors and reranks exactly. Haar rotation only."
);

/// IVF partitioning over 1-bit RaBitQ codes of residuals, with exact rerank.
/// Trade-off: sub-linear search (only the `nprobe` lists nearest the query
/// are scanned, with a 4-bit query against 1-bit codes), so it is the index
/// for hundreds of thousands to millions of vectors; it keeps the float32
/// vectors for the exact rerank, ids up to 2**63-1, and trains k-means on
/// the first vectors added (`build`), so later adds should look like them.
/// Recall rises with `nprobe` and `rerank_factor`. Its default rotation is
/// `"hadamard"`: the SDK's randomised Hadamard transform on the vector padded
/// to a power of two, exactly orthogonal for any dimension; `"haar"` is the
/// crate's dense rotation. `search_batch` scans each probed list once for a
/// group of up to 128 queries while its codes are in cache (the hits of one
/// `search` per row, for less time per query).
///
/// With `spill=True` (the default for `l2` and `cosine`) every vector is
/// also kept in a second list, chosen as SOAR does (the list whose
/// residual is least parallel to the first one's), so the neighbours a
/// query's nearest lists miss are mostly found in them anyway: on real
/// embeddings a recall that needed 64 lists needs about 16, for twice the
/// codes (about 60 more bytes a vector, a few % of the float32 rows).
/// `spill=False` keeps one copy (the leanest memory); it is the default
/// for `ip`, whose lists are ordered by a radius bound that spilled rows
/// would loosen.
///
/// >>> index = IvfRabitqIndex.build(vectors, nlist=256, nprobe=16)
/// >>> index.nprobe = 32          # more recall, more time
#[pyclass(extends = IndexBase, frozen, module = "ruvector_rabitq")]
pub struct IvfRabitqIndex;

#[pymethods]
impl IvfRabitqIndex {
    /// An empty index of dimension `dim`; its lists are trained on the
    /// first batch added.
    #[new]
    #[pyo3(signature = (dim, *, nlist=None, nprobe=None, seed=None, rerank_factor=None, rotation=None, metric=None, spill=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        dim: &Bound<'_, PyAny>,
        nlist: Option<&Bound<'_, PyAny>>,
        nprobe: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        rotation: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        spill: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let lists = IvfArgs::parse(nlist, nprobe, spill)?;
        let options = defaults(py, Kind::Ivf, seed, rerank_factor, rotation, metric)?;
        let params = lists.apply(options.params(Kind::Ivf, dim)?)?;
        Ok(PyClassInitializer::from(new_base(params)?).add_subclass(IvfRabitqIndex))
    }

    /// Trains `nlist` lists (default about sqrt(n)) on the rows of an
    /// `(n, dim)` float32 array and adds them; `ids` defaults to `0..n`.
    #[classmethod]
    #[pyo3(signature = (vectors, ids=None, *, nlist=None, nprobe=None, seed=None, rerank_factor=None, rotation=None, metric=None, spill=None))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        cls: &Bound<'_, pyo3::types::PyType>,
        vectors: &Bound<'_, PyAny>,
        ids: Option<&Bound<'_, PyAny>>,
        nlist: Option<&Bound<'_, PyAny>>,
        nprobe: Option<&Bound<'_, PyAny>>,
        seed: Option<&Bound<'_, PyAny>>,
        rerank_factor: Option<&Bound<'_, PyAny>>,
        rotation: Option<&Bound<'_, PyAny>>,
        metric: Option<&Bound<'_, PyAny>>,
        spill: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<IvfRabitqIndex>> {
        let py = cls.py();
        let lists = IvfArgs::parse(nlist, nprobe, spill)?;
        let options = defaults(py, Kind::Ivf, seed, rerank_factor, rotation, metric)?;
        let base = build_base(py, vectors, ids, |dim| {
            lists.apply(options.params(Kind::Ivf, dim)?)
        })?;
        Py::new(
            py,
            PyClassInitializer::from(base).add_subclass(IvfRabitqIndex),
        )
    }

    /// Loads an index saved by `save` (lists and all; nothing is retrained)
    /// from `path` (a `str` or `os.PathLike[str]`); `mmap=True` maps the
    /// vectors and the lists' codes read-only (see `RabitqPlusIndex.load`;
    /// files saved before the codes were kept in the scan layout map the
    /// vectors only).
    ///
    /// `lean=True` (implies `mmap=True`) keeps the float32 vectors out of
    /// memory altogether: an 8-bit copy (a quarter of their size) orders
    /// each search's candidates, whose float32 rows are read from the file
    /// (`pread`, never mapped in) in that order until the 8-bit error
    /// bound proves no unread candidate can enter the top `k` (about
    /// `1.3·k` reads): the same hits and exact scores as `mmap=True`, with
    /// resident memory near a quarter of the vectors whatever the searches
    /// touch. The first change (`add`, `remove`, ...) makes it an ordinary
    /// index (`lean` turns `False`).
    #[classmethod]
    #[pyo3(signature = (path, *, mmap=false, lean=false))]
    fn load(
        cls: &Bound<'_, pyo3::types::PyType>,
        path: &Bound<'_, PyAny>,
        mmap: bool,
        lean: bool,
    ) -> PyResult<Py<IvfRabitqIndex>> {
        let py = cls.py();
        let base = load_base(py, path, Kind::Ivf, mmap, lean)?;
        Py::new(
            py,
            PyClassInitializer::from(base).add_subclass(IvfRabitqIndex),
        )
    }

    /// Number of lists: trained lists, or before training the requested
    /// count (`None` when it will be chosen from the first batch).
    #[getter]
    fn nlist(slf: &Bound<'_, Self>) -> Option<usize> {
        let engine = slf.as_super().get().read_py(slf.py());
        match engine.ivf().map(|ivf| ivf.nlist()).filter(|&n| n > 0) {
            Some(n) => Some(n),
            None => Some(engine.params().nlist).filter(|&n| n > 0),
        }
    }

    /// Whether every vector is also kept in a second list (see the class
    /// docs; set at construction, kept by `save`).
    #[getter]
    fn spill(slf: &Bound<'_, Self>) -> bool {
        slf.as_super().get().read_py(slf.py()).params().spill
    }

    /// Whether searches rank candidates by a resident 8-bit copy and read
    /// the float32 rows from the file (`load(path, lean=True)`, until the
    /// first change).
    #[getter]
    fn lean(slf: &Bound<'_, Self>) -> bool {
        slf.as_super().get().read_py(slf.py()).is_lean()
    }

    /// Lists visited per query (default: 1/8 of the lists, at least 8).
    #[getter]
    fn nprobe(slf: &Bound<'_, Self>) -> usize {
        slf.as_super().get().read_py(slf.py()).effective_nprobe()
    }

    #[setter]
    fn set_nprobe(slf: &Bound<'_, Self>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let nprobe = int_in_range(value, "nprobe", 1, MAX_NLIST as i128)? as usize;
        Ok(slf.as_super().get().write_py(slf.py()).set_nprobe(nprobe)?)
    }

    /// Number of entries in each list (int64, in list order): with
    /// `spill=True` every vector is counted in its two lists.
    #[getter]
    fn list_sizes<'py>(slf: &Bound<'py, Self>) -> Bound<'py, PyArray1<i64>> {
        let sizes: Vec<i64> = slf
            .as_super()
            .get()
            .read_py(slf.py())
            .ivf()
            .map(|ivf| ivf.list_sizes().into_iter().map(|n| n as i64).collect())
            .unwrap_or_default();
        PyArray1::from_vec(slf.py(), sizes)
    }
}
