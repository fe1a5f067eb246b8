//! The SDK's vector index engine, pure Rust (no Python classes), linked
//! into the `ruvector-rabitq` wheel (which exposes it to Python) and the
//! `ruvector-lake` wheel (whose cache entries are its indexes).
//!
//! * [`engine`] — the crate's four index kinds (validated inputs, results
//!   identical to the crate's) and the SDK's IVF kind, behind one type;
//! * [`codes`] — SDK-owned 1-bit codes with the crate's exact arithmetic,
//!   vectorised; [`topk`] — the crate's top-k rules; [`store`] — ids and
//!   kept vectors;
//! * [`ivf`], [`kmeans`], [`fastscan`], [`rotation`], [`distance`] — the
//!   IVF index; [`lanes`] — the 128-bit SIMD layer its NEON kernel is
//!   written in;
//! * [`lean`] — the 8-bit resident copy behind memory-lean loading;
//! * [`metric`] — the distance an index ranks by; [`filter`] — the ids a
//!   filtered search may return;
//! * [`rbpx`] — `.rbpx` files, checked and atomic; [`bigbuf`] — large
//!   buffers on huge pages, filled in parallel.

pub mod bigbuf;
pub mod codes;
pub mod distance;
pub mod engine;
pub mod fastscan;
pub mod filter;
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
