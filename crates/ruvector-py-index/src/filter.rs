//! Filtered search: which rows a search may return.
//!
//! * [`IdSet`] — the allowed ids, built once (sorted, duplicates dropped)
//!   and reusable across searches and indexes;
//! * [`RowFilter`] — an [`IdSet`] bound to one index's rows: a bitmap for
//!   O(1) membership inside the scans plus the sorted list of allowed rows
//!   (for scans that visit only those). It is built once per `search` /
//!   `search_batch` call (O(allowed) for dense ids, one map lookup per id
//!   otherwise) and valid until the index changes (a search holds the read
//!   lock, so it cannot change under it).
//!
//! The filter is applied inside every scan, before a row can enter a top-k
//! or a rerank candidate list, so a search returns `min(k, allowed ∩
//! present)` hits (see `Engine::search` for the rule on approximate kinds).

use crate::store::Store;

/// A set of allowed ids (sorted, unique).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdSet {
    ids: Vec<u64>,
}

impl IdSet {
    /// The set of `ids` (any order, duplicates allowed).
    pub fn new(ids: &[u64]) -> Self {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        Self { ids }
    }

    /// Number of distinct ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.ids.binary_search(&id).is_ok()
    }

    /// The ids, ascending.
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Largest id (`None` when empty).
    pub fn max(&self) -> Option<u64> {
        self.ids.last().copied()
    }

    /// Binds the set to `store`'s rows (ids not in the store are ignored).
    pub fn rows(&self, store: &Store) -> RowFilter {
        let n = store.len();
        let mut rows: Vec<u32> = if self.ids.len() <= n {
            self.ids
                .iter()
                .filter_map(|&id| store.row_of(id))
                .map(|r| r as u32)
                .collect()
        } else {
            // More ids than rows: test every row's id against the set.
            (0..n)
                .filter(|&r| self.contains(store.id_at(r)))
                .map(|r| r as u32)
                .collect()
        };
        rows.sort_unstable();
        let mut bits = vec![0u64; n.div_ceil(64)];
        for &r in &rows {
            bits[r as usize / 64] |= 1 << (r % 64);
        }
        RowFilter { bits, rows }
    }
}

/// An [`IdSet`] bound to the rows of one index (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct RowFilter {
    bits: Vec<u64>,
    rows: Vec<u32>,
}

impl RowFilter {
    /// Whether row `row` may be returned.
    #[inline(always)]
    pub fn allows(&self, row: usize) -> bool {
        self.bits
            .get(row / 64)
            .is_some_and(|w| w & (1 << (row % 64)) != 0)
    }

    /// The allowed rows, ascending.
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// Number of allowed rows.
    pub fn count(&self) -> usize {
        self.rows.len()
    }
}

/// Whether `row` passes an optional filter.
#[inline(always)]
pub fn allows(filter: Option<&RowFilter>, row: usize) -> bool {
    filter.is_none_or(|f| f.allows(row))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_sort_dedup_and_bind_to_rows() {
        let s = IdSet::new(&[9, 3, 3, 100, 7]);
        assert_eq!(s.ids(), &[3, 7, 9, 100]);
        assert!(s.contains(9) && !s.contains(8));
        let mut store = Store::new(1, true);
        store.append(&[7, 8, 9, 10], &[0.0, 1.0, 2.0, 3.0]);
        let f = s.rows(&store);
        assert_eq!(f.rows(), &[0, 2]);
        assert!(f.allows(0) && !f.allows(1) && f.allows(2) && !f.allows(3));
        assert!(!f.allows(1000));
        // More ids than rows takes the other path, same answer.
        let big = IdSet::new(&(0..50).chain([7, 9]).collect::<Vec<_>>());
        assert_eq!(big.rows(&store).rows(), &[0, 1, 2, 3]);
        assert_eq!(IdSet::new(&[]).rows(&store).count(), 0);
    }
}
