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
}
