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
            Rotator::Hadamard { .. } => self.apply_rows(v, out),
        }
    }

    /// One Hadamard row, with `fwht` the transform (the portable one or
    /// its AVX2 twin, which gives the same bits).
    #[inline(always)]
    fn hadamard_row(&self, v: &[f32], out: &mut [f32], fwht: impl Fn(&mut [f32])) {
        let Rotator::Hadamard { dim, signs } = self else {
            unreachable!("Hadamard rotators only")
        };
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

    /// The Hadamard transform of every row, portable (baseline build);
    /// `hadamard_rows_avx2` gives the same bits (no FMA, the
    /// same sums and differences).
    fn hadamard_rows(&self, dim: usize, data: &[f32], out: &mut [f32]) {
        let p = self.out_dim();
        for (row, o) in data.chunks_exact(dim).zip(out.chunks_exact_mut(p)) {
            self.hadamard_row(row, o, fwht);
        }
    }

    /// [`Rotator::hadamard_rows`] with the AVX2 transform.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn hadamard_rows_avx2(&self, dim: usize, data: &[f32], out: &mut [f32]) {
        let p = self.out_dim();
        for (row, o) in data.chunks_exact(dim).zip(out.chunks_exact_mut(p)) {
            // SAFETY: this function runs only where AVX2 was detected.
            self.hadamard_row(row, o, |x| unsafe { fwht_avx2(x) });
        }
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

/// The unnormalised fast Walsh–Hadamard transform, in place (`x.len()` a
/// power of two); its first three stages within each run of 8 in scalar
/// registers.
#[inline(always)]
fn fwht(x: &mut [f32]) {
    if x.len() < 8 {
        fwht_stages(x, 1);
        return;
    }
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
    fwht_stages(x, 8);
}

/// [`fwht`] with its first three stages (within each group of 8) done in
/// AVX2 registers: every output is the same sum or difference of the same
/// two values, so the bits are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fwht_avx2(x: &mut [f32]) {
    use std::arch::x86_64::*;
    if x.len() < 8 {
        fwht_stages(x, 1);
        return;
    }
    for v in x.chunks_exact_mut(8) {
        let p = v.as_mut_ptr();
        // SAFETY: `v` holds 8 floats; unaligned loads and stores.
        let a = unsafe { _mm256_loadu_ps(p) };
        // Each stage: lanes with the bit clear take `a + partner`, lanes
        // with it set take `partner − a` (the partner is the lower one).
        let s = _mm256_permute_ps::<0b10_11_00_01>(a);
        let a = _mm256_blend_ps::<0b1010_1010>(_mm256_add_ps(a, s), _mm256_sub_ps(s, a));
        let s = _mm256_permute_ps::<0b01_00_11_10>(a);
        let a = _mm256_blend_ps::<0b1100_1100>(_mm256_add_ps(a, s), _mm256_sub_ps(s, a));
        let s = _mm256_permute2f128_ps::<1>(a, a);
        let a = _mm256_blend_ps::<0b1111_0000>(_mm256_add_ps(a, s), _mm256_sub_ps(s, a));
        unsafe { _mm256_storeu_ps(p, a) };
    }
    fwht_stages(x, 8);
}

/// The butterfly stages of [`fwht`] from half-width `h` up, two stages per
/// pass over the vector where they fit (half the loads and stores; each
/// output is the same sum or difference as stage by stage).
#[inline(always)]
fn fwht_stages(x: &mut [f32], mut h: usize) {
    let n = x.len();
    while 4 * h <= n {
        for block in x.chunks_exact_mut(4 * h) {
            let (lo, hi) = block.split_at_mut(2 * h);
            let (q0, q1) = lo.split_at_mut(h);
            let (q2, q3) = hi.split_at_mut(h);
            let quads = q0.iter_mut().zip(q1).zip(q2.iter_mut().zip(q3));
            for ((a, b), (c, d)) in quads {
                let (s0, d0) = (*a + *b, *a - *b);
                let (s1, d1) = (*c + *d, *c - *d);
                (*a, *b, *c, *d) = (s0 + s1, d0 + d1, s0 - s1, d0 - d1);
            }
        }
        h *= 4;
    }
    if h < n {
        let (a, b) = x.split_at_mut(h);
        for (u, v) in a.iter_mut().zip(b.iter_mut()) {
            (*u, *v) = (*u + *v, *u - *v);
        }
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

    /// The textbook transform, one stage per pass: what saved codes were
    /// computed with, so every faster path must give its exact bits.
    fn stage_by_stage(x: &mut [f32]) {
        let mut h = 1;
        while h < x.len() {
            for block in x.chunks_exact_mut(2 * h) {
                let (a, b) = block.split_at_mut(h);
                for (u, v) in a.iter_mut().zip(b.iter_mut()) {
                    (*u, *v) = (*u + *v, *u - *v);
                }
            }
            h *= 2;
        }
    }

    #[test]
    fn the_fast_transforms_give_the_textbook_bits() {
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let mut rng = SplitMix64::new(9);
        for n in [1usize, 2, 4, 8, 16, 64, 512, 1024] {
            for _ in 0..20 {
                let x: Vec<f32> = (0..n)
                    .map(|_| (rng.next_u64() as i64 as f64 / 2f64.powi(40)) as f32)
                    .collect();
                let mut want = x.clone();
                stage_by_stage(&mut want);
                let mut portable = x.clone();
                fwht(&mut portable);
                assert_eq!(bits(&portable), bits(&want), "n = {n}");
                #[cfg(target_arch = "x86_64")]
                if std::is_x86_feature_detected!("avx2") {
                    let mut avx2 = x;
                    // SAFETY: AVX2 was detected just above.
                    unsafe { fwht_avx2(&mut avx2) };
                    assert_eq!(bits(&avx2), bits(&want), "n = {n}");
                }
            }
        }
        // The one-row and many-row rotations, on whichever path this CPU
        // takes, against the portable one.
        let r = Rotator::new(384, 3, RandomRotationKind::HadamardSigned);
        let v: Vec<f32> = (0..2 * 384).map(|i| (i as f32 * 0.7).sin()).collect();
        let (mut portable, mut rows, mut one) = (vec![0.0; 1024], vec![0.0; 1024], vec![0.0; 512]);
        r.hadamard_rows(384, &v, &mut portable);
        r.apply_rows(&v, &mut rows);
        r.apply(&v[384..], &mut one);
        assert_eq!(bits(&rows), bits(&portable));
        assert_eq!(bits(&one), bits(&portable[512..]));
    }

    #[test]
    fn hadamard_keeps_every_padded_coordinate() {
        let r = Rotator::new(384, 1, RandomRotationKind::HadamardSigned);
        assert_eq!(r.out_dim(), 512);
        assert_eq!(r.memory_bytes(), 3 * 512 * 4);
    }
}
