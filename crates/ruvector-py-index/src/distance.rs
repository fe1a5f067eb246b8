//! Dot products, squared L2 distances and RaBitQ residual terms for the
//! SDK's own index code.
//!
//! Thirty-two independent partial sums let the compiler keep the sums in
//! several SIMD registers (one running sum cannot be vectorised without
//! reordering, and one register would serialise on the add latency).
//! The same body is compiled twice — for the baseline CPU and with AVX2 —
//! and picked at run time; neither uses FMA or reassociates, so both give
//! bit-identical results and an index is the same on every x86-64 CPU.

use crate::intdot::{self, PackedRows, RowPairs};

macro_rules! dispatch {
    ($name:ident, $portable:ident, $avx2:ident) => {
        #[inline]
        pub fn $name(a: &[f32], b: &[f32]) -> f32 {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { $avx2(a, b) };
                }
            }
            $portable(a, b)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2(a: &[f32], b: &[f32]) -> f32 {
            $portable(a, b)
        }
    };
}

dispatch!(dot, dot_portable, dot_avx2);
dispatch!(sq_l2, sq_l2_portable, sq_l2_avx2);

/// `Σᵢ wᵢ·cᵢ`: weights times 8-bit codes (see `lean.rs`), with the same
/// partial sums as [`dot`].
#[inline]
pub fn dot_u8(w: &[f32], c: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { dot_u8_avx2(w, c) };
        }
    }
    dot_u8_portable(w, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_u8_avx2(w: &[f32], c: &[u8]) -> f32 {
    dot_u8_portable(w, c)
}

#[inline(always)]
fn dot_u8_portable(w: &[f32], c: &[u8]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (wc, cc) = (w.chunks_exact(LANES), c.chunks_exact(LANES));
    let (wr, cr) = (wc.remainder(), cc.remainder());
    for (x, y) in wc.zip(cc) {
        for i in 0..LANES {
            acc[i] += x[i] * f32::from(y[i]);
        }
    }
    for (i, (x, y)) in wr.iter().zip(cr).enumerate() {
        acc[i] += x * f32::from(*y);
    }
    fold(acc)
}

/// The IVF centroids, kept for ranking them against a query:
/// `‖q‖² + ‖c‖² − 2·⟨q, c⟩` with the product from [`crate::intdot`]'s
/// 16-bit integers, so the same bits and order on every CPU.
///
/// Half the bytes of `f32` rows, and one multiply-add per two components:
/// ranking a few hundred 384-dimensional centroids, read from L3 once the
/// list scans have evicted them, takes about half the time. Only lists
/// nearly tied with another can swap places; the distance a list scan
/// needs (`‖q − c‖²` of a visited list) is computed exactly elsewhere.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CentroidScores {
    packed: PackedRows,
    sq_norms: Vec<f32>,
}

impl CentroidScores {
    /// `rows` holds `rows.len() / dim` rows of `dim` finite components.
    pub fn new(rows: &[f32], dim: usize) -> Self {
        Self {
            packed: PackedRows::new(rows, dim),
            sq_norms: rows.chunks_exact(dim.max(1)).map(|c| dot(c, c)).collect(),
        }
    }

    pub fn rows(&self) -> usize {
        self.packed.rows()
    }

    pub fn memory_bytes(&self) -> usize {
        self.packed.memory_bytes() + self.sq_norms.capacity() * 4
    }

    /// `out[r] ≈ ‖q − xᵣ‖²` for every row `r` (see the type), resized to
    /// [`CentroidScores::rows`]. `q_pairs` and `dots` are scratch.
    pub fn sq_l2_into(
        &self,
        query: &[f32],
        q_pairs: &mut RowPairs,
        dots: &mut Vec<i32>,
        out: &mut Vec<f32>,
    ) {
        q_pairs.fill(query, &self.packed);
        intdot::dots(q_pairs, &self.packed, dots);
        let q_sq = dot(query, query);
        let two_scales = 2.0 * q_pairs.scale(0) * self.packed.scale();
        out.clear();
        out.extend(
            self.sq_norms
                .iter()
                .zip(dots.iter())
                .map(|(&c_sq, &d)| q_sq + c_sq - two_scales * d as f32),
        );
    }
}

/// The RaBitQ code of the residual `r = x − c` (see `ivf.rs`) in one
/// pass: its sign bits appended to `words`, 64 to a word (bit `i % 64` of
/// word `i / 64` set when `rᵢ > 0`, so 0, −0 and NaN give 0), and
/// `(‖r‖², ‖r‖₁, Σᵢ sign(rᵢ)·cᵢ)` with `sign(0) = −1`.
#[inline]
pub fn residual_code(x: &[f32], c: &[f32], words: &mut Vec<u64>) -> (f32, f32, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { residual_code_avx2(x, c, words) };
        }
    }
    residual_code_portable(x, c, words)
}

/// [`residual_code_portable`] with intrinsics: the same operations lane
/// by lane (a subtract, then separate multiplies and adds, no FMA), so
/// the same bits; a compare and a movemask give eight sign bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn residual_code_avx2(x: &[f32], c: &[f32], words: &mut Vec<u64>) -> (f32, f32, f32) {
    use std::arch::x86_64::*;
    debug_assert_eq!(x.len(), c.len());
    let eights = x.len() / 8;
    let first_word = words.len();
    words.resize(first_word + x.len().div_ceil(64), 0);
    let out = &mut words[first_word..];
    let (mut sq, mut l1, mut g) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let zero = _mm256_setzero_ps();
    let sign = _mm256_set1_ps(-0.0);
    for j in 0..eights {
        // SAFETY: `j * 8 + 8 <= x.len() == c.len()`; unaligned loads.
        let (xs, cs) = unsafe {
            (
                _mm256_loadu_ps(x.as_ptr().add(j * 8)),
                _mm256_loadu_ps(c.as_ptr().add(j * 8)),
            )
        };
        let r = _mm256_sub_ps(xs, cs);
        sq = _mm256_add_ps(sq, _mm256_mul_ps(r, r));
        l1 = _mm256_add_ps(l1, _mm256_andnot_ps(sign, r));
        let positive = _mm256_cmp_ps::<_CMP_GT_OQ>(r, zero);
        g = _mm256_add_ps(g, _mm256_blendv_ps(_mm256_xor_ps(cs, sign), cs, positive));
        let mask = _mm256_movemask_ps(positive) as u32 as u64;
        out[j / 8] |= mask << (8 * (j % 8));
    }
    let lanes = |v: __m256| {
        let mut a = [0.0f32; 8];
        // SAFETY: `a` holds eight floats; an unaligned store.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        a
    };
    residual_tail([lanes(sq), lanes(l1), lanes(g)], x, c, eights * 8, out)
}

/// Eight lanes of partial sums, folded in a fixed order: both builds give
/// the same bits.
#[inline(always)]
fn residual_code_portable(x: &[f32], c: &[f32], words: &mut Vec<u64>) -> (f32, f32, f32) {
    debug_assert_eq!(x.len(), c.len());
    let (mut sq, mut l1, mut g) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    let (xc, cc) = (x.chunks_exact(8), c.chunks_exact(8));
    let xr = xc.remainder();
    let first_word = words.len();
    words.resize(first_word + x.len().div_ceil(64), 0);
    let out = &mut words[first_word..];
    for (j, (xs, cs)) in xc.zip(cc).enumerate() {
        let mut mask = 0u64;
        for i in 0..8 {
            let r = xs[i] - cs[i];
            sq[i] += r * r;
            l1[i] += r.abs();
            g[i] += if r > 0.0 { cs[i] } else { -cs[i] };
            mask |= u64::from(r > 0.0) << i;
        }
        out[j / 8] |= mask << (8 * (j % 8));
    }
    residual_tail([sq, l1, g], x, c, x.len() - xr.len(), out)
}

/// The end of a residual code, shared by both builds: folds the eight
/// lanes of `(‖r‖², ‖r‖₁, Σ sign(r)·c)` in a fixed order, then adds the
/// coordinates from `from` on (fewer than eight) and sets their bits.
#[inline(always)]
fn residual_tail(
    lanes: [[f32; 8]; 3],
    x: &[f32],
    c: &[f32],
    from: usize,
    out: &mut [u64],
) -> (f32, f32, f32) {
    let fold = |a: [f32; 8]| (a[0] + a[4]) + (a[1] + a[5]) + (a[2] + a[6]) + (a[3] + a[7]);
    let [sq, l1, g] = lanes;
    let (mut sq, mut l1, mut g) = (fold(sq), fold(l1), fold(g));
    for at in from..x.len() {
        let (xi, ci) = (x[at], c[at]);
        let r = xi - ci;
        sq += r * r;
        l1 += r.abs();
        g += if r > 0.0 { ci } else { -ci };
        out[at / 64] |= u64::from(r > 0.0) << (at % 64);
    }
    (sq, l1, g)
}

/// Lanes of independent partial sums: four AVX2 registers' worth, so the
/// adds are not serialised on one register's latency.
const LANES: usize = 32;

/// Folds the partial sums pairwise (a fixed order, so every build agrees).
#[inline(always)]
fn fold(mut acc: [f32; LANES]) -> f32 {
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0]
}

#[inline(always)]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    for (i, (x, y)) in ar.iter().zip(br).enumerate() {
        acc[i] += x * y;
    }
    fold(acc)
}

#[inline(always)]
fn sq_l2_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for i in 0..LANES {
            let d = x[i] - y[i];
            acc[i] += d * d;
        }
    }
    for (i, (x, y)) in ar.iter().zip(br).enumerate() {
        let d = x - y;
        acc[i] += d * d;
    }
    fold(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_codes_match_their_definition_in_both_builds() {
        let mut rng = crate::kmeans::SplitMix64::new(4);
        for n in [0usize, 1, 7, 8, 63, 64, 65, 100, 384, 512] {
            // Zeros of both signs and ties between x and c: the sign of a
            // zero residual is −1 and its bit is 0.
            let mut value = || match rng.below(5) {
                0 => 0.0,
                1 => -0.0,
                _ => (rng.below(2001) as f32 - 1000.0) * 0.01,
            };
            let x: Vec<f32> = (0..n).map(|_| value()).collect();
            let c: Vec<f32> = (0..n)
                .map(|i| if i % 7 == 0 { x[i] } else { value() })
                .collect();
            let r: Vec<f32> = x.iter().zip(&c).map(|(a, b)| a - b).collect();
            let want_bits: Vec<u64> = (0..n.div_ceil(64))
                .map(|w| {
                    (0..64.min(n - 64 * w))
                        .filter(|&i| r[64 * w + i] > 0.0)
                        .fold(0u64, |acc, i| acc | 1 << i)
                })
                .collect();
            // Appended after what `words` already holds.
            let mut words = vec![7u64];
            let (sq, l1, g) = residual_code(&x, &c, &mut words);
            assert_eq!(words[0], 7);
            assert_eq!(&words[1..], &want_bits[..], "n = {n}");
            let want_g: f32 = r
                .iter()
                .zip(&c)
                .map(|(r, c)| if *r > 0.0 { *c } else { -*c })
                .sum();
            assert!((sq - dot(&r, &r)).abs() <= 1e-3 * sq.max(1.0));
            assert!((l1 - r.iter().map(|v| v.abs()).sum::<f32>()).abs() <= 1e-3 * l1.max(1.0));
            assert!((g - want_g).abs() <= 1e-3 * l1.max(1.0) * 10.0);
            let mut portable = Vec::new();
            let terms = residual_code_portable(&x, &c, &mut portable);
            assert_eq!(portable, want_bits);
            assert_eq!(
                (terms.0.to_bits(), terms.1.to_bits(), terms.2.to_bits()),
                (sq.to_bits(), l1.to_bits(), g.to_bits())
            );
        }
    }

    #[test]
    fn centroid_scores_are_close_to_the_distances() {
        for (n, d) in [(0usize, 5usize), (1, 1), (7, 3), (70, 384), (9, 4097)] {
            let rows: Vec<f32> = (0..n * d).map(|i| (i as f32 * 0.37).sin()).collect();
            let q: Vec<f32> = (0..d).map(|i| (i as f32 * 0.11).cos() * 0.5).collect();
            let scores = CentroidScores::new(&rows, d);
            assert_eq!(scores.rows(), n);
            let mut out = vec![1.0; 3];
            scores.sq_l2_into(&q, &mut RowPairs::default(), &mut Vec::new(), &mut out);
            assert_eq!(out.len(), n);
            for (r, row) in rows.chunks_exact(d).enumerate() {
                let exact: f64 = q
                    .iter()
                    .zip(row)
                    .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                    .sum();
                // Each component rounds by half a step of `1/limit` of its
                // row's largest; summed over `d` that is ~1e-3 here.
                let tol = 2e-3 * (d as f64 / 384.0).max(1.0) * exact.max(1.0);
                assert!(
                    (f64::from(out[r]) - exact).abs() < tol,
                    "n {n}, d {d}: {} vs {exact}",
                    out[r]
                );
            }
        }
    }

    #[test]
    fn kernels_match_the_plain_sums_and_each_other() {
        for n in [0usize, 1, 7, 8, 37, 384] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).cos()).collect();
            let d: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let l: f32 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
            assert!((dot(&a, &b) - d).abs() < 1e-4);
            assert!((sq_l2(&a, &b) - l).abs() < 1e-4);
            assert_eq!(dot(&a, &b).to_bits(), dot_portable(&a, &b).to_bits());
            assert_eq!(sq_l2(&a, &b).to_bits(), sq_l2_portable(&a, &b).to_bits());
            let c: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let du: f32 = a.iter().zip(&c).map(|(x, y)| x * f32::from(*y)).sum();
            assert!((dot_u8(&a, &c) - du).abs() < 1e-2);
            assert_eq!(dot_u8(&a, &c).to_bits(), dot_u8_portable(&a, &c).to_bits());
        }
    }
}
