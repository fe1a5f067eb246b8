//! FastScan over 1-bit codes: 4 dimensions at a time through 16-entry
//! lookup tables, 32 vectors per SIMD step (the layout of André et al.'s
//! "fast scan", as faiss uses for PQ 4-bit and RaBitQ codes).
//!
//! A query's table for group `g` (dimensions `4g..4g+4`) holds, for every
//! 4-bit sign pattern `v`, the sum of the query components whose bit is set
//! in `v`, quantized to `u8` with one step `delta` for all groups. The scan
//! adds one table entry per group and vector; the sum `S` gives
//! `Σ_{bit set} qᵢ ≈ base + delta·S`.
//!
//! Codes are stored in blocks of [`BLOCK`] vectors: for every group 16
//! bytes, byte `j` holding the 4-bit pattern of vector `j` in its low nibble
//! and of vector `j + 16` in its high nibble. The AVX-512BW kernel (four
//! groups per shuffle), the AVX2 kernel (two), the 128-bit kernel written
//! once against [`crate::lanes`] (NEON on aarch64, SSSE3 on x86_64 without
//! AVX2) and the scalar reference compute the same integers, so results do
//! not depend on the CPU (tested).

use crate::lanes::Lanes;
use crate::store::MappedBytes;

/// Vectors per block.
pub const BLOCK: usize = 32;

/// The bytes of a [`BlockCodes`]: owned, or (`load(path, mmap=True)`) a
/// range of a read-only file map, in the same layout. A mapped range is
/// never written: the first change copies it into owned memory.
#[derive(Clone)]
pub enum CodeBytes {
    Owned(Vec<u8>),
    Mapped(MappedBytes),
}

impl CodeBytes {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            CodeBytes::Owned(v) => v,
            CodeBytes::Mapped(m) => m.as_bytes(),
        }
    }
}

impl Default for CodeBytes {
    fn default() -> Self {
        CodeBytes::Owned(Vec::new())
    }
}

impl PartialEq for CodeBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl std::fmt::Debug for CodeBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = match self {
            CodeBytes::Owned(_) => "owned",
            CodeBytes::Mapped(_) => "mapped",
        };
        write!(f, "CodeBytes({} bytes, {how})", self.as_bytes().len())
    }
}

/// Blocked 4-bit codes of a growing list of vectors.
#[derive(Default, Clone)]
pub struct BlockCodes {
    /// Bits per vector (dimensions).
    dim: usize,
    /// Groups per vector, rounded up to a multiple of four (the AVX-512
    /// kernel reads four groups per 64-byte load, the AVX2 kernel two).
    groups: usize,
    len: usize,
    data: CodeBytes,
}

/// Bytes of one block of [`BLOCK`] vectors of `dim` bits: a multiple of 64.
pub fn block_bytes_for(dim: usize) -> usize {
    groups_for(dim) * 16
}

impl BlockCodes {
    pub fn new(dim: usize) -> Self {
        Self {
            dim,
            groups: groups_for(dim),
            len: 0,
            data: CodeBytes::default(),
        }
    }

    /// `len` vectors of `dim` bits whose blocks are `data` (as
    /// [`BlockCodes::blocks`] gave them); `None` when the size does not fit.
    pub fn from_blocks(dim: usize, len: usize, data: CodeBytes) -> Option<Self> {
        let codes = Self {
            data,
            len,
            ..Self::new(dim)
        };
        (codes.data.as_bytes().len() == len.div_ceil(BLOCK) * codes.block_bytes()).then_some(codes)
    }

    /// The blocks, in the layout the scan reads (whole blocks; the slots
    /// of the last block past `len` are zero).
    pub fn blocks(&self) -> &[u8] {
        self.data.as_bytes()
    }

    /// Whether the blocks are a range of a file map.
    pub fn is_mapped(&self) -> bool {
        matches!(self.data, CodeBytes::Mapped(_))
    }

    /// Whether every bit that is no vector's code is zero: bits past `dim`
    /// and the unused slots of the last block (what [`BlockCodes::push`]
    /// leaves; a file's blocks are checked against it).
    pub fn padding_is_zero(&self) -> bool {
        let (bb, used) = (self.block_bytes(), self.dim.div_ceil(4));
        let data = self.data.as_bytes();
        // Low bits of a nibble that hold dimensions in the last used group.
        let part = match self.dim % 4 {
            0 => 0xFu8,
            r => (1u8 << r) - 1,
        };
        let keep = part | (part << 4);
        let blocks_ok = data.chunks_exact(bb).all(|block| {
            block[used * 16..].iter().all(|&b| b == 0)
                && (used == 0
                    || block[(used - 1) * 16..used * 16]
                        .iter()
                        .all(|&b| b & !keep == 0))
        });
        let tail = self.len % BLOCK;
        let tail_ok = tail == 0
            || data[data.len() - bb..].chunks_exact(16).all(|group| {
                (tail..BLOCK).all(|j| {
                    let (byte, shift) = (j % 16, if j < 16 { 0 } else { 4 });
                    (group[byte] >> shift) & 0xF == 0
                })
            });
        blocks_ok && tail_ok
    }

    /// The owned bytes, copying a mapped range first ("copy first").
    fn owned(&mut self) -> &mut Vec<u8> {
        if let CodeBytes::Mapped(m) = &self.data {
            self.data = CodeBytes::Owned(m.as_bytes().to_vec());
        }
        match &mut self.data {
            CodeBytes::Owned(v) => v,
            CodeBytes::Mapped(_) => unreachable!("copied above"),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn block_bytes(&self) -> usize {
        self.groups * 16
    }

    /// Room for `additional` more vectors without growing the blocks'
    /// buffer again (a list filled one vector at a time would otherwise
    /// copy its blocks at every doubling). Nothing to add, nothing done:
    /// mapped blocks stay mapped until a vector is added to them.
    pub fn reserve(&mut self, additional: usize) {
        if additional == 0 {
            return;
        }
        let bytes = (self.len + additional).div_ceil(BLOCK) * self.block_bytes();
        let data = self.owned();
        data.reserve(bytes.saturating_sub(data.len()));
    }

    /// Appends one vector given as sign bits (bit `i` of word `i / 64` is
    /// dimension `i`; bits past the dimension are 0).
    pub fn push(&mut self, bits: &[u64]) {
        let (j, bb) = (self.len % BLOCK, self.block_bytes());
        let data = self.owned();
        if j == 0 {
            data.resize(data.len() + bb, 0);
        }
        let block = data.len() - bb;
        let (byte, shift) = (j % 16, if j < 16 { 0 } else { 4 });
        // A word of bits fills sixteen groups of 16 bytes; groups past the
        // words (padding) stay 0.
        for (word, groups) in bits.iter().zip(data[block..].chunks_mut(16 * 16)) {
            for (g, group) in groups.chunks_exact_mut(16).enumerate() {
                group[byte] |= (((word >> (4 * g)) & 0xF) as u8) << shift;
            }
        }
        self.len += 1;
    }

    /// The sign bits of vector `i`, as [`BlockCodes::push`] took them, into
    /// `out` (its length: words of the vector; bits past the dimension 0).
    pub fn bits_of(&self, i: usize, out: &mut [u64]) {
        debug_assert!(i < self.len);
        out.fill(0);
        let block = i / BLOCK * self.block_bytes();
        let (byte, shift) = (i % 16, if i % BLOCK < 16 { 0 } else { 4 });
        let data = self.data.as_bytes();
        for g in 0..self.groups.min(out.len() * 16) {
            let nibble = u64::from((data[block + g * 16 + byte] >> shift) & 0xF);
            out[g / 16] |= nibble << ((g % 16) * 4);
        }
    }

    /// Keeps the vectors whose `keep` entry is true, in order, packed again
    /// from the start (`keep.len() == self.len()`).
    pub fn retain(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.len);
        let (bb, groups) = (self.block_bytes(), self.groups);
        let old = std::mem::take(&mut self.data);
        let old = old.as_bytes();
        let n = self.len;
        let mut kept = 0;
        let data = self.owned();
        for i in (0..n).filter(|&i| keep[i]) {
            let (src, sbyte, sshift) = (i / BLOCK * bb, i % 16, if i % BLOCK < 16 { 0 } else { 4 });
            let j = kept % BLOCK;
            if j == 0 {
                data.resize(data.len() + bb, 0);
            }
            let dst = data.len() - bb;
            let (dbyte, dshift) = (j % 16, if j < 16 { 0 } else { 4 });
            for g in 0..groups {
                let nibble = (old[src + g * 16 + sbyte] >> sshift) & 0xF;
                data[dst + g * 16 + dbyte] |= nibble << dshift;
            }
            kept += 1;
        }
        self.len = kept;
    }

    /// Gives back capacity not in use.
    pub fn shrink(&mut self) {
        // A mapped range has no spare capacity to give back.
        if let CodeBytes::Owned(v) = &mut self.data {
            v.shrink_to_fit();
        }
    }

    /// Bytes held (a mapped range counts its length, as mapped vectors do).
    pub fn memory_bytes(&self) -> usize {
        match &self.data {
            CodeBytes::Owned(v) => v.capacity(),
            CodeBytes::Mapped(m) => m.len(),
        }
    }

    /// `S` of every vector (see the module docs), in order, into `out`.
    pub fn scan(&self, lut: &QueryLut, out: &mut Vec<u32>) {
        debug_assert_eq!(lut.groups, self.groups);
        out.clear();
        out.resize(self.len.div_ceil(BLOCK) * BLOCK, 0);
        scan_blocks(self.data.as_bytes(), self.block_bytes(), &lut.table, out);
        out.truncate(self.len);
    }
}

fn groups_for(dim: usize) -> usize {
    dim.div_ceil(4).next_multiple_of(4)
}

/// A query's quantized lookup tables.
pub struct QueryLut {
    groups: usize,
    /// `groups × 16` entries.
    table: Vec<u8>,
    /// `Σ_{bit set} qᵢ ≈ base + delta·S`.
    pub base: f32,
    pub delta: f32,
}

impl QueryLut {
    /// Tables for `q` (length `dim`).
    ///
    /// Built group-major in the transposed layout (entry `v` of every group
    /// side by side), so each step is one vector operation over the groups
    /// instead of a 16-entry serial chain per group, and rounded without a
    /// libm call: a few µs less per query than the plain loops
    /// ([`QueryLut::reference`], which the tests compare it with bit for
    /// bit) at 512 dimensions.
    pub fn new(q: &[f32]) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2 (checked just above).
                return unsafe { Self::new_avx2(q) };
            }
        }
        Self::new_portable(q)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn new_avx2(q: &[f32]) -> Self {
        Self::new_portable(q)
    }

    /// Same operations on the same operands as [`QueryLut::reference`]
    /// (each entry the sum of its parent entry and one component; min, max
    /// and the division are exact), so the same bits on every CPU.
    #[inline(always)]
    fn new_portable(q: &[f32]) -> Self {
        let groups = groups_for(q.len());
        // sums[v * groups + g]: entry v of group g; component j of every
        // group first, as the rows the recurrence adds.
        let mut sums = vec![0.0f32; 16 * groups];
        let mut comps = vec![0.0f32; 4 * groups];
        for (i, &x) in q.iter().enumerate() {
            comps[(i % 4) * groups + i / 4] = x;
        }
        for v in 1..16usize {
            let (done, rest) = sums.split_at_mut(v * groups);
            let parent = &done[(v & (v - 1)) * groups..][..groups];
            let comp = &comps[v.trailing_zeros() as usize * groups..][..groups];
            for ((t, &p), &c) in rest[..groups].iter_mut().zip(parent).zip(comp) {
                *t = p + c;
            }
        }
        let mut lo = vec![f32::INFINITY; groups];
        let mut hi = vec![f32::NEG_INFINITY; groups];
        for row in sums.chunks_exact(groups) {
            for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                // `min`/`max` in the reference's order (a select, not a
                // masked store, which is slow on some CPUs).
                *l = l.min(x);
                *h = h.max(x);
            }
        }
        // In group order, as the reference adds them.
        let base = lo.iter().fold(0.0f32, |b, &l| b + l);
        let width = lo.iter().zip(&hi).fold(0.0f32, |w, (&l, &h)| w.max(h - l));
        let delta = if width > 0.0 { width / 255.0 } else { 1.0 };
        let mut levels = vec![0u8; 16 * groups];
        for (out, row) in levels
            .chunks_exact_mut(groups)
            .zip(sums.chunks_exact(groups))
        {
            for ((o, &x), &l) in out.iter_mut().zip(row).zip(&lo) {
                *o = round_level((x - l) / delta);
            }
        }
        let mut table = vec![0u8; groups * 16];
        for (g, entries) in table.chunks_exact_mut(16).enumerate() {
            for (v, e) in entries.iter_mut().enumerate() {
                *e = levels[v * groups + g];
            }
        }
        Self {
            groups,
            table,
            base,
            delta,
        }
    }

    /// The tables by the definition, one group at a time (the test oracle).
    #[cfg(test)]
    fn reference(q: &[f32]) -> Self {
        let groups = groups_for(q.len());
        let mut exact = vec![0.0f32; groups * 16];
        let (mut base, mut width) = (0.0f32, 0.0f32);
        for g in 0..groups {
            let t = &mut exact[g * 16..(g + 1) * 16];
            for v in 1..16usize {
                let low = v.trailing_zeros() as usize;
                let comp = q.get(4 * g + low).copied().unwrap_or(0.0);
                t[v] = t[v & (v - 1)] + comp;
            }
            let (lo, hi) = t
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                });
            base += lo;
            width = width.max(hi - lo);
        }
        let delta = if width > 0.0 { width / 255.0 } else { 1.0 };
        let mut table = vec![0u8; groups * 16];
        for (tg, eg) in table.chunks_exact_mut(16).zip(exact.chunks_exact(16)) {
            let lo = eg.iter().copied().fold(f32::INFINITY, f32::min);
            for (t, &e) in tg.iter_mut().zip(eg) {
                *t = ((e - lo) / delta).round().clamp(0.0, 255.0) as u8;
            }
        }
        Self {
            groups,
            table,
            base,
            delta,
        }
    }
}

/// `x.round().clamp(0, 255) as u8` (a table level), without the libm call
/// that keeps `round` from vectorising: truncate, then add one when the
/// exact fraction is at least a half (ties away from zero, as `round`).
/// NaN gives 0, as the cast does.
#[inline(always)]
fn round_level(x: f32) -> u8 {
    let x = if x >= 0.0 { x.min(255.0) } else { 0.0 };
    // SAFETY: 0 <= x <= 255 here (NaN became 0), so the truncation is
    // representable; the checked `as` cast does not vectorise.
    let whole: i32 = unsafe { x.to_int_unchecked() };
    let up = i32::from(x - whole as f32 >= 0.5);
    (whole + up).min(255) as u8
}

/// Every block of `data` (whole blocks), the CPU feature test made once.
fn scan_blocks(data: &[u8], block_bytes: usize, table: &[u8], sums: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has AVX-512F/BW (BW implies F); the slices
            // have the sizes the kernel reads (see `scan_blocks_with`).
            unsafe { scan_blocks_avx512(data, block_bytes, table, sums) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above); sizes as above.
            unsafe { scan_blocks_avx2(data, block_bytes, table, sums) };
            return;
        }
        if std::is_x86_feature_detected!("ssse3") {
            // SAFETY: the CPU has SSSE3 (checked just above); sizes as above.
            unsafe { scan_blocks_ssse3(data, block_bytes, table, sums) };
            return;
        }
    }
    // SAFETY: NEON is part of every aarch64 target; sizes as above.
    #[cfg(target_arch = "aarch64")]
    scan_blocks_with(data, block_bytes, table, sums, |b, t, o| unsafe {
        scan_block_lanes::<crate::lanes::Neon>(b, t, o)
    });
    // SAFETY: plain arrays need no CPU feature; sizes as above.
    #[cfg(not(target_arch = "aarch64"))]
    scan_blocks_with(data, block_bytes, table, sums, |b, t, o| unsafe {
        scan_block_lanes::<crate::lanes::Portable>(b, t, o)
    });
}

/// Runs `kernel` on each block: `block_bytes` bytes of codes to 32 sums.
#[inline(always)]
fn scan_blocks_with(
    data: &[u8],
    block_bytes: usize,
    table: &[u8],
    sums: &mut [u32],
    kernel: impl Fn(&[u8], &[u8], &mut [u32]),
) {
    for (block, out) in data
        .chunks_exact(block_bytes)
        .zip(sums.chunks_exact_mut(BLOCK))
    {
        kernel(block, table, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn scan_blocks_avx512(data: &[u8], block_bytes: usize, table: &[u8], sums: &mut [u32]) {
    // SAFETY (inner): same features as this function; sizes per block.
    scan_blocks_with(data, block_bytes, table, sums, |b, t, o| unsafe {
        scan_block_avx512(b, t, o)
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_blocks_avx2(data: &[u8], block_bytes: usize, table: &[u8], sums: &mut [u32]) {
    // SAFETY (inner): same features as this function; sizes per block.
    scan_blocks_with(data, block_bytes, table, sums, |b, t, o| unsafe {
        scan_block_avx2(b, t, o)
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn scan_blocks_ssse3(data: &[u8], block_bytes: usize, table: &[u8], sums: &mut [u32]) {
    // SAFETY (inner): same features as this function; sizes per block.
    scan_blocks_with(data, block_bytes, table, sums, |b, t, o| unsafe {
        scan_block_lanes::<crate::lanes::Ssse3>(b, t, o)
    })
}

/// One block's sums in 128-bit lanes, whatever the backend: per group, the
/// table entries of the vectors' low nibbles (vectors 0..16) and high
/// nibbles (16..32), widened into four u16 accumulators of eight vectors
/// each, flushed into u32 totals every 257 groups (257 · 255 = 65535, so a
/// word never wraps).
///
/// # Safety
/// `block` holds whole 16-byte groups, `table` at least as many bytes, and
/// the CPU has `L`'s features.
#[inline(always)]
unsafe fn scan_block_lanes<L: Lanes>(block: &[u8], table: &[u8], sums: &mut [u32]) {
    const FLUSH: usize = u16::MAX as usize / u8::MAX as usize;
    let groups = block.len() / 16;
    debug_assert!(table.len() >= 16 * groups && sums.len() == BLOCK);
    let mut total = [0u32; BLOCK];
    let mut g = 0;
    while g < groups {
        let run = (groups - g).min(FLUSH);
        // SAFETY: the caller's features; every group read is below `groups`.
        unsafe {
            let mut acc = [L::zero(); 4];
            for i in g..g + run {
                let codes = L::load(block.as_ptr().add(16 * i));
                let lut = L::load(table.as_ptr().add(16 * i));
                let low = L::lookup(lut, L::low_nibbles(codes));
                let high = L::lookup(lut, L::high_nibbles(codes));
                acc[0] = L::add_low(acc[0], low);
                acc[1] = L::add_high(acc[1], low);
                acc[2] = L::add_low(acc[2], high);
                acc[3] = L::add_high(acc[3], high);
            }
            for (eight, a) in total.chunks_exact_mut(8).zip(acc) {
                for (t, w) in eight.iter_mut().zip(L::words(a)) {
                    *t += u32::from(w);
                }
            }
        }
        g += run;
    }
    sums.copy_from_slice(&total);
}

/// The reference kernel, one table entry at a time: the sums every other
/// kernel must give (the tests' oracle).
pub fn scan_block_portable(block: &[u8], table: &[u8], sums: &mut [u32]) {
    sums.iter_mut().for_each(|s| *s = 0);
    for (codes, lut) in block.chunks_exact(16).zip(table.chunks_exact(16)) {
        for (j, &b) in codes.iter().enumerate() {
            sums[j] += lut[(b & 0xF) as usize] as u32;
            sums[j + 16] += lut[(b >> 4) as usize] as u32;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn scan_block_avx2(block: &[u8], table: &[u8], sums: &mut [u32]) {
    use std::arch::x86_64::*;
    let pairs = block.len() / 32;
    let low4 = _mm256_set1_epi8(0x0F);
    // u16 accumulators: even/odd bytes of vectors 0..16 and 16..32; lane 0
    // collects even groups, lane 1 odd groups. Flushed into u32 totals
    // every 128 pairs, so that even the two lanes' sum (at most
    // 256 · 255 = 65280) fits a word.
    let mut total = [_mm256_setzero_si256(); 4];
    let mut p = 0;
    while p < pairs {
        let run = (pairs - p).min(128);
        let (mut a_even, mut a_odd, mut b_even, mut b_odd) = (
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
            _mm256_setzero_si256(),
        );
        for i in p..p + run {
            // SAFETY: i < pairs, so bytes 32i..32i+32 are inside both slices.
            let codes = _mm256_loadu_si256(block.as_ptr().add(32 * i) as *const __m256i);
            let lut = _mm256_loadu_si256(table.as_ptr().add(32 * i) as *const __m256i);
            let lo = _mm256_and_si256(codes, low4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(codes, 4), low4);
            let r_lo = _mm256_shuffle_epi8(lut, lo);
            let r_hi = _mm256_shuffle_epi8(lut, hi);
            // Whole 16-bit words (even byte + 256·odd byte) and odd bytes;
            // the even sums are recovered below, modulo 2¹⁶, exactly.
            a_even = _mm256_add_epi16(a_even, r_lo);
            a_odd = _mm256_add_epi16(a_odd, _mm256_srli_epi16(r_lo, 8));
            b_even = _mm256_add_epi16(b_even, r_hi);
            b_odd = _mm256_add_epi16(b_odd, _mm256_srli_epi16(r_hi, 8));
        }
        a_even = _mm256_sub_epi16(a_even, _mm256_slli_epi16(a_odd, 8));
        b_even = _mm256_sub_epi16(b_even, _mm256_slli_epi16(b_odd, 8));
        // Each vector's two lanes (even + odd groups) added, then even and
        // odd vectors interleaved back into order and widened to u32.
        let halves =
            |v: __m256i| _mm_add_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        for (half, (even, odd)) in [(a_even, a_odd), (b_even, b_odd)].into_iter().enumerate() {
            let (even, odd) = (halves(even), halves(odd));
            for (j, words) in [_mm_unpacklo_epi16(even, odd), _mm_unpackhi_epi16(even, odd)]
                .into_iter()
                .enumerate()
            {
                let t = &mut total[2 * half + j];
                *t = _mm256_add_epi32(*t, _mm256_cvtepu16_epi32(words));
            }
        }
        p += run;
    }
    for (eight, t) in sums.chunks_exact_mut(8).zip(total) {
        // SAFETY: `sums` holds BLOCK = 4 · 8 words.
        _mm256_storeu_si256(eight.as_mut_ptr() as *mut __m256i, t);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn scan_block_avx512(block: &[u8], table: &[u8], sums: &mut [u32]) {
    use std::arch::x86_64::*;
    let quads = block.len() / 64;
    let low4 = _mm512_set1_epi8(0x0F);
    // As in the AVX2 kernel, with four 128-bit lanes: lane L collects the
    // groups 4i + L.
    let mut total = [0u32; BLOCK];
    let mut p = 0;
    while p < quads {
        let run = (quads - p).min(256);
        let (mut a_even, mut a_odd, mut b_even, mut b_odd) = (
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
        );
        for i in p..p + run {
            // SAFETY: i < quads, so bytes 64i..64i+64 are inside both slices.
            let codes = _mm512_loadu_si512(block.as_ptr().add(64 * i).cast());
            let lut = _mm512_loadu_si512(table.as_ptr().add(64 * i).cast());
            let lo = _mm512_and_si512(codes, low4);
            let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(codes), low4);
            let r_lo = _mm512_shuffle_epi8(lut, lo);
            let r_hi = _mm512_shuffle_epi8(lut, hi);
            // As in the AVX2 kernel: whole words and odd bytes.
            a_even = _mm512_add_epi16(a_even, r_lo);
            a_odd = _mm512_add_epi16(a_odd, _mm512_srli_epi16::<8>(r_lo));
            b_even = _mm512_add_epi16(b_even, r_hi);
            b_odd = _mm512_add_epi16(b_odd, _mm512_srli_epi16::<8>(r_hi));
        }
        a_even = _mm512_sub_epi16(a_even, _mm512_slli_epi16::<8>(a_odd));
        b_even = _mm512_sub_epi16(b_even, _mm512_slli_epi16::<8>(b_odd));
        let mut buf = [0u16; 32];
        for (acc, first) in [(a_even, 0), (a_odd, 1), (b_even, 16), (b_odd, 17)] {
            _mm512_storeu_si512(buf.as_mut_ptr().cast(), acc);
            for t in 0..8 {
                total[first + 2 * t] +=
                    buf[t] as u32 + buf[t + 8] as u32 + buf[t + 16] as u32 + buf[t + 24] as u32;
            }
        }
        p += run;
    }
    sums.copy_from_slice(&total);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SplitMix64;

    fn random_bits(rng: &mut SplitMix64, dim: usize) -> Vec<u64> {
        let mut w: Vec<u64> = (0..dim.div_ceil(64)).map(|_| rng.next_u64()).collect();
        if !dim.is_multiple_of(64) {
            let last = w.len() - 1;
            w[last] &= (1u64 << (dim % 64)) - 1;
        }
        w
    }

    #[test]
    fn retain_equals_pushing_the_kept_vectors_again() {
        let mut rng = SplitMix64::new(5);
        for dim in [7usize, 100, 384] {
            let vecs: Vec<Vec<u64>> = (0..77).map(|_| random_bits(&mut rng, dim)).collect();
            let keep: Vec<bool> = (0..77).map(|i| i % 3 != 1 && i != 40).collect();
            let mut codes = BlockCodes::new(dim);
            vecs.iter().for_each(|v| codes.push(v));
            codes.retain(&keep);
            let mut want = BlockCodes::new(dim);
            vecs.iter()
                .zip(&keep)
                .filter(|(_, &k)| k)
                .for_each(|(v, _)| want.push(v));
            assert_eq!(
                (codes.len, codes.blocks()),
                (want.len, want.blocks()),
                "dim {dim}"
            );
        }
    }

    #[test]
    fn blocks_round_trip_and_padding_bits_are_found() {
        let mut rng = SplitMix64::new(3);
        for (dim, n) in [(7usize, 33usize), (24, 40), (100, 64), (384, 45)] {
            let mut codes = BlockCodes::new(dim);
            (0..n).for_each(|_| codes.push(&random_bits(&mut rng, dim)));
            assert!(codes.padding_is_zero(), "dim {dim}");
            let blocks = codes.blocks().to_vec();
            assert_eq!(blocks.len(), n.div_ceil(BLOCK) * block_bytes_for(dim));
            assert!(
                BlockCodes::from_blocks(dim, n + 32, CodeBytes::Owned(blocks.clone())).is_none()
            );
            let back = BlockCodes::from_blocks(dim, n, CodeBytes::Owned(blocks.clone())).unwrap();
            let (mut a, mut b) = (vec![0u64; dim.div_ceil(64)], vec![0u64; dim.div_ceil(64)]);
            for i in 0..n {
                codes.bits_of(i, &mut a);
                back.bits_of(i, &mut b);
                assert_eq!(a, b);
            }
            // Every bit of the blocks: set, is it a vector's bit or padding?
            for at in 0..blocks.len() {
                for bit in 0..8 {
                    let mut forged = blocks.clone();
                    forged[at] |= 1 << bit;
                    if forged == blocks {
                        continue;
                    }
                    let (block, g, byte) = (
                        at / block_bytes_for(dim),
                        at % block_bytes_for(dim) / 16,
                        at % 16,
                    );
                    let slot = block * BLOCK + byte + if bit >= 4 { 16 } else { 0 };
                    let in_code = 4 * g + bit % 4 < dim && slot < n;
                    let f = BlockCodes::from_blocks(dim, n, CodeBytes::Owned(forged)).unwrap();
                    assert_eq!(
                        f.padding_is_zero(),
                        in_code,
                        "dim {dim}, byte {at}, bit {bit}"
                    );
                }
            }
        }
    }

    #[test]
    fn bits_of_gives_back_what_push_took() {
        let mut rng = SplitMix64::new(11);
        for dim in [1usize, 7, 64, 100, 384, 1024] {
            let vecs: Vec<Vec<u64>> = (0..70).map(|_| random_bits(&mut rng, dim)).collect();
            let mut codes = BlockCodes::new(dim);
            vecs.iter().for_each(|v| codes.push(v));
            let mut out = vec![u64::MAX; dim.div_ceil(64)];
            for (i, v) in vecs.iter().enumerate() {
                codes.bits_of(i, &mut out);
                assert_eq!(&out, v, "dim {dim}, vector {i}");
            }
        }
    }

    #[test]
    fn tables_equal_the_reference_bit_for_bit() {
        let mut rng = SplitMix64::new(21);
        for dim in [1usize, 3, 4, 7, 64, 100, 384, 511, 2500] {
            for scale in [1e-3f32, 1.0, 1e3] {
                let mut q: Vec<f32> = (0..dim)
                    .map(|_| (rng.below(20_000) as f32 / 10_000.0 - 1.0) * scale)
                    .collect();
                // Exact zeros and repeated values: ties in min/max and
                // entries that land on half a step.
                if dim > 8 {
                    q[1] = 0.0;
                    q[5] = -0.0;
                    q[6] = q[2];
                }
                let (fast, slow) = (QueryLut::new(&q), QueryLut::reference(&q));
                assert_eq!(fast.table, slow.table, "dim {dim}, scale {scale}");
                assert_eq!(fast.base.to_bits(), slow.base.to_bits(), "dim {dim}");
                assert_eq!(fast.delta.to_bits(), slow.delta.to_bits(), "dim {dim}");
                let portable = QueryLut::new_portable(&q);
                assert_eq!(portable.table, slow.table, "portable, dim {dim}");
            }
        }
        // An all-zero query: one level, step 1.
        let zero = QueryLut::new(&[0.0; 16]);
        assert!(zero.table.iter().all(|&t| t == 0));
        assert_eq!(zero.delta, 1.0);
    }

    #[test]
    fn levels_round_half_away_from_zero_like_round() {
        for x in [
            f32::NAN,
            -1.0,
            -0.0,
            0.0f32,
            0.49999997,
            0.5,
            0.50000006,
            1.5,
            2.5,
            254.49998,
            254.5,
            255.0,
            255.00002,
            300.0,
        ] {
            assert_eq!(round_level(x), x.round().clamp(0.0, 255.0) as u8, "{x}");
        }
        let mut rng = SplitMix64::new(5);
        for _ in 0..100_000 {
            let x = rng.below(1 << 24) as f32 / 65_536.0;
            assert_eq!(round_level(x), x.round().clamp(0.0, 255.0) as u8, "{x}");
        }
    }

    #[test]
    fn simd_and_portable_kernels_agree_and_estimate_the_set_sum() {
        let mut rng = SplitMix64::new(9);
        // 2500 and 8192 run past the u16 flush points of both SIMD kernels.
        for dim in [1usize, 7, 64, 100, 384, 2500, 8192] {
            let q: Vec<f32> = (0..dim)
                .map(|_| rng.below(20_000) as f32 / 10_000.0 - 1.0)
                .collect();
            let lut = QueryLut::new(&q);
            let mut codes = BlockCodes::new(dim);
            let vecs: Vec<Vec<u64>> = (0..75).map(|_| random_bits(&mut rng, dim)).collect();
            vecs.iter().for_each(|v| codes.push(v));
            let mut fast = Vec::new();
            codes.scan(&lut, &mut fast);
            assert_eq!(fast.len(), 75);
            let mut slow = vec![0u32; codes.len().div_ceil(BLOCK) * BLOCK];
            for (block, sums) in codes
                .blocks()
                .chunks_exact(codes.block_bytes())
                .zip(slow.chunks_exact_mut(BLOCK))
            {
                scan_block_portable(block, &lut.table, sums);
                // Every SIMD kernel this CPU can run, one by one.
                #[cfg(target_arch = "x86_64")]
                {
                    let mut simd = [0u32; BLOCK];
                    if std::is_x86_feature_detected!("avx2") {
                        unsafe { scan_block_avx2(block, &lut.table, &mut simd) };
                        assert_eq!(&simd[..], &sums[..], "avx2, dim {dim}");
                    }
                    if std::is_x86_feature_detected!("avx512bw") {
                        unsafe { scan_block_avx512(block, &lut.table, &mut simd) };
                        assert_eq!(&simd[..], &sums[..], "avx512, dim {dim}");
                    }
                    if std::is_x86_feature_detected!("ssse3") {
                        unsafe { scan_blocks_ssse3(block, block.len(), &lut.table, &mut simd) };
                        assert_eq!(&simd[..], &sums[..], "ssse3 lanes, dim {dim}");
                    }
                }
                #[cfg(target_arch = "aarch64")]
                {
                    let mut simd = [0u32; BLOCK];
                    unsafe { scan_block_lanes::<crate::lanes::Neon>(block, &lut.table, &mut simd) };
                    assert_eq!(&simd[..], &sums[..], "neon lanes, dim {dim}");
                }
                // The shared 128-bit kernel on plain arrays (any CPU).
                let mut lanes = [0u32; BLOCK];
                unsafe {
                    scan_block_lanes::<crate::lanes::Portable>(block, &lut.table, &mut lanes)
                };
                assert_eq!(&lanes[..], &sums[..], "portable lanes, dim {dim}");
            }
            assert_eq!(&fast[..], &slow[..75], "dim {dim}");
            for (v, &s) in vecs.iter().zip(&fast) {
                let exact: f32 = (0..dim)
                    .filter(|&i| v[i / 64] >> (i % 64) & 1 == 1)
                    .map(|i| q[i])
                    .sum();
                let approx = lut.base + lut.delta * s as f32;
                // Each group's entry is off by at most half a step.
                let tol = lut.delta * 0.5 * lut.groups as f32 + 1e-4;
                assert!(
                    (approx - exact).abs() <= tol,
                    "dim {dim}: {approx} vs {exact}"
                );
            }
        }
    }
}
