//! 128-bit SIMD lanes: the few operations the FastScan kernel needs, so
//! that kernel is written once ([`crate::fastscan`]) and compiled against
//! each backend here:
//!
//! - `Neon` on aarch64 (`tbl` lookups, widening adds; NEON is part of
//!   every aarch64 target, so no run-time check);
//! - `Ssse3` on x86_64 (`pshufb`, unpack and add), for CPUs without AVX2
//!   and so that the tests run the shared kernel through real SIMD on the
//!   x86 machines CI has;
//! - [`Portable`], plain arrays, on every CPU: the fallback where neither
//!   runs (the tests run it everywhere).
//!
//! Every backend computes the same integers: the tests compare each one
//! that the CPU can run with the scalar reference kernel, on x86_64 here
//! and on aarch64 under emulation.

/// The lane operations, as associated functions of a zero-sized backend.
///
/// # Safety
/// Implementations may use CPU instructions that the caller must have
/// enabled (see each backend); every function is `#[inline(always)]` so it
/// compiles into its caller, with the caller's target features.
pub(crate) trait Lanes {
    /// 16 bytes.
    type Bytes: Copy;
    /// 8 unsigned 16-bit words.
    type Words: Copy;

    /// 16 bytes from `ptr` (any alignment).
    ///
    /// # Safety
    /// `ptr..ptr + 16` must be readable, and the backend's CPU features on.
    unsafe fn load(ptr: *const u8) -> Self::Bytes;
    /// Each byte's low four bits.
    unsafe fn low_nibbles(b: Self::Bytes) -> Self::Bytes;
    /// Each byte's high four bits, shifted down.
    unsafe fn high_nibbles(b: Self::Bytes) -> Self::Bytes;
    /// `table[index[i]]` for every byte; every index is below 16.
    unsafe fn lookup(table: Self::Bytes, index: Self::Bytes) -> Self::Bytes;
    /// Eight zero words.
    unsafe fn zero() -> Self::Words;
    /// `acc[i] + b[i]` for bytes 0..8, widened (wrapping, as the hardware).
    unsafe fn add_low(acc: Self::Words, b: Self::Bytes) -> Self::Words;
    /// `acc[i] + b[8 + i]` for bytes 8..16, widened.
    unsafe fn add_high(acc: Self::Words, b: Self::Bytes) -> Self::Words;
    /// The eight words, in lane order.
    unsafe fn words(w: Self::Words) -> [u16; 8];
}

/// Plain arrays: any CPU.
// On aarch64 only the tests use it (the scan runs NEON there).
#[cfg_attr(all(target_arch = "aarch64", not(test)), allow(dead_code))]
pub(crate) struct Portable;

impl Lanes for Portable {
    type Bytes = [u8; 16];
    type Words = [u16; 8];

    #[inline(always)]
    unsafe fn load(ptr: *const u8) -> [u8; 16] {
        // SAFETY: the caller guarantees 16 readable bytes.
        unsafe { ptr.cast::<[u8; 16]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn low_nibbles(b: [u8; 16]) -> [u8; 16] {
        b.map(|x| x & 0x0F)
    }
    #[inline(always)]
    unsafe fn high_nibbles(b: [u8; 16]) -> [u8; 16] {
        b.map(|x| x >> 4)
    }
    #[inline(always)]
    unsafe fn lookup(table: [u8; 16], index: [u8; 16]) -> [u8; 16] {
        index.map(|i| table[usize::from(i & 0x0F)])
    }
    #[inline(always)]
    unsafe fn zero() -> [u16; 8] {
        [0; 8]
    }
    #[inline(always)]
    unsafe fn add_low(acc: [u16; 8], b: [u8; 16]) -> [u16; 8] {
        std::array::from_fn(|i| acc[i].wrapping_add(u16::from(b[i])))
    }
    #[inline(always)]
    unsafe fn add_high(acc: [u16; 8], b: [u8; 16]) -> [u16; 8] {
        std::array::from_fn(|i| acc[i].wrapping_add(u16::from(b[8 + i])))
    }
    #[inline(always)]
    unsafe fn words(w: [u16; 8]) -> [u16; 8] {
        w
    }
}

/// SSSE3 (`pshufb`): the caller must run with the `ssse3` target feature.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Ssse3;

#[cfg(target_arch = "x86_64")]
impl Lanes for Ssse3 {
    type Bytes = std::arch::x86_64::__m128i;
    type Words = std::arch::x86_64::__m128i;

    #[inline(always)]
    unsafe fn load(ptr: *const u8) -> Self::Bytes {
        // SAFETY (here and below): the caller guarantees the bytes and SSSE3.
        unsafe { std::arch::x86_64::_mm_loadu_si128(ptr.cast()) }
    }
    #[inline(always)]
    unsafe fn low_nibbles(b: Self::Bytes) -> Self::Bytes {
        use std::arch::x86_64::*;
        unsafe { _mm_and_si128(b, _mm_set1_epi8(0x0F)) }
    }
    #[inline(always)]
    unsafe fn high_nibbles(b: Self::Bytes) -> Self::Bytes {
        use std::arch::x86_64::*;
        // A 16-bit shift pulls the next byte's low bits in: masked off.
        unsafe { _mm_and_si128(_mm_srli_epi16::<4>(b), _mm_set1_epi8(0x0F)) }
    }
    #[inline(always)]
    unsafe fn lookup(table: Self::Bytes, index: Self::Bytes) -> Self::Bytes {
        unsafe { std::arch::x86_64::_mm_shuffle_epi8(table, index) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self::Words {
        unsafe { std::arch::x86_64::_mm_setzero_si128() }
    }
    #[inline(always)]
    unsafe fn add_low(acc: Self::Words, b: Self::Bytes) -> Self::Words {
        use std::arch::x86_64::*;
        unsafe { _mm_add_epi16(acc, _mm_unpacklo_epi8(b, _mm_setzero_si128())) }
    }
    #[inline(always)]
    unsafe fn add_high(acc: Self::Words, b: Self::Bytes) -> Self::Words {
        use std::arch::x86_64::*;
        unsafe { _mm_add_epi16(acc, _mm_unpackhi_epi8(b, _mm_setzero_si128())) }
    }
    #[inline(always)]
    unsafe fn words(w: Self::Words) -> [u16; 8] {
        let mut out = [0u16; 8];
        unsafe { std::arch::x86_64::_mm_storeu_si128(out.as_mut_ptr().cast(), w) };
        out
    }
}

/// NEON (`tbl`, `uaddw`): every aarch64 CPU.
#[cfg(target_arch = "aarch64")]
pub(crate) struct Neon;

#[cfg(target_arch = "aarch64")]
impl Lanes for Neon {
    type Bytes = std::arch::aarch64::uint8x16_t;
    type Words = std::arch::aarch64::uint16x8_t;

    #[inline(always)]
    unsafe fn load(ptr: *const u8) -> Self::Bytes {
        // SAFETY (here and below): the caller guarantees the bytes; NEON is
        // part of the aarch64 targets.
        unsafe { std::arch::aarch64::vld1q_u8(ptr) }
    }
    #[inline(always)]
    unsafe fn low_nibbles(b: Self::Bytes) -> Self::Bytes {
        use std::arch::aarch64::*;
        unsafe { vandq_u8(b, vdupq_n_u8(0x0F)) }
    }
    #[inline(always)]
    unsafe fn high_nibbles(b: Self::Bytes) -> Self::Bytes {
        unsafe { std::arch::aarch64::vshrq_n_u8::<4>(b) }
    }
    #[inline(always)]
    unsafe fn lookup(table: Self::Bytes, index: Self::Bytes) -> Self::Bytes {
        unsafe { std::arch::aarch64::vqtbl1q_u8(table, index) }
    }
    #[inline(always)]
    unsafe fn zero() -> Self::Words {
        unsafe { std::arch::aarch64::vdupq_n_u16(0) }
    }
    #[inline(always)]
    unsafe fn add_low(acc: Self::Words, b: Self::Bytes) -> Self::Words {
        use std::arch::aarch64::*;
        unsafe { vaddw_u8(acc, vget_low_u8(b)) }
    }
    #[inline(always)]
    unsafe fn add_high(acc: Self::Words, b: Self::Bytes) -> Self::Words {
        unsafe { std::arch::aarch64::vaddw_high_u8(acc, b) }
    }
    #[inline(always)]
    unsafe fn words(w: Self::Words) -> [u16; 8] {
        let mut out = [0u16; 8];
        unsafe { std::arch::aarch64::vst1q_u16(out.as_mut_ptr(), w) };
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SplitMix64;

    /// Every operation of `L` against the plain arrays, on random bytes.
    unsafe fn agrees_with_portable<L: Lanes>(name: &str) {
        let mut rng = SplitMix64::new(77);
        for _ in 0..1_000 {
            let raw: [u8; 48] = std::array::from_fn(|_| rng.below(256) as u8);
            let (b, t) = (raw.as_ptr(), raw[16..].as_ptr());
            let acc_bytes: [u8; 16] = raw[32..].try_into().unwrap();
            unsafe {
                let (x, table) = (L::load(b), L::load(t));
                let (px, ptable) = (Portable::load(b), Portable::load(t));
                let bytes = |v: L::Bytes| -> [u8; 16] {
                    // Widen into zero words: each word is its byte.
                    let (lo, hi) = (
                        L::words(L::add_low(L::zero(), v)),
                        L::words(L::add_high(L::zero(), v)),
                    );
                    std::array::from_fn(|i| if i < 8 { lo[i] as u8 } else { hi[i - 8] as u8 })
                };
                assert_eq!(bytes(x), px, "{name}: load");
                let (lo, hi) = (L::low_nibbles(x), L::high_nibbles(x));
                assert_eq!(bytes(lo), Portable::low_nibbles(px), "{name}: low");
                assert_eq!(bytes(hi), Portable::high_nibbles(px), "{name}: high");
                let want = Portable::lookup(ptable, Portable::low_nibbles(px));
                assert_eq!(bytes(L::lookup(table, lo)), want, "{name}: lookup");
                // Accumulators that wrap: words near 65535 plus bytes.
                let acc = L::add_low(L::zero(), L::load(acc_bytes.as_ptr()));
                let start = Portable::add_low([0; 8], acc_bytes);
                let mut a = acc;
                let mut p = start;
                for _ in 0..300 {
                    a = L::add_high(L::add_low(a, x), table);
                    p = Portable::add_high(Portable::add_low(p, px), ptable);
                }
                assert_eq!(L::words(a), p, "{name}: widening adds");
            }
        }
    }

    #[test]
    fn every_backend_this_cpu_runs_agrees_with_the_plain_arrays() {
        // SAFETY: each backend only where the CPU has its features.
        unsafe { agrees_with_portable::<Portable>("portable") };
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("ssse3") {
                #[target_feature(enable = "ssse3")]
                unsafe fn run() {
                    unsafe { agrees_with_portable::<Ssse3>("ssse3") }
                }
                unsafe { run() };
            }
        }
        #[cfg(target_arch = "aarch64")]
        unsafe {
            agrees_with_portable::<Neon>("neon")
        };
    }

    #[test]
    fn the_portable_lookup_reads_each_index() {
        let table: [u8; 16] = std::array::from_fn(|i| 100 + i as u8);
        let index: [u8; 16] = std::array::from_fn(|i| (15 - i) as u8);
        let got = unsafe { Portable::lookup(table, index) };
        assert_eq!(got, std::array::from_fn(|i| 115 - i as u8));
        let wrapped = unsafe { Portable::add_low([65_535; 8], [1; 16]) };
        assert_eq!(wrapped, [0; 8]);
    }
}
