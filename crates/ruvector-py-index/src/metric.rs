//! The distance an index ranks by, one name per meaning across the SDK.
//!
//! | name | ranks by | `score` in hits |
//! |---|---|---|
//! | `"l2"` | squared Euclidean distance | squared L2, ascending |
//! | `"ip"` | inner product (MIPS, unnormalised vectors) | the inner product, descending |
//! | `"cosine"` | cosine similarity | the cosine similarity, descending |
//!
//! Every kind stores the metric it was built with (`.rbpx` version 2);
//! files of version 1 are `l2`.
//!
//! Inside the engine every metric ranks by a *cost*, lower is better, so
//! one top-k serves all three: squared L2 for `l2`, the negated inner
//! product for `ip` and `cosine` (`cosine` normalises rows when they are
//! added and queries when they are asked, so its inner product is the
//! cosine). [`Metric::score`] turns a cost into the score users see.
//! The 1-bit estimates are squared L2 estimates; for `ip` the IVF lists
//! subtract `‖x‖²` from them (`⟨q, x⟩ = (‖q‖² + ‖x‖² − ‖q − x‖²) / 2`), for
//! `cosine` [`Metric::cost_of_unit_l2`] rescales them.

use ruvector_py_core::{Error, Result};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Metric {
    #[default]
    L2,
    Ip,
    Cosine,
}

impl Metric {
    pub const NAMES: [&'static str; 3] = ["l2", "ip", "cosine"];

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "l2" => Ok(Metric::L2),
            "ip" => Ok(Metric::Ip),
            "cosine" => Ok(Metric::Cosine),
            _ => Err(Error::invalid(format!(
                "metric must be \"l2\", \"ip\" or \"cosine\", got {s:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::L2 => "l2",
            Metric::Ip => "ip",
            Metric::Cosine => "cosine",
        }
    }

    /// The byte that stands for the metric in `.rbpx` files.
    pub fn code(self) -> u8 {
        match self {
            Metric::L2 => 0,
            Metric::Ip => 1,
            Metric::Cosine => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Metric::L2),
            1 => Some(Metric::Ip),
            2 => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// The score that pads a batch row holding fewer than `k` hits (with
    /// id `-1`): the worst score there is for the metric, `+inf` for `l2`
    /// and `-inf` for `ip` and `cosine`, so padding sorts after every hit.
    pub fn pad_score(self) -> f32 {
        if self.higher_is_better() {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        }
    }

    /// Whether a larger score is better (similarities) or a smaller one
    /// (distances).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::L2)
    }

    /// The score users see for a cost: squared L2, or the inner product /
    /// cosine similarity.
    #[inline]
    pub fn score(self, cost: f32) -> f32 {
        match self {
            Metric::L2 => cost,
            Metric::Ip | Metric::Cosine => -cost,
        }
    }

    /// The cost of a squared L2 (estimate) between unit vectors:
    /// `‖q − x‖² = 2 − 2⟨q, x⟩`, so `−⟨q, x⟩ = ‖q − x‖² / 2 − 1`.
    #[inline]
    pub fn cost_of_unit_l2(sq_l2: f32) -> f32 {
        0.5 * sq_l2 - 1.0
    }
}

/// The unit vectors of `rows` (`dim` columns) for the `cosine` metric,
/// normalised in f64 so that tiny norms do not underflow. A zero row has no
/// direction: refused, naming the row. `what` names the caller's argument.
pub fn normalized_rows(rows: &[f32], dim: usize, what: &str) -> Result<Vec<f32>> {
    let mut out = rows.to_vec();
    for (i, row) in out.chunks_exact_mut(dim).enumerate() {
        let norm = row
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            return Err(Error::invalid(format!(
                "metric \"cosine\" needs vectors with a direction: {what} row {i} is all zeros"
            )));
        }
        for x in row.iter_mut() {
            *x = (f64::from(*x) / norm) as f32;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes_round_trip() {
        for name in Metric::NAMES {
            let m = Metric::parse(name).unwrap();
            assert_eq!(m.name(), name);
            assert_eq!(Metric::from_code(m.code()), Some(m));
        }
        assert!(Metric::parse("L2").is_err());
        assert_eq!(Metric::from_code(3), None);
        assert_eq!(Metric::default(), Metric::L2);
    }

    #[test]
    fn scores_read_as_documented() {
        assert_eq!(Metric::L2.score(1.5), 1.5);
        assert_eq!(Metric::Ip.score(-2.0), 2.0);
        assert_eq!(Metric::L2.pad_score(), f32::INFINITY);
        assert_eq!(Metric::Cosine.pad_score(), f32::NEG_INFINITY);
        // Unit vectors at 60°: cos 0.5, squared distance 1.
        assert_eq!(Metric::Cosine.score(Metric::cost_of_unit_l2(1.0)), 0.5);
    }

    #[test]
    fn normalized_rows_are_unit_and_zero_rows_are_refused() {
        let out = normalized_rows(&[3.0, 4.0, 1e-30, 0.0], 2, "vectors").unwrap();
        assert_eq!(out, vec![0.6, 0.8, 1.0, 0.0]);
        let err = normalized_rows(&[1.0, 0.0, 0.0, 0.0], 2, "vectors").unwrap_err();
        assert!(format!("{err:?}").contains("row 1"), "{err:?}");
    }
}
