//! 1-bit RaBitQ codes owned by the SDK.
//!
//! The upstream `RabitqIndex` encodes rows one at a time behind `&mut self`
//! and offers no way to insert codes computed elsewhere, so its build is
//! serial. Here the crate's index is kept only as the encoder (rotation,
//! `encode_query_packed`, cosine table); the packed codes and norms live in
//! SDK buffers, filled in parallel, and the scan replicates the crate's
//! symmetric scan exactly (same SIMD agreement kernel, same score formula,
//! same top-k rules), so results are identical to the crate's.

use std::cell::RefCell;

use rayon::prelude::*;
use ruvector_py_core::{parallel, Result};
use ruvector_rabitq::{RabitqIndex, RandomRotationKind};

use crate::store::Store;
use crate::topk::TopK;

/// Below this many rows a parallel encode costs more than it saves.
const PARALLEL_ENCODE_MIN_ROWS: usize = 1024;

pub struct SymmetricCodes {
    encoder: RabitqIndex,
    dim: usize,
    n_words: usize,
    last_word_mask: u64,
    packed: Vec<u64>,
    norms: Vec<f32>,
}

fn last_word_mask(dim: usize) -> u64 {
    let valid = dim - 64 * (dim.div_ceil(64) - 1);
    if valid == 64 {
        !0
    } else {
        !0u64 << (64 - valid)
    }
}

impl SymmetricCodes {
    pub fn new(dim: usize, seed: u64, kind: RandomRotationKind) -> Self {
        Self {
            encoder: RabitqIndex::new_with_rotation(dim, seed, kind),
            dim,
            n_words: dim.div_ceil(64),
            last_word_mask: last_word_mask(dim),
            packed: Vec::new(),
            norms: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }

    fn encode(&self, row: &[f32]) -> (Vec<u64>, f32) {
        let (words, _) = self.encoder.encode_query_packed(row);
        // The crate stores the raw norm of a row (the query path clamps it).
        let norm = row.iter().map(|&x| x * x).sum::<f32>().sqrt();
        (words, norm)
    }

    /// Encodes validated rows (row-major, `dim` wide), in parallel when many.
    pub fn add_rows(&mut self, data: &[f32]) -> Result<()> {
        let rows = data.len() / self.dim;
        let encoded: Vec<(Vec<u64>, f32)> = if rows >= PARALLEL_ENCODE_MIN_ROWS {
            parallel::pool()?
                .install(|| data.par_chunks(self.dim).map(|r| self.encode(r)).collect())
        } else {
            data.chunks(self.dim).map(|r| self.encode(r)).collect()
        };
        self.packed.reserve(rows * self.n_words);
        self.norms.reserve(rows);
        for (words, norm) in encoded {
            self.packed.extend_from_slice(&words);
            self.norms.push(norm);
        }
        Ok(())
    }

    /// The `k` best rows by the symmetric 1-bit estimate, as
    /// `(row, id, estimated squared L2)`, ascending.
    pub fn scan_topk(&self, store: &Store, query: &[f32], k: usize) -> Vec<(u32, u64, f32)> {
        let n = self.len();
        let (q_packed, q_norm) = self.encoder.encode_query_packed(query);
        // One agreement buffer per thread, reused across queries: a fresh
        // n-sized allocation per query (as the crate does) costs tens of µs
        // at n = 100k. The scan overwrites every element before it is read.
        thread_local! {
            static AGREE: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
        }
        AGREE.with(|cell| {
            let mut agree = cell.borrow_mut();
            agree.resize(n, 0);
            // The lengths are consistent by construction (n rows of n_words).
            ruvector_rabitq::scan::scan(
                &self.packed,
                self.n_words,
                n,
                &q_packed,
                self.last_word_mask,
                &mut agree,
            );
            let lut = self.encoder.cos_lut();
            let q_sq = q_norm * q_norm;
            let mut top = TopK::new(k.min(n));
            for (i, (&a, &x_norm)) in agree.iter().zip(&self.norms).enumerate() {
                let est_ip = q_norm * x_norm * lut[a as usize];
                let score = q_sq + x_norm * x_norm - 2.0 * est_ip;
                top.push_at(store.id_at(i), score, i as u32);
            }
            top.into_sorted_with_rows()
        })
    }

    pub fn rotation_kind(&self) -> RandomRotationKind {
        self.encoder.rotation().kind()
    }

    /// Codes, norms, cosine table and rotation (the crate's dense Haar
    /// rotation keeps two copies of its matrix and reports one).
    pub fn memory_bytes(&self) -> usize {
        let rotation = self.encoder.rotation().bytes();
        let haar_copy = if self.rotation_kind() == RandomRotationKind::HaarDense {
            rotation
        } else {
            0
        };
        rotation
            + haar_copy
            + self.packed.capacity() * 8
            + self.norms.capacity() * 4
            + self.encoder.cos_lut().len() * 4
    }

    pub fn same_codes(&self, other: &Self) -> bool {
        self.packed == other.packed && self.norms == other.norms
    }
}
