//! Pure-Rust checks on vector data, shared by every wheel. They run before
//! anything reaches an upstream crate, because the crates do not check: a NaN
//! or an overflowing norm there gives a silently wrong ranking.

use crate::errors::{Error, Result};

/// Largest squared L2 norm accepted for a stored vector or a query. Above it
/// the f32 arithmetic of a squared distance can overflow to infinity (and
/// `inf - inf` to NaN), which would rank that row first for every query.
pub const MAX_SQUARED_NORM: f64 = 1e36;

/// Largest dimension any index accepts (the `.rbpx` format's limit).
pub const MAX_DIM: usize = 8192;

/// Checks that `dim` is usable: at least 1 (the upstream crate reads out of
/// bounds on 0) and at most [`MAX_DIM`].
pub fn check_dim(dim: usize) -> Result<()> {
    if dim == 0 || dim > MAX_DIM {
        return Err(Error::invalid(format!(
            "dim must be between 1 and {MAX_DIM}, got {dim}"
        )));
    }
    Ok(())
}

/// Checks a row-major `(n, dim)` block: every value finite, every row's
/// squared norm below [`MAX_SQUARED_NORM`]. `what` names the argument in the
/// message (`"vectors"`, `"query"`); `matrix` says whether it is 2-D, so
/// positions read `what[row, col]` or `what[col]`.
pub fn check_rows(data: &[f32], dim: usize, what: &str, matrix: bool) -> Result<()> {
    debug_assert!(dim > 0 && data.len().is_multiple_of(dim));
    // A large block is checked in parallel; the error reported is still the
    // first bad row's (`find_first`), as a serial pass would give.
    const PARALLEL_VALUES: usize = 1 << 20;
    if data.len() >= PARALLEL_VALUES {
        if let Ok(pool) = crate::parallel::pool() {
            use rayon::prelude::*;
            let rows = (PARALLEL_VALUES / 4 / dim).max(1);
            return pool.install(|| {
                data.par_chunks(rows * dim)
                    .enumerate()
                    .map(|(i, block)| check_rows_from(block, dim, i * rows, what, matrix))
                    .find_first(Result::is_err)
                    .unwrap_or(Ok(()))
            });
        }
    }
    check_rows_from(data, dim, 0, what, matrix)
}

/// [`check_rows`] on rows numbered from `first_row`, serially.
fn check_rows_from(
    data: &[f32],
    dim: usize,
    first_row: usize,
    what: &str,
    matrix: bool,
) -> Result<()> {
    for (i, chunk) in data.chunks_exact(dim).enumerate() {
        let row = first_row + i;
        // The f64 sum of f32 squares is finite whenever every value is
        // (it cannot overflow for any realistic row length), so one
        // branch-free, vectorised pass per row checks both; a second pass
        // runs only to name the bad value.
        let sq = squared_norm(chunk);
        let bad = if sq.is_finite() {
            None
        } else {
            chunk.iter().enumerate().find(|(_, x)| !x.is_finite())
        };
        if let Some((col, &x)) = bad {
            let place = if !matrix {
                format!("{what}[{col}]")
            } else {
                format!("{what}[{row}, {col}]")
            };
            return Err(Error::invalid(format!(
                "{what} must hold only finite values, got {x} at {place}"
            )));
        }
        if sq > MAX_SQUARED_NORM {
            let place = if !matrix {
                what.to_string()
            } else {
                format!("{what}[{row}]")
            };
            return Err(Error::invalid(format!(
                "{place} has squared L2 norm {sq:.3e}, above the supported maximum \
                 {MAX_SQUARED_NORM:.0e} (values must stay below about 1e17 in magnitude)"
            )));
        }
    }
    Ok(())
}

/// `Σ x²` in f64, over eight independent lanes so it vectorises.
fn squared_norm(row: &[f32]) -> f64 {
    let mut lanes = [0.0f64; 8];
    let mut blocks = row.chunks_exact(8);
    for block in &mut blocks {
        for (lane, &x) in lanes.iter_mut().zip(block) {
            *lane += f64::from(x) * f64::from(x);
        }
    }
    let tail: f64 = blocks
        .remainder()
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum();
    lanes.iter().sum::<f64>() + tail
}

/// `k` when a caller gives none.
pub const DEFAULT_K: usize = 10;

/// Largest `k` any search accepts.
pub const MAX_K: usize = 100_000_000;

/// Largest `queries × k` of one batch search (its result arrays).
pub const MAX_BATCH_RESULTS: usize = 1 << 30;

/// The one k rule of every wheel: `k` is an integer between 1 and
/// [`MAX_K`] (Python callers refuse bools before this); a search returns
/// `min(k, available)` hits, and batch results are padded to `k` columns
/// with id `-1` and the worst score of the metric (`pad_score` in the index
/// crate's `metric.rs`). `k` above the number of vectors is not an error.
pub fn check_k(k: i64) -> Result<usize> {
    if k < 1 || k as u64 > MAX_K as u64 {
        return Err(Error::invalid(format!(
            "k must be between 1 and {MAX_K}, got {k}"
        )));
    }
    Ok(k as usize)
}

/// Searching an index without vectors is an error (`EmptyIndex`), not an
/// empty answer: it is almost always a missing `add`.
pub fn check_not_empty(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::EmptyIndex(
            "the index is empty: add vectors before searching".into(),
        ));
    }
    Ok(())
}

/// Checks the size of a batch result (`nq × k` ids and scores).
pub fn check_batch(nq: usize, k: usize) -> Result<()> {
    if nq.saturating_mul(k) > MAX_BATCH_RESULTS {
        return Err(Error::invalid(format!(
            "a batch search returns at most {MAX_BATCH_RESULTS} ids (queries × k), got {nq} \
             queries × k {k}"
        )));
    }
    Ok(())
}

/// Checks ids against the largest id an index can store, and against each
/// other and `existing` for duplicates. Returns them unchanged.
pub fn check_ids(ids: &[u64], max_id: u64, existing: impl Fn(u64) -> bool) -> Result<()> {
    // The common case passes: check it with a sorted copy (a loaded 1M-row
    // index: ~4x faster than hashing every id); only a failure walks the ids
    // in order, so the message names the first offending position.
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let fine = sorted.last().is_none_or(|&top| top <= max_id)
        && sorted.windows(2).all(|w| w[0] != w[1])
        && !ids.iter().any(|&id| existing(id));
    if fine {
        return Ok(());
    }
    drop(sorted);
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    for (i, &id) in ids.iter().enumerate() {
        if id > max_id {
            return Err(Error::invalid(format!(
                "ids[{i}] = {id} does not fit this index: ids must be between 0 and {max_id}"
            )));
        }
        if !seen.insert(id) {
            return Err(Error::invalid(format!(
                "ids[{i}] = {id} appears more than once: ids must be unique"
            )));
        }
        if existing(id) {
            return Err(Error::invalid(format!(
                "ids[{i}] = {id} is already in the index: ids must be unique"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dim_bounds() {
        assert!(check_dim(0).is_err());
        assert!(check_dim(1).is_ok());
        assert!(check_dim(MAX_DIM).is_ok());
        assert_eq!(
            check_dim(MAX_DIM + 1).unwrap_err().to_string(),
            "dim must be between 1 and 8192, got 8193"
        );
    }

    #[test]
    fn rows_reject_nan_with_position() {
        let data = [1.0, 2.0, 3.0, f32::NAN];
        let e = check_rows(&data, 2, "vectors", true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "vectors must hold only finite values, got NaN at vectors[1, 1]"
        );
        let e = check_rows(&[f32::NEG_INFINITY], 1, "query", false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "query must hold only finite values, got -inf at query[0]"
        );
    }

    #[test]
    fn rows_reject_overflowing_norm() {
        let data = [1e19f32, 0.0];
        let e1 = check_rows(&[0.0, 0.0, 1e19, 0.0], 2, "vectors", true)
            .unwrap_err()
            .to_string();
        assert!(e1.starts_with("vectors[1] has squared L2 norm"), "{e1}");
        let e = check_rows(&data, 2, "query", false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("query has squared L2 norm 1.000e38"), "{e}");
        assert!(check_rows(&[1e17, 1e17], 2, "q", false).is_ok());
    }

    #[test]
    fn a_large_block_names_its_first_bad_row() {
        // Large enough to be checked in parallel blocks; bad rows in a
        // late block and an early one: the early one is named.
        let dim = 16;
        let mut data = vec![0.5f32; 300_000 * dim];
        assert!(check_rows(&data, dim, "vectors", true).is_ok());
        data[290_000 * dim + 3] = f32::NAN;
        data[70_001 * dim + 5] = f32::INFINITY;
        let e = check_rows(&data, dim, "vectors", true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "vectors must hold only finite values, got inf at vectors[70001, 5]"
        );
    }

    #[test]
    fn k_bounds() {
        assert!(check_k(0).is_err());
        assert!(check_k(-3).is_err());
        assert_eq!(check_k(6).unwrap(), 6, "k above the vectors held is fine");
        assert_eq!(check_k(MAX_K as i64).unwrap(), MAX_K);
        assert!(check_k(MAX_K as i64 + 1).is_err());
        assert!(matches!(check_not_empty(0), Err(Error::EmptyIndex(_))));
        assert!(check_not_empty(1).is_ok());
        assert!(check_batch(1 << 10, 1 << 20).is_ok());
        assert!(check_batch(1 << 11, 1 << 20).is_err());
    }

    #[test]
    fn ids_checked_for_range_and_duplicates() {
        assert!(check_ids(&[0, 1, u32::MAX as u64], u32::MAX as u64, |_| false).is_ok());
        let e = check_ids(&[1, 1 << 32], u32::MAX as u64, |_| false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ids[1] = 4294967296 does not fit this index: ids must be between 0 and 4294967295"
        );
        assert!(check_ids(&[3, 4, 3], 10, |_| false).is_err());
        assert!(check_ids(&[3], 10, |id| id == 3).is_err());
        assert!(check_ids(&[], 10, |_| true).is_ok());
    }

    #[test]
    fn the_first_offending_position_is_named_whatever_the_rule() {
        let msg = |ids: &[u64]| check_ids(ids, 100, |id| id == 7).unwrap_err().to_string();
        // A repeat of a small id comes after a held id, and after a too-large one.
        assert_eq!(
            msg(&[9, 7, 1, 1]),
            "ids[1] = 7 is already in the index: ids must be unique"
        );
        assert_eq!(
            msg(&[5, 200, 5]),
            "ids[1] = 200 does not fit this index: ids must be between 0 and 100"
        );
        assert_eq!(
            msg(&[50, 2, 50, 2]),
            "ids[2] = 50 appears more than once: ids must be unique"
        );
        // Many distinct ids in any order pass (the sorted fast path).
        let ids: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 10_007).collect();
        assert!(check_ids(&ids, 20_000, |_| false).is_ok());
    }
}
