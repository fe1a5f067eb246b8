//! 1-bit RaBitQ codes owned by the SDK.
//!
//! The upstream `RabitqIndex` encodes rows one at a time behind `&mut self`
//! and offers no way to insert codes computed elsewhere, so its build is
//! serial. Here the crate's index is kept only as the encoder (rotation,
//! cosine table); the packed codes and norms live in SDK buffers, filled in
//! parallel, and the scan replicates the crate's symmetric scan exactly
//! (same SIMD agreement kernel, same score formula, same top-k rules), so
//! results are identical to the crate's.
//!
//! The crate applies its dense rotation one output at a time, each a serial
//! sum, which no compiler can vectorise. [`DenseRotation`] keeps the matrix
//! transposed and runs the very same sums, in the same order, for all
//! outputs at once: the same bits, several times faster (tested bit for bit
//! against the crate).

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use rayon::prelude::*;
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::{parallel, Result};
use ruvector_rabitq::rotation::normalize_inplace;
use ruvector_rabitq::{RabitqIndex, RandomRotation, RandomRotationKind};

use crate::filter::{allows, RowFilter};
use crate::store::Store;
use crate::topk::TopK;

/// Below this many rows a parallel encode costs more than it saves.
const PARALLEL_ENCODE_MIN_ROWS: usize = 1024;

/// The crate's dense rotation with the crate's arithmetic, vectorised
/// across outputs (see the module docs).
pub struct DenseRotation {
    dim: usize,
    /// The crate's row-major matrix, transposed: column `j` is contiguous.
    transposed: Vec<f32>,
}

impl DenseRotation {
    /// `None` for rotations without a dense matrix (Hadamard).
    pub fn of(r: &RandomRotation) -> Option<Self> {
        if r.kind() != RandomRotationKind::HaarDense {
            return None;
        }
        let d = r.dim;
        let mut transposed = vec![0.0f32; d * d];
        for (i, row) in r.matrix.chunks_exact(d).enumerate() {
            for (j, &m) in row.iter().enumerate() {
                transposed[j * d + i] = m;
            }
        }
        Some(Self { dim: d, transposed })
    }

    /// `out[i] = Σⱼ m[i][j]·v[j]`, summed over `j` left to right from the
    /// same start as the crate's `Iterator::sum`, so every bit matches.
    pub fn apply(&self, v: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                unsafe { self.apply_avx2(v, out) };
                return;
            }
        }
        self.apply_portable(v, out)
    }

    /// Outputs 8 at a time (4 registers of 8 side by side, then single
    /// registers), each summed over `j` in order with a multiply, then an
    /// add (no fused multiply-add): the crate's bits. Written with
    /// intrinsics: the wheel's size-optimized link does not vectorize the
    /// portable loop.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn apply_avx2(&self, v: &[f32], out: &mut [f32]) {
        use std::arch::x86_64::{
            _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_set1_ps, _mm256_storeu_ps,
        };
        let d = self.dim;
        assert!(out.len() >= d && self.transposed.len() == d * d);
        let cols = v.len().min(d);
        let start = _mm256_set1_ps(std::iter::empty::<f32>().sum::<f32>());
        let m = self.transposed.as_ptr();
        let mut o0 = 0;
        // SAFETY: every load reads `transposed[j * d + o0 + i]` with
        // `j < cols <= d` and `o0 + i < d` (the loop bounds), inside its
        // `d * d` values; every store writes `out[o0 + i]`, `o0 + i < d <=
        // out.len()`; `v[j]`, `j < cols <= v.len()`. AVX2 is enabled here.
        unsafe {
            while o0 + 32 <= d {
                let (mut a0, mut a1, mut a2, mut a3) = (start, start, start, start);
                for j in 0..cols {
                    let x = _mm256_set1_ps(*v.get_unchecked(j));
                    let p = m.add(j * d + o0);
                    a0 = _mm256_add_ps(a0, _mm256_mul_ps(_mm256_loadu_ps(p), x));
                    a1 = _mm256_add_ps(a1, _mm256_mul_ps(_mm256_loadu_ps(p.add(8)), x));
                    a2 = _mm256_add_ps(a2, _mm256_mul_ps(_mm256_loadu_ps(p.add(16)), x));
                    a3 = _mm256_add_ps(a3, _mm256_mul_ps(_mm256_loadu_ps(p.add(24)), x));
                }
                let q = out.as_mut_ptr().add(o0);
                _mm256_storeu_ps(q, a0);
                _mm256_storeu_ps(q.add(8), a1);
                _mm256_storeu_ps(q.add(16), a2);
                _mm256_storeu_ps(q.add(24), a3);
                o0 += 32;
            }
            while o0 + 8 <= d {
                let mut a = start;
                for j in 0..cols {
                    let x = _mm256_set1_ps(*v.get_unchecked(j));
                    a = _mm256_add_ps(a, _mm256_mul_ps(_mm256_loadu_ps(m.add(j * d + o0)), x));
                }
                _mm256_storeu_ps(out.as_mut_ptr().add(o0), a);
                o0 += 8;
            }
        }
        self.apply_from(v, out, o0);
    }

    #[inline(always)]
    fn apply_portable(&self, v: &[f32], out: &mut [f32]) {
        self.apply_from(v, out, 0);
    }

    /// Outputs `from..dim`, each summed over `j` in order.
    #[inline(always)]
    fn apply_from(&self, v: &[f32], out: &mut [f32], from: usize) {
        let start = std::iter::empty::<f32>().sum::<f32>();
        let d = self.dim;
        if from >= d {
            return;
        }
        let tail = &mut out[from..d];
        tail.iter_mut().for_each(|o| *o = start);
        for (j, &x) in v.iter().take(d).enumerate() {
            for (o, &m) in tail
                .iter_mut()
                .zip(&self.transposed[j * d + from..(j + 1) * d])
            {
                *o += m * x;
            }
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.transposed.capacity() * 4
    }
}

/// Rows whose asymmetric sums run side by side (one AVX-512 register of
/// f32 lanes).
const ASYM_LANES: usize = 16;

/// Rows `first..first + rows` (at most [`ASYM_LANES`]) of packed codes,
/// `n_words` words per row.
#[derive(Clone, Copy)]
struct RowBlock<'a> {
    packed: &'a [u64],
    n_words: usize,
    first: usize,
    rows: usize,
}

/// `ips[l] = Σᵢ (bit i of row first+l ? q[i] : −q[i])` for `rows ≤
/// ASYM_LANES` rows, each summed over `i` in order from `0.0` exactly as
/// `RabitqAsymIndex::search` sums one row (the sign is flipped on the bits,
/// which is what negation does). Lanes past `rows` hold garbage.
fn asym_ips(block: RowBlock<'_>, q: &[f32], ips: &mut [f32; ASYM_LANES]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { asym_ips_avx512(block, q, ips) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { asym_ips_avx2(block, q, ips) };
            return;
        }
    }
    asym_ips_portable(block, q, ips)
}

/// The portable kernel compiled for a wider instruction set (the same
/// arithmetic, so the same bits).
macro_rules! asym_ips_for {
    ($name:ident, $features:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $features)]
        unsafe fn $name(block: RowBlock<'_>, q: &[f32], ips: &mut [f32; ASYM_LANES]) {
            asym_ips_portable(block, q, ips)
        }
    };
}
asym_ips_for!(asym_ips_avx512, "avx512f");
asym_ips_for!(asym_ips_avx2, "avx2");

#[inline(always)]
fn asym_ips_portable(block: RowBlock<'_>, q: &[f32], ips: &mut [f32; ASYM_LANES]) {
    let RowBlock {
        packed,
        n_words,
        first,
        rows,
    } = block;
    let mut acc = [0.0f32; ASYM_LANES];
    for (w, dims) in q.chunks(64).enumerate() {
        // The block's words for these 64 dimensions; missing rows read 0.
        let mut words = [0u64; ASYM_LANES];
        for (lane, word) in words.iter_mut().enumerate().take(rows) {
            *word = packed[(first + lane) * n_words + w];
        }
        for (b, &qv) in dims.iter().enumerate() {
            let bits = qv.to_bits();
            for (a, &word) in acc.iter_mut().zip(&words) {
                // A clear bit flips the sign: −q, bit for bit.
                let clear = (!(word >> (63 - b)) & 1) as u32;
                *a += f32::from_bits(bits ^ (clear << 31));
            }
        }
    }
    *ips = acc;
}

/// The crate's index kept as the encoder (rotation, cosine table), and the
/// SDK's fast form of its dense rotation.
struct Encoder {
    index: RabitqIndex,
    dense: Option<DenseRotation>,
    /// ‖mᵢ‖ of every row of a dense rotation (for [`SymmetricCodes::verify`]).
    row_norms: Vec<f64>,
}

/// Rows encoded but not yet appended: packed sign words and norms.
pub struct EncodedRows {
    packed: Vec<u64>,
    norms: Vec<f32>,
}

pub struct SymmetricCodes {
    /// Built on first use: a dense Haar rotation costs O(dim³) (seconds at
    /// dim 2048), which an index that never holds a row (a 32-byte file
    /// claiming a large dim) must not pay.
    /// Shared with the codes derived from these (see
    /// [`SymmetricCodes::derive`]), so a refresh never rebuilds it.
    encoder: OnceLock<Arc<Encoder>>,
    seed: u64,
    kind: RandomRotationKind,
    dim: usize,
    n_words: usize,
    last_word_mask: u64,
    packed: Vec<u64>,
    norms: Vec<f32>,
}

/// Calls `f(from, to)` for every maximal run `from..to` of true entries of
/// `keep`, in order (so a copy of the kept rows is a few long copies).
pub fn for_kept_runs(keep: &[bool], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < keep.len() {
        if !keep[i] {
            i += 1;
            continue;
        }
        let start = i;
        while i < keep.len() && keep[i] {
            i += 1;
        }
        f(start, i);
    }
}

fn last_word_mask(dim: usize) -> u64 {
    let valid = dim - 64 * (dim.div_ceil(64) - 1);
    if valid == 64 {
        !0
    } else {
        !0u64 << (64 - valid)
    }
}

/// Rows per cancellation check (and per parallel task) of an encode.
const ENCODE_CHUNK_ROWS: usize = 256;

impl SymmetricCodes {
    pub fn new(dim: usize, seed: u64, kind: RandomRotationKind) -> Self {
        Self {
            encoder: OnceLock::new(),
            seed,
            kind,
            dim,
            n_words: dim.div_ceil(64),
            last_word_mask: last_word_mask(dim),
            packed: Vec::new(),
            norms: Vec::new(),
        }
    }

    fn encoder(&self) -> &Encoder {
        self.encoder.get_or_init(|| Arc::new(self.new_encoder()))
    }

    fn new_encoder(&self) -> Encoder {
        let index = RabitqIndex::new_with_rotation(self.dim, self.seed, self.kind);
        let dense = DenseRotation::of(index.rotation());
        let row_norms = match &dense {
            Some(_) => index
                .rotation()
                .matrix
                .chunks_exact(self.dim)
                .map(|row| {
                    row.iter()
                        .map(|&m| f64::from(m).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .collect(),
            None => Vec::new(),
        };
        Encoder {
            dense,
            index,
            row_norms,
        }
    }

    /// New codes holding the rows of these whose `keep` entry is true (in
    /// order), then `rows`: a copy of the kept codes, no re-encoding, and
    /// the same encoder (shared, not rebuilt). `keep.len() == self.len()`.
    pub fn derive(&self, keep: &[bool], rows: EncodedRows) -> Self {
        debug_assert_eq!(keep.len(), self.len());
        let w = self.n_words;
        let kept = keep.iter().filter(|&&k| k).count();
        let mut packed = Vec::with_capacity((kept + rows.norms.len()) * w);
        let mut norms = Vec::with_capacity(kept + rows.norms.len());
        for_kept_runs(keep, |from, to| {
            packed.extend_from_slice(&self.packed[from * w..to * w]);
            norms.extend_from_slice(&self.norms[from..to]);
        });
        packed.extend_from_slice(&rows.packed);
        norms.extend_from_slice(&rows.norms);
        let encoder = OnceLock::new();
        if let Some(e) = self.encoder.get() {
            let _ = encoder.set(Arc::clone(e));
        }
        Self {
            encoder,
            seed: self.seed,
            kind: self.kind,
            dim: self.dim,
            n_words: w,
            last_word_mask: self.last_word_mask,
            packed,
            norms,
        }
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    /// The crate's `encode_query_packed`, bit for bit: `(MSB-first sign
    /// words of the rotated unit vector, max(norm, 1e-10))`.
    fn encode_packed(&self, v: &[f32]) -> (Vec<u64>, f32) {
        let mut words = vec![0u64; self.n_words];
        let norm = self.encode_into(v, &mut words);
        (words, norm.max(1e-10))
    }

    /// Writes the sign words of `v` into `words` (zeroed, `n_words` long)
    /// and returns the raw norm of `v`.
    fn encode_into(&self, v: &[f32], words: &mut [u64]) -> f32 {
        let encoder = self.encoder();
        let Some(rotation) = &encoder.dense else {
            let (w, _) = encoder.index.encode_query_packed(v);
            words.copy_from_slice(&w);
            return v.iter().map(|&x| x * x).sum::<f32>().sqrt();
        };
        thread_local! {
            static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
        }
        let norm: f32 = v.iter().map(|&x| x * x).sum::<f32>().sqrt();
        SCRATCH.with(|cell| {
            let (unit, rotated) = &mut *cell.borrow_mut();
            unit.clear();
            unit.extend_from_slice(v);
            normalize_inplace(unit);
            rotated.resize(self.dim, 0.0);
            rotation.apply(unit, rotated);
            for (i, &x) in rotated.iter().enumerate() {
                if x >= 0.0 {
                    words[i / 64] |= 1u64 << (63 - (i % 64));
                }
            }
        });
        norm
    }

    /// The packed sign words (`n_words` per row) and the norms, in row order.
    pub fn codes(&self) -> (&[u64], &[f32]) {
        (&self.packed, &self.norms)
    }

    /// Encodes validated rows (row-major, `dim` wide) without changing the
    /// codes, in parallel when many, checking `cancel` between chunks. The
    /// crate stores the raw norm of a row (its query path clamps it).
    pub fn encode_rows(&self, data: &[f32], cancel: &Cancel) -> Result<EncodedRows> {
        let rows = data.len() / self.dim;
        let (d, w) = (self.dim, self.n_words);
        let chunk = |block: &[f32]| -> Result<(Vec<u64>, Vec<f32>)> {
            cancel.check()?;
            let n = block.len() / d;
            let mut packed = vec![0u64; n * w];
            let norms = block
                .chunks_exact(d)
                .zip(packed.chunks_exact_mut(w))
                .map(|(row, words)| self.encode_into(row, words))
                .collect();
            Ok((packed, norms))
        };
        let blocks: Vec<(Vec<u64>, Vec<f32>)> = if rows >= PARALLEL_ENCODE_MIN_ROWS {
            parallel::pool()?.install(|| {
                data.par_chunks(ENCODE_CHUNK_ROWS * d)
                    .map(chunk)
                    .collect::<Result<_>>()
            })?
        } else {
            data.chunks(ENCODE_CHUNK_ROWS * d)
                .map(chunk)
                .collect::<Result<_>>()?
        };
        let mut out = EncodedRows {
            packed: Vec::with_capacity(rows * w),
            norms: Vec::with_capacity(rows),
        };
        for (packed, norms) in blocks {
            out.packed.extend_from_slice(&packed);
            out.norms.extend_from_slice(&norms);
        }
        Ok(out)
    }

    /// Appends rows encoded by [`SymmetricCodes::encode_rows`].
    pub fn append(&mut self, rows: EncodedRows) {
        self.packed.extend_from_slice(&rows.packed);
        self.norms.extend_from_slice(&rows.norms);
    }

    /// Encodes validated rows and appends them.
    pub fn add_rows(&mut self, data: &[f32]) -> Result<()> {
        let rows = self.encode_rows(data, &Cancel::new())?;
        self.append(rows);
        Ok(())
    }

    /// Installs codes saved from an index with the same parameters for the
    /// validated rows `data`, after checking that they are exactly the codes
    /// of those rows, every row and every bit (a file's checksum can be
    /// recomputed by whoever edits it, so saved codes are never trusted; see
    /// [`SymmetricCodes::verify`]). Nothing changes on a mismatch.
    pub fn install(
        &mut self,
        data: &[f32],
        packed: Vec<u64>,
        norms: Vec<f32>,
        cancel: &Cancel,
    ) -> Result<()> {
        let rows = data.len() / self.dim;
        if !self.is_empty() || norms.len() != rows || packed.len() != rows * self.n_words {
            return Err(ruvector_py_core::Error::invalid(format!(
                "saved codes do not fit: {} norms and {} words for {rows} rows of {} words",
                norms.len(),
                packed.len(),
                self.n_words
            )));
        }
        self.verify(data, &packed, &norms, cancel)?;
        self.append(EncodedRows { packed, norms });
        Ok(())
    }

    /// Installs the saved codes of an index that keeps no vectors (so they
    /// cannot be checked against rows; the file's CRC covers them). Sizes,
    /// finite non-negative norms and the unused bits of each last word are
    /// checked. Nothing changes on an error.
    pub fn install_saved(&mut self, rows: usize, packed: Vec<u64>, norms: Vec<f32>) -> Result<()> {
        let w = self.n_words;
        if !self.is_empty() || norms.len() != rows || packed.len() != rows * w {
            return Err(ruvector_py_core::Error::invalid(format!(
                "saved codes do not fit: expected {rows} norms and {} words, got {} and {}",
                rows * w,
                norms.len(),
                packed.len()
            )));
        }
        if let Some(r) = norms.iter().position(|x| !x.is_finite() || *x < 0.0) {
            return Err(ruvector_py_core::Error::invalid(format!(
                "saved norm of row {r} must be finite and >= 0, got {}",
                norms[r]
            )));
        }
        if let Some(r) = (0..rows).find(|r| packed[r * w + w - 1] & !self.last_word_mask != 0) {
            return Err(ruvector_py_core::Error::invalid(format!(
                "saved code of row {r} sets bits beyond dim {}",
                self.dim
            )));
        }
        self.append(EncodedRows { packed, norms });
        Ok(())
    }

    /// Checks that `packed` and `norms` are exactly what
    /// [`SymmetricCodes::encode_rows`] gives for `data`, checking `cancel`
    /// between blocks of rows.
    ///
    /// Encoding with the crate's serial sums costs what a cold prime costs.
    /// For a dense rotation the check is cheaper and still exact: the
    /// rotation of a block of unit rows is computed as one GEMM, whose sums
    /// run in another order; any order of a `d`-term dot product is within
    /// `γ·Σ|mᵢⱼuⱼ| ≤ γ·‖mᵢ‖·‖u‖` of the true value (`γ = (d+2)·2⁻²⁴/(1−…)`),
    /// so the crate's serial sum and the GEMM's differ by at most twice that.
    /// Where the GEMM value is farther than twice *that* (a 2× margin) from
    /// 0, its sign is the crate's; the few coordinates closer to 0 are
    /// summed again exactly as the crate does. Norms are compared bit for
    /// bit, and the unused bits of each row's last word must be 0.
    pub fn verify(
        &self,
        data: &[f32],
        packed: &[u64],
        norms: &[f32],
        cancel: &Cancel,
    ) -> Result<()> {
        let (d, w) = (self.dim, self.n_words);
        if data.is_empty() {
            return Ok(()); // nothing to check, and no rotation to build
        }
        let mismatch = |r: usize| {
            ruvector_py_core::Error::invalid(format!(
                "saved codes do not match the vectors (row {r} encodes differently)"
            ))
        };
        let encoder = self.encoder();
        let Some(dense) = &encoder.dense else {
            let fresh = self.encode_rows(data, cancel)?;
            let differs = (0..norms.len()).find(|&r| {
                fresh.packed[r * w..(r + 1) * w] != packed[r * w..(r + 1) * w]
                    || fresh.norms[r].to_bits() != norms[r].to_bits()
            });
            return differs.map_or(Ok(()), |r| Err(mismatch(r)));
        };
        let matrix = &encoder.index.rotation().matrix;
        let unit_roundoff = f64::from(f32::EPSILON) / 2.0;
        let terms = (d + 2) as f64 * unit_roundoff;
        let gamma = terms / (1.0 - terms);
        // Per output i: 4·γ·‖mᵢ‖ (times ‖u‖ per row, below).
        // 4·γ·max‖mᵢ‖, times ‖u‖ per row below (at least twice the bound).
        let tolerance = 4.0 * gamma * encoder.row_norms.iter().fold(0.0f64, |m, &n| m.max(n));
        let start = std::iter::empty::<f32>().sum::<f32>();
        let block = |first: usize, rows: &[f32]| -> Result<()> {
            cancel.check()?;
            let m = rows.len() / d;
            let mut units = rows.to_vec();
            let mut unit_norms = Vec::with_capacity(m);
            for (r, unit) in units.chunks_exact_mut(d).enumerate() {
                let norm = unit.iter().map(|&x| x * x).sum::<f32>().sqrt();
                if norm.to_bits() != norms[first + r].to_bits() {
                    return Err(mismatch(first + r));
                }
                normalize_inplace(unit);
                unit_norms.push(
                    unit.iter()
                        .map(|&x| f64::from(x).powi(2))
                        .sum::<f64>()
                        .sqrt(),
                );
            }
            let mut rotated = vec![0.0f32; m * d];
            // SAFETY: `units` is m×d row-major, `matrix` d×d row-major read
            // as its transpose, `rotated` m×d row-major: exactly their sizes.
            unsafe {
                matrixmultiply::sgemm(
                    m,
                    d,
                    d,
                    1.0,
                    units.as_ptr(),
                    d as isize,
                    1,
                    matrix.as_ptr(),
                    1,
                    d as isize,
                    0.0,
                    rotated.as_mut_ptr(),
                    d as isize,
                    1,
                );
            }
            for (r, (unit, out)) in units
                .chunks_exact(d)
                .zip(rotated.chunks_exact(d))
                .enumerate()
            {
                let words = &packed[(first + r) * w..(first + r + 1) * w];
                if words[w - 1] & !self.last_word_mask != 0 {
                    return Err(mismatch(first + r));
                }
                // Outside ±t the GEMM's sign is the crate's (t rounded up).
                let t = (tolerance * unit_norms[r]) as f32 * (1.0 + 4.0 * f32::EPSILON);
                for (wi, (gs, &word)) in out.chunks(64).zip(words).enumerate() {
                    // MSB-first, as the encoder sets them (`x >= 0`).
                    let mut want = gs
                        .iter()
                        .enumerate()
                        .fold(0u64, |acc, (b, &g)| acc | (u64::from(g >= 0.0) << (63 - b)));
                    let mut unsure = gs.iter().enumerate().fold(0u64, |acc, (b, &g)| {
                        acc | (u64::from(g.abs() <= t) << (63 - b))
                    });
                    while unsure != 0 {
                        let b = unsure.leading_zeros() as usize;
                        unsure &= !(1u64 << (63 - b));
                        let i = wi * 64 + b;
                        // The crate's sum for this output, term by term.
                        let mut acc = start;
                        for (j, &u) in unit.iter().enumerate() {
                            acc += dense.transposed[j * d + i] * u;
                        }
                        want = (want & !(1u64 << (63 - b))) | (u64::from(acc >= 0.0) << (63 - b));
                    }
                    if want != word {
                        return Err(mismatch(first + r));
                    }
                }
            }
            Ok(())
        };
        let chunk = ENCODE_CHUNK_ROWS * d;
        if data.len() / d >= PARALLEL_ENCODE_MIN_ROWS {
            parallel::pool()?.install(|| {
                data.par_chunks(chunk)
                    .enumerate()
                    .try_for_each(|(b, rows)| block(b * ENCODE_CHUNK_ROWS, rows))
            })
        } else {
            data.chunks(chunk)
                .enumerate()
                .try_for_each(|(b, rows)| block(b * ENCODE_CHUNK_ROWS, rows))
        }
    }

    /// The `k` best rows by the symmetric 1-bit estimate, as
    /// `(row, id, estimated squared L2)`, ascending.
    ///
    /// Rows `filter` does not allow never enter the top `k`.
    pub fn scan_topk(
        &self,
        store: &Store,
        query: &[f32],
        k: usize,
        filter: Option<&RowFilter>,
    ) -> Vec<(u32, u64, f32)> {
        let n = self.len();
        if n == 0 || k == 0 {
            return Vec::new();
        }
        let (q_packed, q_norm) = self.encode_packed(query);
        // One agreement buffer per thread, reused across queries: a fresh
        // n-sized allocation per query (as the crate does) costs tens of µs
        // at n = 100k. The scan overwrites every element before it is read.
        thread_local! {
            static AGREE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
        }
        AGREE.with(|cell| {
            let mut agree = cell.borrow_mut();
            agree.resize(n, 0);
            // The lengths are consistent by construction (n rows of n_words).
            ruvector_rabitq::scan::scan(
                &self.packed,
                self.n_words,
                n,
                &q_packed,
                self.last_word_mask,
                &mut agree,
            );
            let lut = self.encoder().index.cos_lut();
            let q_sq = q_norm * q_norm;
            let mut top = TopK::new(k.min(n));
            // Most rows lose to the current worst of the top k: test that
            // inline and call into the heap only for the few that win.
            let mut bound = top.admission_bound();
            for (i, (&a, &x_norm)) in agree.iter().zip(&self.norms).enumerate() {
                let est_ip = q_norm * x_norm * lut[a as usize];
                let score = q_sq + x_norm * x_norm - 2.0 * est_ip;
                if bound.admits(score) && allows(filter, i) {
                    top.push_at(store.id_at(i), score, i as u32);
                    bound = top.admission_bound();
                }
            }
            top.into_sorted_with_rows()
        })
    }

    /// The `k` best rows by `RabitqAsymIndex`'s asymmetric estimate (the
    /// float rotated query against each row's sign bits), as `(row, id,
    /// estimated squared L2)`, ascending. The crate sums `±q[i]` one row at
    /// a time; here [`asym_ips`] runs the very same per-row sums for a block
    /// of rows side by side, so every score matches the crate's bit for bit
    /// at a fraction of the time.
    ///
    /// Rows `filter` does not allow never enter the top `k`.
    pub fn scan_asym_topk(
        &self,
        store: &Store,
        query: &[f32],
        k: usize,
        filter: Option<&RowFilter>,
    ) -> Vec<(u32, u64, f32)> {
        let n = self.len();
        if n == 0 || k == 0 {
            return Vec::new();
        }
        let (rotated, q_norm) = self.prepare_query(query);
        let inv_sqrt_d = 1.0 / (self.dim as f32).sqrt();
        let q_sq = q_norm * q_norm;
        let mut top = TopK::new(k.min(n));
        let mut bound = top.admission_bound();
        let mut ips = [0.0f32; ASYM_LANES];
        for first in (0..n).step_by(ASYM_LANES) {
            let rows = (n - first).min(ASYM_LANES);
            let block = RowBlock {
                packed: &self.packed,
                n_words: self.n_words,
                first,
                rows,
            };
            asym_ips(block, &rotated, &mut ips);
            for (lane, &ip) in ips[..rows].iter().enumerate() {
                let i = first + lane;
                let x_norm = self.norms[i];
                // The crate's formula, operation for operation.
                let unit_ip = ip * inv_sqrt_d;
                let est_ip = q_norm * x_norm * unit_ip;
                let score = q_sq + x_norm * x_norm - 2.0 * est_ip;
                if bound.admits(score) && allows(filter, i) {
                    top.push_at(store.id_at(i), score, i as u32);
                    bound = top.admission_bound();
                }
            }
        }
        top.into_sorted_with_rows()
    }

    /// The crate's `prepare_query_f32`: the rotated unit query and
    /// `max(norm, 1e-10)`, with the fast rotation where there is one.
    fn prepare_query(&self, q: &[f32]) -> (Vec<f32>, f32) {
        let encoder = self.encoder();
        let Some(rotation) = &encoder.dense else {
            return encoder.index.prepare_query_f32(q);
        };
        let norm: f32 = q.iter().map(|&x| x * x).sum::<f32>().sqrt();
        let mut unit = q.to_vec();
        normalize_inplace(&mut unit);
        let mut rotated = vec![0.0f32; self.dim];
        rotation.apply(&unit, &mut rotated);
        (rotated, norm.max(1e-10))
    }

    pub fn rotation_kind(&self) -> RandomRotationKind {
        self.kind
    }

    /// Codes, norms, cosine table and rotation once built (the crate's
    /// dense Haar rotation keeps two copies of its matrix and reports one;
    /// the SDK keeps a transposed third).
    pub fn memory_bytes(&self) -> usize {
        let encoder = self.encoder.get().map_or(0, |e| {
            let rotation = e.index.rotation().bytes();
            let haar_copy = if self.kind == RandomRotationKind::HaarDense {
                rotation
            } else {
                0
            };
            rotation
                + haar_copy
                + e.dense.as_ref().map_or(0, DenseRotation::memory_bytes)
                + e.index.cos_lut().len() * 4
        });
        encoder + self.packed.capacity() * 8 + self.norms.capacity() * 4
    }

    /// Keeps the rows whose `keep` entry is true, in order (as
    /// [`Store::retain_rows`] does).
    pub fn retain_rows(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.len());
        let w = self.n_words;
        let mut kept = 0;
        for (to, (from, _)) in keep.iter().enumerate().filter(|(_, &k)| k).enumerate() {
            if from != to {
                self.packed.copy_within(from * w..(from + 1) * w, to * w);
                self.norms[to] = self.norms[from];
            }
            kept = to + 1;
        }
        self.packed.truncate(kept * w);
        self.norms.truncate(kept);
    }

    /// Applies `plan` (see [`crate::engine::InPlacePlan`]) with the codes
    /// `rows` of the new rows, as [`crate::store::Store::apply_in_place`]
    /// does to the vectors: no re-encoding, only the moved and written rows
    /// are touched.
    pub fn apply_in_place(
        &mut self,
        plan: &crate::engine::InPlacePlan,
        holes: &[usize],
        rows: EncodedRows,
    ) {
        let w = self.n_words;
        let f = plan.filled;
        for (i, &h) in holes.iter().take(f).enumerate() {
            self.packed[h * w..(h + 1) * w].copy_from_slice(&rows.packed[i * w..(i + 1) * w]);
            self.norms[h] = rows.norms[i];
        }
        for &(from, to) in &plan.moves {
            self.packed.copy_within(from * w..(from + 1) * w, to * w);
            self.norms[to] = self.norms[from];
        }
        let keep = plan.len.min(self.norms.len());
        self.packed.truncate(keep * w);
        self.norms.truncate(keep);
        self.packed.extend_from_slice(&rows.packed[f * w..]);
        self.norms.extend_from_slice(&rows.norms[f..]);
        debug_assert_eq!(self.norms.len(), plan.len);
    }

    /// Gives back capacity not in use (after removals).
    pub fn shrink(&mut self) {
        self.packed.shrink_to_fit();
        self.norms.shrink_to_fit();
    }

    pub fn same_codes(&self, other: &Self) -> bool {
        self.packed == other.packed && self.norms == other.norms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asym_kernels_agree_bit_for_bit_with_one_row_at_a_time() {
        // The crate's per-row loop, written out, against every kernel.
        let (d, n_words, rows) = (100, 2, 13);
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let packed: Vec<u64> = (0..rows * n_words).map(|_| next()).collect();
        let q: Vec<f32> = (0..d)
            .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let mut fast = [0.0f32; ASYM_LANES];
        let mut portable = [0.0f32; ASYM_LANES];
        let block = RowBlock {
            packed: &packed,
            n_words,
            first: 0,
            rows,
        };
        asym_ips(block, &q, &mut fast);
        asym_ips_portable(block, &q, &mut portable);
        for r in 0..rows {
            let slot = &packed[r * n_words..(r + 1) * n_words];
            let mut ip = 0.0f32;
            for (i, &qi) in q.iter().enumerate() {
                ip += if (slot[i / 64] >> (63 - (i % 64))) & 1 == 1 {
                    qi
                } else {
                    -qi
                };
            }
            assert_eq!(fast[r].to_bits(), ip.to_bits(), "row {r}");
            assert_eq!(portable[r].to_bits(), ip.to_bits(), "row {r}");
        }
    }

    #[test]
    fn no_rows_build_no_rotation() {
        let mut codes = SymmetricCodes::new(2048, 1, RandomRotationKind::HaarDense);
        let no = Cancel::new();
        codes.add_rows(&[]).unwrap();
        codes.install(&[], Vec::new(), Vec::new(), &no).unwrap();
        assert!(codes
            .scan_topk(&Store::new(2048, true), &[0.5; 2048], 3, None)
            .is_empty());
        assert!(codes.encoder.get().is_none(), "a 2048² rotation was built");
        assert_eq!(codes.memory_bytes(), 0);
    }

    #[test]
    fn saved_codes_install_only_onto_their_own_vectors() {
        let dim = 20;
        let data: Vec<f32> = (0..300 * dim).map(|i| (i as f32 * 0.61).sin()).collect();
        let mut a = SymmetricCodes::new(dim, 3, RandomRotationKind::HaarDense);
        a.add_rows(&data).unwrap();
        let (packed, norms) = (a.codes().0.to_vec(), a.codes().1.to_vec());
        let mut b = SymmetricCodes::new(dim, 3, RandomRotationKind::HaarDense);
        let no = Cancel::new();
        b.install(&data, packed.clone(), norms.clone(), &no)
            .unwrap();
        assert!(b.same_codes(&a));
        let mut c = SymmetricCodes::new(dim, 3, RandomRotationKind::HaarDense);
        // Any one row's vector, code word or norm changed: refused.
        for r in [0, 1, 137, 299] {
            let mut other = data.clone();
            other[r * dim] = -other[r * dim] - 1.0;
            let e = c.install(&other, packed.clone(), norms.clone(), &no);
            let e = e.unwrap_err().to_string();
            assert!(e.contains(&format!("row {r} encodes differently")), "{e}");
            let mut words = packed.clone();
            words[r] ^= 1 << 63;
            assert!(c.install(&data, words, norms.clone(), &no).is_err());
            let mut n2 = norms.clone();
            n2[r] = f32::from_bits(n2[r].to_bits() ^ 1);
            assert!(c.install(&data, packed.clone(), n2, &no).is_err());
        }
        assert!(c.install(&data, packed[1..].to_vec(), norms, &no).is_err());
        assert!(c.is_empty());
    }

    #[test]
    fn verification_is_exact_even_for_signs_next_to_zero() {
        let no = Cancel::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2_000_001) as f64 / 1_000_000.0 - 1.0
        };
        for dim in [1usize, 3, 37, 64, 100, 384] {
            let codes = SymmetricCodes::new(dim, 5, RandomRotationKind::HaarDense);
            let m = codes.encoder().index.rotation().matrix.clone();
            let mut data: Vec<f32> = (0..200 * dim).map(|_| next() as f32).collect();
            // Rows whose rotation has coordinates at or next to 0: the GEMM
            // cannot tell their sign, the exact sums must.
            let crafted = 60;
            for r in 0..crafted {
                let t: Vec<f64> = (0..dim)
                    .map(|i| match (i + r) % 4 {
                        0 => 0.0,
                        1 => next() * 1e-7,
                        _ => next(),
                    })
                    .collect();
                data.extend((0..dim).map(|j| {
                    let u: f64 = (0..dim).map(|i| f64::from(m[i * dim + j]) * t[i]).sum();
                    (u * 3.0) as f32
                }));
            }
            let rows = data.len() / dim;
            let enc = codes.encode_rows(&data, &no).unwrap();
            codes.verify(&data, &enc.packed, &enc.norms, &no).unwrap();
            let w = codes.n_words;
            for r in (0..rows).filter(|r| r % 50 == 0 || (*r >= 200 && r % 3 == 0)) {
                let row = &data[r * dim..(r + 1) * dim];
                let words = &enc.packed[r * w..(r + 1) * w];
                let norm = [enc.norms[r]];
                codes.verify(row, words, &norm, &no).unwrap();
                for bit in 0..64 * w {
                    let mut bad = words.to_vec();
                    bad[bit / 64] ^= 1 << (63 - bit % 64);
                    assert!(
                        codes.verify(row, &bad, &norm, &no).is_err(),
                        "dim {dim} row {r} bit {bit}"
                    );
                }
                let off = [f32::from_bits(norm[0].to_bits() ^ 1)];
                assert!(codes.verify(row, words, &off, &no).is_err());
            }
        }
    }

    #[test]
    fn the_fast_encoder_matches_the_crate_bit_for_bit() {
        for (dim, kind) in [
            (1usize, RandomRotationKind::HaarDense),
            (37, RandomRotationKind::HaarDense),
            (45, RandomRotationKind::HaarDense),
            (128, RandomRotationKind::HaarDense),
            (384, RandomRotationKind::HaarDense),
            (200, RandomRotationKind::HadamardSigned),
        ] {
            let codes = SymmetricCodes::new(dim, 11, kind);
            let encoder = codes.encoder();
            assert_eq!(
                encoder.dense.is_some(),
                kind == RandomRotationKind::HaarDense
            );
            for s in 0..40u32 {
                let v: Vec<f32> = (0..dim)
                    .map(|i| ((i as f32 + 1.0) * (s as f32 + 0.3)).sin() * (1.0 + s as f32))
                    .collect();
                assert_eq!(
                    codes.encode_packed(&v),
                    encoder.index.encode_query_packed(&v)
                );
                if let Some(dense) = &encoder.dense {
                    let mut ours = vec![0.0; dim];
                    dense.apply(&v, &mut ours);
                    let theirs = encoder.index.rotation().apply(&v);
                    let bits = |x: &[f32]| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&ours), bits(&theirs), "dim {dim}");
                    // The portable loop too (the AVX2 one ran above where
                    // the CPU has it).
                    let mut portable = vec![0.0; dim];
                    dense.apply_portable(&v, &mut portable);
                    assert_eq!(bits(&portable), bits(&theirs), "dim {dim}");
                }
            }
        }
    }
}
