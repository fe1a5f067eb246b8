//! Every Python object this wheel's Rust code looks up.

use ruvector_py_core::py_modules::LazyPyImport;

/// `LakeHit(collection, id, score)`, the result of a lake search.
pub static LAKE_HIT: LazyPyImport = LazyPyImport::new("ruvector_lake._types", "LakeHit");
/// `BackendAdapter`, the base class of backends written in Python.
pub static BACKEND_ADAPTER: LazyPyImport =
    LazyPyImport::new("ruvector_lake._adapter", "BackendAdapter");
/// `BackendStats`, per-backend counters.
pub static BACKEND_STATS: LazyPyImport = LazyPyImport::new("ruvector_lake._types", "BackendStats");
/// `Consistency`, the coherence modes.
pub static CONSISTENCY: LazyPyImport = LazyPyImport::new("ruvector_lake._types", "Consistency");
/// `RefreshResult`, what a refresh did.
pub static REFRESH_RESULT: LazyPyImport =
    LazyPyImport::new("ruvector_lake._types", "RefreshResult");
/// `CacheStats`, the cache counters.
pub static CACHE_STATS: LazyPyImport = LazyPyImport::new("ruvector_lake._types", "CacheStats");
