//! IVF partitioning over RaBitQ codes: the sub-linear index of the wheel
//! (`IvfRabitqIndex`).
//!
//! * A k-means coarse quantizer ([`crate::kmeans`]) splits the vectors into
//!   `nlist` lists; a query visits the `nprobe` lists with the nearest
//!   centroids only.
//! * Each vector is stored as the 1-bit RaBitQ code of its rotated residual
//!   `x' = P(x − c)` ([`crate::rotation`]), with two estimator terms.
//! * The query side is asymmetric, as in the RaBitQ paper: the estimate is
//!   `‖x'‖² + ‖q'‖² − 2·‖x'‖²/‖x'‖₁·⟨s, q'⟩` with `s = sign(x')` and
//!   `q' = Pq − Pc`. Since `⟨s, q'⟩ = ⟨s, Pq⟩ − ⟨s, Pc⟩` and `⟨s, Pc⟩` is
//!   fixed per vector (stored at add time), one set of FastScan tables for
//!   `Pq` serves every list ([`crate::fastscan`]).
//! * Candidates are chosen with one `select_nth_unstable` over the visited
//!   lists (no heap push per candidate), and `k · rerank_factor` of them are
//!   reranked with exact float32 distances, so every returned score is exact.
//! * Inner product (`Metric::Ip`, MIPS over unnormalised vectors): the
//!   stored `offset` also subtracts `‖x‖²`, so the same scan estimates
//!   `‖q − x‖² − ‖x‖² = ‖q‖² − 2⟨q, x⟩` (`‖q‖²` is the same for every row);
//!   lists are visited by the upper bound `⟨q, c⟩ + ‖q‖·r` of any inner
//!   product in them (`r` the largest `‖x − c‖` the list ever held), and
//!   the rerank is by exact inner product. `cosine` is `l2` over unit
//!   vectors with an inner-product rerank.

use std::cell::RefCell;
use std::sync::OnceLock;

use rayon::prelude::*;
use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::{parallel, Error, Result};
use ruvector_rabitq::RandomRotationKind;

use crate::distance::CentroidScores;
use crate::fastscan::{block_bytes_for, BlockCodes, CodeBytes, QueryLut, BLOCK};
use crate::filter::RowFilter;
use crate::intdot::RowPairs;
use crate::metric::Metric;
use crate::rotation::Rotator;
use crate::store::Store;
use crate::topk::TopK;
use crate::{distance, kmeans};

/// Below this many rows an add encodes serially.
const PARALLEL_MIN_ROWS: usize = 1024;

/// The list count used when the caller gives none: about `√n`, which
/// balances the centroid scan against the list scans.
pub fn auto_nlist(n: usize) -> usize {
    ((n as f64).sqrt().round() as usize).clamp(1, MAX_NLIST)
}

/// Largest number of lists.
pub const MAX_NLIST: usize = 65_536;

/// One inverted list: the rows it holds and their codes, contiguous so a
/// scan streams through memory. Per vector, with `f = ‖x'‖²/‖x'‖₁` and
/// `g = ⟨s, Pc⟩`: `offset = ‖x'‖² + 2fg` and `slope = 2f`, so that the
/// estimate is `offset + ‖q'‖² − slope·⟨s, Pq⟩`.
struct List {
    rows: Vec<u32>,
    codes: BlockCodes,
    offsets: Vec<f32>,
    slopes: Vec<f32>,
}

impl List {
    fn new(dim: usize) -> Self {
        Self {
            rows: Vec::new(),
            codes: BlockCodes::new(dim),
            offsets: Vec::new(),
            slopes: Vec::new(),
        }
    }
}

/// Codes of rows and their estimator terms, one flat buffer a field (no
/// allocation per row).
#[derive(Default)]
struct EncodedRows {
    /// Sign words, `words` a row.
    bits: Vec<u64>,
    words: usize,
    offsets: Vec<f32>,
    slopes: Vec<f32>,
    /// `‖x − c‖`, each row's distance to its list's centroid.
    radii: Vec<f32>,
}

impl EncodedRows {
    fn with_capacity(words: usize, rows: usize) -> Self {
        EncodedRows {
            bits: Vec::with_capacity(words * rows),
            words,
            offsets: Vec::with_capacity(rows),
            slopes: Vec::with_capacity(rows),
            radii: Vec::with_capacity(rows),
        }
    }

    fn bits(&self, i: usize) -> &[u64] {
        &self.bits[i * self.words..(i + 1) * self.words]
    }

    /// Moves the rows of `other` after these.
    fn append(&mut self, other: &mut EncodedRows) {
        self.bits.append(&mut other.bits);
        self.offsets.append(&mut other.offsets);
        self.slopes.append(&mut other.slopes);
        self.radii.append(&mut other.radii);
    }
}

/// Rows prepared for an add and not yet visible: the lists trained by a
/// first add, the list of every row and its code, and (spilling) its
/// second list and the code there.
pub struct PendingRows {
    /// `(centroids, rotated centroids)` when this add trains the lists.
    trained: Option<(Vec<f32>, Vec<f32>)>,
    labels: Vec<u32>,
    encoded: EncodedRows,
    spill: Vec<u32>,
    spill_encoded: EncodedRows,
}

pub struct IvfCodes {
    dim: usize,
    /// Length of a rotated vector (`dim`, or the padded length).
    rdim: usize,
    kind: RandomRotationKind,
    /// Built on first use (a dense Haar rotation costs O(dim³)).
    rotation: OnceLock<Rotator>,
    /// `nlist × dim`, empty until trained.
    centroids: Vec<f32>,
    /// The centroids again, rounded to 16-bit integers and packed for
    /// `pmaddwd`: what ranks the lists for a query (see [`CentroidScores`]).
    centroid_scores: CentroidScores,
    /// The centroids rotated (`nlist × rdim`), so a query is rotated once,
    /// not once per list.
    rot_centroids: Vec<f32>,
    lists: Vec<List>,
    /// The list of every row of the store, in row order.
    labels: Vec<u32>,
    /// Whether rows are also kept in a second list (see
    /// [`kmeans::assign_with_spill`]).
    spilling: bool,
    /// With spilling (and two lists or more), the second list of every
    /// row, in row order; else empty. Never the row's `labels` entry, so a
    /// list holds a row at most once and a search sees it at most twice.
    spill: Vec<u32>,
    /// Per list, the largest `‖x − c‖` of any row it held (an upper bound
    /// that removals leave valid): orders lists for inner-product search.
    radii: Vec<f32>,
    metric: Metric,
    seed: u64,
}

/// An IVF index's lists as a file keeps them: their codes, per store row
/// (in row order) its estimator terms, per list its radius. A load installs
/// them as they are, without rotating or encoding a vector; lists hold
/// their rows in ascending row order (adds append, removals keep the
/// order), so the labels (and spill labels) give every row's place back.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SavedLists {
    pub codes: SavedCodes,
    pub offsets: Vec<f32>,
    pub slopes: Vec<f32>,
    /// The second list of every row (empty without spilling).
    pub spill: Vec<u32>,
    /// The terms of every row in its spill list (empty without spilling).
    pub spill_offsets: Vec<f32>,
    pub spill_slopes: Vec<f32>,
    /// Per list, `‖x − c‖` bound (see `IvfCodes::radii`).
    pub radii: Vec<f32>,
}

/// The lists' codes in a file.
#[derive(Clone, Debug, PartialEq)]
pub enum SavedCodes {
    /// `n × code_words` sign words of the rotated residuals, in row order
    /// (files written before the scan layout was saved).
    Rows(Vec<u64>),
    /// Every list's blocks as the scan reads them ([`BlockCodes::blocks`]),
    /// list after list: installed without re-packing, or kept mapped.
    Blocked(CodeBytes),
}

impl Default for SavedCodes {
    fn default() -> Self {
        SavedCodes::Rows(Vec::new())
    }
}

/// Query-side scratch reused across searches on a thread.
#[derive(Default)]
struct Scratch {
    q_rot: Vec<f32>,
    centroid_dist: Vec<(f32, u32)>,
    ranking: RankScratch,
    bufs: ScanBufs,
    cand: Vec<(f32, u32)>,
}

/// Buffers of [`IvfCodes::list_order`].
#[derive(Default)]
struct RankScratch {
    q_pairs: RowPairs,
    dots: Vec<i32>,
    /// Squared distance to each centroid, in list order.
    to_centroids: Vec<f32>,
}

/// Rows a rerank has taken, one bit a row: clear between searches (only
/// the bits set are cleared again).
#[derive(Default)]
struct SeenRows(Vec<u64>);

impl SeenRows {
    /// Keeps the first entry of every row in `cand` (sorted best first),
    /// at most `want` of them.
    fn first_of_each(&mut self, cand: &mut Vec<(f32, u32)>, want: usize) {
        let words = cand
            .iter()
            .map(|c| c.1 as usize / 64 + 1)
            .max()
            .unwrap_or(0);
        if self.0.len() < words {
            self.0.resize(words, 0);
        }
        let seen = &mut self.0;
        let mut kept = 0;
        cand.retain(|&(_, row)| {
            let (w, bit) = (row as usize / 64, 1u64 << (row % 64));
            if kept == want || seen[w] & bit != 0 {
                return false;
            }
            seen[w] |= bit;
            kept += 1;
            true
        });
        for &(_, row) in cand.iter() {
            seen[row as usize / 64] = 0;
        }
    }
}

/// What one list scan writes and the next reuses.
#[derive(Default)]
struct ScanBufs {
    sums: Vec<u32>,
    est: Vec<f32>,
    /// Per group of 16 rows of a list: whose estimate is within the bound.
    below: Vec<u32>,
    /// A copy of a list's estimates to select a bound in.
    pick: Vec<f32>,
    /// Per group of 16 rows of a list: which the filter allows.
    allowed: Vec<u32>,
    seen: SeenRows,
}

/// The per-list and per-query terms of a list's distance estimates.
#[derive(Clone, Copy)]
struct EstimateTerms {
    /// `‖q − c‖²` of the list.
    q_sq: f32,
    /// `⟨s, Pq⟩ ≈ shift + step·S` (see [`ListScan`]).
    shift: f32,
    step: f32,
}

avx2_twin! {
    /// Every row's estimate `offset + ‖q − c‖² − slope·⟨s, Pq⟩` from its
    /// scan sum.
    fn estimate_rows(
        sums: &[u32],
        offsets: &[f32],
        slopes: &[f32],
        t: EstimateTerms,
        est: &mut Vec<f32>,
    ) = estimate_rows_portable / estimate_rows_avx2
}

#[inline(always)]
fn estimate_rows_portable(
    sums: &[u32],
    offsets: &[f32],
    slopes: &[f32],
    t: EstimateTerms,
    est: &mut Vec<f32>,
) {
    let n = offsets.len().min(slopes.len()).min(sums.len());
    est.clear();
    est.extend(
        sums[..n]
            .iter()
            .zip(&offsets[..n])
            .zip(&slopes[..n])
            .map(|((&sum, &off), &slope)| off + t.q_sq - slope * (t.shift + t.step * sum as f32)),
    );
}

avx2_twin! {
    /// Per group of 16 estimates, the mask of those `<= bound` (a SIMD
    /// compare per group rather than a branch per row).
    fn mask_below(est: &[f32], bound: f32, below: &mut Vec<u32>) = mask_below_portable / mask_below_avx2
}

#[inline(always)]
fn mask_below_portable(est: &[f32], bound: f32, below: &mut Vec<u32>) {
    let mask_of = |e: &[f32]| {
        e.iter()
            .enumerate()
            .fold(0u32, |m, (i, &x)| m | (u32::from(x <= bound) << i))
    };
    below.clear();
    let mut sixteens = est.chunks_exact(16);
    below.extend((&mut sixteens).map(|e| {
        let e: &[f32; 16] = e.try_into().expect("chunks of 16");
        mask_of(e)
    }));
    if !sixteens.remainder().is_empty() {
        below.push(mask_of(sixteens.remainder()));
    }
}

/// The order candidates are kept and reranked in: estimate, then row, a
/// total order, so the candidates and hits of a query do not depend on the
/// order its lists were scanned in (one query's nearest first, or a batch's
/// list by list).
#[inline]
fn by_estimate(a: &(f32, u32), b: &(f32, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl IvfCodes {
    pub fn new(dim: usize, seed: u64, kind: RandomRotationKind) -> Self {
        let rdim = match kind {
            RandomRotationKind::HadamardSigned => dim.next_power_of_two(),
            _ => dim,
        };
        Self {
            dim,
            rdim,
            kind,
            rotation: OnceLock::new(),
            centroids: Vec::new(),
            centroid_scores: CentroidScores::default(),
            rot_centroids: Vec::new(),
            lists: Vec::new(),
            labels: Vec::new(),
            spilling: false,
            spill: Vec::new(),
            radii: Vec::new(),
            metric: Metric::L2,
            seed,
        }
    }

    /// The metric the lists rank by (set before any row is added).
    pub fn with_metric(mut self, metric: Metric) -> Self {
        self.metric = metric;
        self
    }

    /// Whether rows also go to a second list (set before any row is
    /// added): about twice the codes (4–8 % of the float32 rows' memory),
    /// and far fewer lists to visit for the same recall.
    pub fn with_spill(mut self, spilling: bool) -> Self {
        self.spilling = spilling;
        self
    }

    /// Whether rows are kept in a second list too.
    pub fn spilling(&self) -> bool {
        self.spilling
    }

    /// The second list of every row (empty without spilling, or with
    /// one list).
    pub fn spill_labels(&self) -> &[u32] {
        &self.spill
    }

    /// Whether a row can be in two of the lists a search visits.
    fn spilled(&self) -> bool {
        !self.spill.is_empty()
    }

    fn rotation(&self) -> &Rotator {
        self.rotation
            .get_or_init(|| Rotator::new(self.dim, self.seed, self.kind))
    }

    pub fn is_trained(&self) -> bool {
        !self.centroids.is_empty()
    }

    /// Number of lists (0 before the first add).
    pub fn nlist(&self) -> usize {
        self.centroids.len() / self.dim
    }

    pub fn centroids(&self) -> &[f32] {
        &self.centroids
    }

    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Words of one row's code: the rotated length over 64, rounded up.
    pub fn code_words(&self) -> usize {
        self.rdim.div_ceil(64)
    }

    /// Bytes of one block of a list's codes (see [`crate::fastscan`]).
    pub fn block_bytes(&self) -> usize {
        block_bytes_for(self.rdim)
    }

    /// Blocks of all the lists (what [`SavedCodes::Blocked`] holds).
    pub fn blocks(&self) -> usize {
        self.lists
            .iter()
            .map(|l| l.codes.len().div_ceil(BLOCK))
            .sum()
    }

    /// Whether the lists' codes are ranges of a file map.
    pub fn is_mapped(&self) -> bool {
        self.lists.iter().any(|l| l.codes.is_mapped())
    }

    /// The lists in the form a file keeps them ([`SavedLists`]), codes in
    /// the scan layout.
    pub fn saved_lists(&self) -> SavedLists {
        let mut blocks = Vec::with_capacity(self.blocks() * self.block_bytes());
        for list in &self.lists {
            blocks.extend_from_slice(list.codes.blocks());
        }
        SavedLists {
            codes: SavedCodes::Blocked(CodeBytes::Owned(blocks)),
            ..self.saved_terms()
        }
    }

    /// [`IvfCodes::saved_lists`] with the codes in row order (the layout
    /// of files written before the scan layout was saved).
    pub fn saved_lists_by_row(&self) -> SavedLists {
        assert!(
            !self.spilled(),
            "spilled lists are saved in the scan layout"
        );
        let (n, w) = (self.labels.len(), self.code_words());
        let mut bits = vec![0; n * w];
        for list in &self.lists {
            for (j, &row) in list.rows.iter().enumerate() {
                let r = row as usize;
                list.codes.bits_of(j, &mut bits[r * w..(r + 1) * w]);
            }
        }
        SavedLists {
            codes: SavedCodes::Rows(bits),
            ..self.saved_terms()
        }
    }

    fn saved_terms(&self) -> SavedLists {
        let n = self.labels.len();
        let ns = self.spill.len();
        let mut saved = SavedLists {
            codes: SavedCodes::default(),
            spill: self.spill.clone(),
            offsets: vec![0.0; n],
            slopes: vec![0.0; n],
            spill_offsets: vec![0.0; ns],
            spill_slopes: vec![0.0; ns],
            radii: self.radii.clone(),
        };
        for (l, list) in self.lists.iter().enumerate() {
            for (j, &row) in list.rows.iter().enumerate() {
                let r = row as usize;
                let (offsets, slopes) = if self.labels[r] as usize == l {
                    (&mut saved.offsets, &mut saved.slopes)
                } else {
                    (&mut saved.spill_offsets, &mut saved.spill_slopes)
                };
                offsets[r] = list.offsets[j];
                slopes[r] = list.slopes[j];
            }
        }
        saved
    }

    /// Fills the lists, just set by [`IvfCodes::set_centroids`], from a
    /// file: row `i` goes to list `labels[i]` (checked by the caller) with
    /// its saved code and terms. Lengths, finite terms and zero bits past
    /// the rotated length (and, in the scan layout, in the unused slots of
    /// a list's last block) are checked; the codes themselves are trusted
    /// as the vectors are (the file's CRC covers both, and every hit is
    /// reranked by its exact vector, so a forged code can cost recall but
    /// never give a wrong score). Codes in the scan layout become the
    /// lists' blocks as they are: copied once, or (mapped) not at all.
    ///
    /// `saved.spill` (empty, or one entry a row) gives every row's second
    /// list, whose terms are `saved.spill_offsets` / `spill_slopes`; each
    /// entry must name a list (checked here) other than the row's label.
    pub fn install_lists(&mut self, labels: &[u32], mut saved: SavedLists) -> Result<()> {
        let spill = std::mem::take(&mut saved.spill);
        let spill = spill.as_slice();
        let (n, w, nlist) = (labels.len(), self.code_words(), self.lists.len());
        if !self.labels.is_empty() {
            return Err(Error::invalid("install_lists needs empty lists"));
        }
        let spilled = !spill.is_empty();
        let fits = (!spilled || spill.len() == n)
            && saved.spill_offsets.len() == spill.len()
            && saved.spill_slopes.len() == spill.len()
            && !(spilled && matches!(saved.codes, SavedCodes::Rows(_)));
        if !fits {
            return Err(Error::invalid(format!(
                "the saved spill lists do not fit {n} rows: {} spill labels, {} and {} terms",
                spill.len(),
                saved.spill_offsets.len(),
                saved.spill_slopes.len()
            )));
        }
        if let Some((i, (&l, &l2))) = labels
            .iter()
            .zip(spill)
            .enumerate()
            .find(|(_, (&l, &l2))| l2 as usize >= nlist || l2 == l)
        {
            return Err(Error::invalid(format!(
                "row {i} is in list {l} and spills to list {l2}: expected another of the {nlist} lists"
            )));
        }
        let sizes = {
            let mut sizes = vec![0usize; nlist];
            labels
                .iter()
                .chain(spill)
                .for_each(|&l| sizes[l as usize] += 1);
            sizes
        };
        let code_len = match &saved.codes {
            SavedCodes::Rows(bits) => bits.len() == n * w,
            SavedCodes::Blocked(b) => {
                let blocks: usize = sizes.iter().map(|s| s.div_ceil(BLOCK)).sum();
                b.as_bytes().len() == blocks * self.block_bytes()
            }
        };
        if !code_len
            || saved.offsets.len() != n
            || saved.slopes.len() != n
            || saved.radii.len() != nlist
        {
            return Err(Error::invalid(format!(
                "the saved lists do not fit {n} rows of {w} code words in {nlist} lists"
            )));
        }
        let terms = saved.offsets.iter().chain(&saved.slopes);
        let spill_terms = saved.spill_offsets.iter().chain(&saved.spill_slopes);
        let slopes = saved.slopes.iter().chain(&saved.spill_slopes);
        if terms
            .chain(spill_terms)
            .chain(&saved.radii)
            .any(|x| !x.is_finite())
            || slopes.chain(&saved.radii).any(|&x| x < 0.0)
        {
            return Err(Error::invalid(
                "the saved list terms must be finite (slopes and radii not negative)",
            ));
        }
        let past_length = || Error::invalid("a saved code has bits past the rotated length");
        match saved.codes {
            SavedCodes::Rows(bits) => {
                if !self.rdim.is_multiple_of(64) {
                    let past = !((1u64 << (self.rdim % 64)) - 1);
                    if bits.chunks_exact(w).any(|row| row[w - 1] & past != 0) {
                        return Err(past_length());
                    }
                }
                for (i, &l) in labels.iter().enumerate() {
                    self.lists[l as usize].codes.push(&bits[i * w..(i + 1) * w]);
                }
            }
            SavedCodes::Blocked(bytes) => {
                let mut codes = Vec::with_capacity(nlist);
                let mut at = 0;
                for &size in &sizes {
                    let len = size.div_ceil(BLOCK) * self.block_bytes();
                    let part = match &bytes {
                        CodeBytes::Owned(v) => CodeBytes::Owned(v[at..at + len].to_vec()),
                        CodeBytes::Mapped(m) => {
                            CodeBytes::Mapped(m.slice(at, len).expect("length checked above"))
                        }
                    };
                    at += len;
                    let c = BlockCodes::from_blocks(self.rdim, size, part)
                        .expect("length checked above");
                    if !c.padding_is_zero() {
                        return Err(past_length());
                    }
                    codes.push(c);
                }
                for (list, c) in self.lists.iter_mut().zip(codes) {
                    list.codes = c;
                }
            }
        }
        for (list, &size) in self.lists.iter_mut().zip(&sizes) {
            list.rows.reserve_exact(size);
            list.offsets.reserve_exact(size);
            list.slopes.reserve_exact(size);
        }
        for (i, &l) in labels.iter().enumerate() {
            // Both of a row's entries in row order: each list stays sorted.
            let list = &mut self.lists[l as usize];
            list.rows.push(i as u32);
            list.offsets.push(saved.offsets[i]);
            list.slopes.push(saved.slopes[i]);
            if spilled {
                let list = &mut self.lists[spill[i] as usize];
                list.rows.push(i as u32);
                list.offsets.push(saved.spill_offsets[i]);
                list.slopes.push(saved.spill_slopes[i]);
            }
        }
        self.labels.extend_from_slice(labels);
        self.spill.extend_from_slice(spill);
        self.spilling |= spilled;
        self.radii = saved.radii;
        Ok(())
    }

    /// Sizes of the lists, in list order.
    pub fn list_sizes(&self) -> Vec<usize> {
        self.lists.iter().map(|l| l.rows.len()).collect()
    }

    /// The centroids rotated, one row per list.
    fn rotate_centroids(&self, centroids: &[f32]) -> Vec<f32> {
        let nlist = centroids.len() / self.dim;
        let mut rot = vec![0.0f32; nlist * self.rdim];
        if nlist > 0 {
            self.rotation().apply_rows(centroids, &mut rot);
        }
        rot
    }

    /// Sets the centroids (from training or a file) and empties the lists.
    pub fn set_centroids(&mut self, centroids: Vec<f32>) {
        let rot = self.rotate_centroids(&centroids);
        self.install_centroids(centroids, rot);
    }

    fn install_centroids(&mut self, centroids: Vec<f32>, rot: Vec<f32>) {
        let nlist = centroids.len() / self.dim;
        self.lists = (0..nlist).map(|_| List::new(self.rdim)).collect();
        self.radii = vec![0.0; nlist];
        self.centroid_scores = CentroidScores::new(&centroids, self.dim);
        self.centroids = centroids;
        self.rot_centroids = rot;
        self.labels.clear();
        self.spill.clear();
    }

    /// Trains `nlist` centroids (clamped to the number of rows) on `data`,
    /// on the wheel's pool, without installing them.
    fn train(&self, data: &[f32], nlist: usize, cancel: &Cancel) -> Result<Vec<f32>> {
        let n = data.len() / self.dim;
        let nlist = nlist.clamp(1, n.max(1));
        let (dim, seed) = (self.dim, self.seed);
        let training = match self.metric {
            Metric::Ip => kmeans::RADIUS_TRAINING,
            Metric::L2 | Metric::Cosine => kmeans::DISTANCE_TRAINING,
        };
        parallel::pool()?.install(|| kmeans::train(data, dim, nlist, seed, training, cancel))
    }

    /// Nearest list of every row among `centroids`, and (spilling) its
    /// second list (on the wheel's pool).
    fn assign_to(
        &self,
        data: &[f32],
        centroids: &[f32],
        cancel: &Cancel,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        let (dim, spill) = (self.dim, self.spilling);
        parallel::pool()?.install(|| kmeans::assign_with_spill(data, dim, centroids, spill, cancel))
    }

    /// Nearest list of every row (on the wheel's pool).
    pub fn assign(&self, data: &[f32]) -> Result<Vec<u32>> {
        Ok(self.assign_to(data, &self.centroids, &Cancel::new())?.0)
    }

    /// Appends the code and estimator terms of a rotated row `x` in list
    /// `l`, whose rotated centroid is row `l` of `rot_centroids`, to `out`.
    fn encode(&self, x: &[f32], l: usize, rot_centroids: &[f32], out: &mut EncodedRows) {
        let r = self.rdim;
        let c = &rot_centroids[l * r..(l + 1) * r];
        // ‖x‖² (the rotation is an isometry), for inner-product lists.
        let x_sq = match self.metric {
            Metric::Ip => distance::dot(x, x),
            Metric::L2 | Metric::Cosine => 0.0,
        };
        let (sq, l1, g) = distance::residual_code(x, c, &mut out.bits);
        let f = if l1 > 0.0 { sq / l1 } else { 0.0 };
        out.offsets.push(sq + 2.0 * f * g - x_sq);
        out.slopes.push(2.0 * f);
        out.radii.push(sq.sqrt());
    }

    /// Encodes rows for the lists given by `labels`, and for those given
    /// by `spill` (empty, or one a row), rotating each row once (rotated
    /// centroids `rot_centroids`); blocks of rows in parallel when there
    /// are many, checking `cancel` between blocks.
    fn encode_rows(
        &self,
        data: &[f32],
        labels: &[u32],
        spill: &[u32],
        rot_centroids: &[f32],
        cancel: &Cancel,
    ) -> Result<(EncodedRows, EncodedRows)> {
        const CHUNK: usize = 256;
        let (d, r) = (self.dim, self.rdim);
        let words = r.div_ceil(64);
        let rotation = self.rotation();
        let enc = |rotated: &mut Vec<f32>,
                   (i, (rows, labels)): (usize, (&[f32], &[u32]))|
         -> Result<(EncodedRows, EncodedRows)> {
            cancel.check()?;
            rotated.resize(labels.len() * r, 0.0);
            rotation.apply_rows(rows, rotated);
            let mut first = EncodedRows::with_capacity(words, labels.len());
            for (x, &l) in rotated.chunks_exact(r).zip(labels) {
                self.encode(x, l as usize, rot_centroids, &mut first);
            }
            // Without spilling `spill` is empty, and so is this block's share.
            let spill = spill
                .get(i * CHUNK..i * CHUNK + labels.len())
                .unwrap_or(&[]);
            let mut spilled = EncodedRows::with_capacity(words, spill.len());
            for (x, &l) in rotated.chunks_exact(r).zip(spill) {
                self.encode(x, l as usize, rot_centroids, &mut spilled);
            }
            Ok((first, spilled))
        };
        let blocks: Vec<(EncodedRows, EncodedRows)> = if labels.len() >= PARALLEL_MIN_ROWS {
            parallel::pool()?.install(|| {
                data.par_chunks(CHUNK * d)
                    .zip(labels.par_chunks(CHUNK))
                    .enumerate()
                    .map_init(Vec::new, enc)
                    .collect::<Result<_>>()
            })?
        } else {
            let mut rotated = Vec::new();
            data.chunks(CHUNK * d)
                .zip(labels.chunks(CHUNK))
                .enumerate()
                .map(|b| enc(&mut rotated, b))
                .collect::<Result<_>>()?
        };
        let mut first = EncodedRows::with_capacity(words, labels.len());
        let mut spilled = EncodedRows::with_capacity(words, spill.len());
        for (mut a, mut b) in blocks {
            first.append(&mut a);
            spilled.append(&mut b);
        }
        Ok((first, spilled))
    }

    /// Appends encoded rows (store rows `first_row..`) to their lists,
    /// and (spilling) to their second lists: the lists are independent, so
    /// many rows fill them in parallel, each in row order.
    fn append(&mut self, rows: PendingRows, first_row: usize) {
        let PendingRows {
            labels,
            encoded,
            spill,
            spill_encoded,
            ..
        } = rows;
        // Per list, its new entries in row order: (row, is a spill entry).
        let mut members: Vec<Vec<(usize, bool)>> = vec![Vec::new(); self.lists.len()];
        for (i, &l) in labels.iter().enumerate() {
            members[l as usize].push((i, false));
            if let Some(&l2) = spill.get(i) {
                members[l2 as usize].push((i, true));
            }
        }
        let fill = |((list, radius), members): ((&mut List, &mut f32), &Vec<(usize, bool)>)| {
            list.rows.reserve(members.len());
            list.codes.reserve(members.len());
            list.offsets.reserve(members.len());
            list.slopes.reserve(members.len());
            for &(i, spilled) in members {
                let e = if spilled { &spill_encoded } else { &encoded };
                list.rows.push((first_row + i) as u32);
                list.codes.push(e.bits(i));
                list.offsets.push(e.offsets[i]);
                list.slopes.push(e.slopes[i]);
                *radius = radius.max(e.radii[i]);
            }
        };
        let pool = if labels.len() >= PARALLEL_MIN_ROWS {
            parallel::pool().ok()
        } else {
            None
        };
        match pool {
            Some(pool) => pool.install(|| {
                self.lists
                    .par_iter_mut()
                    .zip(self.radii.par_iter_mut())
                    .zip(members.par_iter())
                    .for_each(fill)
            }),
            _ => self
                .lists
                .iter_mut()
                .zip(self.radii.iter_mut())
                .zip(members.iter())
                .for_each(fill),
        }
        self.labels.extend_from_slice(&labels);
        self.spill.extend_from_slice(&spill);
    }

    /// Appends rows (store rows `first_row..`) to the lists given by
    /// `labels` (restoring a file written without its lists' codes: the
    /// lists are already set), and to the second lists a spilling index
    /// gives them.
    pub fn add_assigned(
        &mut self,
        data: &[f32],
        labels: &[u32],
        first_row: usize,
        cancel: &Cancel,
    ) -> Result<()> {
        let spill = if self.spilling {
            self.assign_to(data, &self.centroids, cancel)?.1
        } else {
            Vec::new()
        };
        let (encoded, spill_encoded) =
            self.encode_rows(data, labels, &spill, &self.rot_centroids, cancel)?;
        let rows = PendingRows {
            trained: None,
            labels: labels.to_vec(),
            encoded,
            spill,
            spill_encoded,
        };
        self.append(rows, first_row);
        Ok(())
    }

    /// Prepares validated rows for an add without changing anything:
    /// trains the lists first if this is the first add, assigns every row
    /// to its list and encodes it. `cancel` is checked between k-means
    /// iterations and blocks of rows.
    pub fn prepare_rows(&self, data: &[f32], nlist: usize, cancel: &Cancel) -> Result<PendingRows> {
        if data.is_empty() {
            return Ok(PendingRows {
                trained: None,
                labels: Vec::new(),
                encoded: EncodedRows::default(),
                spill: Vec::new(),
                spill_encoded: EncodedRows::default(),
            });
        }
        let trained = if self.is_trained() {
            None
        } else {
            let n = data.len() / self.dim;
            let nlist = if nlist == 0 { auto_nlist(n) } else { nlist };
            let centroids = self.train(data, nlist, cancel)?;
            cancel.check()?;
            let rot = self.rotate_centroids(&centroids);
            Some((centroids, rot))
        };
        let (centroids, rot) = match &trained {
            Some((c, r)) => (c.as_slice(), r.as_slice()),
            None => (self.centroids.as_slice(), self.rot_centroids.as_slice()),
        };
        let (labels, spill) = self.assign_to(data, centroids, cancel)?;
        let (encoded, spill_encoded) = self.encode_rows(data, &labels, &spill, rot, cancel)?;
        Ok(PendingRows {
            trained,
            labels,
            encoded,
            spill,
            spill_encoded,
        })
    }

    /// Makes prepared rows (store rows `first_row..`) part of the lists.
    pub fn apply(&mut self, mut rows: PendingRows, first_row: usize) {
        if let Some((centroids, rot)) = rows.trained.take() {
            self.install_centroids(centroids, rot);
        }
        self.append(rows, first_row);
    }

    /// Adds validated rows: trains first if this is the first add.
    pub fn add_rows(&mut self, data: &[f32], nlist: usize, first_row: usize) -> Result<()> {
        let rows = self.prepare_rows(data, nlist, &Cancel::new())?;
        self.apply(rows, first_row);
        Ok(())
    }

    /// Appends the estimates of list `l` up to the running bound to
    /// `cand`, cutting it back to the best `want` (by [`by_estimate`]) when
    /// it grows large.
    ///
    /// `q_sq` is `‖q − c‖²` of the list's centroid, which the rotation (an
    /// isometry) keeps as `‖Pq − Pc‖²`.
    fn scan_list_into(
        &self,
        l: usize,
        q_sq: f32,
        scan: &mut ListScan,
        s: &mut ScanBufs,
        cand: &mut Vec<(f32, u32)>,
    ) {
        let list = &self.lists[l];
        if list.rows.is_empty() {
            return;
        }
        // A filter: a mask of the allowed rows of each group of 16; a list
        // without any is not scanned at all.
        s.allowed.clear();
        if let Some(f) = scan.filter {
            s.allowed.extend(list.rows.chunks(16).map(|rows| {
                rows.iter().enumerate().fold(0u32, |m, (i, &r)| {
                    m | (u32::from(f.allows(r as usize)) << i)
                })
            }));
            let seen: u32 = s.allowed.iter().map(|m| m.count_ones()).sum();
            scan.allowed_seen += seen as usize;
            if seen == 0 {
                return;
            }
            scan.useful_lists += 1;
        }
        list.codes.scan(&scan.lut, &mut s.sums);
        let terms = EstimateTerms {
            q_sq,
            shift: scan.shift,
            step: scan.step,
        };
        estimate_rows(&s.sums, &list.offsets, &list.slopes, terms, &mut s.est);
        // The first list scanned (no bound yet) sets one from its own
        // estimates: a row above its `keep`-th best is beaten by `keep` rows
        // already, so it is never pushed (and never cut back out later).
        if scan.bound == f32::INFINITY && scan.filter.is_none() && s.est.len() > scan.keep {
            s.pick.clear();
            s.pick.extend_from_slice(&s.est);
            let (_, &mut kth, _) = s.pick.select_nth_unstable_by(scan.keep - 1, f32::total_cmp);
            scan.bound = kth;
        }
        mask_below(&s.est, scan.bound, &mut s.below);
        if scan.filter.is_some() {
            s.below
                .iter_mut()
                .zip(&s.allowed)
                .for_each(|(m, a)| *m &= a);
        }
        let pushes: u32 = s.below.iter().map(|m| m.count_ones()).sum();
        cand.reserve(pushes as usize);
        for ((&mask, est), rows) in s
            .below
            .iter()
            .zip(s.est.chunks(16))
            .zip(list.rows.chunks(16))
        {
            let mut mask = mask;
            while mask != 0 {
                let i = mask.trailing_zeros() as usize;
                cand.push((est[i], rows[i]));
                mask &= mask - 1;
            }
        }
        // Candidates worse than the `want`-th best seen so far can never be
        // kept: once the buffer holds a few times `want`, cut it back and
        // skip everything above the bound from then on.
        let want = scan.keep;
        if cand.len() >= 4 * want.max(64) {
            cand.select_nth_unstable_by(want - 1, by_estimate);
            cand.truncate(want);
            // Ties with the worst kept are still admitted: the next cut
            // orders them by row.
            scan.bound = cand.iter().fold(f32::NEG_INFINITY, |m, c| m.max(c.0));
        }
    }

    /// The `k` best rows by exact cost (squared L2, or the negated inner
    /// product for `ip`/`cosine`: see [`Metric`]) among the
    /// `k · rerank_factor` best estimates from the `nprobe` first lists
    /// (more lists if those hold fewer than `k` vectors), as `(id, cost)`
    /// ascending, with the crate's top-k rules for ties.
    pub fn search(
        &self,
        store: &Store,
        query: &[f32],
        k: usize,
        rerank_factor: usize,
        nprobe: usize,
    ) -> Result<Vec<(u64, f32)>> {
        self.search_filtered(store, query, k, rerank_factor, nprobe, None)
    }

    /// [`IvfCodes::search`] among the rows `filter` allows (all when
    /// `None`). The filter is applied inside the list scans, and the lists
    /// visited widen so that a low selectivity `s` (allowed / rows) keeps
    /// the unfiltered recall:
    ///
    /// * at most [`EXACT_FILTER_ROWS`] allowed rows (or no more than the
    ///   candidates a search reranks): every allowed row is scored exactly
    ///   (an exact filtered top-k, cheaper than any list scan);
    /// * otherwise lists are visited nearest first until `nprobe / √s`
    ///   lists holding an allowed row were scanned (lists without one cost
    ///   nothing and do not count: a clustered filter's nearest allowed
    ///   rows can lie past many such lists), and at least
    ///   `2 · k · rerank_factor` allowed
    ///   rows were seen (or every list was visited); those candidates (twice
    ///   the unfiltered count: allowed rows far from the query, as a
    ///   clustered filter gives, have the coarsest estimates) are reranked.
    ///
    /// A lean store ([`Store::lean`]) reranks by its 8-bit rows and reads
    /// only the best of them exactly (see [`crate::lean`]); reading them
    /// can fail (`PersistError`), nothing else here can.
    pub fn search_filtered(
        &self,
        store: &Store,
        query: &[f32],
        k: usize,
        rerank_factor: usize,
        nprobe: usize,
        filter: Option<&RowFilter>,
    ) -> Result<Vec<(u64, f32)>> {
        let nlist = self.nlist();
        if nlist == 0 || k == 0 {
            return Ok(Vec::new());
        }
        let mut want = k.saturating_mul(rerank_factor.max(1)).max(k);
        let mut nprobe = nprobe.clamp(1, nlist);
        let mut min_useful = 0;
        if let Some(f) = filter {
            let m = f.count();
            if m == 0 {
                return Ok(Vec::new());
            }
            if m <= EXACT_FILTER_ROWS.max(want) {
                if let Some(lean) = store.lean() {
                    let rows = f.rows().iter().copied();
                    let id_at = |r| store.id_at(r);
                    let hits = lean.rerank(query, self.metric, rows, k, id_at, |x| {
                        exact_cost(self.metric, query, x)
                    })?;
                    return Ok(hits.0);
                }
                return Ok(exact_rows(store, query, k, f.rows(), self.metric));
            }
            let s = m as f64 / store.len().max(1) as f64;
            nprobe = ((nprobe as f64 / s.sqrt()).ceil() as usize).clamp(1, nlist);
            min_useful = nprobe;
            // Allowed rows far from the query (a clustered filter) have the
            // coarsest estimates: rerank twice the candidates.
            want = want.saturating_mul(2);
        }
        SCRATCH.with(|cell| {
            let s = &mut *cell.borrow_mut();
            self.list_order(query, &mut s.centroid_dist, &mut s.ranking);
            if nprobe < nlist {
                s.centroid_dist
                    .select_nth_unstable_by(nprobe - 1, |a, b| a.0.total_cmp(&b.0));
            }
            s.q_rot.resize(self.rdim, 0.0);
            self.rotation().apply(query, &mut s.q_rot);
            let mut scan = ListScan::new(&s.q_rot, want, self.spilled(), filter);
            s.cand.clear();
            for &(_, l) in &s.centroid_dist[..nprobe] {
                let q_sq = self.query_to_centroid(query, l);
                self.scan_list_into(l as usize, q_sq, &mut scan, &mut s.bufs, &mut s.cand);
            }
            let order = &mut s.centroid_dist;
            self.scan_more(
                query,
                k,
                min_useful,
                nprobe,
                order,
                &mut scan,
                &mut s.bufs,
                &mut s.cand,
            );
            let keep = scan.keep;
            self.rerank(
                store,
                query,
                k,
                scan.want,
                keep,
                &mut s.bufs.seen,
                &mut s.cand,
            )
        })
    }

    /// Every list as `(key, list)`, the key ordering the visits (smaller
    /// first): the squared distance to the centroid (to ~1e-4, see
    /// [`CentroidScores`]), or for inner product minus the highest product
    /// any row of the list can have.
    fn list_order(&self, query: &[f32], order: &mut Vec<(f32, u32)>, scratch: &mut RankScratch) {
        order.clear();
        match self.metric {
            Metric::Ip => {
                let q_norm = distance::dot(query, query).sqrt();
                order.extend(
                    self.centroids
                        .chunks_exact(self.dim)
                        .zip(&self.radii)
                        .enumerate()
                        .map(|(i, (c, &r))| (-(distance::dot(query, c) + q_norm * r), i as u32)),
                );
            }
            Metric::L2 | Metric::Cosine => {
                self.centroid_scores.sq_l2_into(
                    query,
                    &mut scratch.q_pairs,
                    &mut scratch.dots,
                    &mut scratch.to_centroids,
                );
                order.extend(
                    scratch
                        .to_centroids
                        .iter()
                        .enumerate()
                        .map(|(i, &dist)| (dist, i as u32)),
                );
            }
        }
    }

    /// After the first `nprobe` lists of `order` (selected, not sorted):
    /// fewer than `k` candidates go on to the next nearest lists, so a
    /// search always returns `k` results. With a filter, also until enough
    /// allowed rows (and at least `min_useful` lists holding them) were seen.
    #[allow(clippy::too_many_arguments)]
    fn scan_more(
        &self,
        query: &[f32],
        k: usize,
        min_useful: usize,
        nprobe: usize,
        order: &mut [(f32, u32)],
        scan: &mut ListScan,
        bufs: &mut ScanBufs,
        cand: &mut Vec<(f32, u32)>,
    ) {
        // Entries, not rows: with spilled lists, twice as many entries
        // hold at least as many distinct rows.
        let entries = if self.spilled() { 2 * k } else { k };
        let more = |scan: &ListScan, cand: &Vec<(f32, u32)>| {
            cand.len() < entries
                || (scan.filter.is_some()
                    && (scan.allowed_seen < scan.keep || scan.useful_lists < min_useful))
        };
        if !more(scan, cand) || nprobe >= order.len() {
            return;
        }
        let rest = &mut order[nprobe..];
        rest.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        for &(_, l) in rest.iter() {
            if !more(scan, cand) {
                break;
            }
            let q_sq = self.query_to_centroid(query, l);
            self.scan_list_into(l as usize, q_sq, scan, bufs, cand);
        }
    }

    /// The `k` best of the `want` best distinct rows among the candidates
    /// (by [`by_estimate`], a row seen in two lists by its better
    /// estimate) by exact cost; the best `keep` entries (`want`, or twice
    /// that with spilled lists) always hold them. A lean store ranks them
    /// by its 8-bit rows and reads only the best exactly (see
    /// [`crate::lean`]).
    #[allow(clippy::too_many_arguments)]
    fn rerank(
        &self,
        store: &Store,
        query: &[f32],
        k: usize,
        want: usize,
        keep: usize,
        seen: &mut SeenRows,
        cand: &mut Vec<(f32, u32)>,
    ) -> Result<Vec<(u64, f32)>> {
        let keep = keep.min(cand.len());
        if keep == 0 {
            return Ok(Vec::new());
        }
        if keep < cand.len() {
            cand.select_nth_unstable_by(keep - 1, by_estimate);
            cand.truncate(keep);
        }
        // One order whatever order the lists were scanned in: exact ties
        // at the k-th place keep the same candidate.
        cand.sort_unstable_by(by_estimate);
        if self.spilled() {
            seen.first_of_each(cand, want);
        }
        let keep = cand.len();
        let metric = self.metric;
        let cost = |x: &[f32]| match metric {
            Metric::L2 => distance::sq_l2(query, x),
            Metric::Ip | Metric::Cosine => -distance::dot(query, x),
        };
        if let Some(lean) = store.lean() {
            let rows = cand.iter().map(|&(_, row)| row);
            return Ok(lean
                .rerank(query, metric, rows, k, |r| store.id_at(r), cost)?
                .0);
        }
        // The rerank reads `keep` vectors at random rows: fetch a few
        // ahead so the memory latency overlaps the arithmetic.
        const AHEAD: usize = 6;
        for &(_, row) in cand.iter().take(AHEAD) {
            store.prefetch(row as usize);
        }
        let mut top = TopK::new(k.min(keep));
        for (i, &(_, row)) in cand.iter().enumerate() {
            if let Some(&(_, next)) = cand.get(i + AHEAD) {
                store.prefetch(next as usize);
            }
            let row = row as usize;
            top.push(store.id_at(row), cost(store.vector(row)));
        }
        Ok(top.into_sorted())
    }

    /// [`IvfCodes::search`] for each row of `queries` (`nq × dim`), list
    /// by list: every list probed by any of the queries is scanned for all
    /// of them in turn while its codes are in cache, instead of once per
    /// query from memory. The hits are those of one `search` per row (the
    /// same lists, the same candidates whatever the order: see
    /// [`by_estimate`]). A lean store searches row by row.
    pub fn search_group(
        &self,
        store: &Store,
        queries: &[f32],
        k: usize,
        rerank_factor: usize,
        nprobe: usize,
    ) -> Result<Vec<Vec<(u64, f32)>>> {
        let (nlist, d) = (self.nlist(), self.dim);
        if nlist == 0 || k == 0 || store.lean().is_some() || queries.len() <= d {
            return queries
                .chunks_exact(d)
                .map(|q| self.search(store, q, k, rerank_factor, nprobe))
                .collect();
        }
        let want = k.saturating_mul(rerank_factor.max(1)).max(k);
        let nprobe = nprobe.clamp(1, nlist);
        let mut ranking = RankScratch::default();
        let mut q_rot = vec![0.0f32; self.rdim];
        let mut orders = Vec::with_capacity(queries.len() / d);
        let mut scans = Vec::with_capacity(queries.len() / d);
        for query in queries.chunks_exact(d) {
            let mut order = Vec::with_capacity(nlist);
            self.list_order(query, &mut order, &mut ranking);
            if nprobe < nlist {
                order.select_nth_unstable_by(nprobe - 1, |a, b| a.0.total_cmp(&b.0));
            }
            self.rotation().apply(query, &mut q_rot);
            scans.push(ListScan::new(&q_rot, want, self.spilled(), None));
            orders.push(order);
        }
        // Every (list, query) visit, list by list.
        let mut visits: Vec<(u32, u32)> = orders
            .iter()
            .enumerate()
            .flat_map(|(qi, order)| order[..nprobe].iter().map(move |&(_, l)| (l, qi as u32)))
            .collect();
        visits.sort_unstable();
        let mut bufs = ScanBufs::default();
        let mut cands: Vec<Vec<(f32, u32)>> = vec![Vec::new(); orders.len()];
        for &(l, qi) in &visits {
            let qi = qi as usize;
            let query = &queries[qi * d..(qi + 1) * d];
            let q_sq = self.query_to_centroid(query, l);
            self.scan_list_into(l as usize, q_sq, &mut scans[qi], &mut bufs, &mut cands[qi]);
        }
        let mut hits = Vec::with_capacity(orders.len());
        for (qi, ((order, scan), cand)) in orders
            .iter_mut()
            .zip(&mut scans)
            .zip(&mut cands)
            .enumerate()
        {
            let query = &queries[qi * d..(qi + 1) * d];
            self.scan_more(query, k, 0, nprobe, order, scan, &mut bufs, cand);
            hits.push(self.rerank(store, query, k, scan.want, scan.keep, &mut bufs.seen, cand)?);
        }
        Ok(hits)
    }

    /// `‖q − c‖²` of list `l`, exactly (its ordering key is only close:
    /// see [`CentroidScores`], or another key for inner-product lists).
    #[inline]
    fn query_to_centroid(&self, query: &[f32], l: u32) -> f32 {
        let d = self.dim;
        let l = l as usize;
        distance::sq_l2(query, &self.centroids[l * d..(l + 1) * d])
    }

    /// Removes the store rows whose `keep` entry is false (`keep` indexed
    /// by store row, as long as the store): lists lose them, and the rows
    /// kept are renumbered `0..kept` in order, as [`Store::retain_rows`]
    /// does. Centroids stay (no retraining): later adds go to the nearest
    /// of them.
    pub fn retain_rows(&mut self, keep: &[bool]) {
        debug_assert_eq!(keep.len(), self.labels.len());
        let mut new_row = Vec::with_capacity(keep.len());
        let mut next = 0u32;
        for &k in keep {
            new_row.push(next);
            next += u32::from(k);
        }
        for list in &mut self.lists {
            let mask: Vec<bool> = list.rows.iter().map(|&r| keep[r as usize]).collect();
            if mask.iter().all(|&k| k) {
                list.rows.iter_mut().for_each(|r| *r = new_row[*r as usize]);
                continue;
            }
            list.codes.retain(&mask);
            retain_by_mask(&mut list.offsets, &mask);
            retain_by_mask(&mut list.slopes, &mask);
            list.rows.retain(|&r| keep[r as usize]);
            list.rows.iter_mut().for_each(|r| *r = new_row[*r as usize]);
        }
        retain_by_mask(&mut self.labels, keep);
        if self.spilled() {
            retain_by_mask(&mut self.spill, keep);
        }
    }

    /// Gives back capacity not in use (after removals).
    pub fn shrink(&mut self) {
        for list in &mut self.lists {
            list.rows.shrink_to_fit();
            list.codes.shrink();
            list.offsets.shrink_to_fit();
            list.slopes.shrink_to_fit();
        }
        self.labels.shrink_to_fit();
        self.spill.shrink_to_fit();
    }

    /// Codes, norms, factors, row numbers, labels, centroids (all three copies)
    /// and the rotation (the crate's Haar rotation keeps two copies).
    pub fn memory_bytes(&self) -> usize {
        let rotation = self.rotation.get().map_or(0, Rotator::memory_bytes);
        let lists: usize = self
            .lists
            .iter()
            .map(|l| {
                l.rows.capacity() * 4
                    + l.codes.memory_bytes()
                    + l.offsets.capacity() * 4
                    + l.slopes.capacity() * 4
                    + std::mem::size_of::<List>()
            })
            .sum();
        rotation
            + lists
            + (self.labels.capacity() + self.spill.capacity() + self.radii.capacity()) * 4
            + (self.centroids.capacity() + self.rot_centroids.capacity()) * 4
            + self.centroid_scores.memory_bytes()
    }
}

/// Keeps the entries of `v` whose `mask` entry is true, in order.
pub fn retain_by_mask<T>(v: &mut Vec<T>, mask: &[bool]) {
    let mut it = mask.iter();
    v.retain(|_| it.next().copied().unwrap_or(false));
}

/// Below this many allowed rows a filtered IVF search scores every allowed
/// row exactly instead of scanning lists.
pub const EXACT_FILTER_ROWS: usize = 2048;

/// The exact top-`k` `(id, cost)` among `rows` (ascending rows), with the
/// crate's top-k rules: squared L2, or the negated inner product for `ip`
/// and `cosine` (whose rows are stored unit, see [`Metric`]).
pub fn exact_rows(
    store: &Store,
    query: &[f32],
    k: usize,
    rows: &[u32],
    metric: Metric,
) -> Vec<(u64, f32)> {
    let mut top = TopK::new(k.min(rows.len()));
    let mut scores = Vec::with_capacity(256);
    for chunk in rows.chunks(256) {
        match metric {
            Metric::L2 => crate::topk::sq_l2_rows(
                query,
                chunk.iter().map(|&r| store.vector(r as usize)),
                &mut scores,
            ),
            Metric::Ip | Metric::Cosine => {
                scores.clear();
                scores.extend(
                    chunk
                        .iter()
                        .map(|&r| -distance::dot(query, store.vector(r as usize))),
                );
            }
        }
        let mut bound = top.admission_bound();
        for (&r, &score) in chunk.iter().zip(&scores) {
            if bound.admits(score) {
                top.push(store.id_at(r as usize), score);
                bound = top.admission_bound();
            }
        }
    }
    top.into_sorted()
}

/// The cost [`exact_rows`] gives row `x`.
fn exact_cost(metric: Metric, query: &[f32], x: &[f32]) -> f32 {
    match metric {
        Metric::L2 => crate::topk::sq_l2(query, x),
        Metric::Ip | Metric::Cosine => -distance::dot(query, x),
    }
}

/// One query's state while its lists are scanned.
struct ListScan<'f> {
    lut: QueryLut,
    /// `⟨s, Pq⟩ ≈ shift + step·S`, from `Σ_{bit set} ≈ base + delta·S`.
    shift: f32,
    step: f32,
    /// Candidates to rerank.
    want: usize,
    /// Entries kept while scanning: `want`, or twice that when a row can
    /// be seen twice (spilled lists), so `want` distinct rows remain.
    keep: usize,
    bound: f32,
    filter: Option<&'f RowFilter>,
    /// Allowed rows in the lists visited so far (with a filter).
    allowed_seen: usize,
    /// Lists visited that held an allowed row (with a filter).
    useful_lists: usize,
}

impl<'f> ListScan<'f> {
    fn new(q_rot: &[f32], want: usize, spilled: bool, filter: Option<&'f RowFilter>) -> Self {
        let lut = QueryLut::new(q_rot);
        Self {
            keep: if spilled {
                want.saturating_mul(2)
            } else {
                want
            },
            shift: 2.0 * lut.base - q_rot.iter().sum::<f32>(),
            step: 2.0 * lut.delta,
            lut,
            want,
            bound: f32::INFINITY,
            filter,
            allowed_seen: 0,
            useful_lists: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmeans::SplitMix64;

    fn clustered(n: usize, d: usize, seed: u64) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let mut unif = move || (rng.below(1_000_000) as f32 / 1_000_000.0) - 0.5;
        let centres: Vec<f32> = (0..20 * d).map(|_| unif() * 8.0).collect();
        (0..n)
            .flat_map(|i| {
                let c = (i * 7 % 20) * d;
                (0..d).map(|j| centres[c + j] + unif()).collect::<Vec<_>>()
            })
            .collect()
    }

    fn exact_topk(data: &[f32], d: usize, q: &[f32], k: usize) -> Vec<u64> {
        let mut all: Vec<(f32, u64)> = data
            .chunks_exact(d)
            .enumerate()
            .map(|(i, r)| (distance::sq_l2(q, r), i as u64))
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0));
        all.into_iter().take(k).map(|x| x.1).collect()
    }

    fn index(data: &[f32], d: usize, nlist: usize, kind: RandomRotationKind) -> (IvfCodes, Store) {
        index_spill(data, d, nlist, kind, false)
    }

    fn index_spill(
        data: &[f32],
        d: usize,
        nlist: usize,
        kind: RandomRotationKind,
        spill: bool,
    ) -> (IvfCodes, Store) {
        let n = data.len() / d;
        let mut ivf = IvfCodes::new(d, 42, kind).with_spill(spill);
        ivf.add_rows(data, nlist, 0).unwrap();
        let mut store = Store::new(d, true);
        store.append(&(0..n as u64).collect::<Vec<_>>(), data);
        (ivf, store)
    }

    #[test]
    fn a_group_search_equals_one_search_per_query() {
        let d = 24;
        // Every row twice (exact ties in estimates and costs) and a few
        // hundred rows in many lists, so that nprobe 1 must go on to more
        // lists to find k candidates.
        let half = clustered(400, d, 3);
        let data: Vec<f32> = half.iter().chain(&half).copied().collect();
        let queries: Vec<f32> = clustered(40, d, 8);
        for (metric, spill) in [
            (Metric::L2, false),
            (Metric::Ip, false),
            (Metric::L2, true),
            (Metric::Ip, true),
        ] {
            for kind in [
                RandomRotationKind::HadamardSigned,
                RandomRotationKind::HaarDense,
            ] {
                let n = data.len() / d;
                let mut ivf = IvfCodes::new(d, 42, kind)
                    .with_metric(metric)
                    .with_spill(spill);
                ivf.add_rows(&data, 64, 0).unwrap();
                let mut store = Store::new(d, true);
                store.append(&(0..n as u64).collect::<Vec<_>>(), &data);
                for (k, rf, nprobe) in [(10, 1, 1), (10, 5, 4), (3, 20, 64), (50, 2, 8)] {
                    let group = ivf.search_group(&store, &queries, k, rf, nprobe).unwrap();
                    assert_eq!(group.len(), 40);
                    for (q, hits) in queries.chunks_exact(d).zip(&group) {
                        let one = ivf.search(&store, q, k, rf, nprobe).unwrap();
                        assert_eq!(hits.len(), k);
                        let bits = |h: &[(u64, f32)]| -> Vec<(u64, u32)> {
                            h.iter().map(|&(id, c)| (id, c.to_bits())).collect()
                        };
                        assert_eq!(
                            bits(hits),
                            bits(&one),
                            "{metric:?} spill {spill} k {k} rf {rf} nprobe {nprobe}"
                        );
                        let mut ids: Vec<u64> = one.iter().map(|h| h.0).collect();
                        ids.sort_unstable();
                        ids.dedup();
                        assert_eq!(ids.len(), k, "a row seen in two lists is one hit");
                    }
                }
            }
        }
    }

    /// Recall@10 of `ivf` over `queries` at `nprobe`, rerank factor 5.
    fn recall(ivf: &IvfCodes, store: &Store, data: &[f32], d: usize, nprobe: usize) -> f64 {
        let queries: Vec<&[f32]> = data.chunks_exact(d).step_by(41).collect();
        let found: usize = queries
            .iter()
            .map(|q| {
                let want = exact_topk(data, d, q, 10);
                let got = ivf.search(store, q, 10, 5, nprobe).unwrap();
                got.iter().filter(|h| want.contains(&h.0)).count()
            })
            .sum();
        found as f64 / (10 * queries.len()) as f64
    }

    #[test]
    fn spilled_rows_sit_in_two_lists_and_raise_recall_at_few_probes() {
        let (n, d) = (4000, 32);
        // Uniform-ish rows: neighbours straddle list borders.
        let mut rng = SplitMix64::new(11);
        let data: Vec<f32> = (0..n * d)
            .map(|_| rng.below(1_000_000) as f32 / 1e6 - 0.5)
            .collect();
        let kind = RandomRotationKind::HadamardSigned;
        let (one, store) = index_spill(&data, d, 64, kind, false);
        let (two, _) = index_spill(&data, d, 64, kind, true);
        assert_eq!(
            one.labels(),
            two.labels(),
            "the first list is the nearest either way"
        );
        assert!(one.spill_labels().is_empty());
        assert_eq!(two.spill_labels().len(), n);
        assert!(two
            .labels()
            .iter()
            .zip(two.spill_labels())
            .all(|(a, b)| a != b && *b < 64));
        assert_eq!(two.list_sizes().iter().sum::<usize>(), 2 * n);
        for list in &two.lists {
            assert!(
                list.rows.windows(2).all(|w| w[0] < w[1]),
                "rows ascending, once"
            );
        }
        let (r1, r2) = (
            recall(&one, &store, &data, d, 4),
            recall(&two, &store, &data, d, 4),
        );
        assert!(r2 > r1 + 0.05, "spill recall {r2} vs {r1} at nprobe 4");
        // The saved form installs the same lists back.
        let saved = two.saved_lists();
        assert_eq!(saved.spill, two.spill_labels());
        let mut back = IvfCodes::new(d, 42, kind).with_spill(true);
        back.set_centroids(two.centroids().to_vec());
        back.install_lists(two.labels(), saved.clone()).unwrap();
        assert_eq!(back.saved_lists(), saved);
        assert!(back.memory_bytes() <= two.memory_bytes());
        // A spill entry naming the row's own list, or no list, is refused.
        for (row, bad) in [(7, two.labels()[7]), (9, 64)] {
            let mut forged = saved.clone();
            forged.spill[row] = bad;
            let mut fresh = IvfCodes::new(d, 42, kind).with_spill(true);
            fresh.set_centroids(two.centroids().to_vec());
            let err = fresh
                .install_lists(two.labels(), forged)
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("row {row} ")), "{err}");
        }
    }

    #[test]
    fn removing_rows_from_spilled_lists_keeps_both_entries_in_step() {
        let (n, d) = (900, 24);
        let data = clustered(n, d, 4);
        let (mut ivf, mut store) = index_spill(&data, d, 16, RandomRotationKind::HaarDense, true);
        let keep: Vec<bool> = (0..n).map(|i| i % 3 != 0).collect();
        ivf.retain_rows(&keep);
        store.retain_rows(&keep);
        let kept = keep.iter().filter(|&&k| k).count();
        assert_eq!(ivf.spill_labels().len(), kept);
        assert_eq!(ivf.list_sizes().iter().sum::<usize>(), 2 * kept);
        let kept_data: Vec<f32> = data
            .chunks_exact(d)
            .zip(&keep)
            .filter(|(_, &k)| k)
            .flat_map(|(r, _)| r.iter().copied())
            .collect();
        for q in data.chunks_exact(d).step_by(37) {
            let got: Vec<u64> = ivf
                .search(&store, q, 5, kept, 16)
                .unwrap()
                .into_iter()
                .map(|h| h.0)
                .collect();
            let want: Vec<u64> = exact_topk(&kept_data, d, q, 5)
                .into_iter()
                .map(|r| store.id_at(r as usize))
                .collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn probing_every_list_with_full_rerank_is_exact() {
        let (n, d) = (600, 24);
        let data = clustered(n, d, 1);
        for kind in [
            RandomRotationKind::HaarDense,
            RandomRotationKind::HadamardSigned,
        ] {
            let (ivf, store) = index(&data, d, 12, kind);
            assert_eq!(ivf.list_sizes().iter().sum::<usize>(), n);
            for q in data.chunks_exact(d).step_by(53) {
                let got: Vec<u64> = ivf
                    .search(&store, q, 5, n, 12)
                    .unwrap()
                    .into_iter()
                    .map(|h| h.0)
                    .collect();
                assert_eq!(got, exact_topk(&data, d, q, 5));
            }
        }
    }

    #[test]
    fn estimates_rank_well_enough_for_a_small_rerank() {
        let (n, d) = (4000, 64);
        let data = clustered(n, d, 2);
        let (ivf, store) = index(&data, d, 40, RandomRotationKind::HaarDense);
        let mut hits = 0;
        let queries: Vec<&[f32]> = data.chunks_exact(d).step_by(97).collect();
        for q in &queries {
            let got: Vec<u64> = ivf
                .search(&store, q, 10, 5, 40)
                .unwrap()
                .into_iter()
                .map(|h| h.0)
                .collect();
            let want = exact_topk(&data, d, q, 10);
            hits += got.iter().filter(|id| want.contains(id)).count();
        }
        let recall = hits as f64 / (10 * queries.len()) as f64;
        assert!(
            recall > 0.9,
            "recall@10 {recall} with 50 reranked candidates"
        );
    }

    #[test]
    fn estimator_tracks_true_distances() {
        let (n, d) = (500, 128);
        let data = clustered(n, d, 3);
        let (ivf, store) = index(&data, d, 1, RandomRotationKind::HaarDense);
        let q = &data[..d];
        // rerank_factor large enough to return every row, with exact scores;
        // the estimates themselves are checked through the candidate order.
        let all = ivf.search(&store, q, n, 1, 1).unwrap();
        assert_eq!(all.len(), n);
        let mut q_rot = vec![0.0; ivf.rdim];
        ivf.rotation().apply(q, &mut q_rot);
        let lut = QueryLut::new(&q_rot);
        let shift = 2.0 * lut.base - q_rot.iter().sum::<f32>();
        let list = &ivf.lists[0];
        let mut sums = Vec::new();
        list.codes.scan(&lut, &mut sums);
        let q_sq = distance::sq_l2(&q_rot, &ivf.rot_centroids[..ivf.rdim]);
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (i, &row) in list.rows.iter().enumerate() {
            let est = list.offsets[i] + q_sq
                - list.slopes[i] * (shift + 2.0 * lut.delta * sums[i] as f32);
            let t = distance::sq_l2(q, &data[row as usize * d..(row as usize + 1) * d]);
            num += ((est - t) as f64).powi(2);
            den += (t as f64).powi(2);
        }
        assert!(
            (num / den).sqrt() < 0.15,
            "relative error {}",
            (num / den).sqrt()
        );
    }

    #[test]
    fn later_adds_go_to_the_nearest_list_and_are_found() {
        let d = 16;
        let data = clustered(900, d, 4);
        let (mut ivf, mut store) = index(&data[..600 * d], d, 10, RandomRotationKind::HaarDense);
        ivf.add_rows(&data[600 * d..], 10, 600).unwrap();
        store.append(&(600..900u64).collect::<Vec<_>>(), &data[600 * d..]);
        assert_eq!(ivf.nlist(), 10, "trained once, on the first add");
        assert_eq!(ivf.labels().len(), 900);
        // 16 dimensions give coarse 1-bit estimates: rerank generously.
        for i in [600usize, 750, 899] {
            let q = &data[i * d..(i + 1) * d];
            assert_eq!(
                ivf.search(&store, q, 1, 50, 10).unwrap()[0],
                (i as u64, 0.0)
            );
        }
    }
}
