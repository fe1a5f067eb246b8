//! The one matrix product the encoders use (BERT's linear layers, the
//! image network's 1×1 convolutions): row-major `f32` over `matrixmultiply`.

/// `y += x · wᵀ` for `x` of shape `(n, k)`, `w` of shape `(m, k)` and `y` of
/// shape `(n, m)`, all row-major.
pub fn gemm_acc(x: &[f32], n: usize, k: usize, w: &[f32], m: usize, y: &mut [f32]) {
    assert!(w.len() == m * k && x.len() >= n * k && y.len() >= n * m);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // SAFETY: the assertion above guarantees the buffers hold n·k, m·k and
    // n·m elements, which the strides address exactly (w transposed).
    unsafe {
        matrixmultiply::sgemm(
            n,
            k,
            m,
            1.0,
            x.as_ptr(),
            k as isize,
            1,
            w.as_ptr(),
            1,
            k as isize,
            1.0,
            y.as_mut_ptr(),
            m as isize,
            1,
        );
    }
}
