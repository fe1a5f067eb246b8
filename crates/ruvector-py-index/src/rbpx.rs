//! Saving and loading indexes in the upstream `.rbpx` layout, made safe.
//!
//! A file is the crate's layout — a 32-byte header (magic, version, dim,
//! seed, rerank factor, n) and n rows of `u32 id, dim × f32` — followed by a
//! 16-byte SDK trailer that the crate ignores:
//!
//! | bytes | field |
//! |---|---|
//! | 8·n (optional) | u64 ids, when an id does not fit the u32 column (`FlatF32Index` only) |
//! | 24 + 4·(nlist·dim + n) (IVF only) | `b"RVIVF001"`, u32 lists, u32 nlist and nprobe settings, u32 0, the centroids (f32), the list of every row (u32) |
//! | 1 | index kind (0 Plus, 1 Flat, 2 Rabitq-never-saved, 3 Asym, 4 Ivf) |
//! | 1 | rotation (0 Haar, 1 Hadamard) |
//! | 1 | flags (bit 0: the u64 id block is present) |
//! | 1 | reserved, 0 |
//! | 4 | CRC-32 of every byte before it |
//! | 8 | `b"RVPYTRL1"` |
//!
//! Only a `RabitqPlusIndex` with the Haar rotation means the same thing to
//! the crate, so only it is written with the crate's magic `rbpx0001` (the
//! crate reads it and returns identical results). Every other kind is
//! written with the magic `rvpx0001`, which the crate refuses instead of
//! loading it as a different index.
//!
//! Every file has exactly one reading, so a damaged file can fail but never
//! load as a different index:
//!
//! * an `rvpx0001` file always ends with the trailer;
//! * an `rbpx0001` file ending with the trailer magic `RVPYTRL1` is the
//!   SDK's and must be exactly header + rows + trailer, its CRC intact;
//! * any other `rbpx0001` file is the crate's and must be exactly header +
//!   rows (the crate's format has no checksum: a changed value inside a row
//!   cannot be detected, a changed size or count always is).
//!
//! Without the trailer-magic rule a row of 16 bytes (dim 3) or two rows of
//! 8 (dim 1) would be the size of the trailer, and a one-bit change of `n`
//! in the header would read the trailer as rows. (A crate file whose last
//! row happens to end with the bytes `RVPYTRL1` is refused rather than
//! guessed at.)
//!
//! Loading checks the file size against the header before allocating, so a
//! hostile header cannot reserve gigabytes; the rotation is built only once
//! rows are added (an index without rows never builds one); the CRC is
//! checked when the trailer is there, and every value is validated as `add`
//! would. Saves go through `ruvector_py_core::io::write_atomic` (unique
//! temporary file, fsync, rename; leftovers of killed saves removed).

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::io::{write_atomic, write_le, CrcWriter};
use ruvector_py_core::{Error, Result};

use crate::engine::{Engine, Kind, Params, Rotation, MAX_RERANK_FACTOR, MAX_VECTORS};
use crate::metric::Metric;

pub const CRATE_MAGIC: &[u8; 8] = b"rbpx0001";
pub const SDK_MAGIC: &[u8; 8] = b"rvpx0001";
pub const TRAILER_MAGIC: &[u8; 8] = b"RVPYTRL1";
pub const IVF_MAGIC: &[u8; 8] = b"RVIVF001";
const IVF_HEADER_LEN: u64 = 24;
pub const VERSION: u32 = 1;
const HEADER_LEN: u64 = 32;
const TRAILER_LEN: u64 = 16;
const FLAG_IDS64: u8 = 1;

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Plus => 0,
        Kind::Flat => 1,
        Kind::Rabitq => 2,
        Kind::Asym => 3,
        Kind::Ivf => 4,
    }
}

fn kind_from_code(code: u8) -> Option<Kind> {
    match code {
        0 => Some(Kind::Plus),
        1 => Some(Kind::Flat),
        2 => Some(Kind::Rabitq),
        3 => Some(Kind::Asym),
        4 => Some(Kind::Ivf),
        _ => None,
    }
}

/// Whether an index of this kind can be saved (it needs its vectors).
pub fn check_savable(engine: &Engine) -> Result<()> {
    if !engine.store().keeps_vectors() {
        let p = engine.params();
        let hint = if p.kind == Kind::Rabitq {
            "use RabitqPlusIndex, which keeps them"
        } else {
            "build it with rerank_factor > 1 to keep them"
        };
        return Err(Error::Persist {
            message: format!(
                "{} keeps only 1-bit codes, not the original vectors it would be rebuilt \
                 from, so it cannot be saved; {hint}",
                p.kind.class_name()
            ),
            path: None,
        });
    }
    Ok(())
}

fn write_index<W: Write>(engine: &Engine, w: W) -> std::io::Result<W> {
    let p = engine.params();
    let store = engine.store();
    let ids = store.ids();
    let ids64 = ids.iter().any(|&id| id > u32::MAX as u64);
    let magic = if p.kind == Kind::Plus && p.rotation == Rotation::Haar {
        CRATE_MAGIC
    } else {
        SDK_MAGIC
    };
    let mut w = CrcWriter::new(w);
    w.write_all(magic)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(p.dim as u32).to_le_bytes())?;
    w.write_all(&p.seed.to_le_bytes())?;
    w.write_all(&(p.rerank_factor as u32).to_le_bytes())?;
    w.write_all(&(store.len() as u32).to_le_bytes())?;
    let mut row = Vec::with_capacity(4 + 4 * p.dim);
    for (pos, &id) in ids.iter().enumerate() {
        row.clear();
        row.extend_from_slice(&(if ids64 { 0 } else { id as u32 }).to_le_bytes());
        for x in store.vector(pos) {
            row.extend_from_slice(&x.to_le_bytes());
        }
        w.write_all(&row)?;
    }
    if ids64 {
        for &id in ids.iter() {
            w.write_all(&id.to_le_bytes())?;
        }
    }
    if let Some(ivf) = engine.ivf() {
        w.write_all(IVF_MAGIC)?;
        for v in [ivf.nlist(), p.nlist, p.nprobe, 0] {
            w.write_all(&(v as u32).to_le_bytes())?;
        }
        write_le(&mut w, ivf.centroids(), f32::to_le_bytes)?;
        write_le(&mut w, ivf.labels(), u32::to_le_bytes)?;
    }
    let rotation = match p.rotation {
        Rotation::Haar => 0u8,
        Rotation::Hadamard => 1u8,
    };
    let flags = if ids64 { FLAG_IDS64 } else { 0 };
    w.write_all(&[kind_code(p.kind), rotation, flags, 0])?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.write_all(TRAILER_MAGIC)?;
    Ok(inner)
}

/// Writes `engine` to `path` atomically: a reader sees the old file or the
/// complete new one, never a partial write.
pub fn save(engine: &Engine, path: &Path) -> Result<()> {
    check_savable(engine).map_err(|e| match e {
        Error::Persist { message, .. } => Error::persist(path.display(), message),
        other => other,
    })?;
    let io = |e: std::io::Error| Error::persist(path.display(), format!("cannot write: {e}"));
    if path.file_name().is_none() {
        return Err(Error::persist(path.display(), "the path names no file"));
    }
    write_atomic(path, |w| write_index(engine, w).map(drop), |_| Ok(())).map_err(io)
}

/// What a load found in the file, before vectors are added to an index.
pub struct Loaded {
    pub params: Params,
    pub ids: Vec<u64>,
    pub vectors: Vec<f32>,
    /// Whether the SDK trailer (and so a CRC) was present.
    pub checked: bool,
    /// IVF files: the centroids and the list of every row.
    pub ivf: Option<(Vec<f32>, Vec<u32>)>,
}

/// The IVF block's `(lists, nlist setting, nprobe setting)` if the file's
/// trailer says IVF: read by seeking, before anything is allocated, so the
/// file size can be checked against the block's claims first.
fn peek_ivf(
    file: &mut File,
    file_len: u64,
    block_at: u64,
) -> std::io::Result<Option<(u64, u32, u32)>> {
    if file_len < block_at + IVF_HEADER_LEN + TRAILER_LEN {
        return Ok(None);
    }
    let mut t = [0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(file_len - TRAILER_LEN))?;
    file.read_exact(&mut t)?;
    let mut h = [0u8; IVF_HEADER_LEN as usize];
    file.seek(SeekFrom::Start(block_at))?;
    file.read_exact(&mut h)?;
    file.seek(SeekFrom::Start(0))?;
    if kind_from_code(t[0]) != Some(Kind::Ivf) || &h[..8] != IVF_MAGIC {
        return Ok(None);
    }
    Ok(Some((
        u64::from(read_u32(&h, 8)),
        read_u32(&h, 12),
        read_u32(&h, 16),
    )))
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads and checks a file written by [`save`] or by the crate's
/// `persist::save_index`. `expected` restricts the kind (a class's `load`).
pub fn load(path: &Path, expected: Option<Kind>) -> Result<Loaded> {
    let shown = path.display();
    let fail = |msg: String| Error::persist(&shown, msg);
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let file_len = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?
        .len();
    if file_len < HEADER_LEN {
        return Err(fail(format!(
            "not an index file: {file_len} bytes, shorter than the {HEADER_LEN}-byte header"
        )));
    }
    let mut file = file;
    let mut header = [0u8; HEADER_LEN as usize];
    file.read_exact(&mut header)
        .map_err(|e| fail(format!("cannot read the header: {e}")))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| fail(format!("cannot seek: {e}")))?;
    let magic = &header[0..8];
    let sdk_magic = magic == SDK_MAGIC;
    if magic != CRATE_MAGIC && !sdk_magic {
        return Err(fail(format!(
            "not an index file: expected the magic bytes \"rbpx0001\" or \"rvpx0001\", got {:?}",
            String::from_utf8_lossy(magic)
        )));
    }
    let version = read_u32(&header, 8);
    if version != VERSION {
        return Err(fail(format!(
            "unsupported format version: expected {VERSION}, got {version}"
        )));
    }
    let dim = read_u32(&header, 12) as usize;
    let seed = u64::from_le_bytes(header[16..24].try_into().expect("8 bytes"));
    let rerank_factor = read_u32(&header, 24) as usize;
    let n = read_u32(&header, 28) as u64;
    if dim == 0 || dim > ruvector_py_core::validate::MAX_DIM {
        return Err(fail(format!(
            "corrupt header: dim must be between 1 and {}, got {dim}",
            ruvector_py_core::validate::MAX_DIM
        )));
    }
    if rerank_factor == 0 || rerank_factor > MAX_RERANK_FACTOR {
        return Err(fail(format!(
            "corrupt header: rerank_factor must be between 1 and {MAX_RERANK_FACTOR}, got {rerank_factor}"
        )));
    }
    if n > MAX_VECTORS as u64 {
        return Err(fail(format!(
            "corrupt header: n must be at most {MAX_VECTORS}, got {n}"
        )));
    }
    // Every size below is bounded by n ≤ 1e8, dim ≤ 8192 and nlist ≤ 65536:
    // no overflow in u64.
    let rows_len = n * (4 + 4 * dim as u64);
    let mut body = file_len - HEADER_LEN;
    // Whether the file ends with the SDK trailer decides how it is read
    // (see the module docs): never from the sizes alone.
    let has_trailer = file_len >= HEADER_LEN + TRAILER_LEN && {
        let mut tail = [0u8; 8];
        file.seek(SeekFrom::Start(file_len - 8))
            .and_then(|_| file.read_exact(&mut tail))
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        &tail == TRAILER_MAGIC
    };
    let size_error = |expected: u64, layout: &str| {
        let diff = if file_len > expected {
            format!("{} trailing bytes", file_len - expected)
        } else {
            format!("{} bytes missing", expected - file_len)
        };
        fail(format!(
            "file is {file_len} bytes, but {layout} with n={n} and dim={dim} is exactly \
             {expected} bytes ({diff}): truncated or corrupt"
        ))
    };
    if !has_trailer {
        if sdk_magic {
            return Err(fail(format!(
                "corrupt file: the SDK trailer is missing (an rvpx0001 file ends with the \
                 {TRAILER_LEN}-byte trailer, magic \"RVPYTRL1\"; this one, {file_len} bytes, \
                 does not): truncated or corrupt"
            )));
        }
        if body != rows_len {
            return Err(size_error(
                HEADER_LEN + rows_len,
                "a crate-format rbpx0001 file (no SDK trailer)",
            ));
        }
    }
    let mut ivf_header = None;
    if has_trailer && sdk_magic {
        // An IVF block sits after the rows (and the u64 ids, if any).
        for ids_len in [0, 8 * n] {
            let at = HEADER_LEN + rows_len + ids_len;
            let peeked =
                peek_ivf(&mut file, file_len, at).map_err(|e| fail(format!("cannot read: {e}")))?;
            if let Some((lists, nlist, nprobe)) = peeked {
                if lists > n.min(crate::ivf::MAX_NLIST as u64) || (lists == 0) != (n == 0) {
                    return Err(fail(format!(
                        "corrupt IVF block: {lists} lists for {n} vectors"
                    )));
                }
                let block = IVF_HEADER_LEN + 4 * (lists * dim as u64 + n);
                if body == rows_len + ids_len + block + TRAILER_LEN {
                    body -= block;
                    ivf_header = Some((lists as usize, nlist as usize, nprobe as usize));
                    break;
                }
            }
        }
    }
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut crc = crc32fast::Hasher::new();
    r.read_exact(&mut header)
        .map_err(|e| fail(format!("cannot read the header: {e}")))?;
    crc.update(&header);
    let trailer = if !has_trailer {
        None
    } else if body == rows_len + TRAILER_LEN {
        Some(false)
    } else if sdk_magic && body == rows_len + 8 * n + TRAILER_LEN {
        Some(true)
    } else {
        let layout = if sdk_magic {
            "an rvpx0001 file"
        } else {
            "an rbpx0001 file with the SDK trailer"
        };
        return Err(size_error(HEADER_LEN + rows_len + TRAILER_LEN, layout));
    };

    // The size matched, so these allocations are backed by real bytes.
    let n = n as usize;
    let mut ids = Vec::with_capacity(n);
    let mut vectors = Vec::with_capacity(n * dim);
    let mut row = vec![0u8; 4 + 4 * dim];
    for _ in 0..n {
        r.read_exact(&mut row)
            .map_err(|e| fail(format!("cannot read: {e}")))?;
        crc.update(&row);
        ids.push(u64::from(read_u32(&row, 0)));
        vectors.extend(
            row[4..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))),
        );
    }
    let mut kind = Kind::Plus;
    let mut rotation = Rotation::Haar;
    let mut ivf = None;
    if let Some(has_ids64) = trailer {
        if has_ids64 {
            let mut b = [0u8; 8];
            for id in ids.iter_mut() {
                r.read_exact(&mut b)
                    .map_err(|e| fail(format!("cannot read: {e}")))?;
                crc.update(&b);
                *id = u64::from_le_bytes(b);
            }
        }
        if let Some((lists, _, _)) = ivf_header {
            let mut h = [0u8; IVF_HEADER_LEN as usize];
            r.read_exact(&mut h)
                .map_err(|e| fail(format!("cannot read: {e}")))?;
            crc.update(&h);
            if read_u32(&h, 20) != 0 {
                return Err(fail("corrupt IVF block: reserved field is not 0".into()));
            }
            let centroids = read_le4(&mut r, &mut crc, lists * dim, f32::from_le_bytes)
                .map_err(|e| fail(format!("cannot read: {e}")))?;
            let labels = read_le4(&mut r, &mut crc, n, u32::from_le_bytes)
                .map_err(|e| fail(format!("cannot read: {e}")))?;
            ivf = Some((centroids, labels));
        }
        let mut t = [0u8; TRAILER_LEN as usize];
        r.read_exact(&mut t)
            .map_err(|e| fail(format!("cannot read the trailer: {e}")))?;
        crc.update(&t[..4]);
        if &t[8..16] != TRAILER_MAGIC {
            return Err(fail("corrupt file: bad trailer magic".into()));
        }
        let stored = read_u32(&t, 4);
        let actual = crc.finalize();
        if stored != actual {
            return Err(fail(format!(
                "checksum mismatch: the file says CRC-32 {stored:08x}, its bytes give {actual:08x}; \
                 the file is corrupt"
            )));
        }
        kind = kind_from_code(t[0])
            .ok_or_else(|| fail(format!("unknown index kind code {}", t[0])))?;
        rotation = match t[1] {
            0 => Rotation::Haar,
            1 => Rotation::Hadamard,
            other => return Err(fail(format!("unknown rotation code {other}"))),
        };
        if t[2] & !FLAG_IDS64 != 0 || t[3] != 0 || ((t[2] & FLAG_IDS64) != 0) != has_ids64 {
            return Err(fail("corrupt trailer flags".into()));
        }
        if (kind == Kind::Ivf) != ivf.is_some() {
            return Err(fail(
                "corrupt file: the IVF block and the index kind disagree".into(),
            ));
        }
        let crate_readable = kind == Kind::Plus && rotation == Rotation::Haar && !has_ids64;
        if crate_readable == sdk_magic {
            return Err(fail("corrupt file: magic and trailer disagree".into()));
        }
    }
    if let Some(want) = expected {
        if want != kind {
            return Err(fail(format!(
                "this file holds a {}, not a {}; load it with {}.load",
                kind.class_name(),
                want.class_name(),
                kind.class_name()
            )));
        }
    }
    Ok(Loaded {
        params: Params {
            kind,
            dim,
            seed,
            rerank_factor,
            rotation,
            nlist: ivf_header.map_or(0, |h| h.1),
            nprobe: ivf_header.map_or(0, |h| h.2),
            metric: Metric::L2,
        },
        ids,
        vectors,
        checked: trailer.is_some(),
        ivf,
    })
}

/// `n` little-endian 4-byte values, decoded by `decode`.
fn read_le4<R: Read, T>(
    r: &mut R,
    crc: &mut crc32fast::Hasher,
    n: usize,
    decode: fn([u8; 4]) -> T,
) -> std::io::Result<Vec<T>> {
    let mut out = Vec::with_capacity(n);
    let mut buf = vec![0u8; 4 * n.min(1 << 16)];
    let mut left = n;
    while left > 0 {
        let take = left.min(1 << 16);
        let b = &mut buf[..4 * take];
        r.read_exact(b)?;
        crc.update(b);
        out.extend(
            b.chunks_exact(4)
                .map(|c| decode(c.try_into().expect("4 bytes"))),
        );
        left -= take;
    }
    Ok(out)
}

/// Builds the engine from a loaded file, validating every value like `add`;
/// `cancel` is checked between chunks of the work.
pub fn rebuild(path: &Path, loaded: Loaded, cancel: &Cancel) -> Result<Engine> {
    let shown = path.display();
    let mut engine =
        Engine::new(loaded.params).map_err(|e| Error::persist(&shown, e.to_string()))?;
    let added = match loaded.ivf {
        Some((centroids, labels)) => {
            engine.restore_ivf(&loaded.ids, &loaded.vectors, centroids, &labels, cancel)
        }
        None => engine.add_with(&loaded.ids, &loaded.vectors, "vectors", true, cancel),
    };
    added.map_err(|e| match e {
        Error::Interrupted => e,
        e => Error::persist(&shown, format!("invalid contents: {e}")),
    })?;
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn engine(kind: Kind, rotation: Rotation, ids: &[u64]) -> Engine {
        engine_dim(kind, rotation, ids, 4)
    }

    fn engine_dim(kind: Kind, rotation: Rotation, ids: &[u64], dim: usize) -> Engine {
        let mut e = Engine::new(Params {
            kind,
            dim,
            seed: 9,
            rerank_factor: 3,
            rotation,
            nlist: 0,
            nprobe: 0,
            metric: Metric::L2,
        })
        .unwrap();
        let data: Vec<f32> = (0..ids.len() * dim)
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        e.add(ids, &data).unwrap();
        e
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rvpy-persist-{}-{name}", std::process::id()));
        fs::create_dir_all(&d).unwrap();
        d.join("x.rbpx")
    }

    #[test]
    fn round_trips_every_savable_kind() {
        for (kind, rotation, ids) in [
            (Kind::Plus, Rotation::Haar, vec![5u64, 9, 1]),
            (Kind::Plus, Rotation::Hadamard, vec![5, 9, 1]),
            (Kind::Flat, Rotation::Haar, vec![1 << 40, 2, 3]),
            (Kind::Asym, Rotation::Haar, vec![7, 8, 9]),
            (Kind::Ivf, Rotation::Haar, vec![1 << 40, 2, 3]),
            (Kind::Ivf, Rotation::Hadamard, vec![5, 9, 1]),
        ] {
            let path = tmp(&format!("{kind:?}{rotation:?}"));
            let e = engine(kind, rotation, &ids);
            save(&e, &path).unwrap();
            let bytes = fs::read(&path).unwrap();
            let crate_magic = kind == Kind::Plus && rotation == Rotation::Haar;
            assert_eq!(
                &bytes[..8],
                if crate_magic { CRATE_MAGIC } else { SDK_MAGIC }
            );
            let back = rebuild(&path, load(&path, Some(kind)).unwrap(), &Cancel::new()).unwrap();
            assert!(back.same_as(&e), "{kind:?}");
        }
    }

    #[test]
    fn every_truncation_and_most_flips_are_refused() {
        let path = tmp("fuzz");
        let original = engine(Kind::Plus, Rotation::Haar, &[1, 2, 3]);
        save(&original, &path).unwrap();
        let good = fs::read(&path).unwrap();
        // Cut exactly before the trailer, the file is the crate's own
        // layout: the data is whole, only the CRC is gone.
        let without_trailer = good.len() - TRAILER_LEN as usize;
        assert_damage_refused(&path, &good, Some(without_trailer));
        fs::write(&path, &good[..without_trailer]).unwrap();
        let back = rebuild(&path, load(&path, None).unwrap(), &Cancel::new()).unwrap();
        assert!(back.same_as(&original));
    }

    /// Every truncation (but `whole_at`) and every single-byte flip of
    /// `good`, written to `path`, is refused by `load`.
    fn assert_damage_refused(path: &Path, good: &[u8], whole_at: Option<usize>) {
        for cut in (0..good.len()).filter(|&c| Some(c) != whole_at) {
            fs::write(path, &good[..cut]).unwrap();
            assert!(load(path, None).is_err(), "truncated at {cut}");
        }
        for at in 0..good.len() {
            let mut bad = good.to_vec();
            bad[at] ^= 0x10;
            fs::write(path, &bad).unwrap();
            assert!(load(path, None).is_err(), "flip at {at} was accepted");
        }
    }

    #[test]
    fn ivf_files_keep_their_lists_and_refuse_every_truncation_and_flip() {
        let path = tmp("ivf");
        let original = engine(Kind::Ivf, Rotation::Haar, &[4, 5, 6]);
        assert!(original.ivf().unwrap().nlist() >= 1);
        save(&original, &path).unwrap();
        let good = fs::read(&path).unwrap();
        assert_eq!(&good[..8], SDK_MAGIC);
        let back = rebuild(&path, load(&path, Some(Kind::Ivf)).unwrap(), &Cancel::new()).unwrap();
        assert!(back.same_as(&original));
        assert_eq!(
            back.ivf().unwrap().labels(),
            original.ivf().unwrap().labels()
        );
        let q = [0.1f32, 0.2, 0.3, 0.4];
        let opts = crate::engine::SearchOpts::default();
        assert_eq!(
            back.search(&q, 2, opts).unwrap(),
            original.search(&q, 2, opts).unwrap()
        );
        assert!(load(&path, Some(Kind::Plus)).is_err(), "kind is checked");
        assert_damage_refused(&path, &good, None);
    }

    /// Every single-bit flip of `good`, written to `path`, is refused.
    fn assert_every_bit_flip_refused(path: &Path, good: &[u8]) {
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.to_vec();
                bad[at] ^= 1 << bit;
                fs::write(path, &bad).unwrap();
                assert!(
                    load(path, None).is_err(),
                    "flip of bit {bit} at byte {at} of {} was accepted",
                    good.len()
                );
            }
        }
    }

    #[test]
    fn the_trailer_is_never_read_as_rows() {
        // dim 3: a row is 16 bytes, the trailer's size; dim 1: two rows of
        // 8. A flip of n (n + 1, n + 2) must not read the trailer as rows.
        for (dim, ids) in [(3usize, vec![1u64, 2, 3]), (1, vec![7, 8, 9, 10])] {
            let path = tmp(&format!("trailer-rows-{dim}"));
            let original = engine_dim(Kind::Plus, Rotation::Haar, &ids, dim);
            save(&original, &path).unwrap();
            let good = fs::read(&path).unwrap();
            assert_eq!(&good[..8], CRATE_MAGIC);
            let extra = 16 / (4 + 4 * dim) as u32;
            let mut grown = good.clone();
            let n = ids.len() as u32 + extra;
            grown[28..32].copy_from_slice(&n.to_le_bytes());
            fs::write(&path, &grown).unwrap();
            let e = load(&path, None).err().unwrap().to_string();
            assert!(e.contains("with the SDK trailer"), "{e}");
            assert_every_bit_flip_refused(&path, &good);
            // The same rows without the trailer are the crate's format.
            let crate_len = good.len() - TRAILER_LEN as usize;
            fs::write(&path, &good[..crate_len]).unwrap();
            let back = rebuild(&path, load(&path, None).unwrap(), &Cancel::new()).unwrap();
            assert!(back.same_as(&original));
        }
    }

    #[test]
    fn trailing_bytes_are_refused_with_both_sizes() {
        let path = tmp("trailing");
        let original = engine(Kind::Plus, Rotation::Haar, &[1, 2, 3]);
        save(&original, &path).unwrap();
        let good = fs::read(&path).unwrap();
        let crate_len = good.len() - TRAILER_LEN as usize;
        for (bytes, expected) in [
            ([&good[..crate_len], &[0u8][..]].concat(), crate_len),
            ([&good[..crate_len], &[0u8; 16][..]].concat(), crate_len),
            ([&good[..], &[0u8][..]].concat(), crate_len),
            ([&good[..crate_len], &good[..]].concat(), good.len()),
        ] {
            fs::write(&path, &bytes).unwrap();
            let e = load(&path, None).err().unwrap();
            let text = e.to_string();
            assert!(matches!(e, Error::Persist { .. }), "{text}");
            assert!(
                text.contains(&format!("file is {} bytes", bytes.len()))
                    && text.contains(&format!("exactly {expected} bytes"))
                    && text.contains("trailing bytes"),
                "{text}"
            );
        }
        // The SDK's own layout: one byte more before the trailer.
        let sdk = engine(Kind::Flat, Rotation::Haar, &[1, 2]);
        save(&sdk, &path).unwrap();
        let good = fs::read(&path).unwrap();
        let cut = good.len() - TRAILER_LEN as usize;
        let bytes = [&good[..cut], &[0u8][..], &good[cut..]].concat();
        fs::write(&path, &bytes).unwrap();
        let e = load(&path, None).err().unwrap().to_string();
        assert!(e.contains("1 trailing bytes"), "{e}");
    }

    #[test]
    fn every_bit_flip_of_every_sdk_layout_is_refused() {
        for (kind, rotation, ids) in [
            (Kind::Plus, Rotation::Hadamard, vec![5u64, 9]),
            (Kind::Flat, Rotation::Haar, vec![1 << 40, 2]),
            (Kind::Asym, Rotation::Haar, vec![7, 8]),
            (Kind::Ivf, Rotation::Hadamard, vec![5, 9]),
        ] {
            let path = tmp(&format!("bits-{kind:?}"));
            save(&engine_dim(kind, rotation, &ids, 3), &path).unwrap();
            assert_every_bit_flip_refused(&path, &fs::read(&path).unwrap());
        }
    }

    #[test]
    fn a_large_haar_header_without_rows_builds_no_rotation() {
        // 32 bytes claiming dim 2048, Haar, no rows: valid and empty. The
        // O(dim³) rotation (seconds) is built only when rows are added.
        let path = tmp("empty-2048");
        let mut h = Vec::new();
        h.extend_from_slice(CRATE_MAGIC);
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&2048u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&20u32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        fs::write(&path, &h).unwrap();
        let e = rebuild(&path, load(&path, None).unwrap(), &Cancel::new()).unwrap();
        assert_eq!((e.len(), e.params().dim), (0, 2048));
        assert!(
            e.memory_bytes() < 1 << 20,
            "a rotation was built: {} bytes",
            e.memory_bytes()
        );
        // The same for an empty IVF index restored from a file.
        let ivf = engine_dim(Kind::Ivf, Rotation::Haar, &[], 2048);
        save(&ivf, &path).unwrap();
        let back = rebuild(&path, load(&path, None).unwrap(), &Cancel::new()).unwrap();
        assert!(back.memory_bytes() < 1 << 20);
    }

    #[test]
    fn a_cancelled_rebuild_is_an_interruption_not_a_corrupt_file() {
        let path = tmp("cancel");
        let ids: Vec<u64> = (0..2000).collect();
        save(&engine(Kind::Plus, Rotation::Haar, &ids), &path).unwrap();
        let cancel = Cancel::new();
        cancel.cancel();
        let e = rebuild(&path, load(&path, None).unwrap(), &cancel).err();
        assert_eq!(e, Some(Error::Interrupted));
    }

    #[test]
    fn a_huge_header_fails_before_allocating() {
        let path = tmp("huge");
        let mut h = Vec::new();
        h.extend_from_slice(CRATE_MAGIC);
        h.extend_from_slice(&1u32.to_le_bytes());
        h.extend_from_slice(&8192u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&20u32.to_le_bytes());
        h.extend_from_slice(&100_000_000u32.to_le_bytes());
        fs::write(&path, &h).unwrap();
        let e = load(&path, None).err().unwrap().to_string();
        assert!(e.contains("truncated or corrupt"), "{e}");
    }
}
