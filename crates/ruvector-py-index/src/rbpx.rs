//! Saving and loading indexes: `.rbpx` files, `to_bytes`, memory maps.
//!
//! Two layouts, told apart by the version field (bytes 8..12):
//!
//! * **version 2** (magic `rvpx0001`), the SDK's: every kind, every metric,
//!   vectors 64-byte aligned so that `load(path, mmap=True)` maps them in
//!   place; also what `to_bytes` / pickling produce;
//! * **version 1**: the crate's layout (magic `rbpx0001`), still written by
//!   `save` for a `RabitqPlusIndex` with the Haar rotation, metric `l2` and
//!   ids below 2³² so the crate keeps reading it; version 1 `rvpx0001`
//!   files of earlier SDK releases still load (as metric `l2`).
//!
//! ## Version 2
//!
//! | bytes | field |
//! |---|---|
//! | 8 | `b"rvpx0001"` |
//! | 4 | version, 2 |
//! | 4, 8, 4, 4 | dim, seed, rerank factor, n |
//! | 1 each | kind (codes below), rotation (0 Haar, 1 Hadamard), metric (`Metric::code`), flags (bit 0 ids, bit 1 vectors, bit 2 codes, bit 3 IVF lists, bit 4 compressed vectors, bit 5 IVF list codes in the scan layout, bit 6 IVF spill: every row also in a second list) |
//! | 4, 4, 4, 4 | IVF nlist setting, nprobe setting, trained lists, code words per row (codes or IVF lists; else 0) |
//! | 4 | IVF list code blocks (bit 5; else 0) |
//! | 8 | with bit 4: bytes of the compressed vectors section (at most `8 + 16·n + 4·n·dim`); else 0 |
//! | then, each starting at a multiple of 64 (zero padding) | vectors `n·dim` f32 (kinds that keep them), or with bit 4 the compressed section of [`crate::vzip`] (a block table, then byte planes stored or packed) · ids `n` u64 (absent when they are `0..n`) · IVF centroids `lists·dim` f32 · IVF list of every row `n` u32 · codes (kinds without vectors) `n·words` u64 · norms `n` f32 · IVF list codes (below) · their estimator terms `n` offsets then `n` slopes, f32, in row order · IVF list radii `lists` f32 · with bit 6, the lists (bit 3) and two lists or more: the second list of every row `n` u32, and its terms there, `n` offsets then `n` slopes, f32, in row order |
//! | 16, at a multiple of 64 | CRC-32 of every byte before it, u32 0, `b"RVPYTRL2"` |
//!
//! The IVF list codes, with bit 5 (every file written since it exists):
//! the lists' blocks exactly as the search scans them
//! ([`crate::fastscan`]: 32 rows a block, `16·groups` bytes, a multiple of
//! 64), list after list, each list's rows in ascending row order, the
//! slots of a list's last block past its rows zero; the header gives the
//! block count, so the size is still a function of the header, and the
//! labels (and spill labels, each naming another list than the row's
//! label) must give the same count. Without bit 5 (files written before):
//! `n·words` u64 in row order, copied into the blocks on load.
//!
//! With the IVF lists kept (bit 3) a load installs the lists as saved — no
//! rotation, no encoding — after checking their lengths, finite terms and
//! zero bits past the rotated length (and in unused slots); a file without
//! them (written earlier) is encoded again from its vectors. The codes are
//! trusted as the vectors are: the CRC covers both, and every hit is
//! reranked by its exact vector, so a forged code can cost recall but never
//! give a wrong score.
//!
//! Bit 4 (`save(path, compress=True)`) is set only for kinds that keep
//! vectors: their section is about 0.85 of the float32 bytes for
//! embeddings, every value kept bit for bit. A load reads the section, checks
//! the CRC, then decodes its blocks in parallel straight into the buffer
//! the index keeps; such a file cannot be mapped (`mmap=True` names the
//! reason). Every length in the section is bounded by the header and must
//! add up exactly (see [`crate::vzip`]). `to_bytes` never compresses.
//!
//! The size is a function of the header, and must match exactly; the CRC
//! is checked before anything is used. All values little-endian.
//!
//! ## Mapped loads
//!
//! `load(path, mmap=True)` maps a version 2 file read-only; the vectors
//! and (bit 5) the IVF list codes stay in the map, the rest (ids, labels,
//! terms, centroids: a few bytes a row) is copied. Every check of a plain
//! load runs first, reading the whole map; then the checked pages are
//! dropped from the process (`MADV_DONTNEED`: they stay in the shared page
//! cache, nothing is lost on a read-only file map), so after the load the
//! process holds the copied parts only, and a search maps back the probed
//! lists' codes and the rows it reranks. The vectors are advised
//! `MADV_RANDOM` (no read-ahead around a reranked row when the file is not
//! cached). Measured on 1.6 GB: populate, check and drop in one pass
//! (0.33–0.5 s) beats checking with `pread` into a small buffer and mapping
//! afterwards (0.58–1.1 s), and needs no second pass for the checks made
//! after the CRC. A change to a mapped index copies what it changes
//! (vectors, a list's codes) into memory first.
//!
//! ## Version 1
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

use crate::engine::{Engine, Kind, Params, Rotation, Saved, MAX_RERANK_FACTOR, MAX_VECTORS};
use crate::fastscan::{block_bytes_for, CodeBytes};
use crate::ivf::SavedCodes;
use crate::metric::Metric;
use crate::store::{Backing, MappedBytes, MappedF32};
use std::sync::Arc;

pub const CRATE_MAGIC: &[u8; 8] = b"rbpx0001";
pub const SDK_MAGIC: &[u8; 8] = b"rvpx0001";
pub const TRAILER_MAGIC: &[u8; 8] = b"RVPYTRL1";
pub const IVF_MAGIC: &[u8; 8] = b"RVIVF001";
const IVF_HEADER_LEN: u64 = 24;
pub const VERSION: u32 = 1;
/// The SDK's own layout (see the module docs).
pub const VERSION2: u32 = 2;
pub const TRAILER2_MAGIC: &[u8; 8] = b"RVPYTRL2";
const HEADER2_LEN: u64 = 64;
const FLAG2_IDS: u8 = 1;
const FLAG2_VECTORS: u8 = 2;
const FLAG2_CODES: u8 = 4;
/// IVF: the lists' codes and terms, so a load encodes nothing.
const FLAG2_LISTS: u8 = 8;
/// The vectors section is compressed (`save(path, compress=True)`, see
/// [`crate::vzip`]); its length is the header's u64 at bytes 56..64.
const FLAG2_VZIP: u8 = 16;
/// IVF: the lists' codes in the scan layout (list after list, in blocks),
/// so a load maps or copies them as they are; their block count is in
/// header bytes 52..56. Without it (files written before): in row order.
const FLAG2_BLOCKED: u8 = 32;
/// IVF: rows are also kept in a second list (`spill=True`). With the
/// lists (bit 3, in the scan layout) and two lists or more, the file also
/// holds every row's second list and its terms there.
const FLAG2_SPILL: u8 = 64;
/// Every flag a version 2 file may set.
const FLAGS2_KNOWN: u8 = FLAG2_IDS
    | FLAG2_VECTORS
    | FLAG2_CODES
    | FLAG2_LISTS
    | FLAG2_VZIP
    | FLAG2_BLOCKED
    | FLAG2_SPILL;
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

/// Writes the version 1 layout (the crate's, for the kinds it can read).
fn write_v1<W: Write>(engine: &Engine, w: W) -> std::io::Result<W> {
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

/// Whether the crate reads the index from its own layout (version 1,
/// `rbpx0001`): a `RabitqPlusIndex`, Haar rotation, metric `l2`, u32 ids.
pub fn crate_readable(engine: &Engine) -> bool {
    let p = engine.params();
    p.kind == Kind::Plus
        && p.rotation == Rotation::Haar
        && p.metric == Metric::L2
        && engine.store().ids().iter().all(|&id| id <= u32::MAX as u64)
}

fn align64(x: u64) -> u64 {
    x.div_ceil(64) * 64
}

/// Sizes of a version 2 file, all from its header.
#[derive(Clone, Copy, Debug)]
struct Layout2 {
    n: u64,
    dim: u64,
    lists: u64,
    words: u64,
    flags: u8,
    /// Blocks of the lists' codes in the scan layout (`FLAG2_BLOCKED`).
    blocks: u64,
    /// Bytes of one such block (from the rotated length).
    block_bytes: u64,
    /// Bytes of the compressed vectors section (flag [`FLAG2_VZIP`]).
    packed: u64,
}

impl Layout2 {
    /// The layout of `engine`, its vectors compressed into `packed` bytes
    /// when given (and kept).
    fn of(engine: &Engine, packed: Option<u64>) -> Self {
        Self::of_with(engine, true, packed)
    }

    /// `blocked = false`: the lists' codes in row order, as files written
    /// before the scan layout (kept for tests of those files).
    fn of_with(engine: &Engine, blocked: bool, packed: Option<u64>) -> Self {
        let store = engine.store();
        let n = store.len() as u64;
        let sparse = store
            .ids()
            .iter()
            .enumerate()
            .any(|(i, &id)| id != i as u64);
        let codes = engine.symmetric_codes().filter(|_| !store.keeps_vectors());
        let mut flags = 0;
        if sparse {
            flags |= FLAG2_IDS;
        }
        if store.keeps_vectors() {
            flags |= FLAG2_VECTORS;
        }
        let packed = packed.filter(|_| store.keeps_vectors());
        if packed.is_some() {
            flags |= FLAG2_VZIP;
        }
        if codes.is_some() {
            flags |= FLAG2_CODES;
        }
        let ivf = engine.ivf().filter(|ivf| ivf.nlist() > 0);
        if ivf.is_some() {
            flags |= FLAG2_LISTS;
        }
        if ivf.is_some() && blocked {
            flags |= FLAG2_BLOCKED;
        }
        if engine.params().spill {
            flags |= FLAG2_SPILL;
        }
        Self {
            n,
            dim: engine.params().dim as u64,
            lists: ivf.map_or(0, |ivf| ivf.nlist() as u64),
            words: match (codes, ivf) {
                (Some((p, _)), _) => (p.len() as u64).checked_div(n).unwrap_or(0),
                (None, Some(ivf)) => ivf.code_words() as u64,
                (None, None) => 0,
            },
            flags,
            blocks: ivf.filter(|_| blocked).map_or(0, |ivf| ivf.blocks() as u64),
            block_bytes: ivf.map_or(0, |ivf| ivf.block_bytes() as u64),
            packed: packed.unwrap_or(0),
        }
    }

    /// Whether the file holds spill lists (see [`FLAG2_SPILL`]).
    fn spilled(&self) -> bool {
        let has = |f: u8| self.flags & f != 0;
        has(FLAG2_SPILL) && has(FLAG2_LISTS) && self.lists >= 2
    }

    /// `(offset, bytes)` of: vectors, ids, centroids, labels, codes, norms,
    /// list codes, list terms (offsets then slopes), list radii, spill
    /// labels, spill terms (offsets then slopes).
    fn sections(&self) -> [(u64, u64); 11] {
        let has = |f: u8| self.flags & f != 0;
        let spilled = self.spilled();
        let lens = [
            if has(FLAG2_VZIP) {
                self.packed
            } else if has(FLAG2_VECTORS) {
                4 * self.n * self.dim
            } else {
                0
            },
            if has(FLAG2_IDS) { 8 * self.n } else { 0 },
            4 * self.lists * self.dim,
            if self.lists > 0 { 4 * self.n } else { 0 },
            if has(FLAG2_CODES) {
                8 * self.n * self.words
            } else {
                0
            },
            if has(FLAG2_CODES) { 4 * self.n } else { 0 },
            if has(FLAG2_BLOCKED) {
                self.blocks * self.block_bytes
            } else if has(FLAG2_LISTS) {
                8 * self.n * self.words
            } else {
                0
            },
            if has(FLAG2_LISTS) { 8 * self.n } else { 0 },
            if has(FLAG2_LISTS) { 4 * self.lists } else { 0 },
            if spilled { 4 * self.n } else { 0 },
            if spilled { 8 * self.n } else { 0 },
        ];
        let mut at = HEADER2_LEN;
        lens.map(|len| {
            let start = align64(at);
            at = start + len;
            (start, len)
        })
    }

    fn trailer_at(&self) -> u64 {
        let [.., (at, len)] = self.sections();
        align64(at + len)
    }

    fn total(&self) -> u64 {
        self.trailer_at() + TRAILER_LEN
    }
}

/// Bytes of `engine` in the version 2 layout (what [`to_bytes`] returns).
pub fn encoded_len(engine: &Engine) -> u64 {
    Layout2::of(engine, None).total()
}

fn f32_bytes(v: &[f32]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: any f32 is 4 plain bytes; u8 has no alignment.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v))
        })
    } else {
        std::borrow::Cow::Owned(v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

/// Writes the version 2 layout; `packed`: the vectors compressed.
fn write_v2<W: Write>(
    engine: &Engine,
    w: W,
    packed: Option<&crate::vzip::Encoded>,
) -> std::io::Result<W> {
    write_v2_with(
        engine,
        w,
        Layout2::of(engine, packed.map(|e| e.len())),
        packed,
    )
}

fn write_v2_with<W: Write>(
    engine: &Engine,
    w: W,
    layout: Layout2,
    packed: Option<&crate::vzip::Encoded>,
) -> std::io::Result<W> {
    let p = engine.params();
    let store = engine.store();
    let mut w = CrcWriter::new(w);
    let mut h = Vec::with_capacity(HEADER2_LEN as usize);
    h.extend_from_slice(SDK_MAGIC);
    h.extend_from_slice(&VERSION2.to_le_bytes());
    h.extend_from_slice(&(p.dim as u32).to_le_bytes());
    h.extend_from_slice(&p.seed.to_le_bytes());
    h.extend_from_slice(&(p.rerank_factor as u32).to_le_bytes());
    h.extend_from_slice(&(layout.n as u32).to_le_bytes());
    let rotation = match p.rotation {
        Rotation::Haar => 0u8,
        Rotation::Hadamard => 1u8,
    };
    h.extend_from_slice(&[kind_code(p.kind), rotation, p.metric.code(), layout.flags]);
    for v in [
        p.nlist as u64,
        p.nprobe as u64,
        layout.lists,
        layout.words,
        layout.blocks,
    ] {
        h.extend_from_slice(&(v as u32).to_le_bytes());
    }
    h.extend_from_slice(&layout.packed.to_le_bytes());
    h.resize(HEADER2_LEN as usize, 0);
    w.write_all(&h)?;
    let mut at = HEADER2_LEN;
    let zeros = [0u8; 64];
    let sections = layout.sections();
    let section = |w: &mut CrcWriter<W>, at: &mut u64, i: usize, bytes: &[u8]| {
        let (start, len) = sections[i];
        debug_assert_eq!(bytes.len() as u64, len);
        w.write_all(&zeros[..(start - *at) as usize])?;
        w.write_all(bytes)?;
        *at = start + len;
        std::io::Result::Ok(())
    };
    if let Some(packed) = packed.filter(|_| layout.flags & FLAG2_VZIP != 0) {
        w.write_all(&zeros[..(sections[0].0 - at) as usize])?;
        packed.write_to(&mut w)?;
        at = sections[0].0 + sections[0].1;
    } else if layout.flags & FLAG2_VECTORS != 0 {
        // In blocks, so a big-endian machine converts a block at a time.
        w.write_all(&zeros[..(sections[0].0 - at) as usize])?;
        for block in store.vectors().chunks(1 << 18) {
            w.write_all(&f32_bytes(block))?;
        }
        at = sections[0].0 + sections[0].1;
    }
    let le64 = |v: &[u64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    if layout.flags & FLAG2_IDS != 0 {
        section(&mut w, &mut at, 1, &le64(&store.ids()))?;
    }
    if let Some(ivf) = engine.ivf().filter(|_| layout.lists > 0) {
        section(&mut w, &mut at, 2, &f32_bytes(ivf.centroids()))?;
        let labels: Vec<u8> = ivf.labels().iter().flat_map(|x| x.to_le_bytes()).collect();
        section(&mut w, &mut at, 3, &labels)?;
    }
    if layout.flags & FLAG2_CODES != 0 {
        let (packed, norms) = engine.symmetric_codes().expect("codes flag");
        section(&mut w, &mut at, 4, &le64(packed))?;
        section(&mut w, &mut at, 5, &f32_bytes(norms))?;
    }
    if layout.flags & FLAG2_LISTS != 0 {
        let ivf = engine.ivf().expect("lists flag");
        let saved = if layout.flags & FLAG2_BLOCKED != 0 {
            ivf.saved_lists()
        } else {
            ivf.saved_lists_by_row()
        };
        match &saved.codes {
            SavedCodes::Blocked(b) => section(&mut w, &mut at, 6, b.as_bytes())?,
            SavedCodes::Rows(bits) => section(&mut w, &mut at, 6, &le64(bits))?,
        }
        let mut terms = saved.offsets;
        terms.extend_from_slice(&saved.slopes);
        section(&mut w, &mut at, 7, &f32_bytes(&terms))?;
        section(&mut w, &mut at, 8, &f32_bytes(&saved.radii))?;
        if layout.spilled() {
            let spill: Vec<u8> = saved.spill.iter().flat_map(|x| x.to_le_bytes()).collect();
            section(&mut w, &mut at, 9, &spill)?;
            let mut terms = saved.spill_offsets;
            terms.extend_from_slice(&saved.spill_slopes);
            section(&mut w, &mut at, 10, &f32_bytes(&terms))?;
        }
    }
    w.write_all(&zeros[..(layout.trailer_at() - at) as usize])?;
    let crc = w.crc.clone().finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.write_all(&0u32.to_le_bytes())?;
    inner.write_all(TRAILER2_MAGIC)?;
    Ok(inner)
}

/// The index in the version 2 layout, in memory.
pub fn to_bytes(engine: &Engine) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(engine) as usize);
    write_v2(engine, &mut out, None).expect("writing to memory");
    out
}

/// Writes the version 2 layout into `out`, which must be exactly
/// [`encoded_len`] bytes (for a Python `bytes` filled in place).
pub fn write_bytes(engine: &Engine, out: &mut [u8]) -> Result<()> {
    let want = encoded_len(engine);
    if out.len() as u64 != want {
        return Err(Error::invalid(format!(
            "the buffer must be {want} bytes, got {}",
            out.len()
        )));
    }
    let mut rest = write_v2(engine, &mut *out, None)
        .map_err(|e| Error::persist("<bytes>", format!("cannot write: {e}")))?;
    debug_assert!(rest.is_empty());
    let _ = rest.flush();
    Ok(())
}

/// Writes `engine` to `path` atomically: a reader sees the old file or the
/// complete new one, never a partial write. The crate's layout (version 1)
/// when `crate_format` and the crate can read the index, else version 2.
pub fn save(engine: &Engine, path: &Path) -> Result<()> {
    save_as(engine, path, true, false)
}

/// [`save`], choosing the layout: `crate_format = false` always writes
/// version 2 (the layout `mmap=True` can map); `compress = true` writes
/// version 2 with the vectors compressed losslessly (flag bit 4, see
/// [`crate::vzip`]; a kind that keeps no vectors has nothing to compress
/// and is written as without it), which only a load without a map reads.
pub fn save_as(engine: &Engine, path: &Path, crate_format: bool, compress: bool) -> Result<()> {
    let io = |e: std::io::Error| Error::persist(path.display(), format!("cannot write: {e}"));
    if path.file_name().is_none() {
        return Err(Error::persist(path.display(), "the path names no file"));
    }
    let store = engine.store();
    let packed = (compress && store.keeps_vectors()).then(|| {
        let pool = ruvector_py_core::parallel::pool().ok();
        crate::vzip::encode(store.vectors(), engine.params().dim, pool.as_deref())
    });
    let v1 = !compress && crate_format && crate_readable(engine);
    write_atomic(
        path,
        |w| {
            if v1 {
                write_v1(engine, w).map(drop)
            } else {
                write_v2(
                    engine,
                    std::io::BufWriter::with_capacity(1 << 20, w),
                    packed.as_ref(),
                )
                .and_then(|b| b.into_inner().map_err(|e| e.into_error()))
                .map(drop)
            }
        },
        |_| Ok(()),
    )
    .map_err(io)
}

/// What a load found in the file, before vectors are added to an index.
pub struct Loaded {
    pub params: Params,
    pub ids: Vec<u64>,
    /// Owned, or (`mmap=True`) a read-only map of the file.
    pub vectors: Backing,
    /// Whether a CRC was present (and matched).
    pub checked: bool,
    /// IVF lists; saved codes of kinds without vectors.
    pub saved: Saved,
    /// Where it came from, for messages (a path or `<bytes>`).
    pub source: String,
    /// `mmap=True`: the file's map and where the vectors sit in it, so
    /// [`rebuild`] can let go of the pages the checks read (see
    /// [`release_checked_pages`]).
    pub map: Option<(Arc<memmap2::Mmap>, std::ops::Range<usize>)>,
}

/// The IVF block's `(lists, nlist setting, nprobe setting)` if the file's
/// trailer says IVF: read by seeking, before anything is allocated, so the
/// file size can be checked against the block's claims first.
fn peek_ivf<R: Read + Seek>(
    file: &mut R,
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

/// Where a load reads from: a file (read or mapped) or a byte slice.
enum Source<'a> {
    File(File),
    Mapped(Arc<memmap2::Mmap>),
    Bytes(&'a [u8]),
}

/// Reads and checks a file written by [`save`] or by the crate's
/// `persist::save_index`. `expected` restricts the kind (a class's `load`).
/// Streams: the vectors are read once, into the buffer the index keeps.
pub fn load(path: &Path, expected: Option<Kind>) -> Result<Loaded> {
    let shown = path.display().to_string();
    let file = File::open(path).map_err(|e| Error::persist(&shown, format!("cannot open: {e}")))?;
    if compressed_file(&file) {
        // Decoded from a private, populated map of the file (no copy of
        // the compressed bytes; the map goes once the vectors are decoded).
        // SAFETY: as in `load_mapped`; only read, as bytes.
        if let Ok(map) = unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
            return load_from(Source::Bytes(&map), shown, expected);
        }
    }
    load_from(Source::File(file), shown, expected)
}

/// Whether `file` starts with a version 2 header whose flags say
/// compressed vectors (then it is decoded, not streamed).
fn compressed_file(file: &File) -> bool {
    let mut h = [0u8; 36];
    let mut f = file;
    let ok = f.read_exact(&mut h).is_ok();
    let rewound = f.seek(SeekFrom::Start(0)).is_ok();
    ok && rewound && &h[..8] == SDK_MAGIC && read_u32(&h, 8) == VERSION2 && h[35] & FLAG2_VZIP != 0
}

/// [`load`] with the vectors and the IVF list codes mapped read-only from
/// the file (version 2 files only), so processes that map one file share
/// one copy. The whole file is checked (size, CRC, every value) before it
/// is used; [`rebuild`] then drops the checked pages from the process
/// (they stay in the shared page cache), so a mapped index is not resident
/// until searches touch it.
pub fn load_mapped(path: &Path, expected: Option<Kind>) -> Result<Loaded> {
    load_mapped_with_file(path, expected).map(|(loaded, _)| loaded)
}

/// [`load_mapped`], also handing back the open file the map was made from
/// (for [`rebuild_lean`], which reads rows from that very file: the path
/// could name another file by then).
pub fn load_mapped_with_file(path: &Path, expected: Option<Kind>) -> Result<(Loaded, File)> {
    let shown = path.display().to_string();
    let fail = |m: String| Error::persist(&shown, m);
    let file = File::open(path).map_err(|e| fail(format!("cannot open: {e}")))?;
    let len = file
        .metadata()
        .map_err(|e| fail(format!("cannot stat: {e}")))?
        .len();
    if len == 0 {
        return Err(fail("not an index file: 0 bytes".into()));
    }
    // SAFETY: mapped read-only; a file changed by another process while
    // mapped can show changed values (never unsafety in this code, which
    // reads it as plain bytes and floats) or fault if truncated; the SDK
    // replaces files by rename, which leaves a mapped inode intact.
    // Populated: the checks read every page at once, and one populating
    // mmap call costs less than a page fault per 64 KiB; the pages are
    // released after the checks (`release_checked_pages`).
    let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }
        .map_err(|e| fail(format!("cannot map: {e}")))?;
    let loaded = load_from(Source::Mapped(Arc::new(map)), shown, expected)?;
    Ok((loaded, file))
}

/// Reads an index from bytes produced by [`to_bytes`] (or a whole file).
pub fn from_bytes(data: &[u8], expected: Option<Kind>) -> Result<Loaded> {
    load_from(Source::Bytes(data), "<bytes>".into(), expected)
}

fn load_from(source: Source<'_>, shown: String, expected: Option<Kind>) -> Result<Loaded> {
    let fail = |m: String| Error::persist(&shown, m);
    let mut first = [0u8; 12];
    let (len, is_v2) = {
        let bytes: Option<&[u8]> = match &source {
            Source::File(_) => None,
            Source::Mapped(m) => Some(&m[..]),
            Source::Bytes(b) => Some(b),
        };
        let len = match (&source, bytes) {
            (_, Some(b)) => b.len() as u64,
            (Source::File(f), None) => f
                .metadata()
                .map_err(|e| fail(format!("cannot stat: {e}")))?
                .len(),
            _ => unreachable!(),
        };
        match (bytes, &source) {
            (Some(b), _) if b.len() >= 12 => first.copy_from_slice(&b[..12]),
            (None, Source::File(f)) if len >= 12 => {
                let mut f = f;
                f.read_exact(&mut first)
                    .and_then(|_| f.seek(SeekFrom::Start(0)).map(drop))
                    .map_err(|e| fail(format!("cannot read the header: {e}")))?;
            }
            _ => {}
        }
        (
            len,
            &first[..8] == SDK_MAGIC && read_u32(&first, 8) == VERSION2,
        )
    };
    let mut loaded = match source {
        Source::File(f) if is_v2 => load_v2(
            BufReader::with_capacity(1 << 20, f),
            len,
            &shown,
            None,
            None,
        )?,
        Source::File(f) => load_v1(f, len, &shown)?,
        Source::Bytes(b) if is_v2 => load_v2(std::io::Cursor::new(b), len, &shown, None, Some(b))?,
        Source::Bytes(b) => load_v1(std::io::Cursor::new(b), len, &shown)?,
        Source::Mapped(m) if is_v2 => {
            // SAFETY of the borrow: `m` moves into the result only after
            // the reader over it is done.
            let bytes: &[u8] = &m;
            let bytes: &[u8] = unsafe { std::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
            load_v2(std::io::Cursor::new(bytes), len, &shown, Some(m), None)?
        }
        Source::Mapped(_) => {
            return Err(fail(
                "cannot be mapped: it is in the version 1 layout (the crate's, rows \
                 interleaved with ids), not the 64-byte aligned version 2; load it without \
                 mmap=True, or save it with save(path, crate_format=False)"
                    .into(),
            ))
        }
    };
    if let Some(want) = expected {
        let kind = loaded.params.kind;
        if want != kind {
            let what = if shown == "<bytes>" {
                "these bytes hold"
            } else {
                "this file holds"
            };
            let how = if shown == "<bytes>" {
                "from_bytes"
            } else {
                "load"
            };
            return Err(fail(format!(
                "{what} a {}, not a {}; load it with {}.{how}",
                kind.class_name(),
                want.class_name(),
                kind.class_name()
            )));
        }
    }
    loaded.source = shown;
    Ok(loaded)
}

fn load_v1<R: Read + Seek>(file: R, file_len: u64, shown: &str) -> Result<Loaded> {
    let fail = |msg: String| Error::persist(shown, msg);
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
            "unsupported format version: expected {VERSION} or {VERSION2}, got {version}"
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
    crate::bigbuf::advise_huge_pages(&vectors);
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
            spill: false,
        },
        ids,
        vectors: Backing::Owned(Arc::new(vectors)),
        checked: trailer.is_some(),
        saved: Saved {
            ivf,
            lists: None,
            codes: None,
        },
        source: String::new(),
        map: None,
    })
}

/// Reads a version 2 file (see the module docs) after its first 12 bytes
/// said so. `map`: the vectors and the IVF list codes in the scan layout
/// stay in this map (they are read for the CRC only) instead of being
/// copied.
/// `whole`: the file's bytes when `r` reads from memory, so compressed
/// vectors are decoded in place, not copied.
fn load_v2<R: Read + Seek>(
    mut r: R,
    len: u64,
    shown: &str,
    map: Option<Arc<memmap2::Mmap>>,
    whole: Option<&[u8]>,
) -> Result<Loaded> {
    let fail = |msg: String| Error::persist(shown, msg);
    let io = |e: std::io::Error| Error::persist(shown, format!("cannot read: {e}"));
    if len < HEADER2_LEN + TRAILER_LEN {
        return Err(fail(format!(
            "truncated: {len} bytes, shorter than a version 2 header and trailer ({} bytes)",
            HEADER2_LEN + TRAILER_LEN
        )));
    }
    let mut crc = crc32fast::Hasher::new();
    let mut h = [0u8; HEADER2_LEN as usize];
    r.read_exact(&mut h).map_err(io)?;
    crc.update(&h);
    let dim = read_u32(&h, 12) as u64;
    let seed = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
    let rerank_factor = read_u32(&h, 24) as usize;
    let n = read_u32(&h, 28) as u64;
    let kind =
        kind_from_code(h[32]).ok_or_else(|| fail(format!("unknown index kind code {}", h[32])))?;
    let rotation = match h[33] {
        0 => Rotation::Haar,
        1 => Rotation::Hadamard,
        other => return Err(fail(format!("unknown rotation code {other}"))),
    };
    let metric = Metric::from_code(h[34]).ok_or_else(|| {
        fail(format!(
            "unknown metric code {}: expected 0 (l2), 1 (ip) or 2 (cosine)",
            h[34]
        ))
    })?;
    let flags = h[35];
    let (nlist, nprobe, lists, words, blocks) = (
        read_u32(&h, 36) as usize,
        read_u32(&h, 40) as usize,
        read_u32(&h, 44) as u64,
        read_u32(&h, 48) as u64,
        read_u32(&h, 52) as u64,
    );
    let packed = u64::from_le_bytes(h[56..64].try_into().expect("8 bytes"));
    let vzip = flags & FLAG2_VZIP != 0;
    if flags & !FLAGS2_KNOWN != 0 || (!vzip && packed != 0) {
        return Err(fail("corrupt header: reserved bits are set".into()));
    }
    if vzip && map.is_some() {
        return Err(fail(
            "cannot be mapped: it was saved with compress=True (its vectors are compressed, \
             not stored as they are); load it without mmap=True, or save it with \
             save(path, crate_format=False) to map it"
                .into(),
        ));
    }
    if dim == 0 || dim > ruvector_py_core::validate::MAX_DIM as u64 {
        return Err(fail(format!(
            "corrupt header: dim must be between 1 and {}, got {dim}",
            ruvector_py_core::validate::MAX_DIM
        )));
    }
    if n > MAX_VECTORS as u64 {
        return Err(fail(format!(
            "corrupt header: n must be at most {MAX_VECTORS}, got {n}"
        )));
    }
    let params = Params {
        kind,
        dim: dim as usize,
        seed,
        rerank_factor,
        rotation,
        nlist,
        nprobe,
        metric,
        spill: flags & FLAG2_SPILL != 0,
    };
    params
        .check()
        .map_err(|e| fail(format!("corrupt header: {e}")))?;
    let keeps = params.keeps_vectors();
    let has_lists = flags & FLAG2_LISTS != 0;
    let rotated = match rotation {
        Rotation::Hadamard => dim.next_power_of_two(),
        Rotation::Haar => dim,
    };
    let want_words = if !keeps {
        dim.div_ceil(64) * u64::from(n > 0)
    } else if has_lists {
        rotated.div_ceil(64)
    } else {
        0
    };
    let blocked = flags & FLAG2_BLOCKED != 0;
    let lists_ok = if kind == Kind::Ivf {
        lists <= n.min(crate::ivf::MAX_NLIST as u64)
            && (lists == 0) == (n == 0)
            && (!has_lists || lists > 0)
    } else {
        lists == 0 && !has_lists
    };
    // Every block holds a row, every list with rows at least one block.
    // A row is in two lists at most (spilling), which must be saved in
    // the scan layout.
    let spill = flags & FLAG2_SPILL != 0;
    let blocks_ok = if blocked {
        has_lists && blocks <= n * (1 + u64::from(spill)) && blocks >= lists.min(1)
    } else {
        blocks == 0 && !(spill && has_lists && lists >= 2)
    };
    // The compressed section: its head, one table row per row of vectors
    // at most, and no plane longer than stored as it is.
    let packed_max = crate::vzip::HEAD_LEN + 16 * n + 4 * n * dim;
    if ((flags & FLAG2_VECTORS != 0) != keeps)
        || ((flags & FLAG2_CODES != 0) == keeps)
        || (vzip && !keeps)
        || packed > packed_max
        || words != want_words
        || !lists_ok
        || !blocks_ok
    {
        return Err(fail(format!(
            "corrupt header: flags {flags}, {lists} lists, {words} code words and {blocks} \
             code blocks do not fit a {} of {n} vectors",
            kind.class_name()
        )));
    }
    let layout = Layout2 {
        n,
        dim,
        lists,
        words,
        flags,
        blocks,
        block_bytes: block_bytes_for(rotated as usize) as u64,
        packed,
    };
    // Sizes are bounded (n ≤ 1e8, dim ≤ 8192, lists ≤ 65536): no overflow.
    if len != layout.total() {
        let diff = if len > layout.total() {
            format!("{} trailing bytes", len - layout.total())
        } else {
            format!("{} bytes missing", layout.total() - len)
        };
        return Err(fail(format!(
            "file is {len} bytes, but a version 2 {} with n={n} and dim={dim} is exactly {} bytes ({diff}): truncated or corrupt",
            kind.class_name(),
            layout.total()
        )));
    }
    let sections = layout.sections();
    let mut at = HEADER2_LEN;
    let pad = |r: &mut R, crc: &mut crc32fast::Hasher, to: u64, at: &mut u64| -> Result<()> {
        let mut z = [0u8; 64];
        let gap = &mut z[..(to - *at) as usize];
        r.read_exact(gap).map_err(io)?;
        crc.update(gap);
        if gap.iter().any(|&b| b != 0) {
            return Err(fail("corrupt file: padding is not zero".into()));
        }
        *at = to;
        Ok(())
    };
    let n_us = n as usize;
    // Vectors: read once into the buffer the index keeps, or (mapped)
    // only through a small buffer for the CRC.
    let (vstart, vlen) = sections[0];
    pad(&mut r, &mut crc, vstart, &mut at)?;
    let mut owned: Vec<f32> = Vec::new();
    // Compressed vectors: read (the size matched the header), decoded
    // once the CRC has checked them.
    let mut packed_raw: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(&[]);
    if let (true, Some(whole)) = (vzip, whole) {
        // In place (the size was checked against the header).
        let section = &whole[vstart as usize..(vstart + vlen) as usize];
        crc.update(section);
        r.seek(SeekFrom::Current(vlen as i64)).map_err(io)?;
        packed_raw = std::borrow::Cow::Borrowed(section);
    } else if vzip {
        let mut owned_raw = vec![0u8; vlen as usize];
        for chunk in owned_raw.chunks_mut(1 << 24) {
            r.read_exact(chunk).map_err(io)?;
            crc.update(chunk);
        }
        packed_raw = std::borrow::Cow::Owned(owned_raw);
    } else if let Some(m) = map.as_ref().filter(|_| cfg!(target_endian = "little")) {
        // Checked in place (the size was checked against the header).
        crc.update(&m[vstart as usize..(vstart + vlen) as usize]);
        r.seek(SeekFrom::Current(vlen as i64)).map_err(io)?;
    } else {
        owned = vec![0f32; (vlen / 4) as usize];
        crate::bigbuf::advise_huge_pages(&owned);
        {
            // SAFETY: the f32 buffer viewed as its bytes (any bytes are a
            // valid f32; u8 has no alignment).
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(owned.as_mut_ptr() as *mut u8, vlen as usize)
            };
            for chunk in bytes.chunks_mut(1 << 24) {
                r.read_exact(chunk).map_err(io)?;
                crc.update(chunk);
            }
        }
        if cfg!(target_endian = "big") {
            for x in owned.iter_mut() {
                *x = f32::from_bits(u32::from_le(x.to_bits()));
            }
        }
    }
    at = vstart + vlen;
    let read_section =
        |r: &mut R, crc: &mut crc32fast::Hasher, i: usize, at: &mut u64| -> Result<Vec<u8>> {
            let (start, slen) = sections[i];
            pad(r, crc, start, at)?;
            let mut b = vec![0u8; slen as usize];
            r.read_exact(&mut b).map_err(io)?;
            crc.update(&b);
            *at = start + slen;
            Ok(b)
        };
    let ids_raw = read_section(&mut r, &mut crc, 1, &mut at)?;
    let cent_raw = read_section(&mut r, &mut crc, 2, &mut at)?;
    let labels_raw = read_section(&mut r, &mut crc, 3, &mut at)?;
    let codes_raw = read_section(&mut r, &mut crc, 4, &mut at)?;
    let norms_raw = read_section(&mut r, &mut crc, 5, &mut at)?;
    // List codes in the scan layout stay in the map, like the vectors.
    let mut mapped_blocks = None;
    let list_bits_raw = match map.as_ref().filter(|_| blocked) {
        Some(m) => {
            let (start, slen) = sections[6];
            pad(&mut r, &mut crc, start, &mut at)?;
            crc.update(&m[start as usize..(start + slen) as usize]);
            r.seek(SeekFrom::Current(slen as i64)).map_err(io)?;
            at = start + slen;
            mapped_blocks = MappedBytes::new(Arc::clone(m), start as usize, slen as usize);
            Vec::new()
        }
        None => read_section(&mut r, &mut crc, 6, &mut at)?,
    };
    let list_terms_raw = read_section(&mut r, &mut crc, 7, &mut at)?;
    let radii_raw = read_section(&mut r, &mut crc, 8, &mut at)?;
    let spill_raw = read_section(&mut r, &mut crc, 9, &mut at)?;
    let spill_terms_raw = read_section(&mut r, &mut crc, 10, &mut at)?;
    pad(&mut r, &mut crc, layout.trailer_at(), &mut at)?;
    let mut t = [0u8; TRAILER_LEN as usize];
    r.read_exact(&mut t).map_err(io)?;
    if &t[8..16] != TRAILER2_MAGIC || read_u32(&t, 4) != 0 {
        return Err(fail("corrupt file: bad trailer".into()));
    }
    let (stored, actual) = (read_u32(&t, 0), crc.finalize());
    if stored != actual {
        return Err(fail(format!(
            "checksum mismatch: the file says CRC-32 {stored:08x}, its bytes give {actual:08x}; the file is corrupt"
        )));
    }
    if vzip {
        // Straight into the buffer the index keeps, blocks in parallel.
        let values = n_us * dim as usize;
        owned = vec![0f32; values];
        crate::bigbuf::advise_huge_pages(&owned);
        let pool = ruvector_py_core::parallel::pool().ok();
        crate::vzip::decode(&packed_raw, n_us, dim as usize, &mut owned, pool.as_deref())
            .map_err(|e| fail(format!("corrupt compressed vectors: {e}")))?;
        drop(packed_raw);
    }
    let u32s = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect()
    };
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
            .collect()
    };
    let u64s = |b: &[u8]| -> Vec<u64> {
        b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8")))
            .collect()
    };
    let ids = if flags & FLAG2_IDS != 0 {
        u64s(&ids_raw)
    } else {
        (0..n).collect()
    };
    let release = map
        .clone()
        .map(|m| (m, vstart as usize..(vstart + vlen) as usize));
    let vectors = match map {
        Some(m) if cfg!(target_endian = "little") => {
            let mapped = MappedF32::new(m, vstart as usize, (vlen / 4) as usize)
                .ok_or_else(|| fail("cannot map the vectors: misaligned".into()))?;
            Backing::Mapped(Arc::new(mapped))
        }
        _ => Backing::Owned(Arc::new(owned)),
    };
    let ivf = (kind == Kind::Ivf && n > 0).then(|| (f32s(&cent_raw), u32s(&labels_raw)));
    let ivf = if kind == Kind::Ivf && ivf.is_none() {
        Some((Vec::new(), Vec::new()))
    } else {
        ivf
    };
    let codes = (!keeps).then(|| (u64s(&codes_raw), f32s(&norms_raw)));
    let lists = has_lists.then(|| {
        let mut offsets = f32s(&list_terms_raw);
        let slopes = offsets.split_off(n_us);
        let mut spill_offsets = f32s(&spill_terms_raw);
        let spill_slopes = spill_offsets.split_off(spill_offsets.len() / 2);
        crate::ivf::SavedLists {
            spill: u32s(&spill_raw),
            spill_offsets,
            spill_slopes,
            codes: match mapped_blocks.take() {
                Some(m) => SavedCodes::Blocked(CodeBytes::Mapped(m)),
                None if blocked => SavedCodes::Blocked(CodeBytes::Owned(list_bits_raw)),
                None => SavedCodes::Rows(u64s(&list_bits_raw)),
            },
            offsets,
            slopes,
            radii: f32s(&radii_raw),
        }
    });
    debug_assert_eq!(ids.len(), n_us);
    Ok(Loaded {
        params,
        ids,
        vectors,
        checked: true,
        saved: Saved { ivf, lists, codes },
        source: String::new(),
        map: release,
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

/// What [`rebuild`] needs to make an independent copy of `engine` (its
/// vectors copied into owned memory, its lists and codes cloned): the
/// engine behind `copy.copy` / `copy.deepcopy`, without a byte buffer.
pub fn snapshot(engine: &Engine) -> Loaded {
    let store = engine.store();
    let keeps = store.keeps_vectors();
    Loaded {
        params: *engine.params(),
        ids: store.ids().into_owned(),
        vectors: Backing::Owned(Arc::new(if keeps {
            crate::bigbuf::copy_large(store.vectors())
        } else {
            Vec::new()
        })),
        checked: true,
        saved: Saved {
            ivf: engine
                .ivf()
                .map(|ivf| (ivf.centroids().to_vec(), ivf.labels().to_vec())),
            lists: engine
                .ivf()
                .filter(|ivf| ivf.nlist() > 0)
                .map(|ivf| ivf.saved_lists()),
            codes: engine
                .symmetric_codes()
                .filter(|_| !keeps)
                .map(|(p, n)| (p.to_vec(), n.to_vec())),
        },
        source: "<copy>".into(),
        map: None,
    }
}

/// Builds the engine from a loaded file, validating every value like `add`;
/// `cancel` is checked between chunks of the work. The vectors become the
/// index's buffer as they are (no copy; mapped ones stay mapped).
pub fn rebuild(loaded: Loaded, cancel: &Cancel) -> Result<Engine> {
    rebuild_with(loaded, None, cancel)
}

/// [`rebuild`] of an IVF index loaded by [`load_mapped_with_file`], made
/// lean (see [`crate::lean`]): an 8-bit copy of the vectors in memory, the
/// float32 rows read from `file` when a search needs them. The file's
/// vectors must be mapped (version 2, not compressed).
pub fn rebuild_lean(loaded: Loaded, file: File, cancel: &Cancel) -> Result<Engine> {
    rebuild_with(loaded, Some(file), cancel)
}

fn rebuild_with(loaded: Loaded, lean: Option<File>, cancel: &Cancel) -> Result<Engine> {
    let shown = loaded.source;
    let map = loaded.map;
    let mut engine =
        Engine::new(loaded.params).map_err(|e| Error::persist(&shown, e.to_string()))?;
    engine
        .restore_saved(&loaded.ids, loaded.vectors, loaded.saved, cancel)
        .map_err(|e| match e {
            Error::Interrupted => e,
            e => Error::persist(&shown, format!("invalid contents: {e}")),
        })?;
    if let Some(file) = lean {
        // Built from the mapped vectors while the checks' pages are still
        // in, before they are released.
        let at = match &map {
            Some((_, vectors)) if engine.is_mapped() => vectors.start as u64,
            _ => {
                return Err(Error::persist(
                    &shown,
                    "lean=True needs vectors it can map: a version 2 file saved without \
                     compress=True (save the index again with save(path))",
                ))
            }
        };
        engine.make_lean(Arc::new(file), at, &shown, cancel)?;
    }
    if let Some((map, vectors)) = map {
        release_checked_pages(&map, vectors);
    }
    Ok(engine)
}

/// After a mapped file passed every check: drops the pages the checks read
/// from this process (`MADV_DONTNEED`; a read-only file map loses nothing,
/// the pages stay in the shared page cache and a later read maps them
/// again), so the process holds only what searches touch; and marks the
/// vectors as read at random (`MADV_RANDOM`: a search reads a few reranked
/// rows, so no read-ahead around them when they are not cached). Advice
/// only: a failure changes nothing but memory use.
fn release_checked_pages(map: &memmap2::Mmap, vectors: std::ops::Range<usize>) {
    #[cfg(unix)]
    {
        // SAFETY: the map is read-only and file-backed: dropping its pages
        // discards nothing (no private changes exist), and every slice into
        // it reads the same bytes again from the file.
        let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        if !vectors.is_empty() {
            let _ = map.advise_range(memmap2::Advice::Random, vectors.start, vectors.len());
        }
    }
    #[cfg(not(unix))]
    let _ = (map, vectors);
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
        engine_spill(kind, rotation, ids, dim, kind == Kind::Ivf)
    }

    fn engine_spill(
        kind: Kind,
        rotation: Rotation,
        ids: &[u64],
        dim: usize,
        spill: bool,
    ) -> Engine {
        let mut e = Engine::new(Params {
            kind,
            dim,
            seed: 9,
            rerank_factor: 3,
            rotation,
            nlist: 0,
            nprobe: 0,
            metric: Metric::L2,
            spill,
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
            let back = rebuild(load(&path, Some(kind)).unwrap(), &Cancel::new()).unwrap();
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
        let back = rebuild(load(&path, None).unwrap(), &Cancel::new()).unwrap();
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
        let back = rebuild(load(&path, Some(Kind::Ivf)).unwrap(), &Cancel::new()).unwrap();
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
            let back = rebuild(load(&path, None).unwrap(), &Cancel::new()).unwrap();
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
        let e = rebuild(load(&path, None).unwrap(), &Cancel::new()).unwrap();
        assert_eq!((e.len(), e.params().dim), (0, 2048));
        assert!(
            e.memory_bytes() < 1 << 20,
            "a rotation was built: {} bytes",
            e.memory_bytes()
        );
        // The same for an empty IVF index restored from a file.
        let ivf = engine_dim(Kind::Ivf, Rotation::Haar, &[], 2048);
        save(&ivf, &path).unwrap();
        let back = rebuild(load(&path, None).unwrap(), &Cancel::new()).unwrap();
        assert!(back.memory_bytes() < 1 << 20);
    }

    #[test]
    fn a_cancelled_rebuild_is_an_interruption_not_a_corrupt_file() {
        let path = tmp("cancel");
        let ids: Vec<u64> = (0..2000).collect();
        save(&engine(Kind::Plus, Rotation::Haar, &ids), &path).unwrap();
        let cancel = Cancel::new();
        cancel.cancel();
        let e = rebuild(load(&path, None).unwrap(), &cancel).err();
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

    fn engine_full(
        kind: Kind,
        rotation: Rotation,
        rf: usize,
        metric: Metric,
        ids: &[u64],
    ) -> Engine {
        let dim = 5;
        let mut e = Engine::new(Params {
            kind,
            dim,
            seed: 3,
            rerank_factor: rf,
            rotation,
            nlist: 0,
            nprobe: 0,
            metric,
            spill: kind == Kind::Ivf && metric != Metric::Ip,
        })
        .unwrap();
        let data: Vec<f32> = (0..ids.len() * dim)
            .map(|i| (i as f32 * 0.71).cos())
            .collect();
        e.add(ids, &data).unwrap();
        e
    }

    #[test]
    fn version_2_round_trips_every_kind_metric_and_source() {
        for (kind, rotation, rf) in [
            (Kind::Flat, Rotation::Haar, 1),
            (Kind::Rabitq, Rotation::Hadamard, 1),
            (Kind::Plus, Rotation::Haar, 4),
            (Kind::Asym, Rotation::Haar, 1),
            (Kind::Asym, Rotation::Haar, 3),
            (Kind::Ivf, Rotation::Hadamard, 5),
        ] {
            for metric in [Metric::L2, Metric::Cosine] {
                for ids in [vec![], vec![0u64, 1, 2, 3], vec![9, 4, 1 << 20]] {
                    let e = engine_full(kind, rotation, rf, metric, &ids);
                    let bytes = to_bytes(&e);
                    assert_eq!(bytes.len() as u64, encoded_len(&e));
                    assert_eq!(&bytes[..8], SDK_MAGIC);
                    let back =
                        rebuild(from_bytes(&bytes, Some(kind)).unwrap(), &Cancel::new()).unwrap();
                    assert!(back.same_as(&e), "{kind:?} {metric:?} {ids:?}");
                    assert_eq!(back.params().metric, metric);
                    let path = tmp(&format!("v2-{kind:?}-{rf}-{metric:?}-{}", ids.len()));
                    save_as(&e, &path, false, false).unwrap();
                    assert_eq!(fs::read(&path).unwrap(), bytes);
                    for loaded in [load(&path, Some(kind)), load_mapped(&path, Some(kind))] {
                        let back = rebuild(loaded.unwrap(), &Cancel::new()).unwrap();
                        assert!(back.same_as(&e));
                        if !ids.is_empty() {
                            let q = [0.3f32, -0.1, 0.2, 0.9, 0.0];
                            let opts = crate::engine::SearchOpts::default();
                            assert_eq!(
                                back.search(&q, 2, opts).unwrap(),
                                e.search(&q, 2, opts).unwrap()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn compressed_round_trips_every_kind_and_refuses_a_map() {
        for (kind, rotation, rf) in [
            (Kind::Flat, Rotation::Haar, 1),
            (Kind::Rabitq, Rotation::Hadamard, 1),
            (Kind::Plus, Rotation::Haar, 4),
            (Kind::Asym, Rotation::Haar, 3),
            (Kind::Ivf, Rotation::Hadamard, 5),
        ] {
            for ids in [vec![], vec![0u64], vec![9, 4, 1 << 20]] {
                let e = engine_full(kind, rotation, rf, Metric::Cosine, &ids);
                let path = tmp(&format!("vzip-{kind:?}-{}", ids.len()));
                // crate_format=True is overridden: compressed is version 2.
                save_as(&e, &path, true, true).unwrap();
                let bytes = fs::read(&path).unwrap();
                assert_eq!(&bytes[..8], SDK_MAGIC);
                let keeps = e.store().keeps_vectors();
                assert_eq!(bytes[35] & FLAG2_VZIP != 0, keeps, "{kind:?}");
                if !keeps {
                    // Nothing to compress: the plain layout, byte for byte.
                    assert_eq!(bytes, to_bytes(&e));
                }
                for loaded in [load(&path, Some(kind)), from_bytes(&bytes, Some(kind))] {
                    let back = rebuild(loaded.unwrap(), &Cancel::new()).unwrap();
                    assert!(back.same_as(&e), "{kind:?} {ids:?}");
                    if !ids.is_empty() {
                        let q = [0.3f32, -0.1, 0.2, 0.9, 0.0];
                        let opts = crate::engine::SearchOpts::default();
                        assert_eq!(
                            back.search(&q, 2, opts).unwrap(),
                            e.search(&q, 2, opts).unwrap()
                        );
                    }
                }
                let mapped = load_mapped(&path, Some(kind));
                if keeps {
                    let msg = mapped
                        .err()
                        .expect("a compressed file is not mapped")
                        .to_string();
                    assert!(
                        msg.contains("saved with compress=True")
                            && msg.contains("without mmap=True"),
                        "{msg}"
                    );
                } else {
                    assert!(mapped.unwrap().checked);
                }
            }
        }
    }

    #[test]
    fn compressed_files_shrink_embeddings_and_keep_every_bit() {
        // Unit-norm rows (the sign/exponent plane compresses), plus NaN
        // payloads, -0.0 and denormals kept bit for bit by a Flat index.
        let dim = 64;
        let n = 3000;
        let mut e = Engine::new(Params {
            kind: Kind::Flat,
            dim,
            seed: 1,
            rerank_factor: 1,
            rotation: Rotation::Haar,
            nlist: 0,
            nprobe: 0,
            metric: Metric::L2,
            spill: false,
        })
        .unwrap();
        let mut data: Vec<f32> = (0..n * dim)
            .map(|i| ((i as f32 * 0.618).sin() * 0.2) / (dim as f32).sqrt())
            .collect();
        data[3] = -0.0;
        data[4] = f32::from_bits(7);
        data[5] = f32::from_bits(0x8000_0001);
        let ids: Vec<u64> = (0..n as u64).collect();
        e.add(&ids, &data).unwrap();
        let path = tmp("vzip-shrink");
        save_as(&e, &path, false, true).unwrap();
        let packed = fs::metadata(&path).unwrap().len();
        let plain = encoded_len(&e);
        assert!(packed * 100 < plain * 90, "{packed} vs {plain}");
        let back = rebuild(load(&path, None).unwrap(), &Cancel::new()).unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(back.store().vectors()), bits(&data));
    }

    /// Every truncation and many single-byte changes of a compressed file
    /// are refused with an error (never a panic, never a different index);
    /// also with the CRC made right again, so that the section's own
    /// checks (lengths, exact streams) are what refuses.
    #[test]
    fn damaged_compressed_files_are_refused() {
        let e = churned_ivf(Metric::Cosine, Rotation::Haar);
        let path = tmp("vzip-damaged");
        save_as(&e, &path, false, true).unwrap();
        let good = fs::read(&path).unwrap();
        assert!(from_bytes(&good, None).is_ok());
        for cut in (0..good.len()).step_by(7).chain([good.len() - 1]) {
            assert!(from_bytes(&good[..cut], None).is_err(), "cut {cut}");
        }
        let mut s = 0x9E37_79B9_u64;
        let mut refused_resealed = 0;
        for i in 0..good.len() - TRAILER_LEN as usize {
            if i % 3 != 0 && i > 4096 {
                continue;
            }
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let mut bad = good.clone();
            bad[i] ^= (s as u8) | 1;
            assert!(from_bytes(&bad, None).is_err(), "byte {i}");
            // With a matching CRC, a change in the header or the section
            // is refused or loads some index, but never panics.
            match from_bytes(&resealed(bad), None) {
                Err(_) => refused_resealed += 1,
                Ok(l) => {
                    let _ = rebuild(l, &Cancel::new());
                }
            }
        }
        assert!(refused_resealed > 100, "{refused_resealed}");
    }

    /// `bytes` (a version 2 file) with its CRC made right again.
    fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
        let body = bytes.len() - TRAILER_LEN as usize;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..body + 4].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    fn churned_ivf(metric: Metric, rotation: Rotation) -> Engine {
        churned_ivf_with(metric, rotation, false)
    }

    fn churned_ivf_with(metric: Metric, rotation: Rotation, spill: bool) -> Engine {
        let (dim, n) = (24, 600);
        let mut e = Engine::new(Params {
            kind: Kind::Ivf,
            dim,
            seed: 5,
            rerank_factor: 4,
            rotation,
            nlist: 12,
            nprobe: 3,
            metric,
            spill,
        })
        .unwrap();
        let data: Vec<f32> = (0..n * dim)
            .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * (1.0 + (i / dim % 5) as f32))
            .collect();
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
        e.add(&ids, &data).unwrap();
        let gone: Vec<u64> = ids.iter().copied().step_by(7).collect();
        assert_eq!(e.remove(&gone), gone.len());
        e.upsert(&ids[1..4], &data[..3 * dim]).unwrap();
        e
    }

    #[test]
    fn ivf_lists_load_as_saved_without_encoding_even_after_churn() {
        for (metric, rotation) in [
            (Metric::L2, Rotation::Haar),
            (Metric::Ip, Rotation::Hadamard),
            (Metric::Cosine, Rotation::Haar),
        ] {
            let e = churned_ivf(metric, rotation);
            let bytes = to_bytes(&e);
            let path = tmp(&format!("lists-{metric:?}"));
            save(&e, &path).unwrap();
            for loaded in [
                from_bytes(&bytes, Some(Kind::Ivf)),
                load(&path, Some(Kind::Ivf)),
                load_mapped(&path, Some(Kind::Ivf)),
            ] {
                let loaded = loaded.unwrap();
                assert_eq!(
                    loaded.saved.lists.as_ref(),
                    Some(&e.ivf().unwrap().saved_lists()),
                    "{metric:?}: the file keeps every list as it was"
                );
                let back = rebuild(loaded, &Cancel::new()).unwrap();
                assert!(back.same_as(&e), "{metric:?}");
                let opts = crate::engine::SearchOpts::default();
                for q in [[0.5f32; 24], [-0.25f32; 24]] {
                    assert_eq!(
                        back.search(&q, 5, opts).unwrap(),
                        e.search(&q, 5, opts).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn ivf_files_without_lists_are_encoded_again_on_load() {
        // What version 2 files written before the lists were kept look like:
        // the same bytes up to the norms section, flag and word count clear.
        let e = churned_ivf(Metric::L2, Rotation::Haar);
        let fresh = {
            let mut f = Engine::new(*e.params()).unwrap();
            let (ids, data) = (e.store().ids().into_owned(), e.store().vectors().to_vec());
            f.add(&ids, &data).unwrap();
            f
        };
        let bytes = to_bytes(&fresh);
        let mut layout = Layout2::of(&fresh, None);
        layout.flags &= !(FLAG2_LISTS | FLAG2_BLOCKED);
        layout.words = 0;
        layout.blocks = 0;
        let mut old = bytes[..layout.trailer_at() as usize].to_vec();
        old[35] &= !(FLAG2_LISTS | FLAG2_BLOCKED);
        old[48..56].copy_from_slice(&0u64.to_le_bytes());
        old.extend_from_slice(&[0; 4]);
        old.extend_from_slice(&0u32.to_le_bytes());
        old.extend_from_slice(TRAILER2_MAGIC);
        let old = resealed(old);
        let loaded = from_bytes(&old, Some(Kind::Ivf)).unwrap();
        assert!(loaded.saved.lists.is_none());
        let back = rebuild(loaded, &Cancel::new()).unwrap();
        assert!(back.same_as(&fresh), "encoding again gives the same lists");
    }

    /// The layout of files written before the lists' codes were saved in
    /// the scan layout: codes in row order, no block count.
    fn rows_layout_bytes(e: &Engine) -> Vec<u8> {
        write_v2_with(e, Vec::new(), Layout2::of_with(e, false, None), None).unwrap()
    }

    #[test]
    fn forged_list_terms_and_codes_are_refused_before_use() {
        let e = churned_ivf(Metric::L2, Rotation::Haar);
        let bytes = rows_layout_bytes(&e);
        let layout = Layout2::of_with(&e, false, None);
        let sections = layout.sections();
        let [(bits_at, _), (terms_at, _), (radii_at, _)] = [sections[6], sections[7], sections[8]];
        let forge = |at: u64, value: &[u8]| {
            let mut b = bytes.clone();
            b[at as usize..at as usize + value.len()].copy_from_slice(value);
            resealed(b)
        };
        // dim 24 with the Haar rotation: one word per code, bits 24.. unused.
        for (bad, needle) in [
            (
                forge(bits_at, &(1u64 << 40).to_le_bytes()),
                "past the rotated length",
            ),
            (forge(terms_at, &f32::NAN.to_le_bytes()), "finite"),
            (
                forge(terms_at + 4 * layout.n, &(-1.0f32).to_le_bytes()),
                "not negative",
            ),
            (forge(radii_at, &f32::INFINITY.to_le_bytes()), "finite"),
        ] {
            let loaded = from_bytes(&bad, Some(Kind::Ivf)).unwrap();
            let err = rebuild(loaded, &Cancel::new()).err().expect("refused");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn spilled_lists_load_as_saved_and_forged_spill_entries_are_refused() {
        let e = churned_ivf_with(Metric::L2, Rotation::Hadamard, true);
        let ivf = e.ivf().unwrap();
        assert_eq!(ivf.spill_labels().len(), e.len());
        let bytes = to_bytes(&e);
        assert_eq!(bytes[35] & FLAG2_SPILL, FLAG2_SPILL);
        let back = rebuild(from_bytes(&bytes, Some(Kind::Ivf)).unwrap(), &Cancel::new()).unwrap();
        assert!(back.same_as(&e));
        assert!(back.params().spill);
        let layout = Layout2::of(&e, None);
        let sections = layout.sections();
        let [(spill_at, spill_len), (terms_at, terms_len)] = [sections[9], sections[10]];
        assert_eq!((spill_len, terms_len), (4 * layout.n, 8 * layout.n));
        let forge = |at: u64, value: &[u8]| {
            let mut b = bytes.clone();
            b[at as usize..at as usize + value.len()].copy_from_slice(value);
            resealed(b)
        };
        let own = ivf.labels()[0];
        for (bad, needle) in [
            (forge(spill_at, &own.to_le_bytes()), "spills to list"),
            (forge(spill_at + 4, &12u32.to_le_bytes()), "of the 12 lists"),
            (forge(terms_at, &f32::NAN.to_le_bytes()), "finite"),
            (
                forge(terms_at + 4 * layout.n, &(-1.0f32).to_le_bytes()),
                "not negative",
            ),
        ] {
            let loaded = from_bytes(&bad, Some(Kind::Ivf)).unwrap();
            let err = rebuild(loaded, &Cancel::new()).err().expect("refused");
            assert!(err.to_string().contains(needle), "{err}");
        }
        // The flag on a kind without lists is a corrupt header.
        let flat = engine_dim(Kind::Plus, Rotation::Haar, &[1, 2], 4);
        let mut b = to_bytes(&flat);
        b[35] |= FLAG2_SPILL;
        let err = from_bytes(&resealed(b), Some(Kind::Plus))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("spill applies to IvfRabitqIndex"), "{err}");
    }

    #[test]
    fn forged_padding_of_the_scan_layout_is_refused_before_use() {
        // dim 24, Haar: 6 groups of 4 bits used of 8, 128 bytes a block.
        let e = churned_ivf(Metric::L2, Rotation::Haar);
        let bytes = to_bytes(&e);
        let layout = Layout2::of(&e, None);
        assert_eq!(layout.block_bytes, 128);
        let (blocks_at, blocks_len) = layout.sections()[6];
        assert_eq!(blocks_len, layout.blocks * 128);
        let sizes = e.ivf().unwrap().list_sizes();
        assert!(
            sizes.iter().any(|s| !s.is_multiple_of(32)),
            "a list ends in a partial block"
        );
        let forge = |at: u64, bit: u8| {
            let mut b = bytes.clone();
            b[at as usize] |= bit;
            resealed(b)
        };
        // A padding group of the first block; the unused slot 31 (high
        // nibble of byte 15) of group 0 in the first list's last block.
        let first_last = (sizes[0].div_ceil(32) as u64 - 1) * 128;
        let mut bad = vec![forge(blocks_at + 6 * 16, 1)];
        if !sizes[0].is_multiple_of(32) {
            bad.push(forge(blocks_at + first_last + 15, 0x10));
        }
        for bad in bad {
            for loaded in [from_bytes(&bad, Some(Kind::Ivf)), {
                let path = tmp("forged-padding");
                fs::write(&path, &bad).unwrap();
                load_mapped(&path, Some(Kind::Ivf))
            }] {
                let err = rebuild(loaded.unwrap(), &Cancel::new())
                    .err()
                    .expect("refused");
                assert!(err.to_string().contains("past the rotated length"), "{err}");
            }
        }
        // A block count other than the lists' is refused (the file size no
        // longer matches the header).
        let mut bad = bytes.clone();
        let one_more = (layout.blocks - 1) as u32;
        bad[52..56].copy_from_slice(&one_more.to_le_bytes());
        assert!(from_bytes(&resealed(bad), Some(Kind::Ivf)).is_err());
    }

    #[test]
    fn mapped_ivf_maps_vectors_and_list_codes_and_copies_on_change() {
        for rotation in [Rotation::Haar, Rotation::Hadamard] {
            let e = churned_ivf(Metric::L2, rotation);
            let path = tmp(&format!("mapped-ivf-{rotation:?}"));
            save(&e, &path).unwrap();
            let mut back =
                rebuild(load_mapped(&path, Some(Kind::Ivf)).unwrap(), &Cancel::new()).unwrap();
            assert!(back.is_mapped() && back.ivf().unwrap().is_mapped());
            assert!(back.same_as(&e));
            let opts = crate::engine::SearchOpts::default();
            let queries: Vec<[f32; 24]> = (0..6)
                .map(|i| std::array::from_fn(|j| ((i * 24 + j) as f32 * 0.7).cos()))
                .collect();
            for q in &queries {
                assert_eq!(
                    back.search(q, 7, opts).unwrap(),
                    e.search(q, 7, opts).unwrap()
                );
            }
            // A change copies first; the file stays as it was.
            let before = fs::read(&path).unwrap();
            let mut plain = rebuild(load(&path, Some(Kind::Ivf)).unwrap(), &Cancel::new()).unwrap();
            assert!(!plain.ivf().unwrap().is_mapped());
            let row = [0.125f32; 24];
            for x in [&mut back, &mut plain] {
                x.add(&[1 << 20], &row).unwrap();
            }
            // An add copies only the lists it adds to: the others stay mapped.
            assert!(back.ivf().unwrap().is_mapped());
            for x in [&mut back, &mut plain] {
                assert_eq!(x.remove(&[4, 7]), 2);
            }
            assert!(!back.is_mapped());
            assert!(back.same_as(&plain));
            for q in &queries {
                assert_eq!(
                    back.search(q, 7, opts).unwrap(),
                    plain.search(q, 7, opts).unwrap()
                );
            }
            assert_eq!(fs::read(&path).unwrap(), before);
        }
    }

    #[test]
    fn lean_ivf_matches_the_mapped_one_with_exact_scores_until_a_change() {
        // Distinct rows (no ties, whose order would depend on the order
        // candidates are scored in).
        let distinct = |metric| {
            let (dim, n) = (24, 900);
            let mut e = Engine::new(Params {
                kind: Kind::Ivf,
                dim,
                seed: 5,
                rerank_factor: 4,
                rotation: Rotation::Haar,
                nlist: 12,
                nprobe: 3,
                metric,
                spill: false,
            })
            .unwrap();
            let data: Vec<f32> = (0..n * dim)
                .map(|i| ((i as f32 * 0.731).sin() + (i as f32 * 0.0173).cos()) * 0.9)
                .collect();
            let ids: Vec<u64> = (0..n as u64).map(|i| i * 5 + 2).collect();
            e.add(&ids, &data).unwrap();
            let gone: Vec<u64> = ids.iter().copied().step_by(7).collect();
            assert_eq!(e.remove(&gone), gone.len());
            e
        };
        for metric in [Metric::L2, Metric::Ip, Metric::Cosine] {
            let e = distinct(metric);
            let path = tmp(&format!("lean-ivf-{metric:?}"));
            save(&e, &path).unwrap();
            let (loaded, file) = load_mapped_with_file(&path, Some(Kind::Ivf)).unwrap();
            let mut lean = rebuild_lean(loaded, file, &Cancel::new()).unwrap();
            assert!(lean.is_lean() && lean.is_mapped() && lean.same_as(&e));
            // Replacing the file by rename (as the SDK's saves do) does not
            // change what the lean index reads: it keeps the file it mapped.
            let other = churned_ivf(Metric::L2, Rotation::Hadamard);
            let next = path.with_extension("next");
            save(&other, &next).unwrap();
            fs::rename(&next, &path).unwrap();
            let opts = crate::engine::SearchOpts::default();
            let allowed: Vec<u64> = e.store().ids().iter().copied().step_by(3).collect();
            let filter = e.row_filter(&crate::filter::IdSet::new(&allowed));
            let lean_filter = lean.row_filter(&crate::filter::IdSet::new(&allowed));
            for i in 0..8 {
                let q: [f32; 24] = std::array::from_fn(|j| ((i * 24 + j) as f32 * 0.37).sin());
                // The same candidates reranked: the 8-bit ranking's best
                // 16 hold the exact best 7 here, so hits and scores agree.
                assert_eq!(
                    lean.search(&q, 7, opts).unwrap(),
                    e.search(&q, 7, opts).unwrap()
                );
                let f = crate::engine::SearchOpts {
                    filter: Some(&filter),
                    ..opts
                };
                let lf = crate::engine::SearchOpts {
                    filter: Some(&lean_filter),
                    ..opts
                };
                assert_eq!(lean.search(&q, 5, lf).unwrap(), e.search(&q, 5, f).unwrap());
            }
            // The first change makes it an ordinary in-memory index.
            let mut e = e;
            for x in [&mut lean, &mut e] {
                x.add(&[1 << 30], &[0.5f32; 24]).unwrap();
            }
            assert!(!lean.is_lean() && !lean.is_mapped() && lean.same_as(&e));
            let q = [0.45f32; 24];
            assert_eq!(
                lean.search(&q, 9, opts).unwrap(),
                e.search(&q, 9, opts).unwrap()
            );
        }
        // A compressed file cannot be mapped, so not made lean either.
        let e = churned_ivf(Metric::L2, Rotation::Haar);
        let path = tmp("lean-compressed");
        save_as(&e, &path, false, true).unwrap();
        let err = load_mapped_with_file(&path, Some(Kind::Ivf))
            .and_then(|(l, f)| rebuild_lean(l, f, &Cancel::new()))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("x.rbpx"), "{err}");
    }

    #[test]
    fn files_with_list_codes_in_row_order_still_load_and_map_the_vectors() {
        let e = churned_ivf(Metric::Cosine, Rotation::Hadamard);
        let old = rows_layout_bytes(&e);
        assert_eq!(old[35] & FLAG2_BLOCKED, 0);
        assert_eq!(&old[52..56], &[0; 4]);
        let path = tmp("rows-layout");
        fs::write(&path, &old).unwrap();
        for loaded in [
            from_bytes(&old, Some(Kind::Ivf)),
            load(&path, Some(Kind::Ivf)),
            load_mapped(&path, Some(Kind::Ivf)),
        ] {
            let loaded = loaded.unwrap();
            assert!(matches!(
                loaded.saved.lists.as_ref().unwrap().codes,
                SavedCodes::Rows(_)
            ));
            let mapped = loaded.map.is_some();
            let back = rebuild(loaded, &Cancel::new()).unwrap();
            assert!(back.same_as(&e));
            // Codes copied into the scan layout; vectors still mapped.
            assert_eq!(back.is_mapped(), mapped);
            assert!(!back.ivf().unwrap().is_mapped());
            assert_eq!(
                to_bytes(&back),
                to_bytes(&e),
                "saved again in the scan layout"
            );
        }
    }

    #[test]
    fn vectors_are_64_byte_aligned_and_mapped_in_place() {
        let e = engine_full(Kind::Plus, Rotation::Hadamard, 4, Metric::L2, &[3, 4, 5]);
        let path = tmp("mapped");
        save(&e, &path).unwrap();
        let loaded = load_mapped(&path, None).unwrap();
        let back = rebuild(loaded, &Cancel::new()).unwrap();
        assert!(back.is_mapped());
        assert_eq!(back.store().vectors().as_ptr() as usize % 64, 0);
        assert_eq!(back.store().vectors(), e.store().vectors());
        // Crate-layout files cannot be mapped, and say how to fix it.
        let crate_file = engine_full(Kind::Plus, Rotation::Haar, 4, Metric::L2, &[3, 4, 5]);
        save(&crate_file, &path).unwrap();
        assert_eq!(&fs::read(&path).unwrap()[..8], CRATE_MAGIC);
        let err = load_mapped(&path, None).err().unwrap().to_string();
        assert!(err.contains("crate_format=False"), "{err}");
        save_as(&crate_file, &path, false, false).unwrap();
        assert!(rebuild(load_mapped(&path, None).unwrap(), &Cancel::new())
            .unwrap()
            .is_mapped());
    }

    #[test]
    fn every_version_1_file_written_today_still_loads_as_l2() {
        for (kind, rotation, ids) in [
            (Kind::Plus, Rotation::Hadamard, vec![5u64, 9]),
            (Kind::Flat, Rotation::Haar, vec![1 << 40, 2]),
            (Kind::Asym, Rotation::Haar, vec![7, 8]),
            (Kind::Ivf, Rotation::Hadamard, vec![5, 9, 11]),
        ] {
            // Version 1 files never held spill lists.
            let e = engine_spill(kind, rotation, &ids, 3, false);
            let v1 = write_v1(&e, Vec::new()).unwrap();
            assert_eq!(read_u32(&v1, 8), VERSION);
            let path = tmp(&format!("v1-{kind:?}"));
            fs::write(&path, &v1).unwrap();
            let back = rebuild(load(&path, Some(kind)).unwrap(), &Cancel::new()).unwrap();
            assert!(back.same_as(&e), "{kind:?}");
            assert_eq!(back.params().metric, Metric::L2);
            let back = rebuild(from_bytes(&v1, Some(kind)).unwrap(), &Cancel::new()).unwrap();
            assert!(back.same_as(&e));
        }
    }

    #[test]
    fn every_truncation_and_bit_flip_of_version_2_is_refused() {
        for (kind, rf, ids) in [
            (Kind::Rabitq, 1, vec![5u64, 9]),
            (Kind::Plus, 2, vec![0, 1]),
            (Kind::Ivf, 2, vec![4, 1 << 40]),
        ] {
            let e = engine_full(kind, Rotation::Hadamard, rf, Metric::Cosine, &ids);
            let good = to_bytes(&e);
            for cut in 0..good.len() {
                assert!(from_bytes(&good[..cut], None).is_err(), "cut at {cut}");
            }
            let mut longer = good.clone();
            longer.push(0);
            assert!(from_bytes(&longer, None).is_err());
            for at in 0..good.len() {
                for bit in 0..8 {
                    let mut bad = good.clone();
                    bad[at] ^= 1 << bit;
                    assert!(from_bytes(&bad, None).is_err(), "bit {bit} of byte {at}");
                }
            }
            let e = from_bytes(&good, Some(Kind::Flat))
                .err()
                .unwrap()
                .to_string();
            assert!(
                e.contains("not a FlatF32Index") && e.contains("<bytes>"),
                "{e}"
            );
        }
    }
}
