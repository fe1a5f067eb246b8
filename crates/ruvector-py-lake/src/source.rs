//! Backends as the SDK's engine sees them: a [`Source`] answers "what is
//! the current bundle of this collection" and "give me its vectors".
//!
//! * [`LocalSource`] wraps the crate's in-memory `LocalBackend` (same
//!   `local://{id}/{collection}` data refs and numeric generations, so its
//!   witnesses equal the crate's), adding an all-or-nothing `upsert`.
//! * [`FsSource`] reads and writes the crate's `ruvec1` files. It fixes two
//!   crate defects: the generation is no longer the file's mtime in whole
//!   seconds (a rewrite within the same second was served stale), and a
//!   file's size is checked against its header before anything is
//!   allocated. Writes are buffered, fsynced and renamed from a unique
//!   temporary name.
//! * Python adapters live in `adapter.rs`.
//!
//! Errors carry an optional Python exception (see [`Failure`]) so that an
//! exception raised inside a user's adapter reaches the caller chained as
//! `__cause__`.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use pyo3::prelude::*;
use ruvector_py_core::validate;

use crate::error::{Error, FromBase};
use ruvector_rulake::{
    BackendAdapter, Generation, LocalBackend as CrateLocalBackend, RuLakeBundle, RuLakeError,
};

/// Largest dimension a lake collection may have. ruLake always uses the
/// dense Haar rotation, whose construction costs O(dim³) time per prime.
pub const MAX_LAKE_DIM: usize = 2048;
/// Largest number of vectors in one collection (the crate's cap).
pub const MAX_COLLECTION_VECTORS: usize = 100_000_000;
/// Largest id of a lake vector: `2**64 - 2`. `2**64 - 1` pads batch rows
/// shorter than `k` ([`crate::cache::PAD_ID`]), so upserts, file writes and
/// pulled data refuse it and a padded slot can never be read as a hit.
pub const MAX_LAKE_ID: u64 = u64::MAX - 1;

/// An error on its way to Python, with the Python exception that caused it
/// (raised in a user's adapter), if any.
#[derive(Debug)]
pub struct Failure(Box<Inner>);

#[derive(Debug)]
struct Inner {
    err: Error,
    cause: Option<PyErr>,
    /// The cause is raised itself, unchanged: a `BaseException` that is not
    /// an `Exception` (`KeyboardInterrupt`, `SystemExit`, `GeneratorExit`)
    /// from a callback must not become an ordinary error.
    raise_cause: bool,
}

pub type LResult<T> = std::result::Result<T, Failure>;

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::new(err, None)
    }
}

impl From<ruvector_py_core::Error> for Failure {
    fn from(err: ruvector_py_core::Error) -> Self {
        Error::from(err).into()
    }
}

impl Failure {
    /// `err`, chained to `cause`; or `cause` itself when it is not an
    /// `Exception` (see [`Failure::passes_through`]).
    pub fn new(err: Error, cause: Option<PyErr>) -> Self {
        let raise_cause = cause.as_ref().is_some_and(Self::passes_through);
        Failure(Box::new(Inner {
            err,
            cause,
            raise_cause,
        }))
    }

    /// Whether `e` must reach the caller unchanged: any `BaseException` that
    /// is not an `Exception`.
    pub fn passes_through(e: &PyErr) -> bool {
        Python::attach(|py| !e.is_instance_of::<pyo3::exceptions::PyException>(py))
    }

    /// The error (without its Python cause).
    pub fn err(&self) -> &Error {
        &self.0.err
    }

    pub fn into_err(self) -> Error {
        self.0.err
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        let Inner {
            err,
            cause,
            raise_cause,
        } = *f.0;
        match cause {
            Some(cause) if raise_cause => cause,
            cause => {
                let e = PyErr::from(err);
                if let Some(cause) = cause {
                    Python::attach(|py| e.set_cause(py, Some(cause)));
                }
                e
            }
        }
    }
}

/// Maps a crate error raised while serving `backend` onto the SDK's classes.
pub fn crate_err(backend: &str, e: RuLakeError) -> Error {
    match e {
        RuLakeError::UnknownBackend(b) => Error::Lake(format!("unknown backend {b:?}")),
        RuLakeError::UnknownCollection {
            backend,
            collection,
        } => Error::Lake(format!(
            "backend {backend:?} has no collection {collection:?}"
        )),
        RuLakeError::DimensionMismatch { expected, actual } => {
            Error::dimension("vectors", expected, actual)
        }
        RuLakeError::Backend { backend, detail } => Error::Backend {
            message: format!("backend {backend:?} failed: {detail}"),
            backend,
        },
        other => Error::Backend {
            message: format!("backend {backend:?} failed: {other}"),
            backend: backend.to_string(),
        },
    }
}

/// Vectors pulled from a backend: ids and a row-major `(n, dim)` block.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub ids: Vec<u64>,
    pub data: Vec<f32>,
    pub dim: usize,
}

/// What changed in a collection between two generations, as a backend's
/// `changes_since` tells it: the rows upserted (their current vectors) and
/// the ids removed, and the generation the collection has after them.
#[derive(Debug, Clone)]
pub struct Delta {
    pub upserted: Vec<u64>,
    /// Row-major `(upserted.len(), dim)`.
    pub data: Vec<f32>,
    /// Columns of `data` (anything when nothing is upserted).
    pub dim: usize,
    pub removed: Vec<u64>,
    pub generation: Generation,
}

/// Checks a delta against the entry it will be applied to (of dimension
/// `dim`) before anything is built: `BackendError` naming the backend.
pub fn check_delta(backend: &str, collection: &str, d: &Delta, dim: usize) -> LResult<()> {
    let fail = |m: String| -> LResult<()> {
        Err(Error::Backend {
            message: format!("backend {backend:?}, collection {collection:?}: changes_since: {m}"),
            backend: backend.to_string(),
        }
        .into())
    };
    if d.upserted.len() > MAX_COLLECTION_VECTORS || d.removed.len() > MAX_COLLECTION_VECTORS {
        return fail(format!(
            "{} upserted and {} removed ids exceed the limit of {MAX_COLLECTION_VECTORS}",
            d.upserted.len(),
            d.removed.len()
        ));
    }
    if !d.upserted.is_empty() && d.dim != dim {
        return fail(format!(
            "upserted vectors must have the cached dimension {dim}, got {}",
            d.dim
        ));
    }
    if d.data.len() != d.upserted.len() * dim {
        return fail(format!(
            "got {} upserted ids for {} values of dimension {dim}",
            d.upserted.len(),
            d.data.len()
        ));
    }
    if let Err(e) = validate::check_ids(&d.upserted, MAX_LAKE_ID, |_| false) {
        return fail(format!("upserted {e}"));
    }
    if let Err(e) = validate::check_rows(&d.data, dim, "vectors", true) {
        return fail(format!("upserted {e}"));
    }
    let up: std::collections::HashSet<u64> = d.upserted.iter().copied().collect();
    if let Some(id) = d.removed.iter().find(|id| up.contains(id)) {
        return fail(format!("id {id} is both upserted and removed"));
    }
    Ok(())
}

/// What the engine needs from a backend.
pub trait Source: Send + Sync {
    /// The backend's unique name.
    fn name(&self) -> &str;
    /// The current bundle of `collection`, and its vectors if producing the
    /// bundle required pulling them anyway (so they are not pulled twice).
    /// `base_dim`: the dimension of the cached entry a delta would be
    /// applied to, if any; a source that answers deltas may build the
    /// bundle of a new generation from it instead of pulling (the delta,
    /// or the full pull if there is none, is checked against it later).
    fn current(
        &self,
        collection: &str,
        seed: u64,
        rf: usize,
        base_dim: Option<usize>,
    ) -> LResult<(RuLakeBundle, Option<Pulled>)>;
    /// Whether [`Source::changes_since`] may answer (so a refresh asks it
    /// before pulling everything).
    fn has_deltas(&self) -> bool {
        false
    }
    /// What changed in `collection` since generation `since`; `None` when
    /// the source cannot tell (the lake pulls everything then).
    fn changes_since(&self, _collection: &str, _since: &Generation) -> LResult<Option<Delta>> {
        Ok(None)
    }
    /// All vectors of `collection`.
    fn pull(&self, collection: &str) -> LResult<Pulled>;
    /// Collection names, for diagnostics.
    fn collections(&self) -> LResult<Vec<String>>;
}

/// Checks a backend, collection or file name: non-empty, at most 255 bytes,
/// no control characters, no path separators or drive colons, not `.`/`..`.
pub fn check_name(what: &str, name: &str) -> crate::error::Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid(format!(
            "{what} {name:?} is not allowed: {why}"
        )))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 255 {
        return bad("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return bad("it is a reserved path component");
    }
    if name.chars().any(|c| c.is_control()) {
        return bad("it contains a control character");
    }
    if name.contains(['/', '\\', ':']) {
        return bad("it contains '/', '\\' or ':'");
    }
    Ok(())
}

/// Checks pulled vectors against their bundle before anything is built.
pub fn check_pulled(backend: &str, collection: &str, p: &Pulled, bundle_dim: usize) -> LResult<()> {
    let fail = |m: String| -> LResult<()> {
        Err(Error::Backend {
            message: format!("backend {backend:?}, collection {collection:?}: {m}"),
            backend: backend.to_string(),
        }
        .into())
    };
    if p.dim == 0 || p.dim > MAX_LAKE_DIM {
        return fail(format!(
            "dimension must be between 1 and {MAX_LAKE_DIM} (ruLake's dense rotation), got {}",
            p.dim
        ));
    }
    if p.dim != bundle_dim {
        return fail(format!(
            "the pulled vectors have dimension {} but the backend's bundle says {bundle_dim}",
            p.dim
        ));
    }
    if p.ids.len() > MAX_COLLECTION_VECTORS {
        return fail(format!(
            "{} vectors exceed the limit of {MAX_COLLECTION_VECTORS}",
            p.ids.len()
        ));
    }
    if p.data.len() != p.ids.len() * p.dim {
        return fail(format!(
            "got {} ids for {} values of dimension {}",
            p.ids.len(),
            p.data.len(),
            p.dim
        ));
    }
    if let Err(e) = validate::check_ids(&p.ids, MAX_LAKE_ID, |_| false) {
        return fail(e.to_string());
    }
    if let Err(e) = validate::check_rows(&p.data, p.dim, "vectors", true) {
        return fail(e.to_string());
    }
    Ok(())
}

// ───────────────────────────── LocalSource ─────────────────────────────

/// The crate's in-memory backend plus a writer lock, so that upserts (read,
/// merge, replace) never interleave.
pub struct LocalSource {
    name: String,
    inner: CrateLocalBackend,
    write: Mutex<()>,
}

impl LocalSource {
    pub fn new(name: &str) -> crate::error::Result<Self> {
        check_name("backend name", name)?;
        Ok(Self {
            name: name.to_string(),
            inner: CrateLocalBackend::new(name),
            write: Mutex::new(()),
        })
    }

    pub fn backend(&self) -> &CrateLocalBackend {
        &self.inner
    }

    /// Inserts or replaces the rows `ids` of `collection`. Validated first:
    /// on error nothing changes. Creates the collection if needed.
    pub fn upsert(
        &self,
        collection: &str,
        ids: &[u64],
        data: &[f32],
        dim: usize,
    ) -> crate::error::Result<()> {
        check_name("collection name", collection)?;
        if dim == 0 || dim > MAX_LAKE_DIM {
            return Err(Error::invalid(format!(
                "vectors must have between 1 and {MAX_LAKE_DIM} columns (ruLake's dense \
                 rotation), got {dim}"
            )));
        }
        validate::check_ids(ids, MAX_LAKE_ID, |_| false)?;
        validate::check_rows(data, dim, "vectors", true)?;
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let (mut all_ids, mut rows) = match self.inner.pull_vectors(collection) {
            Ok(b) => {
                if b.dim != dim && !b.ids.is_empty() {
                    return Err(Error::dimension(
                        format!("vectors for collection {collection:?}"),
                        b.dim,
                        dim,
                    ));
                }
                (b.ids, b.vectors)
            }
            Err(RuLakeError::UnknownCollection { .. }) => (Vec::new(), Vec::new()),
            Err(e) => return Err(crate_err(&self.name, e)),
        };
        if all_ids.len() + ids.len() > MAX_COLLECTION_VECTORS {
            return Err(Error::invalid(format!(
                "a collection holds at most {MAX_COLLECTION_VECTORS} vectors"
            )));
        }
        let pos: HashMap<u64, usize> = all_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
        for (&id, row) in ids.iter().zip(data.chunks_exact(dim)) {
            match pos.get(&id) {
                Some(&p) => rows[p] = row.to_vec(),
                None => {
                    all_ids.push(id);
                    rows.push(row.to_vec());
                }
            }
        }
        self.inner
            .put_collection(collection, dim, all_ids, rows)
            .map_err(|e| crate_err(&self.name, e))
    }

    /// Removes the rows of `ids` from `collection` and returns how many were
    /// removed (ids not held are ignored, repeats count once). When at least
    /// one row goes, the collection is replaced under the writer lock, which
    /// bumps its generation (so its witness changes and a `Fresh` lake
    /// re-primes on its next search); removing nothing changes nothing.
    /// `NotFound` if there is no such collection.
    pub fn remove(&self, collection: &str, ids: &[u64]) -> crate::error::Result<usize> {
        check_name("collection name", collection)?;
        let _guard = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let b = match self.inner.pull_vectors(collection) {
            Ok(b) => b,
            Err(RuLakeError::UnknownCollection { .. }) => {
                return Err(Error::not_found(
                    format!("backend {:?} has no collection {collection:?}", self.name),
                    None,
                ))
            }
            Err(e) => return Err(crate_err(&self.name, e)),
        };
        let gone: std::collections::HashSet<u64> = ids.iter().copied().collect();
        let before = b.ids.len();
        let (kept_ids, kept_rows): (Vec<u64>, Vec<Vec<f32>>) = b
            .ids
            .into_iter()
            .zip(b.vectors)
            .filter(|(id, _)| !gone.contains(id))
            .unzip();
        let removed = before - kept_ids.len();
        if removed > 0 {
            self.inner
                .put_collection(collection, b.dim, kept_ids, kept_rows)
                .map_err(|e| crate_err(&self.name, e))?;
        }
        Ok(removed)
    }

    /// Number of vectors in `collection`, if it exists.
    pub fn count(&self, collection: &str) -> Option<usize> {
        self.inner
            .pull_vectors(collection)
            .ok()
            .map(|b| b.ids.len())
    }
}

fn flatten(vectors: Vec<Vec<f32>>, dim: usize) -> Vec<f32> {
    let mut data = Vec::with_capacity(vectors.len() * dim);
    for v in vectors {
        data.extend_from_slice(&v);
    }
    data
}

impl Source for LocalSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn current(
        &self,
        collection: &str,
        seed: u64,
        rf: usize,
        _base_dim: Option<usize>,
    ) -> LResult<(RuLakeBundle, Option<Pulled>)> {
        let b = self
            .inner
            .current_bundle(collection, seed, rf)
            .map_err(|e| crate_err(&self.name, e))?;
        Ok((b, None))
    }

    fn pull(&self, collection: &str) -> LResult<Pulled> {
        let b = self
            .inner
            .pull_vectors(collection)
            .map_err(|e| crate_err(&self.name, e))?;
        let dim = b.dim;
        Ok(Pulled {
            ids: b.ids,
            data: flatten(b.vectors, dim),
            dim,
        })
    }

    fn collections(&self) -> LResult<Vec<String>> {
        let mut c = self
            .inner
            .list_collections()
            .map_err(|e| crate_err(&self.name, e))?;
        c.sort();
        Ok(c)
    }
}

// ───────────────────────────── FsSource ─────────────────────────────

const RUVEC_MAGIC: [u8; 8] = *b"ruvec1\0\0";
const RUVEC_HEADER: usize = 24;

pub use ruvector_py_core::io::write_atomic;

/// The crate's file backend format (`ruvec1`), read and written by the SDK.
pub struct FsSource {
    name: String,
    root: PathBuf,
    files: RwLock<HashMap<String, String>>,
    /// Only used to validate file names with the crate's own rules.
    crate_backend: ruvector_rulake::FsBackend,
}

fn io_err(backend: &str, what: String, e: std::io::Error) -> Failure {
    Error::Backend {
        message: format!("backend {backend:?}: {what}: {e}"),
        backend: backend.to_string(),
    }
    .into()
}

impl FsSource {
    pub fn new(name: &str, root: &Path) -> crate::error::Result<Self> {
        check_name("backend name", name)?;
        std::fs::create_dir_all(root).map_err(|e| {
            Error::Lake(format!(
                "FsBackend {name:?}: cannot create {}: {e}",
                root.display()
            ))
        })?;
        let crate_backend =
            ruvector_rulake::FsBackend::new(name, root).map_err(|e| crate_err(name, e))?;
        Ok(Self {
            name: name.to_string(),
            root: root.to_path_buf(),
            files: RwLock::new(HashMap::new()),
            crate_backend,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps `collection` to `filename` (inside the root). The file may not
    /// exist yet.
    pub fn register(&self, collection: &str, filename: &str) -> crate::error::Result<()> {
        check_name("collection name", collection)?;
        check_name("file name", filename)?;
        self.crate_backend
            .register(collection, filename)
            .map_err(|e| Error::invalid(e.to_string()))?;
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(collection.to_string(), filename.to_string());
        Ok(())
    }

    fn path_of(&self, collection: &str) -> LResult<PathBuf> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        let f = files.get(collection).ok_or_else(|| {
            Failure::from(Error::Lake(format!(
                "backend {:?} has no collection {collection:?}",
                self.name
            )))
        })?;
        Ok(self.root.join(f))
    }

    /// Writes a `ruvec1` file atomically and registers it under `collection`.
    pub fn write(
        &self,
        collection: &str,
        filename: &str,
        ids: &[u64],
        data: &[f32],
        dim: usize,
    ) -> LResult<PathBuf> {
        check_name("collection name", collection)?;
        check_name("file name", filename)?;
        if dim == 0 || dim > MAX_LAKE_DIM {
            return Err(Error::invalid(format!(
                "vectors must have between 1 and {MAX_LAKE_DIM} columns (ruLake's dense \
                 rotation), got {dim}"
            ))
            .into());
        }
        validate::check_ids(ids, MAX_LAKE_ID, |_| false)?;
        validate::check_rows(data, dim, "vectors", true)?;
        let path = self.root.join(filename);
        // A rewrite must change the generation even when the clock has not
        // ticked since the previous write (file timestamps are coarse).
        let previous = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let bump = |f: &File| -> std::io::Result<()> {
            if let (Some(prev), Ok(now)) = (previous, f.metadata().and_then(|m| m.modified())) {
                if now <= prev {
                    f.set_modified(prev + std::time::Duration::from_micros(1))?;
                }
            }
            Ok(())
        };
        write_atomic(
            &path,
            |w| {
                w.write_all(&RUVEC_MAGIC)?;
                w.write_all(&(ids.len() as u64).to_le_bytes())?;
                w.write_all(&(dim as u32).to_le_bytes())?;
                w.write_all(&0u32.to_le_bytes())?;
                for (id, row) in ids.iter().zip(data.chunks_exact(dim)) {
                    w.write_all(&id.to_le_bytes())?;
                    for x in row {
                        w.write_all(&x.to_le_bytes())?;
                    }
                }
                Ok(())
            },
            bump,
        )
        .map_err(|e| io_err(&self.name, format!("write {}", path.display()), e))?;
        self.register(collection, filename)?;
        Ok(path)
    }

    /// Reads and checks the header; returns `(count, dim, file length)`.
    fn header(&self, path: &Path, f: &mut File) -> LResult<(usize, usize, u64)> {
        let len = f
            .metadata()
            .map_err(|e| io_err(&self.name, format!("stat {}", path.display()), e))?
            .len();
        let corrupt = |m: String| -> Failure {
            Error::Backend {
                message: format!(
                    "backend {:?}: {} is not a valid ruvec1 file: {m}",
                    self.name,
                    path.display()
                ),
                backend: self.name.clone(),
            }
            .into()
        };
        if len < RUVEC_HEADER as u64 {
            return Err(corrupt(format!(
                "{len} bytes is shorter than the 24-byte header"
            )));
        }
        let mut h = [0u8; RUVEC_HEADER];
        f.read_exact(&mut h)
            .map_err(|e| io_err(&self.name, format!("read {}", path.display()), e))?;
        if h[..8] != RUVEC_MAGIC {
            return Err(corrupt("bad magic".into()));
        }
        let count = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        let dim = u32::from_le_bytes(h[16..20].try_into().expect("4 bytes")) as usize;
        let reserved = u32::from_le_bytes(h[20..24].try_into().expect("4 bytes"));
        if reserved != 0 {
            return Err(corrupt(format!(
                "reserved header field is {reserved}, must be 0"
            )));
        }
        if dim == 0 || dim > MAX_LAKE_DIM {
            return Err(corrupt(format!(
                "dimension {dim} is outside 1..={MAX_LAKE_DIM}"
            )));
        }
        if count > MAX_COLLECTION_VECTORS as u64 {
            return Err(corrupt(format!(
                "count {count} exceeds {MAX_COLLECTION_VECTORS}"
            )));
        }
        let expected = (count as u128) * (8 + 4 * dim as u128) + RUVEC_HEADER as u128;
        if expected != len as u128 {
            return Err(corrupt(format!(
                "the header claims {count} vectors of dimension {dim} ({expected} bytes) but the \
                 file has {len} bytes"
            )));
        }
        Ok((count as usize, dim, len))
    }

    /// A generation that changes whenever the file does: modification time
    /// in nanoseconds, size, inode and change time (the crate used the
    /// modification time in whole seconds only). Writes through `write`
    /// always move the modification time forward. Stable across processes,
    /// so a saved cache matches the file after a restart.
    fn generation(&self, f: &File, path: &Path) -> LResult<Generation> {
        let meta = f
            .metadata()
            .map_err(|e| io_err(&self.name, format!("stat {}", path.display()), e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        #[cfg(unix)]
        let extra = {
            use std::os::unix::fs::MetadataExt;
            format!(
                "ino={};ctime={}.{:09}",
                meta.ino(),
                meta.ctime(),
                meta.ctime_nsec()
            )
        };
        #[cfg(not(unix))]
        let extra = String::new();
        Ok(Generation::Opaque(format!(
            "mtime_ns={mtime};size={};{extra}",
            meta.len()
        )))
    }
}

impl Source for FsSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn current(
        &self,
        collection: &str,
        seed: u64,
        rf: usize,
        _base_dim: Option<usize>,
    ) -> LResult<(RuLakeBundle, Option<Pulled>)> {
        let path = self.path_of(collection)?;
        let mut f = File::open(&path)
            .map_err(|e| io_err(&self.name, format!("open {}", path.display()), e))?;
        let generation = self.generation(&f, &path)?;
        let (_, dim, _) = self.header(&path, &mut f)?;
        let data_ref = format!("file://{}", path.display());
        Ok((RuLakeBundle::new(data_ref, dim, seed, rf, generation), None))
    }

    fn pull(&self, collection: &str) -> LResult<Pulled> {
        let path = self.path_of(collection)?;
        let mut f = File::open(&path)
            .map_err(|e| io_err(&self.name, format!("open {}", path.display()), e))?;
        let (count, dim, len) = self.header(&path, &mut f)?;
        // The size matched the header, so this allocation is backed by data.
        let mut body = Vec::with_capacity(len as usize - RUVEC_HEADER);
        (&mut f)
            .take(len - RUVEC_HEADER as u64)
            .read_to_end(&mut body)
            .map_err(|e| io_err(&self.name, format!("read {}", path.display()), e))?;
        let row = 8 + 4 * dim;
        if body.len() != count * row {
            return Err(Error::Backend {
                message: format!(
                    "backend {:?}: {} changed size while being read",
                    self.name,
                    path.display()
                ),
                backend: self.name.clone(),
            }
            .into());
        }
        let mut ids = Vec::with_capacity(count);
        let mut data = Vec::with_capacity(count * dim);
        for chunk in body.chunks_exact(row) {
            ids.push(u64::from_le_bytes(chunk[..8].try_into().expect("8 bytes")));
            data.extend(
                chunk[8..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
            );
        }
        Ok(Pulled { ids, data, dim })
    }

    fn collections(&self) -> LResult<Vec<String>> {
        let mut c: Vec<String> = self
            .files
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        c.sort();
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn tmpdir(tag: &str) -> PathBuf {
        static DIRS: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "rvlake-src-{tag}-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("x", "docs").is_ok());
        for bad in ["", ".", "..", "a/b", "a\\b", "c:", "a\0b", "\n"] {
            assert!(check_name("x", bad).is_err(), "{bad:?}");
        }
        assert!(check_name("x", &"a".repeat(256)).is_err());
    }

    #[test]
    fn fs_files_interoperate_with_the_crate() {
        let dir = tmpdir("interop");
        let sdk = FsSource::new("fs", &dir).unwrap();
        let ids = [MAX_LAKE_ID, 3, 1 << 40];
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5).collect();
        sdk.write("c", "c.ruvec", &ids, &data, 4).unwrap();
        // The crate reads the SDK's file...
        let theirs = ruvector_rulake::FsBackend::new("fs", &dir).unwrap();
        theirs.register("c", "c.ruvec").unwrap();
        let b = theirs.pull_vectors("c").unwrap();
        assert_eq!(b.ids, ids);
        assert_eq!(flatten(b.vectors, 4), data);
        // ...and the SDK reads the crate's.
        theirs
            .write(
                "d",
                "d.ruvec",
                2,
                &[7, 8],
                &[vec![1.0, 2.0], vec![3.0, 4.0]],
            )
            .unwrap();
        sdk.register("d", "d.ruvec").unwrap();
        let p = sdk.pull("d").unwrap();
        assert_eq!(
            (p.ids, p.data, p.dim),
            (vec![7, 8], vec![1.0, 2.0, 3.0, 4.0], 2)
        );
    }

    #[test]
    fn fs_header_size_is_checked_before_allocating() {
        let dir = tmpdir("hostile");
        let mut bytes = RUVEC_MAGIC.to_vec();
        bytes.extend_from_slice(&100_000_000u64.to_le_bytes());
        bytes.extend_from_slice(&2048u32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        std::fs::write(dir.join("h.ruvec"), &bytes).unwrap();
        let sdk = FsSource::new("fs", &dir).unwrap();
        sdk.register("h", "h.ruvec").unwrap();
        let e = sdk.pull("h").unwrap_err().err().to_string();
        assert!(e.contains("but the file has 24 bytes"), "{e}");
    }

    #[test]
    fn fs_generation_changes_within_the_same_second() {
        let dir = tmpdir("gen");
        let sdk = FsSource::new("fs", &dir).unwrap();
        sdk.write("c", "c.ruvec", &[1], &[1.0, 2.0], 2).unwrap();
        let (a, _) = sdk.current("c", 1, 2, None).unwrap();
        sdk.write("c", "c.ruvec", &[1], &[1.0, 3.0], 2).unwrap();
        let (b, _) = sdk.current("c", 1, 2, None).unwrap();
        assert_ne!(a.rvf_witness, b.rvf_witness);
    }

    #[test]
    fn local_upsert_replaces_and_appends() {
        let s = LocalSource::new("l").unwrap();
        s.upsert("c", &[5, 6], &[1.0, 1.0, 2.0, 2.0], 2).unwrap();
        s.upsert("c", &[6, 7], &[3.0, 3.0, 4.0, 4.0], 2).unwrap();
        let p = s.pull("c").unwrap();
        assert_eq!(p.ids, vec![5, 6, 7]);
        assert_eq!(p.data, vec![1.0, 1.0, 3.0, 3.0, 4.0, 4.0]);
        assert!(s.upsert("c", &[9], &[1.0, 2.0, 3.0], 3).is_err());
        assert!(s.upsert("c", &[9, 9], &[1.0; 4], 2).is_err());
        assert!(s.upsert("c", &[9], &[f32::NAN, 1.0], 2).is_err());
        assert_eq!(s.count("c"), Some(3));
    }
}
