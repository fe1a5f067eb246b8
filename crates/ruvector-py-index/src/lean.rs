//! Memory-lean reranking (`IvfRabitqIndex.load(path, lean=True)`): the
//! float32 vectors stay in the file and out of the process, and an 8-bit
//! copy (one byte per dimension, a quarter of the floats) stands in for
//! them in memory.
//!
//! A search's candidates (the best 1-bit estimates of the probed lists)
//! are ranked again by their 8-bit rows, and only the best
//! [`EXACT_PER_HIT`]` · k` of those are read from the file (positional
//! reads, `pread`, into a buffer: the pages never enter the process's
//! resident memory, unlike a touched map) and scored exactly, so every
//! returned score is the same exact distance as without `lean`.
//!
//! The 8-bit code of a row is per dimension `cᵢ = round((xᵢ − loᵢ) / stepᵢ)`
//! with `lo`/`step` the dimension's minimum and range / 255 over all rows,
//! so `x̂ᵢ = loᵢ + stepᵢ·cᵢ` is within `stepᵢ / 2` of `xᵢ`, and
//! `⟨q, x̂⟩ = ⟨q, lo⟩ + Σᵢ (qᵢ·stepᵢ)·cᵢ`: one product of the query's
//! weights with the codes per candidate (for `l2`,
//! `‖q − x̂‖² = ‖q‖² − 2⟨q, x̂⟩ + ‖x̂‖²`, with `‖x̂‖²` kept per row).
//!
//! The file handle is the one the load mapped, so a file replaced later
//! (the SDK saves by rename) does not change what is read.

use std::fs::File;
use std::sync::Arc;

use rayon::prelude::*;
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::{Error, Result};

use crate::distance;
use crate::metric::Metric;
use crate::topk::TopK;

/// Rows read exactly per hit asked for: the 8-bit ranking's best
/// `EXACT_PER_HIT · k` (at least [`MIN_EXACT`]) candidates.
pub const EXACT_PER_HIT: usize = 2;

/// Fewest rows read exactly (small `k` gain most from a margin).
pub const MIN_EXACT: usize = 16;

/// Rows per chunk of the build (a cancellation point each).
const BUILD_ROWS: usize = 8192;

/// The resident 8-bit copy of an index's vectors and where their float32
/// rows sit in the file.
pub struct LeanVectors {
    dim: usize,
    /// `n × dim` codes, row-major.
    codes: Vec<u8>,
    lo: Vec<f32>,
    step: Vec<f32>,
    /// `‖x̂‖²` of each row.
    norms: Vec<f32>,
    file: Arc<File>,
    /// Byte offset of row 0's float32 vector in `file`.
    offset: u64,
    /// The file, for messages.
    source: String,
}

impl LeanVectors {
    /// Codes every row of `vectors` (`n × dim`, validated finite), whose
    /// float32 rows are also at byte `offset` of `file`.
    pub fn build(
        vectors: &[f32],
        dim: usize,
        file: Arc<File>,
        offset: u64,
        source: &str,
        cancel: &Cancel,
    ) -> Result<Self> {
        debug_assert!(dim > 0 && vectors.len().is_multiple_of(dim));
        let chunk = BUILD_ROWS * dim;
        let (lo, hi) = vectors
            .par_chunks(chunk)
            .map(|rows| {
                cancel.check()?;
                let mut lo = vec![f32::INFINITY; dim];
                let mut hi = vec![f32::NEG_INFINITY; dim];
                for row in rows.chunks_exact(dim) {
                    for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(row) {
                        *l = l.min(x);
                        *h = h.max(x);
                    }
                }
                Ok((lo, hi))
            })
            .try_reduce(
                || (vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]),
                |(mut lo, mut hi), (lo2, hi2)| {
                    lo.iter_mut().zip(&lo2).for_each(|(a, &b)| *a = a.min(b));
                    hi.iter_mut().zip(&hi2).for_each(|(a, &b)| *a = a.max(b));
                    Ok((lo, hi))
                },
            )?;
        // An empty index has no range: any finite `lo` will do.
        let lo: Vec<f32> = lo
            .into_iter()
            .map(|l| if l.is_finite() { l } else { 0.0 })
            .collect();
        let step: Vec<f32> = hi
            .iter()
            .zip(&lo)
            .map(|(&h, &l)| if h > l { (h - l) / 255.0 } else { 0.0 })
            .collect();
        let n = vectors.len() / dim;
        let mut codes = vec![0u8; vectors.len()];
        let mut norms = vec![0f32; n];
        codes
            .par_chunks_mut(chunk)
            .zip(norms.par_chunks_mut(BUILD_ROWS))
            .zip(vectors.par_chunks(chunk))
            .try_for_each(|((codes, norms), rows)| {
                cancel.check()?;
                let mut decoded = vec![0f32; dim];
                for ((c, norm), x) in codes
                    .chunks_exact_mut(dim)
                    .zip(norms.iter_mut())
                    .zip(rows.chunks_exact(dim))
                {
                    for i in 0..dim {
                        let q = if step[i] > 0.0 {
                            ((x[i] - lo[i]) / step[i]).round().clamp(0.0, 255.0)
                        } else {
                            0.0
                        };
                        c[i] = q as u8;
                        decoded[i] = lo[i] + step[i] * f32::from(c[i]);
                    }
                    *norm = distance::dot(&decoded, &decoded);
                }
                Ok(())
            })?;
        Ok(Self {
            dim,
            codes,
            lo,
            step,
            norms,
            file,
            offset,
            source: source.to_owned(),
        })
    }

    /// Bytes held in memory (codes, norms, ranges).
    pub fn memory_bytes(&self) -> usize {
        self.codes.capacity() + 4 * (self.norms.capacity() + 2 * self.dim)
    }

    /// The top-`k` `(id, cost)` among `rows` by `exact_cost` (of a
    /// float32 row: squared L2, or the negated inner product for `ip` and
    /// `cosine`, as `metric` says), ascending: every row ranked by its
    /// 8-bit code, the best `max(EXACT_PER_HIT · k, MIN_EXACT)` read from
    /// the file and scored by `exact_cost`. `id_at` maps a row to its id.
    pub fn rerank(
        &self,
        query: &[f32],
        metric: Metric,
        rows: impl ExactSizeIterator<Item = u32>,
        k: usize,
        id_at: impl Fn(usize) -> u64,
        exact_cost: impl Fn(&[f32]) -> f32,
    ) -> Result<Vec<(u64, f32)>> {
        let d = self.dim;
        let n_rows = rows.len();
        if n_rows == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let weights: Vec<f32> = query.iter().zip(&self.step).map(|(q, s)| q * s).collect();
        let base = distance::dot(query, &self.lo);
        let q_sq = distance::dot(query, query);
        let exact = k.saturating_mul(EXACT_PER_HIT).max(MIN_EXACT).min(n_rows);
        let mut approx = TopK::new(exact);
        let mut bound = approx.admission_bound();
        for row in rows {
            let r = row as usize;
            let dot = base + distance::dot_u8(&weights, &self.codes[r * d..(r + 1) * d]);
            let cost = match metric {
                Metric::L2 => q_sq - 2.0 * dot + self.norms[r],
                Metric::Ip | Metric::Cosine => -dot,
            };
            if bound.admits(cost) {
                approx.push_at(id_at(r), cost, row);
                bound = approx.admission_bound();
            }
        }
        let mut bytes = vec![0u8; d * 4];
        let mut x = vec![0f32; d];
        let best = approx.into_sorted_with_rows();
        let mut top = TopK::new(k.min(best.len()));
        for (row, id, _) in best {
            self.read_row(row as usize, &mut bytes, &mut x)?;
            top.push(id, exact_cost(&x));
        }
        Ok(top.into_sorted())
    }

    /// Row `row`'s float32 vector, read from the file into `x`.
    fn read_row(&self, row: usize, bytes: &mut [u8], x: &mut [f32]) -> Result<()> {
        let at = self.offset + (row * self.dim * 4) as u64;
        read_exact_at(&self.file, bytes, at).map_err(|e| {
            Error::persist(
                &self.source,
                format!(
                    "cannot read the vector of row {row} (lean=True reads it from the file): {e}"
                ),
            )
        })?;
        for (v, b) in x.iter_mut().zip(bytes.chunks_exact(4)) {
            *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
        }
        Ok(())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, at) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                at += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn rows(n: usize, d: usize, seed: u32) -> Vec<f32> {
        (0..n * d)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 / u32::MAX as f32 - 0.5)
            .collect()
    }

    fn lean_of(data: &[f32], d: usize, header: usize) -> (LeanVectors, tempfile_path::Guard) {
        let guard = tempfile_path::Guard::new();
        let mut f = File::create(&guard.0).unwrap();
        f.write_all(&vec![7u8; header]).unwrap();
        for x in data {
            f.write_all(&x.to_le_bytes()).unwrap();
        }
        drop(f);
        let file = Arc::new(File::open(&guard.0).unwrap());
        let lean =
            LeanVectors::build(data, d, file, header as u64, "test", &Cancel::new()).unwrap();
        (lean, guard)
    }

    /// A file removed when dropped.
    mod tempfile_path {
        pub struct Guard(pub std::path::PathBuf);
        impl Guard {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let name = format!(
                    "ruvector-lean-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                );
                Guard(std::env::temp_dir().join(name))
            }
        }
        impl Drop for Guard {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn cost(metric: Metric, q: &[f32], x: &[f32]) -> f32 {
        match metric {
            Metric::L2 => distance::sq_l2(q, x),
            _ => -distance::dot(q, x),
        }
    }

    fn exact(data: &[f32], d: usize, q: &[f32], metric: Metric, k: usize) -> Vec<(u64, f32)> {
        let mut top = TopK::new(k);
        for (r, x) in data.chunks_exact(d).enumerate() {
            top.push(r as u64, cost(metric, q, x));
        }
        top.into_sorted()
    }

    #[test]
    fn codes_decode_within_half_a_step() {
        let (n, d) = (300, 24);
        let data = rows(n, d, 5);
        let (lean, _g) = lean_of(&data, d, 64);
        for (r, x) in data.chunks_exact(d).enumerate() {
            let mut norm = 0.0f32;
            for (i, &xi) in x.iter().enumerate() {
                let dec = lean.lo[i] + lean.step[i] * f32::from(lean.codes[r * d + i]);
                assert!(
                    (dec - xi).abs() <= lean.step[i] * 0.5 + 1e-6,
                    "row {r} dim {i}"
                );
                norm += dec * dec;
            }
            assert!((norm - lean.norms[r]).abs() < 1e-4);
        }
    }

    #[test]
    fn every_row_reranked_gives_the_exact_top_k_with_exact_scores() {
        let (n, d, k) = (500, 40, 10);
        let data = rows(n, d, 11);
        let (lean, _g) = lean_of(&data, d, 128);
        for metric in [Metric::L2, Metric::Ip] {
            for qi in 0..5 {
                let q = &rows(1, d, 100 + qi)[..];
                let got = lean
                    .rerank(
                        q,
                        metric,
                        0..n as u32,
                        k,
                        |r| r as u64,
                        |x| cost(metric, q, x),
                    )
                    .unwrap();
                let want = exact(&data, d, q, metric, k);
                // The exact stage reads the 8-bit ranking's best 20: the
                // true top 10 are among them on these rows.
                assert_eq!(got.len(), k);
                for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                    assert_eq!(gi, wi, "{metric:?}");
                    assert_eq!(gs.to_bits(), ws.to_bits(), "{metric:?}: exact scores");
                }
            }
        }
    }

    #[test]
    fn a_constant_dimension_and_a_subset_of_rows() {
        let (n, d) = (64, 8);
        let mut data = rows(n, d, 3);
        for r in 0..n {
            data[r * d + 2] = 0.25;
        }
        let (lean, _g) = lean_of(&data, d, 0);
        assert_eq!(lean.step[2], 0.0);
        let q = &data[5 * d..6 * d];
        let subset = [9u32, 5, 40];
        let got = lean
            .rerank(
                q,
                Metric::L2,
                subset.iter().copied(),
                2,
                |r| 1000 + r as u64,
                |x| distance::sq_l2(q, x),
            )
            .unwrap();
        assert_eq!(got[0], (1005, 0.0));
        assert_eq!(got.len(), 2);
        let none: [u32; 0] = [];
        assert!(lean
            .rerank(
                q,
                Metric::L2,
                none.iter().copied(),
                3,
                |r| r as u64,
                |_| 0.0
            )
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let (n, d) = (40, 8);
        let data = rows(n, d, 1);
        let (lean, g) = lean_of(&data, d, 0);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&g.0)
            .unwrap()
            .set_len(10)
            .unwrap();
        let err = lean
            .rerank(
                &data[..d],
                Metric::L2,
                0..n as u32,
                3,
                |r| r as u64,
                |_| 0.0,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("test") && err.contains("cannot read"), "{err}");
    }
}
