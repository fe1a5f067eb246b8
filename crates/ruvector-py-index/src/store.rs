//! The SDK-side record of what an index holds: external ids (full u64), an
//! id → row map, and, for index kinds that keep them, the original vectors
//! as one contiguous row-major buffer.
//!
//! The buffer sits behind an `Arc` so NumPy views can share it without a
//! copy: a view holds a clone of the `Arc`, and a later `add` that finds
//! the buffer shared copies it first (`Arc::make_mut`), so a view never
//! sees memory move or change under it.
//!
//! The buffer is either owned memory or a read-only map of a saved file
//! (`load(path, mmap=True)`; see [`Backing`]). A mapped buffer is never
//! written: the one way to change the vectors, [`Store::vectors_mut`],
//! copies it into owned memory first ("copy first"), so the first change
//! to a mapped index costs one copy of its vectors and makes them private
//! to the process; the file is never modified.

use crate::engine::InPlacePlan;
use crate::lean::LeanVectors;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

/// A byte range of a read-only file map. Clones share the map, so the
/// vectors and the IVF list codes of one file hold one mapping between them.
#[derive(Clone)]
pub struct MappedBytes {
    map: Arc<memmap2::Mmap>,
    offset: usize,
    len: usize,
}

impl MappedBytes {
    /// `len` bytes at `offset` of `map`; `None` when out of bounds.
    pub fn new(map: Arc<memmap2::Mmap>, offset: usize, len: usize) -> Option<Self> {
        (offset.checked_add(len)? <= map.len()).then_some(Self { map, offset, len })
    }

    /// `len` bytes at `start` of this range; `None` when out of bounds.
    pub fn slice(&self, start: usize, len: usize) -> Option<Self> {
        (start.checked_add(len)? <= self.len).then(|| Self {
            map: Arc::clone(&self.map),
            offset: self.offset + start,
            len,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.map[self.offset..self.offset + self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A read-only memory map of a file holding little-endian f32 values at a
/// 4-byte aligned offset (the `.rbpx` v2 layout aligns them to 64).
pub struct MappedF32 {
    bytes: MappedBytes,
}

impl MappedF32 {
    /// `len` floats at byte `offset` of `map`; `None` when out of bounds,
    /// misaligned, or on a big-endian machine (where the bytes are not the
    /// native floats and must be copied instead).
    pub fn new(map: Arc<memmap2::Mmap>, offset: usize, len: usize) -> Option<Self> {
        let aligned = (map.as_ptr() as usize)
            .checked_add(offset)?
            .is_multiple_of(std::mem::align_of::<f32>());
        let bytes = MappedBytes::new(map, offset, len.checked_mul(4)?)?;
        (cfg!(target_endian = "little") && aligned).then_some(Self { bytes })
    }
}

impl AsRef<[f32]> for MappedF32 {
    fn as_ref(&self) -> &[f32] {
        let bytes = self.bytes.as_bytes();
        if bytes.is_empty() {
            return &[];
        }
        // SAFETY: `new` checked bounds, alignment and endianness; every bit
        // pattern is a valid f32; the map is read-only and lives as long as
        // `self`. (The file must not be truncated while mapped: the SDK's
        // saves replace a file by rename, never in place.)
        unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const f32, bytes.len() / 4) }
    }
}

/// Where the kept vectors live.
pub enum Backing {
    Owned(Arc<Vec<f32>>),
    Mapped(Arc<MappedF32>),
}

impl Backing {
    pub fn as_slice(&self) -> &[f32] {
        match self {
            Backing::Owned(v) => v,
            Backing::Mapped(m) => (**m).as_ref(),
        }
    }

    pub fn is_mapped(&self) -> bool {
        matches!(self, Backing::Mapped(_))
    }
}

/// A buffer NumPy views can share (see `ruvector_py_core::arrays`).
pub type SharedF32 = Arc<dyn AsRef<[f32]> + Send + Sync>;

/// Ids and their rows. The common case — ids `0..n` in insertion order — is
/// kept as a count, with no per-vector memory. Otherwise the id → row map
/// is built on first use (a lookup by id: remove, upsert, get, a filter),
/// not when rows are added or loaded: a loaded index that only searches
/// never pays for it (at 1M rows, ~0.1 s of a load and ~40 MB).
enum Ids {
    Dense(usize),
    Sparse {
        ids: Vec<u64>,
        rows: OnceLock<HashMap<u64, usize>>,
    },
}

fn row_map(ids: &[u64]) -> HashMap<u64, usize> {
    ids.iter().enumerate().map(|(r, &id)| (id, r)).collect()
}

pub struct Store {
    dim: usize,
    keep_vectors: bool,
    ids: Ids,
    vectors: Backing,
    /// `load(path, lean=True)`: the resident 8-bit copy searches rerank
    /// with (the mapped vectors are then only read from the file). Dropped
    /// by the first change to the vectors.
    lean: Option<LeanVectors>,
    /// CRC-32 of every id and row added, in order: lets indexes that keep no
    /// vectors still be compared for equality.
    fingerprint: u32,
}

impl Store {
    pub fn new(dim: usize, keep_vectors: bool) -> Self {
        Self {
            dim,
            keep_vectors,
            ids: Ids::Dense(0),
            vectors: Backing::Owned(Arc::new(Vec::new())),
            lean: None,
            fingerprint: 0,
        }
    }

    pub fn len(&self) -> usize {
        match &self.ids {
            Ids::Dense(n) => *n,
            Ids::Sparse { ids, .. } => ids.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn keeps_vectors(&self) -> bool {
        self.keep_vectors
    }

    /// All ids in insertion order (materialized for dense ids).
    pub fn ids(&self) -> Cow<'_, [u64]> {
        match &self.ids {
            Ids::Dense(n) => Cow::Owned((0..*n as u64).collect()),
            Ids::Sparse { ids, .. } => Cow::Borrowed(ids),
        }
    }

    /// Asks the CPU to start loading the vector of row `pos` into cache
    /// (a hint: no effect on results; nothing where vectors are not kept or
    /// on architectures without a prefetch instruction here).
    #[inline(always)]
    pub fn prefetch(&self, pos: usize) {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        if let Some(v) = self.vectors().get(pos * self.dim..(pos + 1) * self.dim) {
            for line in v.chunks(16) {
                // SAFETY: prefetching is a hint that never faults, and the
                // pointer is inside `v`. SSE is in the x86_64 baseline.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    std::arch::x86_64::_mm_prefetch(
                        line.as_ptr() as *const i8,
                        std::arch::x86_64::_MM_HINT_T0,
                    )
                };
                // SAFETY: as above; `prfm` (its intrinsic is unstable) only
                // reads the address and touches no register or flag.
                #[cfg(target_arch = "aarch64")]
                unsafe {
                    std::arch::asm!(
                        "prfm pldl1keep, [{line}]",
                        line = in(reg) line.as_ptr(),
                        options(nostack, readonly, preserves_flags)
                    )
                };
            }
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = pos;
    }

    #[inline]
    pub fn id_at(&self, pos: usize) -> u64 {
        match &self.ids {
            Ids::Dense(_) => pos as u64,
            Ids::Sparse { ids, .. } => ids[pos],
        }
    }

    pub fn contains(&self, id: u64) -> bool {
        self.row_of(id).is_some()
    }

    #[inline]
    pub fn row_of(&self, id: u64) -> Option<usize> {
        match &self.ids {
            Ids::Dense(n) => (id < *n as u64).then_some(id as usize),
            Ids::Sparse { ids, rows } => rows.get_or_init(|| row_map(ids)).get(&id).copied(),
        }
    }

    /// Row `pos` of the original vectors (only when they are kept).
    #[inline]
    pub fn vector(&self, pos: usize) -> &[f32] {
        &self.vectors()[pos * self.dim..(pos + 1) * self.dim]
    }

    /// The shared buffer of all kept vectors (empty when not kept).
    pub fn shared_vectors(&self) -> SharedF32 {
        match &self.vectors {
            Backing::Owned(v) => Arc::clone(v) as SharedF32,
            Backing::Mapped(m) => Arc::clone(m) as SharedF32,
        }
    }

    #[inline]
    pub fn vectors(&self) -> &[f32] {
        self.vectors.as_slice()
    }

    /// Whether the vectors are a read-only map of a file.
    pub fn is_mapped(&self) -> bool {
        self.vectors.is_mapped()
    }

    /// The one way to change the kept vectors: a buffer shared with NumPy
    /// views is copied first, so a view never sees memory move or change;
    /// a mapped buffer is copied into owned memory first (copy first: the
    /// file is never written, and the index's vectors become private).
    fn vectors_mut(&mut self) -> &mut Vec<f32> {
        // The 8-bit copy would no longer match: the index stops being lean.
        self.lean = None;
        if let Backing::Mapped(m) = &self.vectors {
            let owned = crate::bigbuf::copy_large((**m).as_ref());
            self.vectors = Backing::Owned(Arc::new(owned));
        }
        match &mut self.vectors {
            Backing::Owned(v) => Arc::make_mut(v),
            Backing::Mapped(_) => unreachable!("copied above"),
        }
    }

    /// The resident 8-bit copy of a lean index (see [`LeanVectors`]).
    pub fn lean(&self) -> Option<&LeanVectors> {
        self.lean.as_ref()
    }

    /// Makes searches rerank with `lean` (built from these vectors).
    pub fn set_lean(&mut self, lean: LeanVectors) {
        self.lean = Some(lean);
    }

    /// Fills an empty store from a saved file: `vectors` (owned or mapped)
    /// becomes the buffer as it is, without a copy. Rows already validated.
    pub fn restore(&mut self, ids: &[u64], vectors: Backing) {
        debug_assert!(self.is_empty());
        debug_assert_eq!(
            vectors.as_slice().len(),
            ids.len() * self.dim * self.keep_vectors as usize
        );
        self.append_ids(ids);
        if self.keep_vectors {
            self.vectors = vectors;
        } else {
            self.fold_fingerprint(ids, &[]);
        }
    }

    pub fn fingerprint(&self) -> u32 {
        self.fingerprint
    }

    /// Appends already validated rows (`data.len() == ids.len() * dim`).
    pub fn append(&mut self, new_ids: &[u64], data: &[f32]) {
        debug_assert_eq!(data.len(), new_ids.len() * self.dim);
        self.append_ids(new_ids);
        if self.keep_vectors {
            crate::bigbuf::extend_large(self.vectors_mut(), data);
        } else {
            self.fold_fingerprint(new_ids, data);
        }
    }

    fn fold_fingerprint(&mut self, new_ids: &[u64], data: &[f32]) {
        let mut h = crc32fast::Hasher::new_with_initial(self.fingerprint);
        for id in new_ids {
            h.update(&id.to_le_bytes());
        }
        for x in data {
            h.update(&x.to_bits().to_le_bytes());
        }
        self.fingerprint = h.finalize();
    }

    fn append_ids(&mut self, new_ids: &[u64]) {
        let n = self.len();
        let stays_dense = matches!(self.ids, Ids::Dense(_))
            && new_ids
                .iter()
                .enumerate()
                .all(|(i, &id)| id == (n + i) as u64);
        if stays_dense {
            self.ids = Ids::Dense(n + new_ids.len());
        } else {
            if let Ids::Dense(n) = self.ids {
                self.ids = Ids::Sparse {
                    ids: (0..n as u64).collect(),
                    rows: OnceLock::new(),
                };
            }
            if let Ids::Sparse { ids, rows } = &mut self.ids {
                if let Some(rows) = rows.get_mut() {
                    rows.reserve(new_ids.len());
                    for (i, &id) in new_ids.iter().enumerate() {
                        rows.insert(id, n + i);
                    }
                }
                ids.extend_from_slice(new_ids);
            }
        }
    }

    /// Largest id held (`None` when empty).
    pub fn max_id(&self) -> Option<u64> {
        match &self.ids {
            Ids::Dense(0) => None,
            Ids::Dense(n) => Some(*n as u64 - 1),
            Ids::Sparse { ids, .. } => ids.iter().copied().max(),
        }
    }

    /// Removes every row whose `keep` entry is false (`keep.len() ==
    /// self.len()`), keeping the others in order: rows are renumbered
    /// `0..kept` and the id map follows. The vector buffer keeps its
    /// capacity for later adds (see [`Store::shrink`]). Where vectors are
    /// not kept, the fingerprint takes in the removed ids, so two indexes
    /// with the same history still compare equal.
    pub fn retain_rows(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.len());
        let n = self.len();
        let kept = keep.iter().filter(|&&k| k).count();
        if kept == n {
            return;
        }
        if !self.keep_vectors {
            let mut h = crc32fast::Hasher::new_with_initial(self.fingerprint);
            h.update(b"remove");
            for (pos, _) in keep.iter().enumerate().filter(|(_, &k)| !k) {
                h.update(&self.id_at(pos).to_le_bytes());
            }
            self.fingerprint = h.finalize();
        }
        // Removing a tail of dense ids keeps them dense.
        let tail = keep[..kept].iter().all(|&k| k);
        self.ids = match &self.ids {
            Ids::Dense(_) if tail => Ids::Dense(kept),
            _ => {
                let ids: Vec<u64> = (0..n).filter(|&p| keep[p]).map(|p| self.id_at(p)).collect();
                Ids::Sparse {
                    ids,
                    rows: OnceLock::new(),
                }
            }
        };
        if self.keep_vectors {
            let d = self.dim;
            let v = self.vectors_mut();
            let kept_rows = keep.iter().enumerate().filter(|(_, &k)| k);
            for (to, (from, _)) in kept_rows.enumerate() {
                if from != to {
                    v.copy_within(from * d..(from + 1) * d, to * d);
                }
            }
            v.truncate(kept * d);
        }
    }

    /// Whether the ids are the row positions `0..len`.
    pub fn is_dense(&self) -> bool {
        match &self.ids {
            Ids::Dense(_) => true,
            Ids::Sparse { ids, .. } => ids.iter().enumerate().all(|(p, &id)| id == p as u64),
        }
    }

    /// Applies `plan` (see [`InPlacePlan`]) to a store with dense ids that
    /// keeps its vectors: the first `plan.filled` rows of `data` overwrite
    /// the rows `holes`, the rest are appended, `plan.moves` fill the open
    /// holes, and the store ends with `plan.len` rows and ids `0..len`.
    /// Touches only those rows (a shared or mapped buffer is copied first).
    pub fn apply_in_place(&mut self, plan: &InPlacePlan, holes: &[usize], data: &[f32]) {
        debug_assert!(self.keep_vectors && self.is_dense());
        let d = self.dim;
        let v = self.vectors_mut();
        let (fill, rest) = data.split_at(plan.filled * d);
        for (&h, row) in holes.iter().zip(fill.chunks_exact(d)) {
            v[h * d..(h + 1) * d].copy_from_slice(row);
        }
        for &(from, to) in &plan.moves {
            v.copy_within(from * d..(from + 1) * d, to * d);
        }
        v.truncate(plan.len.min(v.len() / d) * d);
        v.extend_from_slice(rest);
        debug_assert_eq!(v.len(), plan.len * d);
        self.ids = Ids::Dense(plan.len);
    }

    /// Gives back capacity not in use (after removals).
    pub fn shrink(&mut self) {
        // A mapped buffer has no spare capacity to give back.
        if matches!(&self.vectors, Backing::Owned(v) if v.capacity() > v.len()) {
            self.vectors_mut().shrink_to_fit();
        }
        if let Ids::Sparse { ids, rows } = &mut self.ids {
            ids.shrink_to_fit();
            if let Some(rows) = rows.get_mut() {
                rows.shrink_to_fit();
            }
        }
    }

    /// Bytes held: ids, the id map (once built), and the vectors.
    pub fn memory_bytes(&self) -> usize {
        let ids = match &self.ids {
            Ids::Dense(_) => 0,
            Ids::Sparse { ids, rows } => {
                let map = rows.get().map_or(0, |m| m.capacity());
                ids.capacity() * 8 + map * (std::mem::size_of::<(u64, usize)>() + 1)
            }
        };
        let vectors = match &self.vectors {
            Backing::Owned(v) => v.capacity(),
            Backing::Mapped(m) => (**m).as_ref().len(),
        };
        ids + vectors * 4 + self.lean.as_ref().map_or(0, LeanVectors::memory_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_ids_turn_sparse_when_needed() {
        let mut s = Store::new(1, true);
        s.append(&[0, 1, 2], &[0.0, 1.0, 2.0]);
        assert!(matches!(s.ids, Ids::Dense(3)));
        assert_eq!(s.row_of(2), Some(2));
        assert_eq!(s.row_of(3), None);
        s.append(&[10], &[5.0]);
        assert_eq!(&*s.ids(), &[0, 1, 2, 10]);
        assert_eq!(
            (s.row_of(10), s.row_of(1), s.id_at(3)),
            (Some(3), Some(1), 10)
        );
        assert_eq!(s.vector(3), &[5.0]);
    }

    #[test]
    fn retain_rows_renumbers_ids_and_vectors() {
        let mut s = Store::new(2, true);
        s.append(&[0, 1, 2, 3], &[0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]);
        s.retain_rows(&[true, true, true, false]);
        assert!(matches!(s.ids, Ids::Dense(3)), "a removed tail stays dense");
        s.retain_rows(&[true, false, true]);
        assert_eq!(&*s.ids(), &[0, 2]);
        assert_eq!(
            (s.row_of(2), s.row_of(1), s.max_id()),
            (Some(1), None, Some(2))
        );
        assert_eq!(s.vectors(), &[0.0, 0.5, 2.0, 2.5]);
        s.retain_rows(&[false, false]);
        assert_eq!((s.len(), s.max_id()), (0, None));
        s.shrink();
        assert_eq!(s.memory_bytes(), 0);
    }
}
