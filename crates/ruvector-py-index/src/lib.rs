//! The SDK's vector index engine, pure Rust (no Python classes), linked
//! into the `ruvector-rabitq` wheel (which exposes it to Python) and the
//! `ruvector-lake` wheel (whose cache entries are its indexes).
//!
//! * [`engine`] — the crate's four index kinds (validated inputs, results
//!   identical to the crate's) and the SDK's IVF kind, behind one type;
//! * [`codes`] — SDK-owned 1-bit codes with the crate's exact arithmetic,
//!   vectorised; [`topk`] — the crate's top-k rules; [`store`] — ids and
//!   kept vectors;
//! * [`ivf`], [`kmeans`], [`fastscan`], [`rotation`], [`distance`],
//!   [`intdot`] — the IVF index; [`lanes`] — the 128-bit SIMD layer its
//!   NEON kernel is written in;
//! * [`lean`] — the 8-bit resident copy behind memory-lean loading;
//! * [`metric`] — the distance an index ranks by; [`filter`] — the ids a
//!   filtered search may return;
//! * [`rbpx`] — `.rbpx` files, checked and atomic; [`bigbuf`] — large
//!   buffers on huge pages, filled in parallel.

/// `fn name(args) -> ret` running `portable` (an `#[inline(always)]` fn
/// of the same arguments) compiled for AVX2 when the CPU has it, for the
/// baseline otherwise: one body, so the same operations and the same bits
/// either way, vectorised eight lanes wide where it can be.
macro_rules! avx2_twin {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?
        = $portable:ident / $avx2:ident) => {
        $(#[$m])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                if std::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { $avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        unsafe fn $avx2($($arg: $ty),*) $(-> $ret)? {
            $portable($($arg),*)
        }
    };
}

pub mod bigbuf;
pub mod codes;
pub mod distance;
pub mod engine;
pub mod fastscan;
pub mod filter;
pub mod intdot;
pub mod ivf;
pub mod kmeans;
pub mod lanes;
pub mod lean;
pub mod metric;
pub mod rbpx;
pub mod rotation;
pub mod store;
pub mod topk;
pub mod vzip;
