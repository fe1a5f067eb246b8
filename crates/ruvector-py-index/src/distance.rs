//! Dot products, squared L2 distances and RaBitQ residual terms for the
//! SDK's own index code.
//!
//! Thirty-two independent partial sums let the compiler keep the sums in
//! several SIMD registers (one running sum cannot be vectorised without
//! reordering, and one register would serialise on the add latency).
//! The same body is compiled twice — for the baseline CPU and with AVX2 —
//! and picked at run time; neither uses FMA or reassociates, so both give
//! bit-identical results and an index is the same on every x86-64 CPU.

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

/// `(‖x‖², ‖x‖₁, Σᵢ sign(xᵢ)·cᵢ)` with `sign(0) = −1`: the terms a RaBitQ
/// code of the residual `x` needs (see `ivf.rs`).
#[inline]
pub fn residual_terms(x: &[f32], c: &[f32]) -> (f32, f32, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { residual_terms_avx2(x, c) };
        }
    }
    residual_terms_portable(x, c)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn residual_terms_avx2(x: &[f32], c: &[f32]) -> (f32, f32, f32) {
    residual_terms_portable(x, c)
}

#[inline(always)]
fn residual_terms_portable(x: &[f32], c: &[f32]) -> (f32, f32, f32) {
    let (mut sq, mut l1, mut g) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    let (xc, cc) = (x.chunks_exact(8), c.chunks_exact(8));
    let (xr, cr) = (xc.remainder(), cc.remainder());
    for (xs, cs) in xc.zip(cc) {
        for i in 0..8 {
            sq[i] += xs[i] * xs[i];
            l1[i] += xs[i].abs();
            g[i] += if xs[i] > 0.0 { cs[i] } else { -cs[i] };
        }
    }
    let fold = |a: [f32; 8]| (a[0] + a[4]) + (a[1] + a[5]) + (a[2] + a[6]) + (a[3] + a[7]);
    let (mut sq, mut l1, mut g) = (fold(sq), fold(l1), fold(g));
    for (&xi, &ci) in xr.iter().zip(cr) {
        sq += xi * xi;
        l1 += xi.abs();
        g += if xi > 0.0 { ci } else { -ci };
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
            let (sq, l1, g) = residual_terms(&a, &b);
            let want_g: f32 = a
                .iter()
                .zip(&b)
                .map(|(x, c)| if *x > 0.0 { *c } else { -*c })
                .sum();
            assert!((sq - dot(&a, &a)).abs() < 1e-4);
            assert!((l1 - a.iter().map(|x| x.abs()).sum::<f32>()).abs() < 1e-4);
            assert!((g - want_g).abs() < 1e-4);
            assert_eq!(residual_terms_portable(&a, &b).2.to_bits(), g.to_bits());
        }
    }
}
