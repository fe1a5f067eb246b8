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

/// What [`TopK::push`] would admit, captured so a hot loop can test a score
/// without a call: everything while the heap fills, then scores strictly
/// below the worst kept (exactly `push_at`'s own test).
#[derive(Clone, Copy)]
pub struct Bound(Option<f32>);

impl Bound {
    #[inline(always)]
    pub fn admits(self, score: f32) -> bool {
        match self.0 {
            None => true,
            Some(worst) => score.total_cmp(&worst) == Ordering::Less,
        }
    }
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

    /// The current admission test (see [`Bound`]); valid until the next push.
    #[inline]
    pub fn admission_bound(&self) -> Bound {
        if self.heap.len() < self.k {
            Bound(None)
        } else {
            Bound(self.heap.peek().map(|e| e.score))
        }
    }

    /// The worst score kept once `k` are held (`None` before).
    pub fn worst(&self) -> Option<f32> {
        (self.heap.len() >= self.k)
            .then(|| self.heap.peek().map(|e| e.score))
            .flatten()
    }

    /// `(id, score)` pairs, ascending by score; equal scores by id, so every
    /// search path (single, batch, filtered, sharded) lists ties alike.
    pub fn into_sorted(self) -> Vec<(u64, f32)> {
        let mut v: Vec<(u64, f32)> = self.heap.into_iter().map(|e| (e.id, e.score)).collect();
        v.sort_unstable_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        v
    }

    /// `(row, id, score)` triples, ascending by score, equal scores by id.
    pub fn into_sorted_with_rows(self) -> Vec<(u32, u64, f32)> {
        let mut v: Vec<(u32, u64, f32)> = self
            .heap
            .into_iter()
            .map(|e| (e.pos, e.id, e.score))
            .collect();
        v.sort_unstable_by(|a, b| a.2.total_cmp(&b.2).then(a.1.cmp(&b.1)));
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

/// [`sq_l2`] of `query` to each of the rows, bit for bit, computed
/// [`INTERLEAVE`] rows at a time: each row's sum stays serial (as the crate
/// adds), but the independent sums overlap instead of waiting on one
/// another's add latency.
pub fn sq_l2_rows<'a>(query: &[f32], rows: impl Iterator<Item = &'a [f32]>, out: &mut Vec<f32>) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { sq_l2_rows_avx2(query, rows, out) };
        }
    }
    sq_l2_rows_portable(query, rows, out)
}

/// The same code with AVX2 enabled (no FMA, no reordering: same bits).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sq_l2_rows_avx2<'a>(
    query: &[f32],
    rows: impl Iterator<Item = &'a [f32]>,
    out: &mut Vec<f32>,
) {
    sq_l2_rows_portable(query, rows, out)
}

#[inline(always)]
fn sq_l2_rows_portable<'a>(
    query: &[f32],
    rows: impl Iterator<Item = &'a [f32]>,
    out: &mut Vec<f32>,
) {
    thread_local! {
        static LANES: std::cell::RefCell<Vec<[f32; INTERLEAVE]>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let d = query.len();
    let start = std::iter::empty::<f32>().sum::<f32>();
    out.clear();
    LANES.with(|cell| {
        // Eight rows side by side (`lanes[j][r]` = row r, dimension j), so
        // that the eight serial sums run as the lanes of one SIMD register.
        let lanes = &mut *cell.borrow_mut();
        lanes.resize(d, [0.0; INTERLEAVE]);
        let mut filled = 0;
        let mut pending: [&[f32]; INTERLEAVE] = [&[]; INTERLEAVE];
        for row in rows {
            for (lane, &x) in lanes.iter_mut().zip(&row[..d]) {
                lane[filled] = x;
            }
            pending[filled] = row;
            filled += 1;
            if filled == INTERLEAVE {
                let mut acc = [start; INTERLEAVE];
                for (lane, &q) in lanes.iter().zip(query) {
                    for r in 0..INTERLEAVE {
                        let diff = q - lane[r];
                        acc[r] += diff * diff;
                    }
                }
                out.extend_from_slice(&acc);
                filled = 0;
            }
        }
        out.extend(pending[..filled].iter().map(|row| sq_l2(query, row)));
    });
}

/// Rows whose distances [`sq_l2_rows`] computes side by side.
pub const INTERLEAVE: usize = 8;

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
    fn interleaved_distances_are_the_serial_ones_bit_for_bit() {
        let q: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin()).collect();
        let rows: Vec<Vec<f32>> = (0..19)
            .map(|r| (0..37).map(|i| ((i * r) as f32 * 0.3).cos()).collect())
            .collect();
        let mut out = Vec::new();
        sq_l2_rows(&q, rows.iter().map(|r| r.as_slice()), &mut out);
        let want: Vec<u32> = rows.iter().map(|r| sq_l2(&q, r).to_bits()).collect();
        assert_eq!(out.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
    }

    #[test]
    fn the_bound_admits_exactly_what_push_admits() {
        let mut t = TopK::new(2);
        for (id, s) in [(1, 3.0), (2, 1.0), (3, 3.0), (4, 2.0), (5, 2.0)] {
            let admitted = t.admission_bound().admits(s);
            let before = t.heap.len();
            let worst = t.heap.peek().map(|e| (e.id, e.score));
            t.push(id, s);
            let changed = t.heap.len() != before || t.heap.peek().map(|e| (e.id, e.score)) != worst;
            assert_eq!(admitted, changed, "score {s}");
        }
    }

    #[test]
    fn equal_scores_do_not_evict() {
        let mut t = TopK::new(1);
        t.push(9, 1.0);
        t.push(1, 1.0);
        assert_eq!(t.into_sorted(), vec![(9, 1.0)]);
    }

    #[test]
    fn equal_scores_come_out_by_id_whatever_the_push_order() {
        for order in [[7u64, 3, 5, 1], [1, 5, 3, 7], [5, 7, 1, 3]] {
            let mut t = TopK::new(4);
            for id in order {
                t.push(id, 2.0);
            }
            t.push(9, 0.5);
            let got: Vec<u64> = t.into_sorted().iter().map(|p| p.0).collect();
            assert_eq!(got, vec![9, 1, 3, 5]);
        }
    }
}
