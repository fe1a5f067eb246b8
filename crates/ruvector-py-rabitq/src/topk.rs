//! Top-k selection with exactly the upstream crate's semantics (a bounded
//! max-heap ordered by `(score.total_cmp, id)`, a new entry admitted only
//! when strictly better than the worst, an unstable final sort by score), so
//! that the SDK's own rerank and flat scan return what the crate returns for
//! the same inputs, ties included.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: u64,
    score: f32,
    /// Row of the candidate; carried along, not part of the ordering.
    pos: u32,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.score.total_cmp(&o.score).then(self.id.cmp(&o.id))
    }
}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

pub struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    pub fn new(k: usize) -> Self {
        let k = k.max(1);
        Self {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    pub fn push(&mut self, id: u64, score: f32) {
        self.push_at(id, score, 0);
    }

    /// [`TopK::push`] carrying the candidate's row.
    #[inline]
    pub fn push_at(&mut self, id: u64, score: f32, pos: u32) {
        if self.heap.len() < self.k {
            self.heap.push(Entry { id, score, pos });
            return;
        }
        let worst = self.heap.peek().map(|e| e.score).unwrap_or(f32::INFINITY);
        if score.total_cmp(&worst) == Ordering::Less {
            self.heap.pop();
            self.heap.push(Entry { id, score, pos });
        }
    }

    /// `(id, score)` pairs, ascending by score.
    pub fn into_sorted(self) -> Vec<(u64, f32)> {
        let mut v: Vec<(u64, f32)> = self.heap.into_iter().map(|e| (e.id, e.score)).collect();
        v.sort_unstable_by(|a, b| a.1.total_cmp(&b.1));
        v
    }

    /// `(row, id, score)` triples, ascending by score.
    pub fn into_sorted_with_rows(self) -> Vec<(u32, u64, f32)> {
        let mut v: Vec<(u32, u64, f32)> = self
            .heap
            .into_iter()
            .map(|e| (e.pos, e.id, e.score))
            .collect();
        v.sort_unstable_by(|a, b| a.2.total_cmp(&b.2));
        v
    }
}

/// Squared L2 distance, summed left to right like the upstream crate.
#[inline]
pub fn sq_l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b.iter())
        .map(|(&x, &y)| (x - y) * (x - y))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_smallest_in_order() {
        let mut t = TopK::new(3);
        for (id, s) in [(1, 5.0), (2, 1.0), (3, 4.0), (4, 0.5), (5, 9.0)] {
            t.push(id, s);
        }
        assert_eq!(t.into_sorted(), vec![(4, 0.5), (2, 1.0), (3, 4.0)]);
    }

    #[test]
    fn equal_scores_do_not_evict() {
        let mut t = TopK::new(1);
        t.push(9, 1.0);
        t.push(1, 1.0);
        assert_eq!(t.into_sorted(), vec![(9, 1.0)]);
    }
}
