//! The random rotations of `IvfRabitqIndex`.
//!
//! * `haar` — the crate's dense Haar rotation (`d × d`), applied to a block
//!   of rows as one GEMM.
//! * `hadamard` — the SDK's randomised Hadamard transform `D₁·H·D₂·H·D₃`
//!   on the vector zero-padded to the next power of two, keeping *all*
//!   padded coordinates. That makes it exactly orthogonal (an isometry from
//!   `Rᵈ` into `Rᵖ`) for any `d`, unlike the crate's variant, which
//!   truncates back to `d` and so is not orthogonal unless `d` is a power
//!   of two. Cost `O(p log p)` per vector and no matrix: the fast choice,
//!   and the default of `IvfRabitqIndex`.

use ruvector_rabitq::{RandomRotation, RandomRotationKind};

use crate::distance;
use crate::kmeans::SplitMix64;

pub enum Rotator {
    Dense(RandomRotation),
    Hadamard { dim: usize, signs: [Vec<f32>; 3] },
}

impl Rotator {
    pub fn new(dim: usize, seed: u64, kind: RandomRotationKind) -> Self {
        match kind {
            RandomRotationKind::HaarDense => Rotator::Dense(RandomRotation::random(dim, seed)),
            RandomRotationKind::HadamardSigned => {
                let padded = dim.next_power_of_two();
                let mut rng = SplitMix64::new(seed ^ 0x4ada_3a2d);
                let mut signs = || -> Vec<f32> {
                    (0..padded)
                        .map(|_| if rng.next_u64() >> 63 == 0 { 1.0 } else { -1.0 })
                        .collect()
                };
                Rotator::Hadamard {
                    dim,
                    signs: [signs(), signs(), signs()],
                }
            }
        }
    }

    /// Length of a rotated vector.
    pub fn out_dim(&self) -> usize {
        match self {
            Rotator::Dense(r) => r.dim,
            Rotator::Hadamard { signs, .. } => signs[0].len(),
        }
    }

    /// `out = P·v` (`v` of length `d`, `out` of length [`Rotator::out_dim`]).
    #[inline(always)]
    pub fn apply(&self, v: &[f32], out: &mut [f32]) {
        match self {
            Rotator::Dense(r) => {
                // The crate's apply sums each row serially; the same product
                // with a vectorised dot is several times faster.
                for (o, row) in out.iter_mut().zip(r.matrix.chunks_exact(r.dim)) {
                    *o = distance::dot(row, v);
                }
            }
            Rotator::Hadamard { dim, signs } => {
                out[..*dim].copy_from_slice(v);
                out[*dim..].iter_mut().for_each(|x| *x = 0.0);
                mul(out, &signs[2]);
                fwht(out);
                mul(out, &signs[1]);
                fwht(out);
                // Each unnormalised transform scales norms by √p: 1/p in all.
                let scale = 1.0 / out.len() as f32;
                for (x, &s) in out.iter_mut().zip(&signs[0]) {
                    *x *= s * scale;
                }
            }
        }
    }

    /// Rotates the rows of `data` into `out` (row-major, `out_dim` wide).
    pub fn apply_rows(&self, data: &[f32], out: &mut [f32]) {
        match self {
            Rotator::Dense(r) => {
                let d = r.dim;
                let m = data.len() / d;
                // SAFETY: `data` is m×d row-major, the matrix d×d row-major
                // read as its transpose, `out` m×d row-major: their sizes.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        d,
                        d,
                        1.0,
                        data.as_ptr(),
                        d as isize,
                        1,
                        r.matrix.as_ptr(),
                        1,
                        d as isize,
                        0.0,
                        out.as_mut_ptr(),
                        d as isize,
                        1,
                    );
                }
            }
            Rotator::Hadamard { dim, .. } => {
                #[cfg(target_arch = "x86_64")]
                {
                    if std::is_x86_feature_detected!("avx2") {
                        // SAFETY: the CPU has AVX2 (checked just above).
                        unsafe { self.hadamard_rows_avx2(*dim, data, out) };
                        return;
                    }
                }
                self.hadamard_rows(*dim, data, out);
            }
        }
    }

    /// The Hadamard transform of every row; compiled twice (baseline and
    /// AVX2, identical results: no FMA, no reordering).
    #[inline(always)]
    fn hadamard_rows(&self, dim: usize, data: &[f32], out: &mut [f32]) {
        let p = self.out_dim();
        for (row, o) in data.chunks_exact(dim).zip(out.chunks_exact_mut(p)) {
            self.apply(row, o);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn hadamard_rows_avx2(&self, dim: usize, data: &[f32], out: &mut [f32]) {
        self.hadamard_rows(dim, data, out)
    }

    /// Bytes held (the crate's dense rotation keeps two copies of its matrix).
    pub fn memory_bytes(&self) -> usize {
        match self {
            Rotator::Dense(r) => 2 * r.bytes(),
            Rotator::Hadamard { signs, .. } => signs.iter().map(|s| s.len() * 4).sum(),
        }
    }
}

#[inline(always)]
fn mul(x: &mut [f32], signs: &[f32]) {
    x.iter_mut().zip(signs).for_each(|(x, &s)| *x *= s);
}

/// Unnormalised fast Walsh–Hadamard transform (length a power of two).
#[inline(always)]
fn fwht(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    if n >= 8 {
        // The first three stages within each run of 8, in registers.
        for v in x.chunks_exact_mut(8) {
            let a = [
                v[0] + v[1],
                v[0] - v[1],
                v[2] + v[3],
                v[2] - v[3],
                v[4] + v[5],
                v[4] - v[5],
                v[6] + v[7],
                v[6] - v[7],
            ];
            let b = [
                a[0] + a[2],
                a[1] + a[3],
                a[0] - a[2],
                a[1] - a[3],
                a[4] + a[6],
                a[5] + a[7],
                a[4] - a[6],
                a[5] - a[7],
            ];
            for i in 0..4 {
                v[i] = b[i] + b[i + 4];
                v[i + 4] = b[i] - b[i + 4];
            }
        }
        h = 8;
    }
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (u, v) in a.iter_mut().zip(b.iter_mut()) {
                let (s, t) = (*u + *v, *u - *v);
                *u = s;
                *v = t;
            }
        }
        h *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_rotations_preserve_norms_and_inner_products() {
        for dim in [1usize, 3, 64, 100, 384] {
            for kind in [
                RandomRotationKind::HaarDense,
                RandomRotationKind::HadamardSigned,
            ] {
                let r = Rotator::new(dim, 5, kind);
                let a: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
                let b: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.11).cos()).collect();
                let (mut ra, mut rb) = (vec![0.0; r.out_dim()], vec![0.0; r.out_dim()]);
                r.apply(&a, &mut ra);
                r.apply(&b, &mut rb);
                let (ip, rip) = (distance::dot(&a, &b), distance::dot(&ra, &rb));
                let (na, rna) = (distance::dot(&a, &a), distance::dot(&ra, &ra));
                assert!(
                    (na - rna).abs() <= 1e-3 * na.max(1.0),
                    "{kind:?} {dim}: {na} vs {rna}"
                );
                assert!(
                    (ip - rip).abs() <= 1e-3 * na.max(1.0),
                    "{kind:?} {dim}: {ip} vs {rip}"
                );
                // The block form agrees with the one-vector form.
                let mut rows = vec![0.0; 2 * r.out_dim()];
                r.apply_rows(&[a.clone(), b.clone()].concat(), &mut rows);
                for (x, y) in rows.iter().zip(ra.iter().chain(&rb)) {
                    assert!((x - y).abs() <= 1e-4, "{kind:?} {dim}");
                }
            }
        }
    }

    #[test]
    fn hadamard_keeps_every_padded_coordinate() {
        let r = Rotator::new(384, 1, RandomRotationKind::HadamardSigned);
        assert_eq!(r.out_dim(), 512);
        assert_eq!(r.memory_bytes(), 3 * 512 * 4);
    }
}
