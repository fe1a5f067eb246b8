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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Instant;

use rayon::prelude::*;
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::parallel;

use crate::error::{Error, FromBase};
pub use ruvector_py_index::engine::{Engine, MAX_RERANK_FACTOR};
use ruvector_py_index::engine::{InPlacePlan, Kind, Params, Rotation, SearchOpts};
use ruvector_py_index::filter::{IdSet, RowFilter};
use ruvector_py_index::metric::Metric;
use ruvector_rulake::RuLakeBundle;

use crate::source::{check_delta, check_pulled, Delta, LResult, Pulled, Source};

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
    /// Entries built by applying a backend's delta to the previous entry.
    pub refreshes: u64,
    pub total_refresh_ms: f64,
    pub last_refresh_ms: f64,
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
/// ids by row, and the bundle it was built from; plus what searches build
/// from it on first need (see [`EntryData::engine_for`]).
pub struct EntryData {
    /// The `l2` index, the crate's `RabitqPlusIndex` (results identical to
    /// the crate's; the one `lake.cache` files hold).
    pub index: Engine,
    pub ids: Vec<u64>,
    pub dim: usize,
    pub bundle: RuLakeBundle,
    /// The indexes of the other metrics (`ip`, `cosine`), built from the
    /// `l2` index's kept vectors on first use. Each slot's lock is held
    /// while its index builds, so concurrent first searches build it once;
    /// a cancelled or failed build leaves the slot empty.
    others: [Mutex<Option<Arc<Engine>>>; 2],
    /// Real id → row, built on the first filtered search (see
    /// [`EntryData::rows_of`]).
    by_id: OnceLock<IdTable>,
}

/// Below this many rows an entry's `ip` index is a `FlatF32Index` (exact;
/// building it is a copy, and a scan this short costs less than training
/// lists); from here on it is an `IvfRabitqIndex` (real MIPS over the
/// unnormalised vectors, approximate, trained once).
pub const IP_FLAT_MAX_ROWS: usize = 20_000;

/// An open-addressing map from an entry's ids (unique) to their rows:
/// Fibonacci hashing, linear probing, at most half full.
pub struct IdTable {
    slots: Vec<(u64, u32)>,
    shift: u32,
    len: usize,
}

impl IdTable {
    const EMPTY: u32 = u32::MAX;

    fn new(ids: &[u64]) -> Self {
        let cap = (2 * ids.len()).next_power_of_two().max(2);
        let mut t = Self {
            slots: vec![(0, Self::EMPTY); cap],
            shift: 64 - cap.trailing_zeros(),
            len: 0,
        };
        for (r, &id) in ids.iter().enumerate() {
            t.insert(id, r);
        }
        t
    }

    /// Whether `n` ids keep the table at most half full.
    fn fits(&self, n: usize) -> bool {
        2 * n <= self.slots.len()
    }

    /// Adds `id` (not held) at `row`. The caller keeps the table at most
    /// half full ([`IdTable::fits`]).
    fn insert(&mut self, id: u64, row: usize) {
        debug_assert!(self.get(id).is_none() && self.fits(self.len + 1));
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        while self.slots[i].1 != Self::EMPTY {
            i = (i + 1) & mask;
        }
        self.slots[i] = (id, row as u32);
        self.len += 1;
    }

    fn find(&self, id: u64) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(id);
        loop {
            let (k, r) = self.slots[i];
            if r == Self::EMPTY {
                return None;
            }
            if k == id {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Points the held `id` at `row`.
    fn set(&mut self, id: u64, row: usize) {
        if let Some(i) = self.find(id) {
            self.slots[i].1 = row as u32;
        }
    }

    /// Removes `id` if held (backward-shift deletion: the probe runs of
    /// the ids after it stay unbroken, no tombstones).
    fn remove(&mut self, id: u64) {
        let Some(mut hole) = self.find(id) else {
            return;
        };
        let mask = self.slots.len() - 1;
        let mut j = hole;
        loop {
            j = (j + 1) & mask;
            let (k, r) = self.slots[j];
            if r == Self::EMPTY {
                break;
            }
            // The id at `j` may move back into the hole unless its home
            // lies cyclically in `(hole, j]`.
            let home = self.home(k);
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = (k, r);
                hole = j;
            }
        }
        self.slots[hole] = (0, Self::EMPTY);
        self.len -= 1;
    }

    #[inline]
    fn home(&self, id: u64) -> usize {
        (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    #[inline]
    fn get(&self, id: u64) -> Option<usize> {
        self.find(id).map(|i| self.slots[i].1 as usize)
    }
}

/// The index a search runs on: the entry's `l2` index, or one built for
/// another metric.
pub enum EngineRef<'a> {
    Main(&'a Engine),
    Built(Arc<Engine>),
}

impl std::ops::Deref for EngineRef<'_> {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        match self {
            EngineRef::Main(e) => e,
            EngineRef::Built(e) => e,
        }
    }
}

impl EntryData {
    pub fn new(index: Engine, ids: Vec<u64>, dim: usize, bundle: RuLakeBundle) -> Self {
        Self {
            index,
            ids,
            dim,
            bundle,
            others: Default::default(),
            by_id: OnceLock::new(),
        }
    }

    /// The rows of the backend's ids `allowed` (ids the entry does not
    /// hold are ignored), as the id set the entry's indexes filter by (their
    /// ids are rows): one lookup per allowed id in a hash table built once
    /// per entry, marks in a bitmap of rows, and the rows read back in
    /// order (no sort of `allowed`).
    pub fn rows_of(&self, allowed: &[u64]) -> IdSet {
        let n = self.ids.len();
        let table = self.by_id.get_or_init(|| IdTable::new(&self.ids));
        let mut bits = vec![0u64; n.div_ceil(64)];
        for &id in allowed {
            if let Some(r) = table.get(id) {
                bits[r / 64] |= 1 << (r % 64);
            }
        }
        let mut rows = Vec::new();
        for (w, &word) in bits.iter().enumerate() {
            let mut b = word;
            while b != 0 {
                rows.push((w * 64) as u64 + u64::from(b.trailing_zeros()));
                b &= b - 1;
            }
        }
        IdSet::new(&rows)
    }

    fn slot(&self, metric: Metric) -> Option<&Mutex<Option<Arc<Engine>>>> {
        match metric {
            Metric::L2 => None,
            Metric::Ip => Some(&self.others[0]),
            Metric::Cosine => Some(&self.others[1]),
        }
    }

    /// Whether a search with `metric` can start at once (its index exists).
    pub fn has_engine(&self, metric: Metric) -> bool {
        self.slot(metric)
            .is_none_or(|s| s.lock().unwrap_or_else(|p| p.into_inner()).is_some())
    }

    /// The index that ranks by `metric`: the `l2` index itself, else one
    /// built now (once per entry, checking `cancel` while it encodes or
    /// trains) from the `l2` index's vectors with the lake's seed and rerank
    /// factor: `cosine` a `RabitqPlusIndex` with metric cosine (1-bit scan +
    /// exact rerank like `l2`); `ip` a `FlatF32Index` up to
    /// [`IP_FLAT_MAX_ROWS`] rows, else an `IvfRabitqIndex` (the 1-bit kinds
    /// cannot rank by inner product).
    pub fn engine_for(&self, metric: Metric, cancel: &Cancel) -> LResult<EngineRef<'_>> {
        let Some(slot) = self.slot(metric) else {
            return Ok(EngineRef::Main(&self.index));
        };
        let mut g = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = g.as_ref() {
            return Ok(EngineRef::Built(Arc::clone(e)));
        }
        let main = self.index.params();
        let n = self.index.len();
        let (kind, rotation) = match metric {
            Metric::Ip if n <= IP_FLAT_MAX_ROWS => (Kind::Flat, Rotation::Haar),
            Metric::Ip => (Kind::Ivf, Rotation::Hadamard),
            _ => (Kind::Plus, Rotation::Haar),
        };
        let mut e = Engine::new(Params {
            kind,
            rotation,
            rerank_factor: if kind == Kind::Flat {
                1
            } else {
                main.rerank_factor
            },
            metric,
            // Spilling doubles the lists' codes to visit fewer lists:
            // the cache's inner-product index keeps the lean default.
            spill: false,
            ..*main
        })?;
        let rows: Vec<u64> = (0..n as u64).collect();
        e.add_with(&rows, self.index.store().vectors(), "vectors", true, cancel)
            .map_err(|err| match err {
                ruvector_py_core::Error::Interrupted => err,
                err => ruvector_py_core::Error::invalid(format!(
                    "this collection cannot be searched with metric {:?}: {err}",
                    metric.name()
                )),
            })?;
        let e = Arc::new(e);
        *g = Some(Arc::clone(&e));
        Ok(EngineRef::Built(e))
    }
}

/// An entry taken out of the cache for an in-place refresh (see
/// [`Cache::refresh`]). [`Checkout::finish`] installs it under its new
/// witness; dropped unfinished (an error, a panic) it goes back as it was
/// if it was not touched, and is dropped otherwise (the next search
/// primes). Either way the waiters are woken.
struct Checkout<'a> {
    cache: &'a Cache,
    key: Key,
    data: Option<Arc<EntryData>>,
    /// The witness it had.
    witness: String,
    last_used: u64,
    /// Whether the entry may have changed.
    touched: bool,
}

impl Checkout<'_> {
    fn finish(mut self, fill: Fill) -> Snapshot {
        let data = self.data.take().expect("finished once");
        let cache = self.cache;
        let mut st = cache.lock();
        // The old entry is gone, as when a pointer moves off its last key.
        st.stats.invalidations += 1;
        st.count(&self.key, |s| s.invalidations += 1);
        let witness = data.bundle.rvf_witness.clone();
        let snap = cache.install_locked(&mut st, &self.key, witness, data, fill);
        st.refreshing.remove(&self.key);
        drop(st);
        cache.settled.notify_all();
        snap
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let Some(data) = self.data.take() else {
            return;
        };
        let mut st = self.cache.lock();
        if self.touched {
            if st.pointers.get(&self.key) == Some(&self.witness) {
                st.pointers.remove(&self.key);
                st.last_checked.remove(&self.key);
                st.stats.invalidations += 1;
            }
        } else {
            st.entries.insert(
                self.witness.clone(),
                Slot {
                    data,
                    refcount: 1,
                    last_used: self.last_used,
                },
            );
        }
        st.refreshing.remove(&self.key);
        drop(st);
        self.cache.settled.notify_all();
    }
}

impl EntryData {
    /// Applies an in-place plan to the ids by row (and the id table, if
    /// built), as [`Engine::apply_delta_in_place`] did to the rows: the
    /// ids of `holes` go, `upserted` take their places and the tail.
    fn apply_ids(&mut self, holes: &[usize], upserted: &[u64], plan: &InPlacePlan) {
        let n = self.ids.len();
        let gone: Vec<u64> = holes.iter().map(|&h| self.ids[h]).collect();
        for (&h, &id) in holes.iter().zip(&upserted[..plan.filled]) {
            self.ids[h] = id;
        }
        for &(from, to) in &plan.moves {
            self.ids[to] = self.ids[from];
        }
        self.ids.truncate(plan.len.min(n));
        self.ids.extend_from_slice(&upserted[plan.filled..]);
        let Some(table) = self.by_id.get_mut() else {
            return;
        };
        if !table.fits(plan.len) {
            self.by_id = OnceLock::new();
            return;
        }
        for id in gone {
            table.remove(id);
        }
        for &(_, to) in &plan.moves {
            table.set(self.ids[to], to);
        }
        for (&h, &id) in holes.iter().zip(&upserted[..plan.filled]) {
            table.insert(id, h);
        }
        for (j, &id) in upserted[plan.filled..].iter().enumerate() {
            table.insert(id, n + j);
        }
    }
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
    /// The entry `key` pointed at, when the source may answer a delta from
    /// its generation (then `bundle.dim` was taken from it, unverified).
    base: Option<Arc<EntryData>>,
}

/// How an entry came to be installed (for the statistics).
#[derive(Clone, Copy, Debug)]
pub enum Fill {
    /// Pulled and encoded in full; milliseconds of the build.
    Prime(f64),
    /// A delta applied to the previous entry; milliseconds of the apply.
    Refresh(f64),
    /// Loaded from a saved cache.
    Warm,
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
    /// Keys whose entry is out of `entries` while a delta is applied to it
    /// in place (see [`Cache::refresh`]); waited for by anyone who would
    /// look at it.
    refreshing: HashSet<Key>,
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
        spill: false,
    }
}

/// Builds an entry's index (ids are row positions), with the pool,
/// checking `cancel` between chunks.
/// [`build_index`] taking the pulled rows as the index's buffer (no copy).
pub fn build_index_from(
    data: Vec<f32>,
    dim: usize,
    seed: u64,
    rf: usize,
    cancel: &Cancel,
) -> LResult<Engine> {
    Ok(Engine::from_rows(
        index_params(dim, seed, rf),
        data,
        cancel,
    )?)
}

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
    /// Signalled when an in-place refresh puts its entry back.
    settled: Condvar,
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
            settled: Condvar::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state, once no in-place refresh of `key` is under way (it takes
    /// the time of the change, not of the collection, and nothing it does
    /// waits for anyone).
    fn lock_settled(&self, key: &Key) -> MutexGuard<'_, State> {
        let mut st = self.lock();
        while st.refreshing.contains(key) {
            st = self.settled.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        st
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
            .current(&key.1, self.cfg.rotation_seed, self.cfg.rerank_factor, None)?
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
            let mut st = self.lock_settled(key);
            if self.can_skip(&st, key) {
                if let Some(s) = st.snapshot(key) {
                    st.count_hit(key);
                    return Ok(Lookup::Hit(s));
                }
            }
        }
        let src = self.backend(&key.0)?;
        // The entry a delta would start from: only for sources that answer
        // deltas, and only while it holds the same data ref.
        let base = if src.has_deltas() {
            let st = self.lock_settled(key);
            st.pointers
                .get(key)
                .and_then(|w| st.entries.get(w))
                .map(|slot| Arc::clone(&slot.data))
        } else {
            None
        };
        let (bundle, prepulled) = src.current(
            &key.1,
            self.cfg.rotation_seed,
            self.cfg.rerank_factor,
            base.as_ref().map(|b| b.dim),
        )?;
        let witness = bundle.rvf_witness.clone();
        let mut st = self.lock_settled(key);
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
        let base = base.filter(|b| prepulled.is_none() && b.bundle.data_ref == bundle.data_ref);
        Ok(Lookup::Miss(Miss {
            src,
            bundle,
            prepulled,
            base,
        }))
    }

    /// Builds and installs the entry of a [`Lookup::Miss`]: pulls (unless
    /// the lookup already did), validates, encodes. Checks `cancel` after
    /// the pull and while it builds, and installs nothing once cancelled.
    pub fn prime(&self, key: &Key, miss: Miss, cancel: &Cancel) -> LResult<Snapshot> {
        let Miss {
            src,
            mut bundle,
            prepulled,
            base,
        } = miss;
        cancel.check()?;
        let had_base = base.is_some();
        if let Some(base) = base {
            if let Some(delta) = src.changes_since(&key.1, &base.bundle.generation)? {
                return self.refresh(key, base, &bundle.data_ref, delta, cancel);
            }
        }
        let pulled = match prepulled {
            Some(p) => p,
            None => src.pull(&key.1)?,
        };
        cancel.check()?;
        if had_base && pulled.dim != bundle.dim {
            // The bundle's dimension was the previous entry's, assumed for
            // a delta that did not come: the pulled data says otherwise.
            bundle = RuLakeBundle::new(
                bundle.data_ref.clone(),
                pulled.dim,
                self.cfg.rotation_seed,
                self.cfg.rerank_factor,
                bundle.generation.clone(),
            );
        }
        let witness = bundle.rvf_witness.clone();
        check_pulled(&key.0, &key.1, &pulled, bundle.dim)?;
        let start = Instant::now();
        let Pulled { ids, data, dim } = pulled;
        // The pulled rows become the index's buffer: one copy of the
        // collection in memory, not two.
        let index = build_index_from(
            data,
            dim,
            self.cfg.rotation_seed,
            self.cfg.rerank_factor,
            cancel,
        )?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        cancel.check()?;
        let data = EntryData::new(index, ids, dim, bundle);
        Ok(self.install(key, witness, data, Fill::Prime(ms)))
    }

    /// Applies `delta` (checked first) to `base`, `key`'s previous entry,
    /// and installs the result under the bundle of the delta's generation.
    /// Only upserted rows are encoded. Row order aside (which no result
    /// depends on but exact ties), the entry equals a fresh prime of the
    /// same data: same ids, vectors and codes, and the same bundle and
    /// witness, since those depend only on the data ref, dimension, seed,
    /// rerank factor and generation.
    ///
    /// When nothing but the cache holds `base` (no search, session or
    /// other key has it), the delta is applied to it in place, in time
    /// proportional to the delta (see [`Engine::apply_delta_in_place`]):
    /// the entry leaves the cache while it changes, and anyone looking up
    /// `key` meanwhile waits for it to come back under its new witness, so
    /// no search sees a half-applied entry. Otherwise a new entry is built
    /// from the kept rows (copied), the new ones last, and `base` stays as
    /// its holders saw it. Everything that can fail or be cancelled
    /// (checks, encoding) runs before the entry changes.
    pub fn refresh(
        &self,
        key: &Key,
        base: Arc<EntryData>,
        data_ref: &str,
        delta: Delta,
        cancel: &Cancel,
    ) -> LResult<Snapshot> {
        let start = Instant::now();
        let dim = base.dim;
        check_delta(&key.0, &key.1, &delta, dim)?;
        let n = base.ids.len();
        let table = base.by_id.get_or_init(|| IdTable::new(&base.ids));
        let mut holes: Vec<usize> = delta
            .removed
            .iter()
            .chain(&delta.upserted)
            .filter_map(|&id| table.get(id))
            .collect();
        holes.sort_unstable();
        holes.dedup();
        let total = n - holes.len() + delta.upserted.len();
        if total > crate::source::MAX_COLLECTION_VECTORS {
            return Err(Error::Backend {
                message: format!(
                    "backend {:?}, collection {:?}: changes_since: the collection would hold \
                     {total} vectors, over the limit of {}",
                    key.0,
                    key.1,
                    crate::source::MAX_COLLECTION_VECTORS
                ),
                backend: key.0.clone(),
            }
            .into());
        }
        cancel.check()?;
        let Delta {
            upserted,
            data,
            generation,
            ..
        } = delta;
        let rows = base.index.prepare_delta(data, cancel)?;
        let bundle = RuLakeBundle::new(
            data_ref.to_string(),
            dim,
            self.cfg.rotation_seed,
            self.cfg.rerank_factor,
            generation,
        );
        cancel.check()?;
        let base = match self.checkout(key, base) {
            Ok(mut out) => {
                cancel.commit()?;
                out.touched = true;
                let entry = Arc::get_mut(out.data.as_mut().expect("checked out"))
                    .expect("nothing else holds a checked-out entry");
                let plan = match entry.index.apply_delta_in_place(&holes, rows) {
                    Ok(plan) => plan,
                    Err(e) => {
                        // Refused before anything changed: put it back.
                        out.touched = false;
                        return Err(e.into());
                    }
                };
                entry.apply_ids(&holes, &upserted, &plan);
                entry.others = Default::default();
                entry.bundle = bundle;
                let ms = start.elapsed().as_secs_f64() * 1000.0;
                return Ok(out.finish(Fill::Refresh(ms)));
            }
            Err(base) => base,
        };
        let mut keep = vec![true; n];
        for &h in &holes {
            keep[h] = false;
        }
        let index = base.index.with_prepared_delta(&keep, rows)?;
        let mut ids = Vec::with_capacity(total);
        ids.extend(
            base.ids
                .iter()
                .zip(&keep)
                .filter(|(_, &k)| k)
                .map(|(&id, _)| id),
        );
        ids.extend_from_slice(&upserted);
        let witness = bundle.rvf_witness.clone();
        cancel.check()?;
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let data = EntryData::new(index, ids, dim, bundle);
        Ok(self.install(key, witness, data, Fill::Refresh(ms)))
    }

    /// Takes `key`'s entry `base` out of the cache for an in-place change,
    /// if nothing but the cache (one slot, `key`'s pointer) and `base`
    /// itself holds it; gives `base` back otherwise. While it is out,
    /// lookups of `key` wait (see [`Cache::lock_settled`]).
    fn checkout(&self, key: &Key, base: Arc<EntryData>) -> Result<Checkout<'_>, Arc<EntryData>> {
        let mut st = self.lock();
        let w = base.bundle.rvf_witness.clone();
        // Under the lock no new holder can appear: every other holder got
        // its handle from the slot (under the lock) or from one of these.
        let alone = st.pointers.get(key) == Some(&w)
            && !st.refreshing.contains(key)
            && st
                .entries
                .get(&w)
                .is_some_and(|s| Arc::ptr_eq(&s.data, &base) && s.refcount == 1)
            && Arc::strong_count(&base) == 2
            && Arc::weak_count(&base) == 0;
        if !alone {
            return Err(base);
        }
        let slot = st.entries.remove(&w).expect("checked above");
        st.refreshing.insert(key.clone());
        let last_used = slot.last_used;
        drop(slot);
        Ok(Checkout {
            cache: self,
            key: key.clone(),
            data: Some(base),
            witness: w,
            last_used,
            touched: false,
        })
    }

    /// Installs a built entry (see [`Fill`]) and points `key` at it.
    pub fn install(&self, key: &Key, witness: String, data: EntryData, fill: Fill) -> Snapshot {
        let mut st = self.lock_settled(key);
        self.install_locked(&mut st, key, witness, Arc::new(data), fill)
    }

    fn install_locked(
        &self,
        st: &mut State,
        key: &Key,
        witness: String,
        data: Arc<EntryData>,
        fill: Fill,
    ) -> Snapshot {
        if st.entries.contains_key(&witness) {
            return st.point(key, &witness, !matches!(fill, Fill::Warm));
        }
        st.entries.insert(
            witness.clone(),
            Slot {
                data,
                refcount: 0,
                last_used: 0,
            },
        );
        match fill {
            Fill::Prime(ms) => {
                st.stats.primes += 1;
                st.stats.total_prime_ms += ms;
                st.stats.last_prime_ms = ms;
                st.count(key, |s| s.primes += 1);
            }
            Fill::Refresh(ms) => {
                st.stats.refreshes += 1;
                st.stats.total_refresh_ms += ms;
                st.stats.last_refresh_ms = ms;
            }
            Fill::Warm => st.stats.warm_installs += 1,
        }
        let snap = st.point(key, &witness, false);
        if let Some(cap) = self.cfg.max_entries {
            st.evict(cap, &witness);
        }
        snap
    }

    /// The cached entry of `key`, with no coherence check.
    pub fn cached(&self, key: &Key) -> Option<Snapshot> {
        self.lock_settled(key).snapshot(key)
    }

    pub fn witness_of(&self, key: &Key) -> Option<String> {
        self.lock().pointers.get(key).cloned()
    }

    pub fn invalidate(&self, key: &Key) -> bool {
        let mut st = self.lock_settled(key);
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

    /// Top-`k` `(id, score)` of one query on a snapshot, best first by
    /// `ask.metric`. Builds the metric's index first if needed (see
    /// [`EntryData::engine_for`]; `cancel` is checked while it builds).
    pub fn search_snapshot(
        snap: &Snapshot,
        query: &[f32],
        k: usize,
        ask: &Ask<'_>,
        cancel: &Cancel,
    ) -> LResult<Vec<(u64, f32)>> {
        Plan::new(snap, ask, cancel)?.search(query, k, ask.rf)
    }

    pub fn search_one(
        &self,
        key: &Key,
        query: &[f32],
        k: usize,
        ask: &Ask<'_>,
        cancel: &Cancel,
    ) -> LResult<Vec<(u64, f32)>> {
        let snap = self.ensure(key, cancel)?;
        Self::search_snapshot(&snap, query, k, ask, cancel)
    }

    /// Federated search with the crate's per-shard `k` and rerank rules;
    /// `resolve` gives the snapshot of each target (fresh, or a session's).
    /// Hits merge best first by `ask.metric` (a stable sort: ties keep the
    /// targets' order).
    pub fn federated_with(
        targets: &[Key],
        query: &[f32],
        k: usize,
        ask: &Ask<'_>,
        global_rf: usize,
        resolve: &(dyn Fn(&Key) -> LResult<Snapshot> + Sync),
        cancel: &Cancel,
    ) -> LResult<Vec<(Key, u64, f32)>> {
        let shards = targets.len().max(1);
        let rf = ask
            .rf
            .or_else(|| (shards > 1).then(|| (global_rf / shards).max(MIN_PER_SHARD_RERANK)));
        let kp = over_request_k(k, shards);
        let one = |t: &Key| -> LResult<Vec<(Key, u64, f32)>> {
            let snap = resolve(t)?;
            cancel.check()?;
            Ok(Plan::new(&snap, ask, cancel)?
                .search(query, kp, rf)?
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
        if ask.metric.higher_is_better() {
            merged.sort_by(|a, b| b.2.total_cmp(&a.2));
        } else {
            merged.sort_by(|a, b| a.2.total_cmp(&b.2));
        }
        merged.truncate(k);
        Ok(merged)
    }

    pub fn search_federated(
        &self,
        targets: &[Key],
        query: &[f32],
        k: usize,
        ask: &Ask<'_>,
        cancel: &Cancel,
    ) -> LResult<Vec<(Key, u64, f32)>> {
        Self::federated_with(
            targets,
            query,
            k,
            ask,
            self.cfg.rerank_factor,
            &|t| self.ensure(t, cancel),
            cancel,
        )
    }

    /// Searches every row of `queries` (one coherence check), in parallel,
    /// checking `cancel` before each query. Returns `(ids, scores, k_eff)`,
    /// row-major `(nq, k_eff)`: `k_eff` is `min(k, rows the search may
    /// return)`, and a query that finds fewer (only an approximate filtered
    /// search can) is padded with id `PAD_ID` and `ask.metric.pad_score()`.
    pub fn search_batch_snapshot(
        snap: &Snapshot,
        queries: &[f32],
        cols: usize,
        k: usize,
        ask: &Ask<'_>,
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
        let plan = Plan::new(snap, ask, cancel)?;
        let ke = k.min(plan.searchable());
        let mut ids = vec![PAD_ID; nq * ke];
        let mut scores = vec![ask.metric.pad_score(); nq * ke];
        if ke == 0 {
            return Ok((ids, scores, 0));
        }
        let run = |((i, s), q): ((&mut [u64], &mut [f32]), &[f32])| -> LResult<()> {
            cancel.check()?;
            for (j, (id, sc)) in plan.search(q, ke, ask.rf)?.into_iter().enumerate() {
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
        ask: &Ask<'_>,
        cancel: &Cancel,
    ) -> LResult<(Vec<u64>, Vec<f32>, usize)> {
        let snap = self.ensure(key, cancel)?;
        Self::search_batch_snapshot(&snap, queries, cols, k, ask, cancel)
    }
}

/// The id that pads a batch row shorter than `k`: `-1` read as uint64
/// (`2**64 - 1`). No vector can have it (ids stop at
/// [`crate::source::MAX_LAKE_ID`]), so a padded slot is never mistaken for
/// a hit.
pub const PAD_ID: u64 = crate::source::MAX_LAKE_ID + 1;

/// What a search asks besides its query and `k`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ask<'a> {
    /// Per-call rerank factor (`None`: the lake's).
    pub rf: Option<usize>,
    /// What to rank by (default `l2`).
    pub metric: Metric,
    /// Only these of the backend's ids may be returned (ids the collection
    /// does not hold are ignored).
    pub filter: Option<&'a [u64]>,
}

/// One search call's view of one entry: the index of the call's metric and
/// the call's filter bound to it, prepared once and used for every query of
/// the call (and its shard, in a federated search).
pub struct Plan<'a> {
    snap: &'a Snapshot,
    engine: EngineRef<'a>,
    filter: Option<RowFilter>,
}

impl<'a> Plan<'a> {
    pub fn new(snap: &'a Snapshot, ask: &Ask<'_>, cancel: &Cancel) -> LResult<Self> {
        let engine = snap.data.engine_for(ask.metric, cancel)?;
        let filter = ask
            .filter
            .map(|allowed| engine.row_filter(&snap.data.rows_of(allowed)));
        Ok(Self {
            snap,
            engine,
            filter,
        })
    }

    /// Rows a search may return: the entry's, or those its filter allows.
    pub fn searchable(&self) -> usize {
        self.filter
            .as_ref()
            .map_or(self.engine.len(), RowFilter::count)
    }

    /// Top-`k` `(id, score)` of one query, best first.
    pub fn search(&self, query: &[f32], k: usize, rf: Option<usize>) -> LResult<Vec<(u64, f32)>> {
        let d = &self.snap.data;
        if query.len() != d.dim {
            return Err(Error::dimension(
                format!("query for ({:?}, {:?})", self.snap.key.0, self.snap.key.1),
                d.dim,
                query.len(),
            )
            .into());
        }
        let k = k.min(self.searchable());
        if k == 0 {
            return Ok(Vec::new());
        }
        let opts = SearchOpts {
            rerank_factor: rf,
            nprobe: None,
            filter: self.filter.as_ref(),
        };
        let hits = self.engine.search(query, k, opts)?;
        Ok(hits
            .into_iter()
            .map(|(pos, score)| (d.ids[pos as usize], score))
            .collect())
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
                    ours.search_one(&key("a", "c"), qv, k, &Ask::default(), &no())
                        .unwrap(),
                    want
                );
                let want: Vec<(String, u64, f32)> = theirs
                    .search_federated(&[("a", "c"), ("b", "c")], qv, k)
                    .unwrap()
                    .into_iter()
                    .map(|h| (h.backend, h.id, h.score))
                    .collect();
                let got: Vec<(String, u64, f32)> = ours
                    .search_federated(
                        &[key("a", "c"), key("b", "c")],
                        qv,
                        k,
                        &Ask::default(),
                        &no(),
                    )
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
            .search_batch(&key("b", "c"), &q, d, 5, &Ask::default(), &no())
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
            e.search_one(&key("l", c), &[0.0, 1.0], 1, &Ask::default(), &no())
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
                e.search_one(&k, &[5.0, 5.0], 1, &Ask::default(), &no())
                    .unwrap()[0]
                    .0,
                1
            );
            src.upsert("c", &[2], &[5.0, 5.0], 2).unwrap();
            let top = e
                .search_one(&k, &[5.0, 5.0], 1, &Ask::default(), &no())
                .unwrap()[0]
                .0;
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
        let err = e.search_one(&k, &[0.0, 1.0], 1, &Ask::default(), &cancelled);
        assert!(matches!(
            err.unwrap_err().err(),
            Error::Base(ruvector_py_core::Error::Interrupted)
        ));
        assert_eq!((e.entry_count(), e.stats().primes), (0, 0));
        let err = e.search_batch(&k, &[0.0, 1.0], 2, 1, &Ask::default(), &cancelled);
        assert!(matches!(
            err.unwrap_err().err(),
            Error::Base(ruvector_py_core::Error::Interrupted)
        ));
        assert_eq!(
            e.search_one(&k, &[0.0, 1.0], 1, &Ask::default(), &no())
                .unwrap()[0]
                .0,
            1
        );
        assert_eq!(e.stats().primes, 1);
    }

    /// Exact top-`k` `(id, score)` by inner product or cosine, best first.
    fn exact(ids: &[u64], x: &[f32], d: usize, q: &[f32], k: usize, cos: bool) -> Vec<(u64, f32)> {
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
        let mut all: Vec<(u64, f32)> = ids
            .iter()
            .zip(x.chunks(d))
            .map(|(&id, r)| {
                let ip: f32 = r.iter().zip(q).map(|(a, b)| a * b).sum();
                (id, if cos { ip / (norm(r) * norm(q)) } else { ip })
            })
            .collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1));
        all.truncate(k);
        all
    }

    #[test]
    fn metrics_rank_like_an_exact_scan_and_build_once() {
        let d = 12;
        let e = Cache::new(cfg(Consistency::Fresh, None));
        let src = LocalSource::new("l").unwrap();
        let mut x = data(600, d, 5);
        // Norms spread over [0.5, 3]: inner product and L2 disagree.
        for (i, r) in x.chunks_mut(d).enumerate() {
            let n = r.iter().map(|a| a * a).sum::<f32>().sqrt();
            let want = 0.5 + 2.5 * ((i * 37) % 100) as f32 / 100.0;
            r.iter_mut().for_each(|a| *a *= want / n);
        }
        let ids: Vec<u64> = (0..600).map(|i| 1000 + 3 * i).collect();
        src.upsert("c", &ids, &x, d).unwrap();
        e.register(Arc::new(src)).unwrap();
        let k_ = key("l", "c");
        for (metric, cos) in [(Metric::Ip, false), (Metric::Cosine, true)] {
            // Cosine is a 1-bit scan + rerank: reranking every row (600 =
            // 10 × 60) makes it exact.
            let ask = Ask {
                metric,
                rf: Some(60),
                ..Ask::default()
            };
            for q in data(5, d, 77).chunks(d) {
                let got = e.search_one(&k_, q, 10, &ask, &no()).unwrap();
                let want = exact(&ids, &x, d, q, 10, cos);
                let g: Vec<u64> = got.iter().map(|h| h.0).collect();
                let w: Vec<u64> = want.iter().map(|h| h.0).collect();
                assert_eq!(g, w, "{metric:?}");
                for (a, b) in got.iter().zip(&want) {
                    assert!((a.1 - b.1).abs() < 1e-4 * b.1.abs().max(1.0), "{a:?} {b:?}");
                }
            }
        }
        // Built once per entry, shared by every later search.
        let snap = e.cached(&k_).unwrap();
        let a = snap.data.engine_for(Metric::Cosine, &no()).unwrap();
        let b = snap.data.engine_for(Metric::Cosine, &no()).unwrap();
        assert!(std::ptr::eq(&*a, &*b));
        // A cancelled build leaves nothing behind; a later one succeeds.
        let fresh = EntryData::new(
            build_index(
                &crate::source::Pulled {
                    ids: ids.clone(),
                    data: x.clone(),
                    dim: d,
                },
                42,
                20,
                &no(),
            )
            .unwrap(),
            ids.clone(),
            d,
            snap.data.bundle.clone(),
        );
        let c = Cancel::new();
        c.cancel();
        assert!(fresh.engine_for(Metric::Cosine, &c).is_err());
        assert!(!fresh.has_engine(Metric::Cosine));
        assert!(fresh.engine_for(Metric::Cosine, &no()).is_ok());
        assert!(fresh.has_engine(Metric::Cosine));
    }

    #[test]
    fn federated_merges_similarities_descending() {
        let d = 8;
        let e = Cache::new(cfg(Consistency::Fresh, None));
        for (name, seed) in [("a", 1u64), ("b", 2)] {
            let src = LocalSource::new(name).unwrap();
            let ids: Vec<u64> = (0..200).collect();
            src.upsert("c", &ids, &data(200, d, seed), d).unwrap();
            e.register(Arc::new(src)).unwrap();
        }
        let q = data(1, d, 3);
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let ask = Ask {
                metric,
                ..Ask::default()
            };
            let hits = e
                .search_federated(&[key("a", "c"), key("b", "c")], &q, 15, &ask, &no())
                .unwrap();
            assert_eq!(hits.len(), 15);
            let ok = |w: &[(Key, u64, f32)]| {
                if metric.higher_is_better() {
                    w[0].2 >= w[1].2
                } else {
                    w[0].2 <= w[1].2
                }
            };
            assert!(hits.windows(2).all(ok), "{metric:?}");
            assert!(hits.iter().any(|h| h.0 .0 == "a") && hits.iter().any(|h| h.0 .0 == "b"));
        }
    }

    #[test]
    fn filters_take_real_ids_by_either_path_and_rank_by_the_metric() {
        let d = 8;
        let e = Cache::new(cfg(Consistency::Fresh, None));
        let src = LocalSource::new("l").unwrap();
        let x = data(400, d, 7);
        let ids: Vec<u64> = (0..400).map(|i| (i * 7919) % 100_003 + (1 << 50)).collect();
        src.upsert("c", &ids, &x, d).unwrap();
        e.register(Arc::new(src)).unwrap();
        let k_ = key("l", "c");
        let snap = e.ensure(&k_, &no()).unwrap();
        // Small and large filters; ids the collection does not hold are
        // ignored.
        let small: Vec<u64> = ids.iter().step_by(50).copied().chain([5, 6]).collect();
        assert_eq!(
            snap.data.rows_of(&small).ids(),
            &[0, 50, 100, 150, 200, 250, 300, 350]
        );
        let large: Vec<u64> = ids.iter().step_by(2).copied().chain([5]).collect();
        let rows = snap.data.rows_of(&large);
        assert_eq!(rows.len(), 200);
        assert!(rows.ids().iter().all(|r| r % 2 == 0));
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let ask = Ask {
                metric,
                rf: Some(400),
                filter: Some(&small),
            };
            let q = &x[3 * d..4 * d];
            let hits = e.search_one(&k_, q, 20, &ask, &no()).unwrap();
            assert_eq!(hits.len(), 8, "{metric:?}");
            assert!(hits.iter().all(|h| small.contains(&h.0)));
            let (ids_b, scores_b, ke) = e.search_batch(&k_, q, d, 20, &ask, &no()).unwrap();
            assert_eq!(ke, 8);
            assert_eq!(
                hits,
                ids_b.into_iter().zip(scores_b).collect::<Vec<_>>(),
                "{metric:?}"
            );
        }
    }

    /// A local source that answers deltas handed to it by the test.
    struct Deltas {
        inner: LocalSource,
        next: Mutex<Option<crate::source::Delta>>,
        asked: Mutex<Vec<ruvector_rulake::Generation>>,
    }

    impl Source for Deltas {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn current(
            &self,
            c: &str,
            seed: u64,
            rf: usize,
            base_dim: Option<usize>,
        ) -> LResult<(RuLakeBundle, Option<Pulled>)> {
            self.inner.current(c, seed, rf, base_dim)
        }
        fn pull(&self, c: &str) -> LResult<Pulled> {
            self.inner.pull(c)
        }
        fn collections(&self) -> LResult<Vec<String>> {
            self.inner.collections()
        }
        fn has_deltas(&self) -> bool {
            true
        }
        fn changes_since(
            &self,
            _c: &str,
            since: &ruvector_rulake::Generation,
        ) -> LResult<Option<crate::source::Delta>> {
            self.asked.lock().unwrap().push(since.clone());
            Ok(self.next.lock().unwrap().take())
        }
    }

    #[test]
    fn a_delta_refresh_equals_a_fresh_prime() {
        let d = 8;
        let src = Arc::new(Deltas {
            inner: LocalSource::new("l").unwrap(),
            next: Mutex::new(None),
            asked: Mutex::new(Vec::new()),
        });
        let ids: Vec<u64> = (0..300).map(|i| 10 * i).collect();
        src.inner.upsert("c", &ids, &data(300, d, 3), d).unwrap();
        let e = Cache::new(cfg(Consistency::Fresh, None));
        e.register(src.clone()).unwrap();
        let k_ = key("l", "c");
        e.ensure(&k_, &no()).unwrap();
        let g0 = e.cached(&k_).unwrap().data.bundle.generation.clone();
        // Change the source, and hand the lake the same change as a delta.
        let new_rows = data(3, d, 9);
        src.inner
            .upsert("c", &[10, 20, 7777], &new_rows, d)
            .unwrap();
        src.inner.remove("c", &[30, 40]).unwrap();
        let now = src.current("c", 42, 20, None).unwrap().0;
        *src.next.lock().unwrap() = Some(crate::source::Delta {
            upserted: vec![10, 20, 7777],
            data: new_rows.clone(),
            dim: d,
            removed: vec![30, 40, 999_999],
            generation: now.generation.clone(),
        });
        let q = &new_rows[2 * d..];
        let hits = e.search_one(&k_, q, 10, &Ask::default(), &no()).unwrap();
        assert_eq!(hits[0].0, 7777);
        let s = e.stats();
        assert_eq!((s.primes, s.refreshes, e.entry_count()), (1, 1, 1));
        assert_eq!(*src.asked.lock().unwrap(), vec![g0]);
        let fresh = Cache::new(cfg(Consistency::Fresh, None));
        let plain = LocalSource::new("l").unwrap();
        let p = src.inner.pull("c").unwrap();
        plain.upsert("c", &p.ids, &p.data, d).unwrap();
        fresh.register(Arc::new(plain)).unwrap();
        for q in data(6, d, 11).chunks(d).chain([q]) {
            let mut a = e.search_one(&k_, q, 20, &Ask::default(), &no()).unwrap();
            let mut b = fresh
                .search_one(&k_, q, 20, &Ask::default(), &no())
                .unwrap();
            a.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
            b.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
            assert_eq!(a, b);
        }
        let mut got = e.cached(&k_).unwrap().data.ids.clone();
        let mut want = p.ids.clone();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
        // The witness a prime at this generation gets (the fresh source
        // above has its own generations, so compare with the source's
        // current bundle).
        assert_eq!(e.witness_of(&k_).unwrap(), now.rvf_witness);
        // A bad delta is a BackendError and leaves the entry as it was.
        src.inner.upsert("c", &[1], &new_rows[..d], d).unwrap();
        *src.next.lock().unwrap() = Some(crate::source::Delta {
            upserted: vec![1],
            data: vec![0.0; d + 1],
            dim: d + 1,
            removed: vec![],
            generation: ruvector_rulake::Generation::Num(1),
        });
        let err = e.ensure(&k_, &no()).err().unwrap();
        assert!(matches!(err.err(), Error::Backend { backend, .. } if backend == "l"));
        assert_eq!(e.witness_of(&k_).unwrap(), now.rvf_witness);
    }

    #[test]
    fn the_id_table_follows_inserts_moves_and_removals() {
        // Against a HashMap model, with ids that collide on their home
        // slots (multiples of a power of two) and wrap around the table.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        let ids: Vec<u64> = (0..300).map(|i| i * 1024 + (i % 3)).collect();
        let mut t = IdTable::new(&ids);
        let mut model: HashMap<u64, usize> =
            ids.iter().enumerate().map(|(r, &id)| (id, r)).collect();
        for step in 0..5000 {
            let id = next(400) * 1024 + next(4);
            match next(3) {
                0 if !model.contains_key(&id) && t.fits(model.len() + 1) => {
                    t.insert(id, step);
                    model.insert(id, step);
                }
                1 => {
                    t.remove(id);
                    model.remove(&id);
                }
                _ if model.contains_key(&id) => {
                    t.set(id, step);
                    model.insert(id, step);
                }
                _ => {}
            }
            if step % 97 == 0 {
                for probe in (0..400).flat_map(|i| (0..4).map(move |j| i * 1024 + j)) {
                    assert_eq!(t.get(probe), model.get(&probe).copied(), "{probe}");
                }
                assert_eq!(t.len, model.len());
            }
        }
    }

    #[test]
    fn a_delta_is_applied_in_place_unless_the_entry_is_held() {
        let d = 8;
        let src = Arc::new(Deltas {
            inner: LocalSource::new("l").unwrap(),
            next: Mutex::new(None),
            asked: Mutex::new(Vec::new()),
        });
        let ids: Vec<u64> = (0..500).map(|i| 3 * i + 1).collect();
        src.inner.upsert("c", &ids, &data(500, d, 5), d).unwrap();
        let e = Cache::new(cfg(Consistency::Fresh, None));
        e.register(src.clone()).unwrap();
        let k_ = key("l", "c");
        let q = data(1, d, 8);
        // A filtered search builds the id table, which the refresh keeps.
        let all: Vec<u64> = (0..2000).collect();
        let filtered = Ask {
            filter: Some(&all),
            rf: Some(100),
            ..Ask::default()
        };
        e.search_one(&k_, &q, 5, &filtered, &no()).unwrap();
        let mut version = 0u64;
        let mut change = |src: &Deltas, up: &[u64], gone: &[u64]| {
            version += 1;
            let rows = data(up.len(), d, 100 + version);
            src.inner.upsert("c", up, &rows, d).unwrap();
            src.inner.remove("c", gone).unwrap();
            let now = src.current("c", 42, 20, None).unwrap().0;
            *src.next.lock().unwrap() = Some(crate::source::Delta {
                upserted: up.to_vec(),
                data: rows,
                dim: d,
                removed: gone.to_vec(),
                generation: now.generation.clone(),
            });
            now.rvf_witness
        };
        let same_as_fresh = |e: &Cache| {
            let p = src.inner.pull("c").unwrap();
            let fresh = Cache::new(cfg(Consistency::Fresh, None));
            let plain = LocalSource::new("l").unwrap();
            plain.upsert("c", &p.ids, &p.data, d).unwrap();
            fresh.register(Arc::new(plain)).unwrap();
            let snap = e.cached(&k_).unwrap();
            let mut got = snap.data.ids.clone();
            let mut want = p.ids.clone();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want);
            for (r, &id) in snap.data.ids.iter().enumerate() {
                let at = p.ids.iter().position(|&x| x == id).unwrap();
                assert_eq!(
                    snap.data.index.store().vector(r),
                    &p.data[at * d..(at + 1) * d]
                );
            }
            for q in data(5, d, 11).chunks(d) {
                for ask in [Ask::default(), filtered] {
                    let mut a = e.search_one(&k_, q, 20, &ask, &no()).unwrap();
                    let mut b = fresh.search_one(&k_, q, 20, &ask, &no()).unwrap();
                    a.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
                    b.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.cmp(&y.0)));
                    assert_eq!(a, b);
                }
            }
            Arc::as_ptr(&snap.data)
        };
        // Nothing else holds the entry: changed in place (same allocation),
        // fewer rows, as many, more.
        let before = Arc::as_ptr(&e.cached(&k_).unwrap().data);
        let cases: [(Vec<u64>, Vec<u64>); 3] = [
            (vec![1, 4, 9_000], (0..40).map(|i| 3 * i + 7).collect()),
            (vec![10, 9_001, 9_002], vec![13, 16]),
            ((9_100..9_180).collect(), vec![1_498, 19]),
        ];
        for (up, gone) in cases {
            let w = change(&src, &up, &gone);
            e.ensure(&k_, &no()).unwrap();
            assert_eq!(e.witness_of(&k_).unwrap(), w);
            assert_eq!(same_as_fresh(&e), before);
        }
        let s = e.stats();
        assert_eq!((s.primes, s.refreshes, e.entry_count()), (1, 3, 1));
        assert_eq!(s.invalidations, 3);
        // A held snapshot (a session, a search under way) keeps its entry:
        // the refresh builds a new one and the held one is unchanged.
        let held = e.cached(&k_).unwrap();
        let held_ids = held.data.ids.clone();
        let w = change(&src, &[4, 9_500], &[22]);
        e.ensure(&k_, &no()).unwrap();
        assert_eq!(e.witness_of(&k_).unwrap(), w);
        let after = same_as_fresh(&e);
        assert_ne!(after, Arc::as_ptr(&held.data));
        assert_eq!(held.data.ids, held_ids);
        assert_ne!(held.data.bundle.rvf_witness, w);
        drop(held);
        // A bad delta leaves the entry as it was, in the cache.
        src.inner.upsert("c", &[1], &data(1, d, 3), d).unwrap();
        *src.next.lock().unwrap() = Some(crate::source::Delta {
            upserted: vec![1, 1],
            data: data(2, d, 3),
            dim: d,
            removed: vec![],
            generation: ruvector_rulake::Generation::Num(1),
        });
        assert!(e.ensure(&k_, &no()).is_err());
        assert_eq!(e.witness_of(&k_).unwrap(), w);
        assert_eq!(Arc::as_ptr(&e.cached(&k_).unwrap().data), after);
        // A cancelled refresh too.
        let w2 = change(&src, &[7], &[]);
        let c = Cancel::new();
        c.cancel();
        let Lookup::Miss(miss) = e.lookup(&k_).unwrap() else {
            panic!("the generation moved");
        };
        assert!(e.prime(&k_, miss, &c).is_err());
        assert_eq!(e.witness_of(&k_).unwrap(), w);
        assert_eq!(Arc::as_ptr(&e.cached(&k_).unwrap().data), after);
        e.ensure(&k_, &no()).unwrap();
        assert_eq!(e.witness_of(&k_).unwrap(), w2);
    }

    #[test]
    fn searches_during_in_place_refreshes_see_whole_entries() {
        // Generation g holds ids 0..300 (g even) or 30..300 (g odd), every
        // vector (g, g, g, g): a search at the origin that reranks every
        // row answers distinct ids, all with score 4g², as many as
        // generation g holds, whatever refresh runs meanwhile (odd
        // generations remove rows, so refreshes move rows into holes).
        let d = 4;
        let n = 300usize;
        let src = Arc::new(Deltas {
            inner: LocalSource::new("l").unwrap(),
            next: Mutex::new(None),
            asked: Mutex::new(Vec::new()),
        });
        let ids: Vec<u64> = (0..n as u64).collect();
        src.inner.upsert("c", &ids, &vec![0.0; n * d], d).unwrap();
        let e = Arc::new(Cache::new(cfg(Consistency::Fresh, None)));
        e.register(src.clone()).unwrap();
        let k_ = key("l", "c");
        e.ensure(&k_, &no()).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (e, stop, k_) = (Arc::clone(&e), Arc::clone(&stop), k_.clone());
                std::thread::spawn(move || {
                    let mut seen = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let snap = e.cached(&k_).expect("never missing");
                        let ask = Ask {
                            rf: Some(n),
                            ..Ask::default()
                        };
                        let hits =
                            Cache::search_snapshot(&snap, &[0.0; 4], n, &ask, &no()).unwrap();
                        drop(snap);
                        let g = (hits[0].1 / 4.0).sqrt().round() as u64;
                        assert!(hits.iter().all(|h| h.1 == hits[0].1), "{hits:?}");
                        let mut got: Vec<u64> = hits.iter().map(|h| h.0).collect();
                        got.sort_unstable();
                        let from = if g % 2 == 1 { 30 } else { 0 };
                        assert_eq!(got, (from..n as u64).collect::<Vec<_>>(), "{g}");
                        seen += 1;
                    }
                    seen
                })
            })
            .collect();
        for g in 1..60u64 {
            let from = if g % 2 == 1 { 30 } else { 0 };
            let present: Vec<u64> = (from..n as u64).collect();
            let removed: Vec<u64> = if g % 2 == 1 {
                (0..30).collect()
            } else {
                vec![]
            };
            let rows = vec![g as f32; present.len() * d];
            src.inner.upsert("c", &present, &rows, d).unwrap();
            src.inner.remove("c", &removed).unwrap();
            let now = src.current("c", 42, 20, None).unwrap().0;
            *src.next.lock().unwrap() = Some(crate::source::Delta {
                upserted: present,
                data: rows,
                dim: d,
                removed,
                generation: now.generation.clone(),
            });
            e.ensure(&k_, &no()).unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        assert_eq!(e.stats().refreshes, 59);
    }

    #[test]
    fn empty_collection_gives_no_hits() {
        let e = Cache::new(cfg(Consistency::Fresh, None));
        let src = LocalSource::new("l").unwrap();
        src.upsert("c", &[], &[], 3).unwrap();
        e.register(Arc::new(src)).unwrap();
        assert!(e
            .search_one(&key("l", "c"), &[0.0; 3], 5, &Ask::default(), &no())
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
