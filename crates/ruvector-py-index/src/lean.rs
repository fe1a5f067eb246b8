//! Memory-lean reranking (`IvfRabitqIndex.load(path, lean=True)`): the
//! float32 vectors stay in the file and out of the process, and an 8-bit
//! copy (one byte per dimension, a quarter of the floats) stands in for
//! them in memory.
//!
//! The 8-bit code of a row is per dimension `cᵢ = round((xᵢ − loᵢ) / stepᵢ)`
//! with `lo`/`step` the dimension's minimum and range / 255 over all rows,
//! so `x̂ᵢ = loᵢ + stepᵢ·cᵢ` is within `stepᵢ / 2` of `xᵢ`, and
//! `⟨q, x̂⟩ = ⟨q, lo⟩ + Σᵢ (qᵢ·stepᵢ)·cᵢ`: one product of the query's
//! weights with the codes per candidate (for `l2`,
//! `‖q − x‖² ≈ ‖q‖² − 2⟨q, x̂⟩ + ‖x‖²`, with the exact `‖x‖²` kept per row).
//! Since `|⟨q, x − x̂⟩| ≤ E = Σᵢ |qᵢ|·stepᵢ / 2`, a row's exact cost lies
//! within `E` of its 8-bit estimate (`2E` for `l2`).
//!
//! A search's candidates (the best 1-bit estimates of the probed lists,
//! or a small filter's allowed rows) are ordered by their 8-bit estimates,
//! and their float32 rows are read from the file in that order (positional
//! reads, `pread`, into a buffer: the pages never enter the process's
//! resident memory, unlike a touched map) and scored exactly, until the
//! `k`-th best exact cost is below every unread candidate's estimate minus
//! the error bound: no unread row can enter the top `k` then. So the hits
//! and their exact scores are the ones an exact rerank of every candidate
//! gives (what the index returns without `lean`, ties aside), after about
//! `1.3·k` reads on real embeddings instead of all `k · rerank_factor`.
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

/// Slack on the error bound for the rounding of the f32 sums (estimate
/// and exact cost add different terms in different orders): this much of
/// the bound itself, and [`ROUNDING`] of the sums' magnitudes.
const BOUND_SLACK: f32 = 1e-3;

/// Far above the relative rounding error of a sum of a few thousand f32
/// terms (`dim · 2⁻²⁴`).
const ROUNDING: f32 = 1e-4;

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
    /// Exact `‖x‖²` of each row.
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
                for ((c, norm), x) in codes
                    .chunks_exact_mut(dim)
                    .zip(norms.iter_mut())
                    .zip(rows.chunks_exact(dim))
                {
                    for (((c, &x), &lo), &step) in c.iter_mut().zip(x).zip(&lo).zip(&step) {
                        *c = if step > 0.0 {
                            ((x - lo) / step).round().clamp(0.0, 255.0) as u8
                        } else {
                            0
                        };
                    }
                    *norm = distance::dot(x, x);
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
    /// `cosine`, as `metric` says), ascending, exactly as scoring every row
    /// by `exact_cost` would give (ties aside), and how many rows it read:
    /// rows are read from the file in the order of their 8-bit estimates
    /// until the bound proves no unread row can enter the top `k` (see the
    /// module's notes). `id_at` maps a row to its id.
    pub fn rerank(
        &self,
        query: &[f32],
        metric: Metric,
        rows: impl ExactSizeIterator<Item = u32>,
        k: usize,
        id_at: impl Fn(usize) -> u64,
        exact_cost: impl Fn(&[f32]) -> f32,
    ) -> Result<(Vec<(u64, f32)>, usize)> {
        let d = self.dim;
        if rows.len() == 0 || k == 0 {
            return Ok((Vec::new(), 0));
        }
        let weights: Vec<f32> = query.iter().zip(&self.step).map(|(q, s)| q * s).collect();
        let base = distance::dot(query, &self.lo);
        let q_sq = distance::dot(query, query);
        let half_steps: f32 = weights.iter().map(|w| w.abs()).sum::<f32>() * 0.5;
        // Σ |qᵢ|·max(|loᵢ|, |hiᵢ|): bounds the terms of every estimate's sum.
        let magnitude: f32 = query
            .iter()
            .zip(&self.lo)
            .zip(&self.step)
            .map(|((q, &lo), &step)| q.abs() * lo.abs().max((lo + 255.0 * step).abs()))
            .sum();
        let mut estimates: Vec<(f32, u32)> = rows
            .map(|row| {
                let r = row as usize;
                let dot = base + distance::dot_u8(&weights, &self.codes[r * d..(r + 1) * d]);
                let cost = match metric {
                    Metric::L2 => q_sq - 2.0 * dot + self.norms[r],
                    Metric::Ip | Metric::Cosine => -dot,
                };
                (cost, row)
            })
            .collect();
        estimates.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        // How far below its estimate a row's exact cost can lie, with slack
        // for rounding.
        let bound = |r: usize| -> f32 {
            let (err, sums) = match metric {
                Metric::L2 => (2.0 * half_steps, q_sq + self.norms[r] + 2.0 * magnitude),
                Metric::Ip | Metric::Cosine => (half_steps, magnitude),
            };
            err * (1.0 + BOUND_SLACK) + sums * ROUNDING
        };
        let mut bytes = vec![0u8; d * 4];
        let mut x = vec![0f32; d];
        let mut top = TopK::new(k.min(estimates.len()));
        let mut read = 0;
        for (i, &(_, row)) in estimates.iter().enumerate() {
            let r = row as usize;
            self.read_row(r, &mut bytes, &mut x)?;
            read += 1;
            top.push(id_at(r), exact_cost(&x));
            if let (Some(worst), Some(&(next, nr))) = (top.worst(), estimates.get(i + 1)) {
                if worst < next - bound(nr as usize) {
                    break;
                }
            }
        }
        Ok((top.into_sorted(), read))
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
            for (i, &xi) in x.iter().enumerate() {
                let dec = lean.lo[i] + lean.step[i] * f32::from(lean.codes[r * d + i]);
                assert!(
                    (dec - xi).abs() <= lean.step[i] * 0.5 + 1e-6,
                    "row {r} dim {i}"
                );
            }
            assert_eq!(lean.norms[r], distance::dot(x, x));
        }
    }

    #[test]
    fn the_top_k_is_the_exact_one_after_reading_few_rows() {
        let (n, d) = (2000, 40);
        // Uneven dimensions (ranges 0.1 to 6) and clusters, so the 8-bit
        // steps differ and many rows score close together.
        let mut data = rows(n, d, 11);
        for (i, v) in data.iter_mut().enumerate() {
            let (r, j) = (i / d, i % d);
            *v = *v * (0.1 + (j % 7) as f32) + ((r % 13) as f32 - 6.0) * 0.3;
        }
        let (lean, _g) = lean_of(&data, d, 128);
        let mut reads = 0.0;
        let mut searches = 0;
        for metric in [Metric::L2, Metric::Ip] {
            for qi in 0..30 {
                let noise = rows(1, d, 100 + qi);
                let at = (qi as usize * 67) % n;
                let q: Vec<f32> = data[at * d..(at + 1) * d]
                    .iter()
                    .zip(&noise)
                    .map(|(x, e)| x + e)
                    .collect();
                for k in [1, 10, 50] {
                    let (got, read) = lean
                        .rerank(
                            &q,
                            metric,
                            0..n as u32,
                            k,
                            |r| r as u64,
                            |x| cost(metric, &q, x),
                        )
                        .unwrap();
                    let want = exact(&data, d, &q, metric, k);
                    assert_eq!(got.len(), k);
                    for ((gi, gs), (wi, ws)) in got.iter().zip(&want) {
                        assert_eq!(gi, wi, "{metric:?} k {k}");
                        assert_eq!(gs.to_bits(), ws.to_bits(), "{metric:?}: exact scores");
                    }
                    assert!(read >= k);
                    reads += read as f64 / k as f64;
                    searches += 1;
                }
            }
        }
        // Proven after reading a few rows per hit, not all 2,000.
        let per_hit = reads / f64::from(searches);
        assert!(per_hit < 4.0, "{per_hit} rows read per hit");
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
            .unwrap()
            .0;
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
            .0
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
