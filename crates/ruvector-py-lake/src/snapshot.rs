//! Bundles and cache snapshots on disk.
//!
//! * Bundle sidecars (`table.rulake.json`) use the crate's own JSON and
//!   witness code (`RuLakeBundle`), so files move both ways between Python
//!   and the Rust crate. The SDK reads at most 64 KiB (checked before the
//!   read) and writes through a unique temporary name (the crate's name was
//!   the process id only, so two threads saving into one directory raced).
//! * Cache snapshots (`save_cache_to_dir` / `warm_from_dir`) use the SDK's
//!   own file, `lake.cache`, next to the sidecar, because the crate's pair
//!   (`index.rbpx` + sidecar) lost the real ids (a warmed cache answered
//!   with row positions), paired the index with the backend's *newer*
//!   bundle (stale data served as fresh), and reserved memory from header
//!   claims before checking the file. `lake.cache` stores full u64 ids, the
//!   witness of the data it holds (checked against the sidecar: a stale
//!   pairing is refused), and a CRC-32; its size is checked against the
//!   header before anything is allocated.
//!
//! Layout of `lake.cache` (little-endian):
//! `b"rvlake01"`, version u32 = 2, dim u32, rotation_seed u64,
//! rerank_factor u32, reserved u32 = 0, n u64, witness [u8; 64] (hex),
//! ids n × u64, vectors n × dim × f32, then (version 2) the index's 1-bit
//! codes — n × ⌈dim/64⌉ × u64 sign words and n × f32 norms — and a CRC-32
//! of everything before it (u32). Version 1 files (no codes) still load.
//!
//! What a cache file is trusted for: the ids and vectors it holds, as the
//! data of the bundle witness it names (the same trust as the backend's own
//! files, which carry no signature either). Everything derived from them is
//! verified, not trusted: the CRC and every size are checked, the witness
//! must match the sidecar's, every vector is validated as a pull would be,
//! and the saved 1-bit codes and norms are compared with a fresh encoding
//! of *every* row. A file edited with its CRC recomputed therefore either
//! fails to load or serves exactly the index a cold prime over its vectors
//! would build. (A hash of the content checked against the sidecar's
//! witness would not help: the witness is an unkeyed hash of the bundle's
//! fields, which whoever rewrites the files can recompute too.)

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, FromBase};
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::io::{write_le, CrcWriter};
use ruvector_rulake::RuLakeBundle;

use crate::cache::{build_index, index_params, Engine, EntryData, Key, Snapshot};
use crate::source::{write_atomic, Failure, LResult, Pulled, MAX_COLLECTION_VECTORS, MAX_LAKE_DIM};

pub const SIDECAR: &str = RuLakeBundle::SIDECAR_FILENAME;
pub const CACHE_FILE: &str = "lake.cache";
const MAGIC: [u8; 8] = *b"rvlake01";
const VERSION: u32 = 2;
/// Files without the codes section.
const VERSION_NO_CODES: u32 = 1;
const HEADER: usize = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 64;
const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

/// Saves are serialized process-wide, so a sidecar and its cache file are
/// always written by the same save.
static SAVE_LOCK: Mutex<()> = Mutex::new(());

fn lake_io(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Lake(format!("{what} {}: {e}", path.display()))
}

/// Reads and witness-checks `dir/table.rulake.json`; `None` if absent.
pub fn read_bundle(dir: &Path) -> LResult<Option<RuLakeBundle>> {
    let path = dir.join(SIDECAR);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(lake_io(&path, "cannot read", e).into()),
    };
    if meta.len() > MAX_SIDECAR_BYTES {
        return Err(Error::Lake(format!(
            "{} is {} bytes, above the {MAX_SIDECAR_BYTES}-byte limit of a bundle sidecar",
            path.display(),
            meta.len()
        ))
        .into());
    }
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_SIDECAR_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| lake_io(&path, "cannot read", e))?;
    let bundle = parse_bundle(&text).map_err(|e| match e.into_err() {
        Error::Lake(m) => Failure::from(Error::Lake(format!("{}: {m}", path.display()))),
        other => Failure::from(other),
    })?;
    if !bundle.verify_witness() {
        return Err(Error::WitnessMismatch(format!(
            "{}: the bundle's witness {} does not match its fields (the file was altered)",
            path.display(),
            bundle.rvf_witness
        ))
        .into());
    }
    Ok(Some(bundle))
}

/// Parses a bundle's JSON without verifying its witness.
pub fn parse_bundle(text: &str) -> LResult<RuLakeBundle> {
    RuLakeBundle::from_json(text)
        .map_err(|e| Error::Lake(format!("not a valid ruLake bundle: {e}")).into())
}

/// Writes `bundle` to `dir/table.rulake.json` atomically.
pub fn write_bundle(bundle: &RuLakeBundle, dir: &Path) -> LResult<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| lake_io(dir, "cannot create", e))?;
    let body = bundle
        .to_json()
        .map_err(|e| Error::Lake(format!("cannot serialize the bundle: {e}")))?;
    let path = dir.join(SIDECAR);
    write_atomic(&path, |w| w.write_all(body.as_bytes()), |_| Ok(()))
        .map_err(|e| lake_io(&path, "cannot write", e))?;
    Ok(path)
}

/// Writes the snapshot's vectors, ids and witness to `dir/lake.cache`, then
/// its own bundle (not the backend's current one) to the sidecar.
pub fn save_snapshot(snap: &Snapshot, dir: &Path) -> LResult<PathBuf> {
    let _guard = SAVE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    std::fs::create_dir_all(dir).map_err(|e| lake_io(dir, "cannot create", e))?;
    let d = &snap.data;
    let b = &d.bundle;
    let witness = b.rvf_witness.as_bytes();
    if witness.len() != 64 {
        return Err(Error::Lake(format!("unexpected witness length {}", witness.len())).into());
    }
    let vectors = d.index.store().vectors();
    let (packed, norms) = d
        .index
        .symmetric_codes()
        .ok_or_else(|| Error::Lake("a cache entry without 1-bit codes".into()))?;
    let path = dir.join(CACHE_FILE);
    write_atomic(
        &path,
        |w| {
            let mut w = CrcWriter::new(w);
            w.write_all(&MAGIC)?;
            w.write_all(&VERSION.to_le_bytes())?;
            w.write_all(&(d.dim as u32).to_le_bytes())?;
            w.write_all(&b.rotation_seed.to_le_bytes())?;
            w.write_all(&(b.rerank_factor as u32).to_le_bytes())?;
            w.write_all(&0u32.to_le_bytes())?;
            w.write_all(&(d.ids.len() as u64).to_le_bytes())?;
            w.write_all(witness)?;
            write_le(&mut w, &d.ids, u64::to_le_bytes)?;
            write_le(&mut w, vectors, f32::to_le_bytes)?;
            write_le(&mut w, packed, u64::to_le_bytes)?;
            write_le(&mut w, norms, f32::to_le_bytes)?;
            let sum = w.crc.finalize();
            w.inner.write_all(&sum.to_le_bytes())
        },
        |_| Ok(()),
    )
    .map_err(|e| lake_io(&path, "cannot write", e))?;
    write_bundle(b, dir)?;
    Ok(path)
}

/// Reads a snapshot written by [`save_snapshot`], checks it completely and
/// builds its entry. `seed`/`rf` are the lake's: a snapshot built with other
/// settings is refused. `cancel` is checked while the rows are encoded.
pub fn load_snapshot(
    dir: &Path,
    seed: u64,
    rf: usize,
    cancel: &Cancel,
) -> LResult<(String, EntryData)> {
    let bundle = read_bundle(dir)?.ok_or_else(|| {
        Error::Lake(format!(
            "{} has no {SIDECAR}: not a saved ruLake cache",
            dir.display()
        ))
    })?;
    if bundle.rotation_seed != seed || bundle.rerank_factor != rf {
        return Err(Error::invalid(format!(
            "the snapshot in {} was built with rotation_seed {} and rerank_factor {}, but this \
             lake uses rotation_seed {seed} and rerank_factor {rf}",
            dir.display(),
            bundle.rotation_seed,
            bundle.rerank_factor
        ))
        .into());
    }
    let path = dir.join(CACHE_FILE);
    let mut f = std::fs::File::open(&path).map_err(|e| lake_io(&path, "cannot open", e))?;
    let len = f
        .metadata()
        .map_err(|e| lake_io(&path, "cannot stat", e))?
        .len();
    let corrupt = |m: String| -> Failure {
        Error::Lake(format!(
            "{} is not a valid ruLake cache file: {m}",
            path.display()
        ))
        .into()
    };
    if len < (HEADER + 4) as u64 {
        return Err(corrupt(format!("{len} bytes is shorter than its header")));
    }
    let mut h = [0u8; HEADER];
    f.read_exact(&mut h)
        .map_err(|e| lake_io(&path, "cannot read", e))?;
    if h[..8] != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let (version, dim, fseed, frf, reserved, n) = (
        u32_at(8),
        u32_at(12) as usize,
        u64_at(16),
        u32_at(24) as usize,
        u32_at(28),
        u64_at(32),
    );
    if version != VERSION && version != VERSION_NO_CODES {
        return Err(corrupt(format!(
            "version {version}, expected {VERSION} (or {VERSION_NO_CODES})"
        )));
    }
    if reserved != 0 || dim == 0 || dim > MAX_LAKE_DIM || n > MAX_COLLECTION_VECTORS as u64 {
        return Err(corrupt(format!(
            "header fields out of range (dim {dim}, n {n}, reserved {reserved})"
        )));
    }
    let n_words = dim.div_ceil(64);
    let codes_per_row = if version == VERSION {
        8 * n_words as u128 + 4
    } else {
        0
    };
    let expected = HEADER as u128 + n as u128 * (8 + 4 * dim as u128 + codes_per_row) + 4;
    if expected != len as u128 {
        return Err(corrupt(format!(
            "the header claims {n} vectors of dimension {dim} ({expected} bytes) but the file \
             has {len} bytes"
        )));
    }
    // The size matches the header: this allocation is backed by the file.
    let mut body = Vec::with_capacity(len as usize - HEADER);
    f.read_to_end(&mut body)
        .map_err(|e| lake_io(&path, "cannot read", e))?;
    if body.len() as u64 != len - HEADER as u64 {
        return Err(corrupt("the file changed size while being read".into()));
    }
    let (payload, trailer) = body.split_at(body.len() - 4);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h);
    crc.update(payload);
    if crc.finalize() != u32::from_le_bytes(trailer.try_into().expect("4 bytes")) {
        return Err(Error::WitnessMismatch(format!(
            "{}: checksum mismatch (the file is corrupted)",
            path.display()
        ))
        .into());
    }
    let file_witness = String::from_utf8_lossy(&h[40..104]).into_owned();
    if file_witness != bundle.rvf_witness {
        return Err(Error::WitnessMismatch(format!(
            "{} holds data of witness {file_witness} but its sidecar names witness {}: the two \
             files come from different saves",
            path.display(),
            bundle.rvf_witness
        ))
        .into());
    }
    if fseed != bundle.rotation_seed || frf != bundle.rerank_factor || dim != bundle.dim {
        return Err(Error::WitnessMismatch(format!(
            "{}: dim/seed/rerank_factor ({dim}, {fseed}, {frf}) differ from the sidecar's \
             ({}, {}, {})",
            path.display(),
            bundle.dim,
            bundle.rotation_seed,
            bundle.rerank_factor
        ))
        .into());
    }
    let n = n as usize;
    let (id_bytes, rest) = payload.split_at(n * 8);
    let (vec_bytes, code_bytes) = rest.split_at(n * dim * 4);
    let ids: Vec<u64> = id_bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let data: Vec<f32> = vec_bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
        .collect();
    let pulled = Pulled { ids, data, dim };
    crate::source::check_pulled("(snapshot)", "(snapshot)", &pulled, dim)
        .map_err(|e| corrupt(e.err().to_string()))?;
    let index = if version == VERSION {
        let (word_bytes, norm_bytes) = code_bytes.split_at(n * n_words * 8);
        let packed: Vec<u64> = word_bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        let norms: Vec<f32> = norm_bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect();
        let mut index = Engine::new(index_params(dim, seed, rf))?;
        let rows: Vec<u64> = (0..n as u64).collect();
        index
            .restore_symmetric(&rows, &pulled.data, packed, norms, cancel)
            .map_err(|e| match e {
                ruvector_py_core::Error::Interrupted => e.into(),
                e => corrupt(e.to_string()),
            })?;
        index
    } else {
        build_index(&pulled, seed, rf, cancel)?
    };
    let witness = bundle.rvf_witness.clone();
    Ok((witness, EntryData::new(index, pulled.ids, dim, bundle)))
}

/// Saves `key`'s cached entry; `CacheMiss` if nothing is cached.
pub fn save(engine: &crate::cache::Cache, key: &Key, dir: &Path) -> LResult<PathBuf> {
    let snap = engine.cached(key).ok_or_else(|| {
        Error::CacheMiss(format!(
            "nothing is cached for ({:?}, {:?}); search it (or warm it) before saving",
            key.0, key.1
        ))
    })?;
    save_snapshot(&snap, dir)
}

/// Loads a snapshot into `engine` under `key`; returns the vector count and
/// a probe query (a midpoint of two stored rows; empty for < 2 rows) for the
/// caller's own warm-up search. Cancellable until the entry is installed
/// (`cancel.commit()` just before): a cancelled warm changes nothing.
pub fn warm(
    engine: &crate::cache::Cache,
    key: &Key,
    dir: &Path,
    cancel: &Cancel,
) -> LResult<(usize, Vec<f32>)> {
    let cfg = engine.config();
    let (witness, data) = load_snapshot(dir, cfg.rotation_seed, cfg.rerank_factor, cancel)?;
    let n = data.ids.len();
    // Warm-up searches page in the rotation, codes and lookup tables and
    // warm the CPU on the scan (~4 ms at 100k rows), so the first real query
    // runs close to steady-state speed. The queries are midpoints of two
    // stored rows: a stored row itself would find its own code at once and
    // prune the scan harder than a real query does, leaving its path cold.
    let midpoint = |r: usize| -> Vec<f32> {
        let (a, b) = (
            data.index.store().vector(r),
            data.index.store().vector((r + n / 2) % n),
        );
        a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)).collect()
    };
    let queries: Vec<Vec<f32>> = (0..16)
        .filter(|_| n > 1)
        .map(|i| midpoint(i * n / 16))
        .collect();
    for q in &queries {
        let _ = data.index.search(q, n.min(10), Default::default());
    }
    cancel.commit()?;
    engine.install(key, witness, data, crate::cache::Fill::Warm);
    Ok((n, queries.into_iter().next().unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{Cache, Config, Consistency};
    use crate::source::LocalSource;
    use std::sync::Arc;

    fn tmpdir(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "rvlake-persist-{tag}-{}-{:?}",
            std::process::id(),
            std::time::Instant::now()
        ));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn no() -> Cancel {
        Cancel::new()
    }

    fn engine(c: Consistency) -> (Cache, Arc<LocalSource>) {
        let e = Cache::new(Config {
            rerank_factor: 4,
            rotation_seed: 7,
            max_entries: None,
            consistency: c,
        });
        let s = Arc::new(LocalSource::new("l").unwrap());
        e.register(s.clone()).unwrap();
        (e, s)
    }

    #[test]
    fn warm_restart_keeps_ids_and_refuses_stale_pairs() {
        let dir = tmpdir("warm");
        let (e, s) = engine(Consistency::Fresh);
        let ids = [crate::source::MAX_LAKE_ID, 1 << 40, 17];
        s.upsert("c", &ids, &[0.0, 0.0, 1.0, 1.0, 2.0, 2.0], 2)
            .unwrap();
        let k = ("l".to_string(), "c".to_string());
        let before = e
            .search_one(&k, &[2.0, 2.0], 3, &crate::cache::Ask::default(), &no())
            .unwrap();
        save(&e, &k, &dir).unwrap();
        let (e2, _) = engine(Consistency::Frozen);
        assert_eq!(warm(&e2, &k, &dir, &no()).unwrap().0, 3);
        assert_eq!(
            e2.search_one(&k, &[2.0, 2.0], 3, &crate::cache::Ask::default(), &no())
                .unwrap(),
            before
        );
        assert_eq!(before[0].0, 17);
        // A sidecar from another save: refused.
        let other = RuLakeBundle::new("x", 2, 7, 4, ruvector_rulake::Generation::Num(1));
        write_bundle(&other, &dir).unwrap();
        let err = warm(&e2, &k, &dir, &no()).unwrap_err().into_err();
        assert!(matches!(err, Error::WitnessMismatch(_)), "{err:?}");
    }

    /// The bytes of `dir/lake.cache` with a fresh CRC after `edit`.
    fn rewrite_cache(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
        let path = dir.join(CACHE_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 4);
        edit(&mut bytes);
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
    }

    #[test]
    fn version_1_files_load_and_foreign_codes_are_refused() {
        let dir = tmpdir("v1");
        let (e, s) = engine(Consistency::Fresh);
        let n = 200usize;
        let data: Vec<f32> = (0..n * 8).map(|i| (i as f32 * 0.37).sin()).collect();
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 5 + 1).collect();
        s.upsert("c", &ids, &data, 8).unwrap();
        let k = ("l".to_string(), "c".to_string());
        let q = [0.3f32, -0.2, 0.1, 0.9, 0.0, 0.4, -0.5, 0.2];
        let before = e
            .search_one(&k, &q, 5, &crate::cache::Ask::default(), &no())
            .unwrap();
        save(&e, &k, &dir).unwrap();
        // Codes that belong to other vectors (flip every sign of row 0's
        // words) with a valid CRC: the sampled re-encode refuses them.
        let codes_at = HEADER + n * (8 + 8 * 4);
        let saved = std::fs::read(dir.join(CACHE_FILE)).unwrap();
        rewrite_cache(&dir, |b| {
            b[codes_at..codes_at + 8].iter_mut().for_each(|x| *x = !*x)
        });
        let (e2, _) = engine(Consistency::Frozen);
        let err = warm(&e2, &k, &dir, &no())
            .unwrap_err()
            .into_err()
            .to_string();
        assert!(
            err.contains("saved codes do not match the vectors"),
            "{err}"
        );
        // Version 1: the same file without the codes section loads by encoding.
        std::fs::write(dir.join(CACHE_FILE), &saved).unwrap();
        rewrite_cache(&dir, |b| {
            b.truncate(codes_at);
            b[8..12].copy_from_slice(&VERSION_NO_CODES.to_le_bytes());
        });
        assert_eq!(warm(&e2, &k, &dir, &no()).unwrap().0, n);
        assert_eq!(
            e2.search_one(&k, &q, 5, &crate::cache::Ask::default(), &no())
                .unwrap(),
            before
        );
    }
}
