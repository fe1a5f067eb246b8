//! The SDK's ruLake cache: a witness-addressed cache of `RabitqPlusIndex`
//! entries (indexes of the shared `ruvector-py-index` engine, results
//! identical to the crate's, faster) in front of registered [`Source`]s,
//! with the crate's coherence
//! rules (`Fresh`, `Eventual { ttl }`, `Frozen`), federation formula and
//! statistics, and without its defects:
//!
//! * `max_cache_entries` really bounds the number of entries: the least
//!   recently used entry is evicted (its pointers dropped, so the next
//!   search re-primes); the crate never evicted a pinned entry, and every
//!   entry was pinned;
//! * each entry keeps the bundle it was built from, so a saved snapshot is
//!   always paired with the witness of the data it holds (see `snapshot.rs`);
//! * a Python adapter never needs `current_bundle`: the engine asks for the
//!   generation only and pulls on a miss (the crate pulled on every search);
//! * pulled data is validated (dimension, ids unique, finite values) before
//!   anything is built; an empty collection answers with no hits.
//!
//! Indexes hold row positions as ids and are the crate's `RabitqPlusIndex`
//! algorithm (Haar rotation, the lake's seed and rerank factor), so results
//! are identical to `ruvector_rulake::RuLake` on the same data (tested).
//! Locks are never held while a backend is called or an index is scanned.
//!
//! Long work takes a [`Cancel`] (Ctrl-C, see `ruvector_py_core::interrupt`)
//! and checks it between chunks: a prime between its pull and its build and
//! while it encodes, a batch between queries. A prime cancelled before its
//! entry is installed leaves the cache as it was; once installed, an entry
//! stays even if the search that primed it is then cancelled (a cache fill
//! changes no data: the next search would have primed the same entry).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use rayon::prelude::*;
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::parallel;

use crate::error::{Error, FromBase};
pub use ruvector_py_index::engine::{Engine, MAX_RERANK_FACTOR};
use ruvector_py_index::engine::{Kind, Params, Rotation, SearchOpts};
use ruvector_py_index::metric::Metric;
use ruvector_rulake::RuLakeBundle;

use crate::source::{check_pulled, LResult, Pulled, Source};

pub const MAX_K: usize = 100_000_000;
const MIN_PER_SHARD_RERANK: usize = 5;

pub type Key = (String, String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consistency {
    Fresh,
    Eventual { ttl_ms: u64 },
    Frozen,
}

#[derive(Clone, Copy, Debug)]
pub struct Config {
    pub rerank_factor: usize,
    pub rotation_seed: u64,
    pub max_entries: Option<usize>,
    pub consistency: Consistency,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub primes: u64,
    pub invalidations: u64,
    pub shared_hits: u64,
    pub evictions: u64,
    pub warm_installs: u64,
    pub total_prime_ms: f64,
    pub last_prime_ms: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerStats {
    pub hits: u64,
    pub misses: u64,
    pub primes: u64,
    pub invalidations: u64,
    pub shared_hits: u64,
}

/// An immutable cache entry: the index (ids are row positions), the real
/// ids by row, and the bundle it was built from.
pub struct EntryData {
    pub index: Engine,
    pub ids: Vec<u64>,
    pub dim: usize,
    pub bundle: RuLakeBundle,
}

/// The outcome of [`Cache::lookup`].
pub enum Lookup {
    /// The cache answers.
    Hit(Snapshot),
    /// The entry must be built first ([`Cache::prime`]).
    Miss(Miss),
}

/// What a prime needs: the backend, its current bundle, and the vectors if
/// producing the bundle pulled them already.
pub struct Miss {
    src: Arc<dyn Source>,
    bundle: RuLakeBundle,
    prepulled: Option<Pulled>,
}

/// A handle on one entry, valid for as long as it is held.
#[derive(Clone)]
pub struct Snapshot {
    pub key: Key,
    pub data: Arc<EntryData>,
}

struct Slot {
    data: Arc<EntryData>,
    refcount: u32,
    last_used: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<String, Slot>,
    pointers: HashMap<Key, String>,
    last_checked: HashMap<Key, Instant>,
    stats: Stats,
    per_backend: HashMap<String, PerStats>,
    per_collection: HashMap<Key, PerStats>,
    tick: u64,
}

thread_local! {
    /// Set while this thread runs a lake's own warm-up search.
    static UNCOUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with its cache hits left out of the statistics: a warm-up
/// search is not a user's hit (a miss and its prime are real work, counted).
pub fn without_counting_hits<R>(f: impl FnOnce() -> R) -> R {
    UNCOUNTED.with(|u| u.set(true));
    let r = f();
    UNCOUNTED.with(|u| u.set(false));
    r
}

impl State {
    fn count_hit(&mut self, key: &Key) {
        if !UNCOUNTED.with(std::cell::Cell::get) {
            self.stats.hits += 1;
            self.count(key, |s| s.hits += 1);
        }
    }

    fn count(&mut self, key: &Key, f: impl Fn(&mut PerStats)) {
        f(self.per_backend.entry(key.0.clone()).or_default());
        f(self.per_collection.entry(key.clone()).or_default());
    }

    fn snapshot(&mut self, key: &Key) -> Option<Snapshot> {
        let w = self.pointers.get(key)?;
        self.tick += 1;
        let tick = self.tick;
        let slot = self.entries.get_mut(w)?;
        slot.last_used = tick;
        Some(Snapshot {
            key: key.clone(),
            data: Arc::clone(&slot.data),
        })
    }

    /// Drops `key`'s pointer; its entry goes when no pointer is left.
    fn drop_pointer(&mut self, key: &Key) -> bool {
        let Some(old) = self.pointers.remove(key) else {
            return false;
        };
        if let Some(slot) = self.entries.get_mut(&old) {
            slot.refcount = slot.refcount.saturating_sub(1);
            if slot.refcount == 0 {
                self.entries.remove(&old);
                self.stats.invalidations += 1;
                self.count(key, |s| s.invalidations += 1);
            }
        }
        true
    }

    fn point(&mut self, key: &Key, witness: &str, shared: bool) -> Snapshot {
        if self.pointers.get(key).map(String::as_str) != Some(witness) {
            self.drop_pointer(key);
            self.pointers.insert(key.clone(), witness.to_string());
            if let Some(slot) = self.entries.get_mut(witness) {
                slot.refcount += 1;
            }
        }
        self.last_checked.insert(key.clone(), Instant::now());
        if shared {
            self.stats.shared_hits += 1;
            self.count(key, |s| s.shared_hits += 1);
        }
        self.snapshot(key).expect("pointer just installed")
    }

    /// Evicts least recently used entries (never `keep`) above `cap`.
    fn evict(&mut self, cap: usize, keep: &str) {
        while self.entries.len() > cap {
            let Some(victim) = self
                .entries
                .iter()
                .filter(|(w, _)| w.as_str() != keep)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(w, _)| w.clone())
            else {
                break;
            };
            self.entries.remove(&victim);
            let keys: Vec<Key> = self
                .pointers
                .iter()
                .filter(|(_, w)| **w == victim)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                self.pointers.remove(&k);
                self.last_checked.remove(&k);
            }
            self.stats.evictions += 1;
        }
    }
}

/// The parameters of every cache entry's index.
pub fn index_params(dim: usize, seed: u64, rf: usize) -> Params {
    Params {
        kind: Kind::Plus,
        dim,
        seed,
        rerank_factor: rf,
        rotation: Rotation::Haar,
        nlist: 0,
        nprobe: 0,
        metric: Metric::L2,
    }
}

/// Builds an entry's index (ids are row positions), with the pool,
/// checking `cancel` between chunks.
pub fn build_index(p: &Pulled, seed: u64, rf: usize, cancel: &Cancel) -> LResult<Engine> {
    let mut idx = Engine::new(index_params(p.dim, seed, rf))?;
    let rows: Vec<u64> = (0..p.ids.len() as u64).collect();
    idx.add_with(&rows, &p.data, "vectors", true, cancel)?;
    Ok(idx)
}

pub struct Cache {
    cfg: Config,
    backends: RwLock<Vec<Arc<dyn Source>>>,
    state: Mutex<State>,
}

/// Per-shard over-request of federated search (the crate's formula).
fn over_request_k(k: usize, shards: usize) -> usize {
    if shards <= 1 || k == 0 {
        return k;
    }
    let bonus = ((k as f64) * (shards as f64).ln()).sqrt().ceil() as usize;
    (k + bonus).min(k.saturating_mul(4))
}

impl Cache {
    pub fn new(cfg: Config) -> Self {
        Self {
            cfg,
            backends: RwLock::new(Vec::new()),
            state: Mutex::new(State::default()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn register(&self, source: Arc<dyn Source>) -> LResult<()> {
        let mut b = self.backends.write().unwrap_or_else(|p| p.into_inner());
        if b.iter().any(|s| s.name() == source.name()) {
            return Err(Error::Lake(format!(
                "a backend named {:?} is already registered; backend names must be unique",
                source.name()
            ))
            .into());
        }
        b.push(source);
        Ok(())
    }

    pub fn backend_names(&self) -> Vec<String> {
        self.backends
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|s| s.name().to_string())
            .collect()
    }

    pub fn backend(&self, name: &str) -> LResult<Arc<dyn Source>> {
        let b = self.backends.read().unwrap_or_else(|p| p.into_inner());
        b.iter().find(|s| s.name() == name).cloned().ok_or_else(|| {
            let known: Vec<&str> = b.iter().map(|s| s.name()).collect();
            Error::Lake(format!(
                "unknown backend {name:?}; registered backends: {known:?}"
            ))
            .into()
        })
    }

    fn can_skip(&self, st: &State, key: &Key) -> bool {
        match self.cfg.consistency {
            Consistency::Fresh => false,
            Consistency::Eventual { ttl_ms } => st
                .last_checked
                .get(key)
                .is_some_and(|t| t.elapsed().as_millis() < u128::from(ttl_ms)),
            Consistency::Frozen => st.pointers.contains_key(key),
        }
    }

    /// The backend's current bundle for `key`.
    pub fn current_bundle(&self, key: &Key) -> LResult<RuLakeBundle> {
        let src = self.backend(&key.0)?;
        Ok(src
            .current(&key.1, self.cfg.rotation_seed, self.cfg.rerank_factor)?
            .0)
    }

    /// Makes sure `key` is cached as the consistency mode demands and returns
    /// a snapshot of its entry: [`Cache::lookup`], then [`Cache::prime`] on
    /// a miss.
    pub fn ensure(&self, key: &Key, cancel: &Cancel) -> LResult<Snapshot> {
        match self.lookup(key)? {
            Lookup::Hit(s) => Ok(s),
            Lookup::Miss(miss) => self.prime(key, miss, cancel),
        }
    }

    /// The coherence check: a snapshot of `key`'s entry if the consistency
    /// mode lets the cache answer, else what a prime needs. Asks the
    /// backend for its current bundle (a Python adapter's `generation`, and
    /// its `pull` when the generation is new) but builds nothing.
    pub fn lookup(&self, key: &Key) -> LResult<Lookup> {
        {
            let mut st = self.lock();
            if self.can_skip(&st, key) {
                if let Some(s) = st.snapshot(key) {
                    st.count_hit(key);
                    return Ok(Lookup::Hit(s));
                }
            }
        }
        let src = self.backend(&key.0)?;
        let (bundle, prepulled) =
            src.current(&key.1, self.cfg.rotation_seed, self.cfg.rerank_factor)?;
        let witness = bundle.rvf_witness.clone();
        let mut st = self.lock();
        if st.pointers.get(key) == Some(&witness) {
            if let Some(s) = st.snapshot(key) {
                st.count_hit(key);
                st.last_checked.insert(key.clone(), Instant::now());
                return Ok(Lookup::Hit(s));
            }
        }
        st.stats.misses += 1;
        st.count(key, |s| s.misses += 1);
        if st.entries.contains_key(&witness) {
            return Ok(Lookup::Hit(st.point(key, &witness, true)));
        }
        Ok(Lookup::Miss(Miss {
            src,
            bundle,
            prepulled,
        }))
    }

    /// Builds and installs the entry of a [`Lookup::Miss`]: pulls (unless
    /// the lookup already did), validates, encodes. Checks `cancel` after
    /// the pull and while it builds, and installs nothing once cancelled.
    pub fn prime(&self, key: &Key, miss: Miss, cancel: &Cancel) -> LResult<Snapshot> {
        let Miss {
            src,
            bundle,
            prepulled,
        } = miss;
        let witness = bundle.rvf_witness.clone();
        cancel.check()?;
        let pulled = match prepulled {
            Some(p) => p,
            None => src.pull(&key.1)?,
        };
        cancel.check()?;
        check_pulled(&key.0, &key.1, &pulled, bundle.dim)?;
        let start = Instant::now();
        let index = build_index(
            &pulled,
            self.cfg.rotation_seed,
            self.cfg.rerank_factor,
            cancel,
        )?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        cancel.check()?;
        let data = EntryData {
            index,
            dim: pulled.dim,
            ids: pulled.ids,
            bundle,
        };
        Ok(self.install(key, witness, data, Some(ms)))
    }

    /// Installs a built entry (a prime when `prime_ms` is set, else a warm
    /// install) and points `key` at it.
    pub fn install(
        &self,
        key: &Key,
        witness: String,
        data: EntryData,
        prime_ms: Option<f64>,
    ) -> Snapshot {
        let mut st = self.lock();
        if st.entries.contains_key(&witness) {
            return st.point(key, &witness, prime_ms.is_some());
        }
        st.entries.insert(
            witness.clone(),
            Slot {
                data: Arc::new(data),
                refcount: 0,
                last_used: 0,
            },
        );
        match prime_ms {
            Some(ms) => {
                st.stats.primes += 1;
                st.stats.total_prime_ms += ms;
                st.stats.last_prime_ms = ms;
                st.count(key, |s| s.primes += 1);
            }
            None => st.stats.warm_installs += 1,
        }
        let snap = st.point(key, &witness, false);
        if let Some(cap) = self.cfg.max_entries {
            st.evict(cap, &witness);
        }
        snap
    }

    /// The cached entry of `key`, with no coherence check.
    pub fn cached(&self, key: &Key) -> Option<Snapshot> {
        self.lock().snapshot(key)
    }

    pub fn witness_of(&self, key: &Key) -> Option<String> {
        self.lock().pointers.get(key).cloned()
    }

    pub fn invalidate(&self, key: &Key) -> bool {
        let mut st = self.lock();
        st.last_checked.remove(key);
        st.drop_pointer(key)
    }

    pub fn entry_count(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn stats(&self) -> Stats {
        self.lock().stats.clone()
    }

    pub fn stats_by_backend(&self) -> Vec<(String, PerStats)> {
        let mut v: Vec<_> = self
            .lock()
            .per_backend
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn stats_by_collection(&self) -> Vec<(Key, PerStats)> {
        let mut v: Vec<_> = self
            .lock()
            .per_collection
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Top-`k` `(id, score)` of one query on a snapshot.
    pub fn search_snapshot(
        snap: &Snapshot,
        query: &[f32],
        k: usize,
        rf: Option<usize>,
    ) -> LResult<Vec<(u64, f32)>> {
        let d = &snap.data;
        if query.len() != d.dim {
            return Err(Error::dimension(
                format!("query for ({:?}, {:?})", snap.key.0, snap.key.1),
                d.dim,
                query.len(),
            )
            .into());
        }
        let n = d.index.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let k = k.min(n);
        let opts = SearchOpts {
            rerank_factor: rf,
            ..SearchOpts::default()
        };
        let hits = d.index.search(query, k, opts)?;
        Ok(hits
            .into_iter()
            .map(|(pos, score)| (d.ids[pos as usize], score))
            .collect())
    }

    pub fn search_one(
        &self,
        key: &Key,
        query: &[f32],
        k: usize,
        rf: Option<usize>,
        cancel: &Cancel,
    ) -> LResult<Vec<(u64, f32)>> {
        let snap = self.ensure(key, cancel)?;
        Self::search_snapshot(&snap, query, k, rf)
    }

    /// Federated search with the crate's per-shard `k` and rerank rules;
    /// `resolve` gives the snapshot of each target (fresh, or a session's).
    pub fn federated_with(
        targets: &[Key],
        query: &[f32],
        k: usize,
        rf: Option<usize>,
        global_rf: usize,
        resolve: &(dyn Fn(&Key) -> LResult<Snapshot> + Sync),
        cancel: &Cancel,
    ) -> LResult<Vec<(Key, u64, f32)>> {
        let shards = targets.len().max(1);
        let rf =
            rf.or_else(|| (shards > 1).then(|| (global_rf / shards).max(MIN_PER_SHARD_RERANK)));
        let kp = over_request_k(k, shards);
        let one = |t: &Key| -> LResult<Vec<(Key, u64, f32)>> {
            let snap = resolve(t)?;
            cancel.check()?;
            Ok(Self::search_snapshot(&snap, query, kp, rf)?
                .into_iter()
                .map(|(id, s)| (t.clone(), id, s))
                .collect())
        };
        let per: Vec<LResult<Vec<(Key, u64, f32)>>> = if targets.len() > 1 {
            parallel::pool()?.install(|| targets.par_iter().map(one).collect())
        } else {
            targets.iter().map(one).collect()
        };
        let mut merged = Vec::new();
        for r in per {
            merged.extend(r?);
        }
        merged.sort_by(|a, b| a.2.total_cmp(&b.2));
        merged.truncate(k);
        Ok(merged)
    }

    pub fn search_federated(
        &self,
        targets: &[Key],
        query: &[f32],
        k: usize,
        rf: Option<usize>,
        cancel: &Cancel,
    ) -> LResult<Vec<(Key, u64, f32)>> {
        Self::federated_with(
            targets,
            query,
            k,
            rf,
            self.cfg.rerank_factor,
            &|t| self.ensure(t, cancel),
            cancel,
        )
    }

    /// Searches every row of `queries` (one coherence check), in parallel,
    /// checking `cancel` before each query. Returns `(ids, scores, k_eff)`,
    /// row-major `(nq, k_eff)`.
    pub fn search_batch_snapshot(
        snap: &Snapshot,
        queries: &[f32],
        cols: usize,
        k: usize,
        rf: Option<usize>,
        cancel: &Cancel,
    ) -> LResult<(Vec<u64>, Vec<f32>, usize)> {
        let d = &snap.data;
        if cols != d.dim || !queries.len().is_multiple_of(d.dim) {
            return Err(Error::dimension(
                format!("queries for ({:?}, {:?})", snap.key.0, snap.key.1),
                d.dim,
                cols,
            )
            .into());
        }
        let nq = queries.len() / d.dim;
        let ke = k.min(d.index.len());
        let mut ids = vec![0u64; nq * ke];
        let mut scores = vec![0f32; nq * ke];
        if ke == 0 {
            return Ok((ids, scores, 0));
        }
        let run = |((i, s), q): ((&mut [u64], &mut [f32]), &[f32])| -> LResult<()> {
            cancel.check()?;
            for (j, (id, sc)) in Self::search_snapshot(snap, q, ke, rf)?
                .into_iter()
                .enumerate()
            {
                i[j] = id;
                s[j] = sc;
            }
            Ok(())
        };
        if nq > 1 {
            parallel::pool()?.install(|| {
                ids.par_chunks_mut(ke)
                    .zip(scores.par_chunks_mut(ke))
                    .zip(queries.par_chunks(d.dim))
                    .try_for_each(run)
            })?;
        } else {
            ids.chunks_mut(ke)
                .zip(scores.chunks_mut(ke))
                .zip(queries.chunks(d.dim))
                .try_for_each(run)?;
        }
        Ok((ids, scores, ke))
    }

    pub fn search_batch(
        &self,
        key: &Key,
        queries: &[f32],
        cols: usize,
        k: usize,
        rf: Option<usize>,
        cancel: &Cancel,
    ) -> LResult<(Vec<u64>, Vec<f32>, usize)> {
        let snap = self.ensure(key, cancel)?;
        Self::search_batch_snapshot(&snap, queries, cols, k, rf, cancel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::LocalSource;
    use ruvector_rulake::{LocalBackend as CrateLocalBackend, RuLake};

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n * d)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s % 10_000) as f32 / 10_000.0 - 0.5) + ((i / d) % 5) as f32
            })
            .collect()
    }

    fn cfg(c: Consistency, max: Option<usize>) -> Config {
        Config {
            rerank_factor: 20,
            rotation_seed: 42,
            max_entries: max,
            consistency: c,
        }
    }

    fn no() -> Cancel {
        Cancel::new()
    }

    fn key(b: &str, c: &str) -> Key {
        (b.to_string(), c.to_string())
    }

    /// Same data in the crate's RuLake and in the engine: same results.
    #[test]
    fn results_equal_the_crate() {
        let d = 16;
        let ours = Cache::new(cfg(Consistency::Fresh, None));
        let theirs = RuLake::new(20, 42);
        for (name, n, seed) in [("a", 1500usize, 1u64), ("b", 300, 2)] {
            let x = data(n, d, seed);
            let ids: Vec<u64> = (0..n as u64).map(|i| i * 7 + (1 << 40)).collect();
            let src = LocalSource::new(name).unwrap();
            src.upsert("c", &ids, &x, d).unwrap();
            ours.register(Arc::new(src)).unwrap();
            let lb = CrateLocalBackend::new(name);
            lb.put_collection(
                "c",
                d,
                ids.clone(),
                x.chunks(d).map(|r| r.to_vec()).collect(),
            )
            .unwrap();
            theirs.register_backend(Arc::new(lb)).unwrap();
        }
        let q = data(20, d, 9);
        for qv in q.chunks(d) {
            for k in [1, 10, 40] {
                let want: Vec<(u64, f32)> = theirs
                    .search_one("a", "c", qv, k)
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.id, h.score))
                    .collect();
                assert_eq!(
                    ours.search_one(&key("a", "c"), qv, k, None, &no()).unwrap(),
                    want
                );
                let want: Vec<(String, u64, f32)> = theirs
                    .search_federated(&[("a", "c"), ("b", "c")], qv, k)
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.backend, h.id, h.score))
                    .collect();
                let got: Vec<(String, u64, f32)> = ours
                    .search_federated(&[key("a", "c"), key("b", "c")], qv, k, None, &no())
                    .unwrap()
                    .into_iter()
                    .map(|(t, id, s)| (t.0, id, s))
                    .collect();
                assert_eq!(got, want);
            }
        }
        let qs: Vec<Vec<f32>> = q.chunks(d).map(|r| r.to_vec()).collect();
        let want = theirs.search_batch("b", "c", &qs, 5).unwrap();
        let (ids, scores, ke) = ours
            .search_batch(&key("b", "c"), &q, d, 5, None, &no())
            .unwrap();
        assert_eq!(ke, 5);
        for (i, row) in want.iter().enumerate() {
            let w: Vec<(u64, f32)> = row.iter().map(|h| (h.id, h.score)).collect();
            let g: Vec<(u64, f32)> = (0..5)
                .map(|j| (ids[i * 5 + j], scores[i * 5 + j]))
                .collect();
            assert_eq!(g, w);
        }
    }

    #[test]
    fn max_entries_really_evicts() {
        let e = Cache::new(cfg(Consistency::Fresh, Some(1)));
        let src = LocalSource::new("l").unwrap();
        for c in ["x", "y", "z"] {
            src.upsert(c, &[1, 2], &[0.0, 1.0, 1.0, 0.0], 2).unwrap();
        }
        e.register(Arc::new(src)).unwrap();
        for c in ["x", "y", "z"] {
            e.search_one(&key("l", c), &[0.0, 1.0], 1, None, &no())
                .unwrap();
            assert_eq!(e.entry_count(), 1);
        }
        assert_eq!(e.stats().evictions, 2);
        assert!(e.witness_of(&key("l", "x")).is_none());
        assert!(e.witness_of(&key("l", "z")).is_some());
        // The crate keeps all three.
        let theirs = RuLake::new(20, 42).with_max_cache_entries(1);
        let lb = CrateLocalBackend::new("l");
        for c in ["x", "y", "z"] {
            lb.put_collection(c, 2, vec![1, 2], vec![vec![0.0, 1.0], vec![1.0, 0.0]])
                .unwrap();
        }
        theirs.register_backend(Arc::new(lb)).unwrap();
        for c in ["x", "y", "z"] {
            theirs.search_one("l", c, &[0.0, 1.0], 1).unwrap();
        }
        assert_eq!(theirs.cache_entry_count(), 3);
    }

    #[test]
    fn consistency_modes_follow_the_crate() {
        for (mode, expect_new) in [
            (Consistency::Fresh, true),
            (Consistency::Eventual { ttl_ms: 60_000 }, false),
            (Consistency::Frozen, false),
        ] {
            let e = Cache::new(cfg(mode, None));
            let src = Arc::new(LocalSource::new("l").unwrap());
            src.upsert("c", &[1], &[0.0, 0.0], 2).unwrap();
            e.register(src.clone()).unwrap();
            let k = key("l", "c");
            assert_eq!(
                e.search_one(&k, &[5.0, 5.0], 1, None, &no()).unwrap()[0].0,
                1
            );
            src.upsert("c", &[2], &[5.0, 5.0], 2).unwrap();
            let top = e.search_one(&k, &[5.0, 5.0], 1, None, &no()).unwrap()[0].0;
            assert_eq!(top == 2, expect_new, "{mode:?}");
        }
    }

    #[test]
    fn a_cancelled_prime_installs_nothing() {
        let e = Cache::new(cfg(Consistency::Fresh, None));
        let src = LocalSource::new("l").unwrap();
        src.upsert("c", &[1, 2], &[0.0, 1.0, 1.0, 0.0], 2).unwrap();
        e.register(Arc::new(src)).unwrap();
        let cancelled = Cancel::new();
        cancelled.cancel();
        let k = key("l", "c");
        let err = e.search_one(&k, &[0.0, 1.0], 1, None, &cancelled);
        assert!(matches!(
            err.unwrap_err().err(),
            Error::Base(ruvector_py_core::Error::Interrupted)
        ));
        assert_eq!((e.entry_count(), e.stats().primes), (0, 0));
        let err = e.search_batch(&k, &[0.0, 1.0], 2, 1, None, &cancelled);
        assert!(matches!(
            err.unwrap_err().err(),
            Error::Base(ruvector_py_core::Error::Interrupted)
        ));
        assert_eq!(
            e.search_one(&k, &[0.0, 1.0], 1, None, &no()).unwrap()[0].0,
            1
        );
        assert_eq!(e.stats().primes, 1);
    }

    #[test]
    fn empty_collection_gives_no_hits() {
        let e = Cache::new(cfg(Consistency::Fresh, None));
        let src = LocalSource::new("l").unwrap();
        src.upsert("c", &[], &[], 3).unwrap();
        e.register(Arc::new(src)).unwrap();
        assert!(e
            .search_one(&key("l", "c"), &[0.0; 3], 5, None, &no())
            .unwrap()
            .is_empty());
    }
}

/// The crate's own behaviour on the defects the SDK fixes, shown on the bare
/// crate. If an upstream release fixes one, its test here fails and says so.
#[cfg(test)]
mod crate_defects {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use ruvector_rulake::cache::Consistency as CrateConsistency;
    use ruvector_rulake::{
        BackendAdapter, FsBackend, LocalBackend as CrateLocalBackend, PulledBatch,
        Result as CrateResult, RuLake,
    };

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "rvlake-defect-{tag}-{}-{:?}",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn local(ids: Vec<u64>, rows: Vec<Vec<f32>>) -> CrateLocalBackend {
        let b = CrateLocalBackend::new("l");
        b.put_collection("c", rows[0].len(), ids, rows).unwrap();
        b
    }

    #[test]
    fn crate_warm_restart_answers_with_row_positions() {
        let dir = tmpdir("ids");
        let b = local(
            vec![100, 200, 300],
            vec![vec![0.0, 0.0], vec![1.0, 1.0], vec![2.0, 2.0]],
        );
        let lake = RuLake::new(4, 7);
        lake.register_backend(Arc::new(b.clone())).unwrap();
        assert_eq!(
            lake.search_one("l", "c", &[2.0, 2.0], 1).unwrap()[0].id,
            300
        );
        let key = ("l".to_string(), "c".to_string());
        lake.save_cache_to_dir(&key, &dir).unwrap();
        let warmed = RuLake::new(4, 7);
        warmed.register_backend(Arc::new(b)).unwrap();
        warmed.warm_from_dir(&key, &dir).unwrap();
        assert_eq!(
            warmed.search_one("l", "c", &[2.0, 2.0], 1).unwrap()[0].id,
            2
        );
    }

    #[test]
    fn crate_pairs_an_old_index_with_a_new_bundle() {
        let dir = tmpdir("stale");
        let b = local(vec![1], vec![vec![0.0, 0.0]]);
        let lake =
            RuLake::new(4, 7).with_consistency(CrateConsistency::Eventual { ttl_ms: 3_600_000 });
        lake.register_backend(Arc::new(b.clone())).unwrap();
        lake.search_one("l", "c", &[5.0, 5.0], 1).unwrap();
        b.append("c", 777, vec![5.0, 5.0]).unwrap();
        let key = ("l".to_string(), "c".to_string());
        lake.save_cache_to_dir(&key, &dir).unwrap();
        let fresh = RuLake::new(4, 7);
        fresh.register_backend(Arc::new(b)).unwrap();
        fresh.warm_from_dir(&key, &dir).unwrap();
        // The backend's truth is 777; the crate serves the stale row as fresh.
        assert_eq!(fresh.search_one("l", "c", &[5.0, 5.0], 1).unwrap()[0].id, 0);
        assert_eq!(fresh.cache_stats().primes, 0);
    }

    struct Counting {
        pulls: AtomicUsize,
    }

    impl BackendAdapter for Counting {
        fn id(&self) -> &str {
            "counting"
        }
        fn list_collections(&self) -> CrateResult<Vec<String>> {
            Ok(vec!["c".into()])
        }
        fn pull_vectors(&self, collection: &str) -> CrateResult<PulledBatch> {
            self.pulls.fetch_add(1, Ordering::SeqCst);
            Ok(PulledBatch {
                collection: collection.into(),
                ids: vec![1, 2],
                vectors: vec![vec![0.0, 1.0], vec![1.0, 0.0]],
                dim: 2,
                generation: 1,
            })
        }
        fn generation(&self, _: &str) -> CrateResult<u64> {
            Ok(1)
        }
    }

    #[test]
    fn crate_pulls_an_adapter_on_every_search() {
        let a = Arc::new(Counting {
            pulls: AtomicUsize::new(0),
        });
        let lake = RuLake::new(4, 7);
        lake.register_backend(a.clone()).unwrap();
        for _ in 0..10 {
            lake.search_one("counting", "c", &[0.0, 1.0], 1).unwrap();
        }
        assert_eq!(a.pulls.load(Ordering::SeqCst), 11);
    }

    #[test]
    fn crate_fs_backend_misses_a_rewrite_within_the_same_second() {
        for attempt in 0..20 {
            let dir = tmpdir(&format!("fs{attempt}"));
            let fs = Arc::new(FsBackend::new("fs", &dir).unwrap());
            let lake = RuLake::new(4, 7);
            lake.register_backend(fs.clone()).unwrap();
            let secs = || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs()
            };
            let start = secs();
            fs.write("c", "c.ruvec", 2, &[1], &[vec![0.0, 0.0]])
                .unwrap();
            lake.search_one("fs", "c", &[0.0, 0.0], 1).unwrap();
            fs.write("c", "c.ruvec", 2, &[2], &[vec![0.0, 0.0]])
                .unwrap();
            let id = lake.search_one("fs", "c", &[0.0, 0.0], 1).unwrap()[0].id;
            if secs() == start {
                assert_eq!(id, 1, "the crate served the stale file");
                return;
            }
        }
        panic!("could not do two writes within one second");
    }
}
