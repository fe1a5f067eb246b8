//! The four index kinds over the upstream crate, with the crate's defects
//! kept out of reach:
//!
//! * inputs are validated before any crate call (dim 0, NaN, overflowing
//!   norms, ids above u32, duplicates, `RabitqAsymIndex::add` desync);
//! * the original vectors live once, in the SDK's [`Store`], so they can be
//!   viewed from NumPy and saved with their real ids; the 1-bit codes are
//!   the SDK's (`codes.rs`: the crate's encoder, its symmetric and
//!   asymmetric scans run vectorised with the same arithmetic), and the
//!   exact rerank runs here with the crate's own semantics.
//!
//! Results are identical to the crate's `FlatF32Index`, `RabitqIndex`,
//! `RabitqPlusIndex` and `RabitqAsymIndex` on the same inputs (tested).

use ruvector_py_core::interrupt::Cancel;
use ruvector_py_core::{validate, Error, Result};
use ruvector_rabitq::RandomRotationKind;

use crate::codes::{EncodedRows, SymmetricCodes};
use crate::ivf::{self, IvfCodes, PendingRows};
use crate::metric::Metric;
use crate::store::{Backing, Store};
use crate::topk::{sq_l2, sq_l2_rows, TopK};

/// Largest dimension for the dense Haar rotation, whose construction costs
/// O(dim³) time (≈1.3 s at 1024, ≈11 s at 2048, minutes beyond). It is
/// built when the first row is added, never for an index without rows.
pub const MAX_HAAR_DIM: usize = 2048;
/// Largest rerank factor (the `.rbpx` format's limit).
pub const MAX_RERANK_FACTOR: usize = 1024;
/// Largest number of vectors in one index (the `.rbpx` format's limit).
pub const MAX_VECTORS: usize = 100_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Flat,
    Rabitq,
    Plus,
    Asym,
    Ivf,
}

impl Kind {
    pub fn class_name(self) -> &'static str {
        match self {
            Kind::Flat => "FlatF32Index",
            Kind::Rabitq => "RabitqIndex",
            Kind::Plus => "RabitqPlusIndex",
            Kind::Asym => "RabitqAsymIndex",
            Kind::Ivf => "IvfRabitqIndex",
        }
    }

    /// Largest id the kind can store: the crate keeps RaBitQ ids as u32;
    /// the SDK's own kinds keep full ids (capped at i64 for NumPy results).
    pub fn max_id(self) -> u64 {
        match self {
            Kind::Flat | Kind::Ivf => i64::MAX as u64,
            _ => u32::MAX as u64,
        }
    }

    /// Whether the kind reranks candidates (and so takes a rerank factor).
    pub fn reranks(self) -> bool {
        matches!(self, Kind::Plus | Kind::Asym | Kind::Ivf)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    Haar,
    Hadamard,
}

impl Rotation {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "haar" => Ok(Rotation::Haar),
            "hadamard" => Ok(Rotation::Hadamard),
            _ => Err(Error::invalid(format!(
                "rotation must be \"haar\" or \"hadamard\", got {s:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rotation::Haar => "haar",
            Rotation::Hadamard => "hadamard",
        }
    }

    fn upstream(self) -> RandomRotationKind {
        match self {
            Rotation::Haar => RandomRotationKind::HaarDense,
            Rotation::Hadamard => RandomRotationKind::HadamardSigned,
        }
    }
}

/// Everything that, with the data, determines an index's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub kind: Kind,
    pub dim: usize,
    pub seed: u64,
    pub rerank_factor: usize,
    pub rotation: Rotation,
    /// IVF only (0 elsewhere): lists requested, 0 = about √n at training.
    pub nlist: usize,
    /// IVF only (0 elsewhere): lists visited per query, 0 = automatic.
    pub nprobe: usize,
    /// What the index ranks by (see [`Metric`]).
    pub metric: Metric,
}

impl Params {
    pub fn check(&self) -> Result<()> {
        validate::check_dim(self.dim)?;
        if self.rerank_factor < 1 || self.rerank_factor > MAX_RERANK_FACTOR {
            return Err(Error::invalid(format!(
                "rerank_factor must be between 1 and {MAX_RERANK_FACTOR}, got {}",
                self.rerank_factor
            )));
        }
        if self.kind == Kind::Asym && self.rotation != Rotation::Haar {
            return Err(Error::invalid(
                "RabitqAsymIndex supports only rotation=\"haar\"",
            ));
        }
        if self.kind != Kind::Ivf && (self.nlist != 0 || self.nprobe != 0) {
            return Err(Error::invalid(format!(
                "{} has no lists; nlist and nprobe apply to IvfRabitqIndex",
                self.kind.class_name()
            )));
        }
        if self.nlist > ivf::MAX_NLIST || self.nprobe > ivf::MAX_NLIST {
            return Err(Error::invalid(format!(
                "nlist and nprobe must be at most {}, got nlist {} and nprobe {}",
                ivf::MAX_NLIST,
                self.nlist,
                self.nprobe
            )));
        }
        if self.kind != Kind::Flat && self.rotation == Rotation::Haar && self.dim > MAX_HAAR_DIM {
            return Err(Error::invalid(format!(
                "rotation=\"haar\" builds a dense dim×dim rotation in O(dim³) time and is limited \
                 to dim <= {MAX_HAAR_DIM}, got dim {}; use rotation=\"hadamard\"",
                self.dim
            )));
        }
        Ok(())
    }

    /// Whether the kind keeps the original vectors.
    pub fn keeps_vectors(&self) -> bool {
        match self.kind {
            Kind::Flat | Kind::Plus | Kind::Ivf => true,
            Kind::Rabitq => false,
            Kind::Asym => self.rerank_factor > 1,
        }
    }
}

/// Per-call overrides of an index's search settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct SearchOpts {
    pub rerank_factor: Option<usize>,
    /// IVF only: lists to visit.
    pub nprobe: Option<usize>,
}

enum Codes {
    None,
    Symmetric(Box<SymmetricCodes>),
    Ivf(Box<IvfCodes>),
}

/// Codes computed for an add, not yet part of the index.
enum Pending {
    None,
    Symmetric(EncodedRows),
    Ivf(PendingRows),
}

pub struct Engine {
    params: Params,
    store: Store,
    codes: Codes,
}

impl Engine {
    pub fn new(params: Params) -> Result<Self> {
        params.check()?;
        let codes = match params.kind {
            Kind::Flat => Codes::None,
            // RabitqAsymIndex encodes rows exactly as RabitqIndex does (Haar
            // only); it differs in the query side of the scan.
            Kind::Rabitq | Kind::Plus | Kind::Asym => Codes::Symmetric(Box::new(
                SymmetricCodes::new(params.dim, params.seed, params.rotation.upstream()),
            )),
            Kind::Ivf => Codes::Ivf(Box::new(IvfCodes::new(
                params.dim,
                params.seed,
                params.rotation.upstream(),
            ))),
        };
        Ok(Self {
            params,
            store: Store::new(params.dim, params.keeps_vectors()),
            codes,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn set_rerank_factor(&mut self, rf: usize) -> Result<()> {
        let mut p = self.params;
        p.rerank_factor = rf;
        p.check()?;
        if p.keeps_vectors() != self.params.keeps_vectors() {
            return Err(Error::invalid(format!(
                "{} built with rerank_factor {} cannot switch to {rf}: whether the original \
                 vectors are kept is fixed at build time",
                self.params.kind.class_name(),
                self.params.rerank_factor
            )));
        }
        self.params = p;
        Ok(())
    }

    /// Sets the lists an IVF search visits (0 = automatic).
    pub fn set_nprobe(&mut self, nprobe: usize) -> Result<()> {
        let mut p = self.params;
        p.nprobe = nprobe;
        p.check()?;
        self.params = p;
        Ok(())
    }

    /// The 1-bit codes of a `RabitqIndex` / `RabitqPlusIndex`: packed sign
    /// words and norms, in row order.
    pub fn symmetric_codes(&self) -> Option<(&[u64], &[f32])> {
        match &self.codes {
            Codes::Symmetric(codes) => Some(codes.codes()),
            _ => None,
        }
    }

    /// Restores a `RabitqIndex` / `RabitqPlusIndex` from its rows and its
    /// saved codes without encoding every row (see `SymmetricCodes::install`;
    /// everything is validated as in `add`).
    pub fn restore_symmetric(
        &mut self,
        ids: &[u64],
        data: &[f32],
        packed: Vec<u64>,
        norms: Vec<f32>,
        cancel: &Cancel,
    ) -> Result<()> {
        self.check_add(ids, data, "vectors", true)?;
        let Codes::Symmetric(codes) = &mut self.codes else {
            return Err(Error::invalid("only a 1-bit index restores saved codes"));
        };
        codes.install(data, packed, norms, cancel)?;
        self.store.append(ids, data);
        Ok(())
    }

    /// The IVF lists, once trained.
    pub fn ivf(&self) -> Option<&IvfCodes> {
        match &self.codes {
            Codes::Ivf(ivf) => Some(ivf),
            _ => None,
        }
    }

    /// Lists an IVF search visits: the set value, or by default 1/8 of the
    /// lists (at least 8, at most all of them): recall@10 about 0.97 on
    /// sentence embeddings with √n lists.
    pub fn effective_nprobe(&self) -> usize {
        let nlist = self.ivf().map_or(0, IvfCodes::nlist);
        if self.params.nprobe != 0 {
            return self.params.nprobe.min(nlist.max(1));
        }
        nlist.div_ceil(8).max(8).min(nlist.max(1))
    }

    /// Loads an IVF engine's lists from a file's centroids and labels, then
    /// adds the rows (all validated like `add`).
    pub fn restore_ivf(
        &mut self,
        ids: &[u64],
        data: &[f32],
        centroids: Vec<f32>,
        labels: &[u32],
        cancel: &Cancel,
    ) -> Result<()> {
        self.check_add(ids, data, "vectors", true)?;
        self.install_ivf(data, centroids, labels, cancel)?;
        self.store.append(ids, data);
        Ok(())
    }

    /// The lists of [`Engine::restore_ivf`] for validated rows `data`.
    fn install_ivf(
        &mut self,
        data: &[f32],
        centroids: Vec<f32>,
        labels: &[u32],
        cancel: &Cancel,
    ) -> Result<()> {
        let rows = data.len() / self.params.dim;
        let Codes::Ivf(ivf) = &mut self.codes else {
            return Err(Error::invalid("restore_ivf on a non-IVF index"));
        };
        validate::check_rows(&centroids, self.params.dim, "centroids", true)?;
        let nlist = centroids.len() / self.params.dim;
        if nlist == 0 && rows > 0 {
            return Err(Error::invalid("an IVF index with vectors has no centroids"));
        }
        if let Some(bad) = labels.iter().find(|&&l| l as usize >= nlist) {
            return Err(Error::invalid(format!(
                "list label {bad} is out of range for {nlist} lists"
            )));
        }
        if labels.len() != rows {
            return Err(Error::invalid(format!(
                "got {} list labels for {rows} vectors",
                labels.len(),
            )));
        }
        if nlist > 0 {
            ivf.set_centroids(centroids);
            ivf.add_assigned(data, labels, 0, cancel)?;
        }
        Ok(())
    }

    /// Checks a block of rows and ids without changing anything. `what` and
    /// `matrix` name the caller's argument in messages (see `check_rows`).
    pub fn check_add(&self, ids: &[u64], data: &[f32], what: &str, matrix: bool) -> Result<()> {
        let dim = self.params.dim;
        if data.len() != ids.len() * dim {
            return Err(Error::invalid(format!(
                "got {} ids for {} vectors",
                ids.len(),
                data.len() / dim
            )));
        }
        if self.store.len() + ids.len() > MAX_VECTORS {
            return Err(Error::invalid(format!(
                "an index holds at most {MAX_VECTORS} vectors; adding {} to {} exceeds it",
                ids.len(),
                self.store.len()
            )));
        }
        validate::check_ids(ids, self.params.kind.max_id(), |id| self.store.contains(id))?;
        validate::check_rows(data, dim, what, matrix)
    }

    /// Adds rows. All checks run first, so a failure changes nothing.
    pub fn add(&mut self, ids: &[u64], data: &[f32]) -> Result<()> {
        self.add_named(ids, data, "vectors", true)
    }

    /// [`Engine::add`] with the caller's argument name for messages.
    pub fn add_named(&mut self, ids: &[u64], data: &[f32], what: &str, matrix: bool) -> Result<()> {
        self.add_with(ids, data, what, matrix, &Cancel::new())
    }

    /// [`Engine::add_named`], cancellable: everything is checked, trained
    /// and encoded first with `cancel` checked between chunks, then
    /// `cancel.commit()` and only then the index changes. A cancelled or
    /// failed add changes nothing.
    pub fn add_with(
        &mut self,
        ids: &[u64],
        data: &[f32],
        what: &str,
        matrix: bool,
        cancel: &Cancel,
    ) -> Result<()> {
        self.check_add(ids, data, what, matrix)?;
        cancel.check()?;
        let pending = match &self.codes {
            Codes::None => Pending::None,
            Codes::Symmetric(codes) => Pending::Symmetric(codes.encode_rows(data, cancel)?),
            Codes::Ivf(ivf) => Pending::Ivf(ivf.prepare_rows(data, self.params.nlist, cancel)?),
        };
        cancel.commit()?;
        let first_row = self.store.len();
        match (&mut self.codes, pending) {
            (Codes::Symmetric(codes), Pending::Symmetric(rows)) => codes.append(rows),
            (Codes::Ivf(ivf), Pending::Ivf(rows)) => ivf.apply(rows, first_row),
            _ => {}
        }
        self.store.append(ids, data);
        Ok(())
    }

    /// Top-`k` `(id, squared L2)` for a validated query, ascending.
    /// `opts` overrides the index's settings for this call.
    pub fn search(&self, query: &[f32], k: usize, opts: SearchOpts) -> Result<Vec<(u64, f32)>> {
        let n = self.store.len();
        let k = k.min(n);
        let rf = opts.rerank_factor.unwrap_or(self.params.rerank_factor);
        match &self.codes {
            Codes::None => {
                // The crate's serial sums, several rows at a time, and the
                // heap touched only by rows that beat its worst.
                const CHUNK: usize = 256;
                let mut top = TopK::new(k);
                let mut scores = Vec::with_capacity(CHUNK);
                for first in (0..n).step_by(CHUNK) {
                    let rows = first..(first + CHUNK).min(n);
                    sq_l2_rows(
                        query,
                        rows.clone().map(|p| self.store.vector(p)),
                        &mut scores,
                    );
                    let mut bound = top.admission_bound();
                    for (pos, &score) in rows.zip(&scores) {
                        if bound.admits(score) {
                            top.push(self.store.id_at(pos), score);
                            bound = top.admission_bound();
                        }
                    }
                }
                Ok(top.into_sorted())
            }
            Codes::Symmetric(codes) if self.params.kind == Kind::Asym => {
                if !self.store.keeps_vectors() || rf <= 1 {
                    return Ok(codes
                        .scan_asym_topk(&self.store, query, k)
                        .into_iter()
                        .map(|(_, id, score)| (id, score))
                        .collect());
                }
                let candidates = k.saturating_mul(rf).max(k).min(n);
                let cand = codes.scan_asym_topk(&self.store, query, candidates);
                Ok(self.rerank(
                    query,
                    k,
                    cand.into_iter().map(|(pos, id, _)| (pos as usize, id)),
                ))
            }
            Codes::Symmetric(codes) if self.params.kind == Kind::Rabitq => Ok(codes
                .scan_topk(&self.store, query, k)
                .into_iter()
                .map(|(_, id, score)| (id, score))
                .collect()),
            Codes::Symmetric(codes) => {
                let candidates = k.saturating_mul(rf).max(k).min(n);
                let cand = codes.scan_topk(&self.store, query, candidates);
                Ok(self.rerank(
                    query,
                    k,
                    cand.into_iter().map(|(pos, id, _)| (pos as usize, id)),
                ))
            }
            Codes::Ivf(ivf) => {
                let nprobe = opts.nprobe.unwrap_or_else(|| self.effective_nprobe());
                Ok(ivf.search(&self.store, query, k, rf, nprobe))
            }
        }
    }

    /// Exact rerank of `(row, id)` candidates given best first, with the
    /// crate's rules (so results equal `RabitqPlusIndex::search`).
    fn rerank(
        &self,
        query: &[f32],
        k: usize,
        cand: impl ExactSizeIterator<Item = (usize, u64)>,
    ) -> Vec<(u64, f32)> {
        // Candidates sit at random rows: fetch a few ahead so the memory
        // latency overlaps the arithmetic.
        const AHEAD: usize = 6;
        let mut top = TopK::new(k.min(cand.len()));
        let cand: Vec<(usize, u64)> = cand.collect();
        for &(pos, _) in cand.iter().take(AHEAD) {
            self.store.prefetch(pos);
        }
        for (i, &(pos, id)) in cand.iter().enumerate() {
            if let Some(&(next, _)) = cand.get(i + AHEAD) {
                self.store.prefetch(next);
            }
            top.push(id, sq_l2(query, self.store.vector(pos)));
        }
        top.into_sorted()
    }

    /// Honest byte count: codes, rotation (the crate's Haar rotation keeps two
    /// copies of its matrix and reports one), kept vectors, ids and id map.
    pub fn memory_bytes(&self) -> usize {
        let codes = match &self.codes {
            Codes::None => 0,
            Codes::Symmetric(codes) => codes.memory_bytes(),
            Codes::Ivf(ivf) => ivf.memory_bytes(),
        };
        codes + self.store.memory_bytes()
    }

    /// Structural equality: same parameters, ids in the same order, and the
    /// same vectors (when vectors are not kept: the same codes for
    /// `RabitqIndex`; the same CRC-32 of the added rows for an asymmetric
    /// index, whose codes the crate does not expose).
    pub fn same_as(&self, other: &Engine) -> bool {
        if self.params != other.params || self.store.ids() != other.store.ids() {
            return false;
        }
        match (&self.codes, &other.codes) {
            (Codes::Symmetric(a), Codes::Symmetric(b)) if !self.store.keeps_vectors() => {
                a.same_codes(b)
            }
            (Codes::Ivf(a), Codes::Ivf(b)) => {
                a.centroids() == b.centroids()
                    && a.labels() == b.labels()
                    && self.store.vectors() == other.store.vectors()
            }
            _ => self.store.vectors() == other.store.vectors(),
        }
    }
}

// ── restoring a saved index (`.rbpx`, `from_bytes`, mmap) ───────────────────

/// The blocks of a saved index besides ids and vectors.
pub struct Saved {
    /// IVF: centroids and the list of every row.
    pub ivf: Option<(Vec<f32>, Vec<u32>)>,
    /// Kinds that keep no vectors: packed sign words and norms.
    pub codes: Option<(Vec<u64>, Vec<f32>)>,
}

impl Engine {
    /// Fills this empty engine from a saved index. `vectors` (owned or a
    /// read-only map) becomes the store's buffer without a copy, after
    /// every value is validated as in `add`; codes are encoded again from
    /// the vectors (IVF: into the saved lists), or, for kinds that keep no
    /// vectors, installed from `saved.codes`.
    pub fn restore_saved(
        &mut self,
        ids: &[u64],
        vectors: Backing,
        saved: Saved,
        cancel: &Cancel,
    ) -> Result<()> {
        if !self.is_empty() {
            return Err(Error::invalid("restore_saved needs an empty index"));
        }
        let keeps = self.store.keeps_vectors();
        let data = vectors.as_slice();
        if keeps {
            self.check_add(ids, data, "vectors", true)?;
        } else {
            if !data.is_empty() {
                return Err(Error::invalid(format!(
                    "{} keeps no vectors, but the saved index has some",
                    self.params.kind.class_name()
                )));
            }
            if ids.len() > MAX_VECTORS {
                return Err(Error::invalid(format!(
                    "an index holds at most {MAX_VECTORS} vectors, got {}",
                    ids.len()
                )));
            }
            validate::check_ids(ids, self.params.kind.max_id(), |_| false)?;
        }
        let kind = self.params.kind.class_name();
        let misfit = || Error::invalid(format!("the saved blocks do not fit a {kind}"));
        match (&mut self.codes, saved.ivf, saved.codes) {
            (Codes::None, None, None) => {}
            (Codes::Symmetric(c), None, Some((packed, norms))) if !keeps => {
                c.install_saved(ids.len(), packed, norms)?
            }
            (Codes::Symmetric(c), None, None) if keeps => {
                let rows = c.encode_rows(data, cancel)?;
                c.append(rows);
            }
            (Codes::Ivf(_), Some((centroids, labels)), None) if keeps => {
                self.install_ivf(data, centroids, &labels, cancel)?
            }
            _ => return Err(misfit()),
        }
        self.store.restore(ids, vectors);
        Ok(())
    }

    /// Whether the kept vectors are a read-only map of a file.
    pub fn is_mapped(&self) -> bool {
        self.store.is_mapped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruvector_rabitq::{AnnIndex, FlatF32Index, RabitqAsymIndex, RabitqPlusIndex};

    fn data(n: usize, d: usize, seed: u64) -> Vec<f32> {
        // Small deterministic generator (xorshift) with a few clusters.
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % 10_000) as f32 / 10_000.0 - 0.5
        };
        let centres: Vec<f32> = (0..8 * d).map(|_| next() * 4.0).collect();
        (0..n)
            .flat_map(|i| {
                let c = (i % 8) * d;
                (0..d)
                    .map(|j| centres[c + j] + next() * 0.3)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    fn params(kind: Kind, dim: usize, rf: usize, rotation: Rotation) -> Params {
        Params {
            kind,
            dim,
            seed: 7,
            rerank_factor: rf,
            rotation,
            nlist: 0,
            nprobe: 0,
            metric: Metric::L2,
        }
    }

    fn rf(rerank_factor: usize) -> SearchOpts {
        SearchOpts {
            rerank_factor: Some(rerank_factor),
            nprobe: None,
        }
    }

    fn ids(n: usize) -> Vec<u64> {
        // Non-dense ids, so that an id/row mix-up would show.
        (0..n as u64).map(|i| i * 3 + 11).collect()
    }

    #[test]
    fn plus_matches_the_crate_for_both_rotations() {
        // Above the parallel-encode threshold, so both encode paths are covered
        // (the 1-bit-only test below stays under it).
        let (n, d) = (1500, 48);
        let x = data(n, d, 3);
        let ids = ids(n);
        for rotation in [Rotation::Haar, Rotation::Hadamard] {
            let mut ours = Engine::new(params(Kind::Plus, d, 5, rotation)).unwrap();
            ours.add(&ids, &x).unwrap();
            let mut theirs = RabitqPlusIndex::new_with_rotation(d, 7, 5, rotation.upstream());
            for (id, row) in ids.iter().zip(x.chunks_exact(d)) {
                theirs.add(*id as usize, row.to_vec()).unwrap();
            }
            for q in x.chunks_exact(d).step_by(37) {
                for k in [1, 10, 50] {
                    let want: Vec<(u64, f32)> = theirs
                        .search(q, k)
                        .unwrap()
                        .into_iter()
                        .map(|r| (r.id as u64, r.score))
                        .collect();
                    assert_eq!(ours.search(q, k, SearchOpts::default()).unwrap(), want);
                }
                let want: Vec<(u64, f32)> = theirs
                    .search_with_rerank(q, 10, 2)
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.id as u64, r.score))
                    .collect();
                assert_eq!(ours.search(q, 10, rf(2)).unwrap(), want);
            }
        }
    }

    #[test]
    fn rabitq_matches_the_crate() {
        let (n, d) = (700, 100);
        let x = data(n, d, 9);
        let ids = ids(n);
        let mut ours = Engine::new(params(Kind::Rabitq, d, 1, Rotation::Haar)).unwrap();
        ours.add(&ids, &x).unwrap();
        let mut theirs = ruvector_rabitq::RabitqIndex::new(d, 7);
        for (id, row) in ids.iter().zip(x.chunks_exact(d)) {
            theirs.add(*id as usize, row.to_vec()).unwrap();
        }
        for q in x.chunks_exact(d).step_by(41) {
            let want: Vec<(u64, f32)> = theirs
                .search(q, 20)
                .unwrap()
                .into_iter()
                .map(|r| (r.id as u64, r.score))
                .collect();
            assert_eq!(ours.search(q, 20, SearchOpts::default()).unwrap(), want);
        }
    }

    #[test]
    fn flat_and_asym_match_the_crate() {
        let (n, d) = (300, 32);
        let x = data(n, d, 5);
        let ids = ids(n);
        let mut flat = Engine::new(params(Kind::Flat, d, 1, Rotation::Haar)).unwrap();
        flat.add(&ids, &x).unwrap();
        let mut crate_flat = FlatF32Index::new(d);
        let mut asym = Engine::new(params(Kind::Asym, d, 4, Rotation::Haar)).unwrap();
        asym.add(&ids, &x).unwrap();
        let mut crate_asym = RabitqAsymIndex::new(d, 7, 4);
        for (id, row) in ids.iter().zip(x.chunks_exact(d)) {
            crate_flat.add(*id as usize, row.to_vec()).unwrap();
            crate_asym.add(*id as usize, row.to_vec()).unwrap();
        }
        for q in x.chunks_exact(d).step_by(29) {
            let f: Vec<(u64, f32)> = crate_flat
                .search(q, 7)
                .unwrap()
                .into_iter()
                .map(|r| (r.id as u64, r.score))
                .collect();
            assert_eq!(flat.search(q, 7, SearchOpts::default()).unwrap(), f);
            let a: Vec<(u64, f32)> = crate_asym
                .search(q, 7)
                .unwrap()
                .into_iter()
                .map(|r| (r.id as u64, r.score))
                .collect();
            assert_eq!(asym.search(q, 7, SearchOpts::default()).unwrap(), a);
        }
    }

    #[test]
    fn asym_matches_the_crate_across_words_blocks_and_rerank() {
        // Partial last words (100 = 64 + 36), several words (384), row
        // counts that leave a partial block of 16, with and without rerank.
        for (n, d) in [(1007, 100), (533, 384)] {
            let x = data(n, d, 11);
            let ids = ids(n);
            for rf in [1, 4] {
                let mut ours = Engine::new(params(Kind::Asym, d, rf, Rotation::Haar)).unwrap();
                ours.add(&ids, &x).unwrap();
                let mut theirs = RabitqAsymIndex::new(d, 7, rf);
                for (id, row) in ids.iter().zip(x.chunks_exact(d)) {
                    theirs.add(*id as usize, row.to_vec()).unwrap();
                }
                for q in x.chunks_exact(d).step_by(97) {
                    let want: Vec<(u64, f32)> = theirs
                        .search(q, 10)
                        .unwrap()
                        .into_iter()
                        .map(|r| (r.id as u64, r.score))
                        .collect();
                    let got = ours.search(q, 10, SearchOpts::default()).unwrap();
                    assert_eq!(got, want, "n {n} d {d} rf {rf}");
                }
            }
        }
    }

    #[test]
    fn failed_add_changes_nothing() {
        let d = 8;
        let mut e = Engine::new(params(Kind::Asym, d, 3, Rotation::Haar)).unwrap();
        let x = data(10, d, 1);
        e.add(&ids(10), &x).unwrap();
        let before = e.search(&x[..d], 3, SearchOpts::default()).unwrap();
        let mut bad = x[..2 * d].to_vec();
        bad[d + 2] = f32::NAN;
        assert!(e.add(&[1000, 1001], &bad).is_err());
        assert!(e.add(&[11], &x[..d]).is_err(), "duplicate id");
        assert!(e.add(&[1 << 32], &x[..d]).is_err(), "id above u32");
        assert_eq!(e.len(), 10);
        assert_eq!(e.search(&x[..d], 3, SearchOpts::default()).unwrap(), before);
    }

    #[test]
    fn a_cancelled_add_changes_nothing_and_a_committed_one_is_kept() {
        let d = 16;
        let x = data(3000, d, 4);
        for (kind, rotation) in [
            (Kind::Flat, Rotation::Haar),
            (Kind::Rabitq, Rotation::Hadamard),
            (Kind::Plus, Rotation::Haar),
            (Kind::Asym, Rotation::Haar),
            (Kind::Ivf, Rotation::Hadamard),
        ] {
            let mut e = Engine::new(params(kind, d, 3, rotation)).unwrap();
            // An empty IVF index trains on its first add: cancelling that
            // one must leave it untrained, so a later add trains again.
            let cancel = Cancel::new();
            cancel.cancel();
            let r = e.add_with(&ids(1500), &x[..1500 * d], "vectors", true, &cancel);
            assert_eq!(r, Err(Error::Interrupted), "{kind:?}");
            assert_eq!(e.len(), 0);
            assert!(e.ivf().is_none_or(|ivf| !ivf.is_trained()));
            e.add(&ids(1500), &x[..1500 * d]).unwrap();
            let q = &x[7 * d..8 * d];
            let before = e.search(q, 5, SearchOpts::default()).unwrap();
            let more: Vec<u64> = (0..1500).map(|i| 1_000_000 + i).collect();
            let r = e.add_with(&more, &x[1500 * d..], "vectors", true, &cancel);
            assert_eq!(r, Err(Error::Interrupted));
            assert_eq!(e.len(), 1500);
            assert_eq!(e.search(q, 5, SearchOpts::default()).unwrap(), before);
            // Committed before the signal: the add happens in full.
            let late = Cancel::new();
            late.commit().unwrap();
            assert!(!late.cancel());
            e.add_with(&more, &x[1500 * d..], "vectors", true, &late)
                .unwrap();
            assert_eq!(e.len(), 3000);
        }
    }

    #[test]
    fn params_refuse_crashing_shapes() {
        assert!(Engine::new(params(Kind::Plus, 0, 1, Rotation::Haar)).is_err());
        assert!(Engine::new(params(Kind::Plus, 4096, 1, Rotation::Haar)).is_err());
        assert!(Engine::new(params(Kind::Plus, 4096, 1, Rotation::Hadamard)).is_ok());
        assert!(Engine::new(params(Kind::Plus, 8, 0, Rotation::Haar)).is_err());
        assert!(Engine::new(params(Kind::Asym, 8, 1, Rotation::Hadamard)).is_err());
    }
}
