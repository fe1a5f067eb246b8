//! Every Python object this wheel's Rust code looks up.

use ruvector_py_core::py_modules::LazyPyImport;

/// `SearchHit(id, score)`, the result of `search`.
pub static SEARCH_HIT: LazyPyImport = LazyPyImport::new("ruvector_rabitq._types", "SearchHit");
