//! k-means for the IVF coarse quantizer: seeded, trained on a sample, with
//! the distance work done as blocked integer products (`‖x‖² − 2x·c +
//! ‖c‖²`, the `‖x‖²` term dropped for the arg-min; see [`crate::intdot`])
//! on the wheel's thread pool.
//!
//! Deterministic for a given seed and input: the sample, the initial
//! centroids and empty-cluster repairs come from one SplitMix64 stream, rows
//! are assigned independently, and centroid sums run serially in f64.

use rayon::prelude::*;
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::Result;

use crate::distance::dot;
use crate::intdot::{self, PackedRows, RowPairs};

/// Rows per GEMM block when assigning: big enough for the GEMM to run at
/// speed, small enough that the `block × nlist` scores stay in cache.
const ASSIGN_BLOCK: usize = 256;
/// How much k-means training does: sampled rows per centroid (faiss uses up
/// to 256; k-means over more points moves centroids very little for the
/// recall it buys) and Lloyd iterations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Training {
    pub rows_per_list: usize,
    pub iterations: usize,
}

/// For lists visited by distance (`l2`, `cosine`). Measured on two real
/// 100k × 384 corpora (recall at fixed `nprobe`, mean of six seeds): 3
/// iterations over 40 rows a list partition as well as 6 over 24, for 5/6
/// of the work; 3 over 32 lose 0.004. More rows help more than more
/// iterations.
pub const DISTANCE_TRAINING: Training = Training {
    rows_per_list: 40,
    iterations: 3,
};
/// For lists visited by an inner-product bound (`ip`): the bound grows
/// with each list's radius, which more iterations keep tight (3 over 40
/// lost recall 0.95 → 0.91 in a test).
pub const RADIUS_TRAINING: Training = Training {
    rows_per_list: 24,
    iterations: 6,
};

/// A small, seedable generator (SplitMix64): the sample and the repairs
/// must not depend on a crate's RNG algorithm changing between versions.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is below 2⁻³² for any n
    /// an index can hold.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// `k` distinct indices of `0..n` (`k ≤ n`), by a partial Fisher–Yates.
fn sample_indices(n: usize, k: usize, rng: &mut SplitMix64) -> Vec<usize> {
    if k * 4 >= n {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + rng.below(n - i);
            all.swap(i, j);
        }
        all.truncate(k);
        return all;
    }
    let mut seen = std::collections::HashSet::with_capacity(k * 2);
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let i = rng.below(n);
        if seen.insert(i) {
            out.push(i);
        }
    }
    out
}

/// Squared norms of the rows of `m`.
fn sq_norms(m: &[f32], dim: usize) -> Vec<f32> {
    m.chunks_exact(dim).map(|r| dot(r, r)).collect()
}

/// Index of the nearest centroid of every row of `data`, in parallel on the
/// current rayon pool. Ties go to the lower centroid index. `cancel` is
/// checked before every block of rows.
pub fn assign(data: &[f32], dim: usize, centroids: &[f32], cancel: &Cancel) -> Result<Vec<u32>> {
    Ok(assign_with_spill(data, dim, centroids, false, cancel)?.0)
}

/// Weight of the orthogonality term of the spill choice (SOAR's λ).
const SPILL_LAMBDA: f32 = 1.0;
/// Nearest centroids a row's spill list is chosen among when there are
/// too many lists for their Gram matrix.
const SPILL_CANDIDATES: usize = 16;
/// Up to this many lists the spill choice reads the centroids' products
/// from their Gram matrix (64 MiB at most) and weighs every list.
const SPILL_GRAM_MAX_LISTS: usize = 4096;

/// [`assign`], and with `spill` (and at least two centroids) a second list
/// for every row: among the other centroids `c'` (every one up to
/// [`SPILL_GRAM_MAX_LISTS`] lists, else its [`SPILL_CANDIDATES`] nearest),
/// the one minimising `‖x − c'‖² + λ·⟨r, x − c'⟩²/‖r‖²` with
/// `r = x − c` the residual to its nearest centroid `c` (the spilled
/// assignment of SOAR, Sun et al., NeurIPS 2023). The second term
/// penalises a `c'` that leaves a residual parallel to `r`: a query that
/// the first list's residual hides (large `⟨q − c, r⟩`) is then likely to
/// find the row in the second. Without `spill` the second vector is empty.
pub fn assign_with_spill(
    data: &[f32],
    dim: usize,
    centroids: &[f32],
    spill: bool,
    cancel: &Cancel,
) -> Result<(Vec<u32>, Vec<u32>)> {
    let nlist = centroids.len() / dim;
    let spill = spill && nlist >= 2;
    let c_norms = sq_norms(centroids, dim);
    let packed = PackedRows::new(centroids, dim);
    let gram = (spill && nlist <= SPILL_GRAM_MAX_LISTS).then(|| gram(centroids, dim));
    let n = data.len() / dim;
    let mut out = vec![0u32; n];
    let mut second = vec![0u32; if spill { n } else { 0 }];
    let second_blocks: Vec<&mut [u32]> = if spill {
        second.chunks_mut(ASSIGN_BLOCK).collect()
    } else {
        (0..n.div_ceil(ASSIGN_BLOCK)).map(|_| &mut [][..]).collect()
    };
    out.par_chunks_mut(ASSIGN_BLOCK)
        .zip(second_blocks.into_par_iter())
        .zip(data.par_chunks(ASSIGN_BLOCK * dim))
        // One set of buffers per worker, not per block: a fresh allocation
        // this size is a fresh mapping, whose pages fault in zeroed.
        .try_for_each_init(
            AssignBufs::default,
            |bufs, ((out, second), rows)| -> Result<()> {
                cancel.check()?;
                bufs.products(rows, &packed, nlist);
                let ip = &bufs.ip;
                let mut near: Vec<(f32, u32)> = Vec::with_capacity(SPILL_CANDIDATES + 1);
                let mut cost: Vec<f32> = Vec::with_capacity(nlist);
                let mut dist: Vec<f32> = Vec::with_capacity(nlist);
                for (i, (slot, scores)) in out.iter_mut().zip(ip.chunks_exact(nlist)).enumerate() {
                    dist.clear();
                    dist.extend(scores.iter().zip(&c_norms).map(|(&s, &cn)| cn - 2.0 * s));
                    *slot = first_min(&dist) as u32;
                    if spill {
                        let x = &rows[i * dim..(i + 1) * dim];
                        second[i] = match &gram {
                            Some(g) => spill_list_gram(x, scores, &c_norms, g, *slot, &mut cost),
                            None => spill_list(x, scores, &c_norms, centroids, *slot, &mut near),
                        };
                    }
                }
                Ok(())
            },
        )?;
    Ok((out, second))
}

/// A worker's buffers for [`assign_with_spill`].
#[derive(Default)]
struct AssignBufs {
    rows: RowPairs,
    dots: Vec<i32>,
    /// `⟨x, c⟩` of each row of a block with each centroid, row-major.
    ip: Vec<f32>,
}

impl AssignBufs {
    /// `ip` for `rows` and the `nlist` centroids in `packed`: their
    /// [`intdot`] products, whose integers every CPU computes alike (a
    /// float GEMM's bits depend on the CPU's FMA and the blocking), in
    /// ~0.6× the time of the float GEMM it replaced.
    fn products(&mut self, rows: &[f32], packed: &PackedRows, nlist: usize) {
        self.rows.fill(rows, packed);
        intdot::dots(&self.rows, packed, &mut self.dots);
        let stride = packed.padded_rows();
        self.ip.clear();
        for (i, dots) in self.dots.chunks_exact(stride.max(1)).enumerate() {
            let scale = self.rows.scale(i) * packed.scale();
            self.ip
                .extend(dots[..nlist].iter().map(|&d| scale * d as f32));
        }
    }
}

/// `C·Cᵀ` of the `nlist × dim` centroids, row-major.
fn gram(centroids: &[f32], dim: usize) -> Vec<f32> {
    let nlist = centroids.len() / dim;
    let mut g = vec![0.0f32; nlist * nlist];
    // SAFETY: `centroids` is nlist×dim row-major, read as its transpose
    // (dim×nlist) for the right operand; `g` is nlist×nlist row-major.
    unsafe {
        matrixmultiply::sgemm(
            nlist,
            dim,
            nlist,
            1.0,
            centroids.as_ptr(),
            dim as isize,
            1,
            centroids.as_ptr(),
            1,
            dim as isize,
            0.0,
            g.as_mut_ptr(),
            nlist as isize,
            1,
        );
    }
    g
}

/// [`spill_list`] over every list, the centroids' products read from
/// their Gram matrix `gram`.
/// `cost` is scratch.
fn spill_list_gram(
    x: &[f32],
    scores: &[f32],
    c_norms: &[f32],
    gram: &[f32],
    first: u32,
    cost: &mut Vec<f32>,
) -> u32 {
    let nlist = scores.len();
    let f = first as usize;
    let x_sq = dot(x, x);
    let r_sq = x_sq - 2.0 * scores[f] + c_norms[f];
    let g = &gram[f * nlist..(f + 1) * nlist];
    // Without a residual (the row is its centroid) only the distance counts.
    let weight = if r_sq > f32::EPSILON * x_sq.max(1.0) {
        SPILL_LAMBDA / r_sq
    } else {
        0.0
    };
    let base = x_sq - scores[f];
    // Every cost first (a loop that vectorises), then the arg-min.
    cost.clear();
    cost.extend(scores.iter().zip(c_norms).zip(g).map(|((&s, &cn), &cc)| {
        let along = base - s + cc;
        cn - 2.0 * s + weight * along * along
    }));
    cost[f] = f32::INFINITY;
    match first_min(cost) {
        // Every other cost NaN (overflowing rows): any other list.
        j if j == f => u32::from(f == 0),
        j => j as u32,
    }
}

/// Index of the first smallest value of `v` (0 when `v` is empty or all
/// NaN), NaNs skipped, in one pass: lanes keep their smallest value and
/// the first index it was met at, then the lanes' best wins, ties to the
/// lowest index (what a plain scan with `<` gives).
fn first_min(v: &[f32]) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { first_min_avx2(v) };
        }
    }
    first_min_portable(v)
}

/// Lanes of the scans below; their indices are kept as floats, exact
/// below 2²⁴ (the scans are over lists, at most `ivf::MAX_NLIST` = 2¹⁶).
const MIN_LANES: usize = 16;

/// The best of per-lane minima `best` met at indices `at` (negative: none
/// met) over the whole chunks of `v`, then of the tail of `v`, whose
/// values follow every lane's. With nothing below +∞ (only +∞ and NaN),
/// the first +∞, as a plain scan gives.
fn first_of_lanes(best: &[f32; MIN_LANES], at: &[f32; MIN_LANES], v: &[f32]) -> usize {
    let base = v.len() - v.len() % MIN_LANES;
    let (mut min, mut pos) = (f32::INFINITY, usize::MAX);
    for (&m, &i) in best.iter().zip(at) {
        if i >= 0.0 && (m < min || (m == min && (i as usize) < pos)) {
            (min, pos) = (m, i as usize);
        }
    }
    for (i, &x) in v[base..].iter().enumerate() {
        // `x < min` is false for NaN: NaNs never become the minimum.
        if x < min {
            (min, pos) = (x, base + i);
        }
    }
    if pos == usize::MAX {
        v.iter().position(|&x| x == f32::INFINITY).unwrap_or(0)
    } else {
        pos
    }
}

fn first_min_portable(v: &[f32]) -> usize {
    let mut best = [f32::INFINITY; MIN_LANES];
    let mut at = [-1.0f32; MIN_LANES];
    let chunks = v.chunks_exact(MIN_LANES);
    for (k, c) in chunks.enumerate() {
        for (j, ((m, i), &x)) in best.iter_mut().zip(&mut at).zip(c).enumerate() {
            // A later equal value never replaces an earlier one.
            if x < *m {
                (*m, *i) = (x, (k * MIN_LANES + j) as f32);
            }
        }
    }
    first_of_lanes(&best, &at, v)
}

/// [`first_min_portable`] in two registers of eight lanes (two
/// independent chains of compare and blend).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn first_min_avx2(v: &[f32]) -> usize {
    use std::arch::x86_64::*;
    let chunks = v.chunks_exact(MIN_LANES);
    let mut best = [f32::INFINITY; MIN_LANES];
    let mut at = [-1.0f32; MIN_LANES];
    // SAFETY: loads and stores of sixteen floats from whole chunks and
    // the sixteen-lane arrays.
    unsafe {
        let (mut b0, mut b1) = (_mm256_set1_ps(f32::INFINITY), _mm256_set1_ps(f32::INFINITY));
        let (mut a0, mut a1) = (_mm256_set1_ps(-1.0), _mm256_set1_ps(-1.0));
        let mut i0 = _mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0);
        let mut i1 = _mm256_add_ps(i0, _mm256_set1_ps(8.0));
        let step = _mm256_set1_ps(MIN_LANES as f32);
        for c in chunks {
            let x0 = _mm256_loadu_ps(c.as_ptr());
            let x1 = _mm256_loadu_ps(c.as_ptr().add(8));
            let t0 = _mm256_cmp_ps::<_CMP_LT_OQ>(x0, b0);
            let t1 = _mm256_cmp_ps::<_CMP_LT_OQ>(x1, b1);
            b0 = _mm256_blendv_ps(b0, x0, t0);
            b1 = _mm256_blendv_ps(b1, x1, t1);
            a0 = _mm256_blendv_ps(a0, i0, t0);
            a1 = _mm256_blendv_ps(a1, i1, t1);
            i0 = _mm256_add_ps(i0, step);
            i1 = _mm256_add_ps(i1, step);
        }
        _mm256_storeu_ps(best.as_mut_ptr(), b0);
        _mm256_storeu_ps(best.as_mut_ptr().add(8), b1);
        _mm256_storeu_ps(at.as_mut_ptr(), a0);
        _mm256_storeu_ps(at.as_mut_ptr().add(8), a1);
    }
    first_of_lanes(&best, &at, v)
}

/// The spill list of row `x` (see [`assign_with_spill`]), whose nearest
/// centroid is `first` and whose products with every centroid are
/// `scores`; `near` is scratch.
fn spill_list(
    x: &[f32],
    scores: &[f32],
    c_norms: &[f32],
    centroids: &[f32],
    first: u32,
    near: &mut Vec<(f32, u32)>,
) -> u32 {
    let dim = x.len();
    // The nearest other centroids by `‖c‖² − 2⟨x, c⟩`, kept sorted.
    near.clear();
    for (c, (&s, &cn)) in scores.iter().zip(c_norms).enumerate() {
        let d = cn - 2.0 * s;
        if c as u32 == first || (near.len() == SPILL_CANDIDATES && d >= near[near.len() - 1].0) {
            continue;
        }
        let at = near.partition_point(|e| e.0 <= d);
        near.insert(at, (d, c as u32));
        near.truncate(SPILL_CANDIDATES);
    }
    let f = first as usize;
    let x_sq = dot(x, x);
    // ‖r‖² = ‖x‖² − 2⟨x, c⟩ + ‖c‖².
    let r_sq = x_sq - 2.0 * scores[f] + c_norms[f];
    if r_sq <= f32::EPSILON * x_sq.max(1.0) {
        return near[0].1;
    }
    let c = &centroids[f * dim..(f + 1) * dim];
    let x_c = scores[f];
    let mut best = (f32::INFINITY, near[0].1);
    for &(d, c2) in near.iter() {
        let j = c2 as usize;
        // ⟨x − c, x − c'⟩ = ‖x‖² − ⟨x, c'⟩ − ⟨x, c⟩ + ⟨c, c'⟩.
        let along = x_sq - scores[j] - x_c + dot(c, &centroids[j * dim..(j + 1) * dim]);
        let cost = d + SPILL_LAMBDA * along * along / r_sq;
        if cost < best.0 {
            best = (cost, c2);
        }
    }
    best.1
}

/// Trains `nlist` centroids (`1 ≤ nlist ≤ rows`) on at most
/// `nlist × training.rows_per_list` sampled rows of `data`, for
/// `training.iterations` Lloyd iterations. Runs on the current
/// rayon pool; `cancel` is checked between iterations and blocks of rows.
pub fn train(
    data: &[f32],
    dim: usize,
    nlist: usize,
    seed: u64,
    training: Training,
    cancel: &Cancel,
) -> Result<Vec<f32>> {
    let n = data.len() / dim;
    debug_assert!(nlist >= 1 && nlist <= n);
    let mut rng = SplitMix64::new(seed ^ 0x1f5_c0de);
    let n_train = n.min(nlist * training.rows_per_list);
    let mut picks = sample_indices(n, n_train, &mut rng);
    // Sequential reads; the order does not matter.
    picks.sort_unstable();
    // Sized up front: collected from a flat map (no size hint), the sample
    // grew by doubling, each growth a copy of what it held.
    let mut sample: Vec<f32> = Vec::with_capacity(n_train * dim);
    for &i in &picks {
        sample.extend_from_slice(&data[i * dim..(i + 1) * dim]);
    }
    // Initial centroids: distinct sampled rows.
    let mut centroids: Vec<f32> = sample_indices(n_train, nlist, &mut rng)
        .into_iter()
        .flat_map(|i| sample[i * dim..(i + 1) * dim].to_vec())
        .collect();
    if nlist == 1 {
        return Ok(mean_of(&sample, dim));
    }
    for _ in 0..training.iterations {
        cancel.check()?;
        let labels = assign(&sample, dim, &centroids, cancel)?;
        let mut counts = update_means(&sample, dim, &labels, &mut centroids);
        // Empty clusters: split the largest one (copy its centroid with a
        // small symmetric perturbation), as faiss does.
        for c in 0..nlist {
            if counts[c] != 0 {
                continue;
            }
            let big = (0..nlist)
                .max_by_key(|&j| (counts[j], usize::MAX - j))
                .unwrap_or(0);
            if counts[big] < 2 {
                break;
            }
            for j in 0..dim {
                let v = centroids[big * dim + j];
                let eps =
                    (v.abs() + 1e-6) * 1e-3 * if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
                centroids[c * dim + j] = v + eps;
                centroids[big * dim + j] = v - eps;
            }
            let half = counts[big] / 2;
            counts[c] = half;
            counts[big] -= half;
        }
    }
    Ok(centroids)
}

/// Moves every centroid with members to the mean of its rows (`labels`
/// give each row of `rows` its centroid), summed in row order in f64, and
/// returns the member counts.
fn update_means(rows: &[f32], dim: usize, labels: &[u32], centroids: &mut [f32]) -> Vec<usize> {
    let nlist = centroids.len() / dim;
    let mut sums = vec![0.0f64; nlist * dim];
    let mut counts = vec![0usize; nlist];
    for (row, &l) in rows.chunks_exact(dim).zip(labels) {
        let l = l as usize;
        counts[l] += 1;
        for (s, &x) in sums[l * dim..(l + 1) * dim].iter_mut().zip(row) {
            *s += x as f64;
        }
    }
    for (c, (centroid, sums)) in centroids
        .chunks_exact_mut(dim)
        .zip(sums.chunks_exact(dim))
        .enumerate()
    {
        if counts[c] > 0 {
            let inv = 1.0 / counts[c] as f64;
            for (dst, &s) in centroid.iter_mut().zip(sums) {
                *dst = (s * inv) as f32;
            }
        }
    }
    counts
}

fn mean_of(rows: &[f32], dim: usize) -> Vec<f32> {
    let n = (rows.len() / dim).max(1);
    let mut sums = vec![0.0f64; dim];
    for row in rows.chunks_exact(dim) {
        for (s, &x) in sums.iter_mut().zip(row) {
            *s += x as f64;
        }
    }
    sums.into_iter().map(|s| (s / n as f64) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::sq_l2;

    fn blobs(per: usize, dim: usize) -> (Vec<f32>, Vec<[f32; 2]>) {
        let centres = vec![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]];
        let mut rng = SplitMix64::new(3);
        let mut data = Vec::new();
        for c in &centres {
            for _ in 0..per {
                for j in 0..dim {
                    let noise = (rng.below(1000) as f32 / 1000.0 - 0.5) * 0.5;
                    data.push(c[j % 2] + noise);
                }
            }
        }
        (data, centres)
    }

    #[test]
    fn means_are_the_f64_mean_of_each_centroids_rows_bit_for_bit() {
        let (dim, nlist) = (7, 5);
        let mut rng = SplitMix64::new(11);
        let rows: Vec<f32> = (0..300 * dim)
            .map(|_| rng.below(1 << 20) as f32 / 3.7 - 1e5)
            .collect();
        // Centroid 3 gets no rows and must keep its value.
        let labels: Vec<u32> = (0..300).map(|_| [0, 1, 2, 4][rng.below(4)]).collect();
        let start: Vec<f32> = (0..nlist * dim).map(|i| i as f32).collect();
        let mut want = start.clone();
        let mut want_counts = vec![0usize; nlist];
        for c in 0..nlist {
            let mut sums = vec![0.0f64; dim];
            for (row, &l) in rows.chunks_exact(dim).zip(&labels) {
                if l as usize == c {
                    want_counts[c] += 1;
                    sums.iter_mut().zip(row).for_each(|(s, &x)| *s += x as f64);
                }
            }
            if want_counts[c] > 0 {
                for (w, s) in want[c * dim..(c + 1) * dim].iter_mut().zip(&sums) {
                    *w = (s * (1.0 / want_counts[c] as f64)) as f32;
                }
            }
        }
        let mut got = start.clone();
        let counts = update_means(&rows, dim, &labels, &mut got);
        assert_eq!(counts, want_counts);
        assert_eq!(counts[3], 0);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&want));
    }

    #[test]
    fn finds_separated_clusters() {
        let dim = 2;
        let (data, centres) = blobs(200, dim);
        let no = Cancel::new();
        let cents = train(&data, dim, 4, 11, DISTANCE_TRAINING, &no).unwrap();
        for c in &centres {
            let best = cents
                .chunks_exact(dim)
                .map(|x| sq_l2(x, c))
                .fold(f32::INFINITY, f32::min);
            assert!(best < 0.05, "no centroid near {c:?}: {cents:?}");
        }
        let labels = assign(&data, dim, &cents, &no).unwrap();
        // Each blob of 200 rows lands in exactly one list.
        for blob in labels.chunks(200) {
            assert!(blob.iter().all(|&l| l == blob[0]));
        }
    }

    #[test]
    fn deterministic_and_handles_nlist_equal_to_n() {
        let dim = 5;
        let (data, _) = blobs(3, dim);
        let n = data.len() / dim;
        let no = Cancel::new();
        let a = train(&data, dim, n, 7, DISTANCE_TRAINING, &no).unwrap();
        let b = train(&data, dim, n, 7, DISTANCE_TRAINING, &no).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.len(), n * dim);
        assert_eq!(
            train(&data, dim, 1, 7, DISTANCE_TRAINING, &no).unwrap(),
            mean_of(&data, dim)
        );
        let cancelled = Cancel::new();
        cancelled.cancel();
        assert!(train(&data, dim, n, 7, DISTANCE_TRAINING, &cancelled).is_err());
    }

    #[test]
    fn first_min_is_the_first_smallest_and_skips_nan() {
        assert_eq!(first_min(&[]), 0);
        assert_eq!(first_min(&[f32::NAN; 11]), 0);
        // Equal values (±0 too) in different lanes: the first index.
        let mut z = vec![1.0f32; 24];
        (z[19], z[5], z[10]) = (0.0, -0.0, 0.0);
        assert_eq!(first_min(&z), 5);
        assert_eq!(first_min_portable(&z), 5);
        // Nothing below +∞: the first +∞, NaNs still skipped.
        let inf = f32::INFINITY;
        for (v, want) in [
            (vec![f32::NAN, inf, inf], 1),
            (vec![inf; 20], 0),
            ([vec![f32::NAN; 17], vec![inf]].concat(), 17),
            ([vec![f32::NAN; 5], vec![inf; 30]].concat(), 5),
        ] {
            assert_eq!(first_min(&v), want, "{v:?}");
            assert_eq!(first_min_portable(&v), want, "{v:?}");
        }
        for n in [1usize, 7, 8, 9, 16, 17, 40] {
            for at in 0..n {
                let mut v: Vec<f32> = (0..n).map(|i| 10.0 + (i % 5) as f32).collect();
                v[at] = 1.0;
                assert_eq!(first_min(&v), at);
                assert_eq!(first_min_portable(&v), at);
                // A tie goes to the first; NaNs never win.
                v[n - 1] = 1.0;
                v[0] = if at == 0 { 1.0 } else { f32::NAN };
                assert_eq!(first_min(&v), at);
                assert_eq!(first_min_portable(&v), at);
            }
        }
    }

    #[test]
    fn first_min_matches_a_plain_scan_on_random_vectors() {
        // The definition: the smallest by `<` (NaNs never win), then the
        // first value equal to it; 0 when there is none.
        let plain = |v: &[f32]| {
            let min = v
                .iter()
                .fold(f32::INFINITY, |m, &x| if x < m { x } else { m });
            v.iter().position(|&x| x == min).unwrap_or(0)
        };
        let values = [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            0.0,
            -0.0,
            1.0,
            -1.0,
            2.5,
        ];
        let mut rng = SplitMix64::new(17);
        for _ in 0..5_000 {
            let n = rng.below(70);
            let v: Vec<f32> = (0..n).map(|_| values[rng.below(values.len())]).collect();
            assert_eq!(first_min(&v), plain(&v), "{v:?}");
            assert_eq!(first_min_portable(&v), plain(&v), "{v:?}");
        }
    }

    #[test]
    fn assign_matches_brute_force() {
        let dim = 13;
        let mut rng = SplitMix64::new(5);
        let data: Vec<f32> = (0..700 * dim)
            .map(|_| rng.below(2000) as f32 / 100.0)
            .collect();
        let cents: Vec<f32> = data[..17 * dim].to_vec();
        let got = assign(&data, dim, &cents, &Cancel::new()).unwrap();
        for (row, &l) in data.chunks_exact(dim).zip(&got) {
            let d: Vec<f32> = cents.chunks_exact(dim).map(|c| sq_l2(row, c)).collect();
            let min = d.iter().copied().fold(f32::INFINITY, f32::min);
            assert!(d[l as usize] <= min * (1.0 + 1e-4) + 1e-3);
        }
    }

    #[test]
    fn both_spill_choices_pick_the_same_list_when_they_weigh_the_same_lists() {
        // 17 lists: the Gram path weighs the 16 others, as the path for
        // many lists does, so the two must agree row by row; and each
        // choice is the arg-min of SOAR's cost computed directly.
        let dim = 13;
        let mut rng = SplitMix64::new(9);
        let data: Vec<f32> = (0..500 * dim)
            .map(|_| rng.below(2000) as f32 / 100.0)
            .collect();
        let cents: Vec<f32> = data[..17 * dim].to_vec();
        let (first, second) = assign_with_spill(&data, dim, &cents, true, &Cancel::new()).unwrap();
        let norms = sq_norms(&cents, dim);
        let g = gram(&cents, dim);
        let (mut near, mut cost) = (Vec::new(), Vec::new());
        for ((x, &f), &s) in data.chunks_exact(dim).zip(&first).zip(&second) {
            assert_ne!(f, s);
            let scores: Vec<f32> = cents.chunks_exact(dim).map(|c| dot(x, c)).collect();
            let by_gram = spill_list_gram(x, &scores, &norms, &g, f, &mut cost);
            let by_near = spill_list(x, &scores, &norms, &cents, f, &mut near);
            assert_eq!(by_gram, by_near);
            let c = &cents[f as usize * dim..(f as usize + 1) * dim];
            let r: Vec<f32> = x.iter().zip(c).map(|(a, b)| a - b).collect();
            if dot(&r, &r) == 0.0 {
                continue; // a row that is its centroid: distance alone
            }
            let soar = |j: usize| {
                let cj = &cents[j * dim..(j + 1) * dim];
                let xr: Vec<f32> = x.iter().zip(cj).map(|(a, b)| a - b).collect();
                let along = dot(&r, &xr);
                dot(&xr, &xr) + SPILL_LAMBDA * along * along / dot(&r, &r)
            };
            let best = (0..17)
                .filter(|&j| j != f as usize)
                .map(soar)
                .fold(f32::INFINITY, f32::min);
            assert!(
                soar(s as usize) <= best * (1.0 + 1e-3) + 1e-2,
                "{} vs {best}",
                soar(s as usize)
            );
        }
    }
}
