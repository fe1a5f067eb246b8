//! Small helpers: ids, timestamps, text arguments.

use std::time::{SystemTime, UNIX_EPOCH};

use pyo3::prelude::*;
use pyo3::types::PyString;
use ring::rand::SecureRandom;

use crate::error::{Error, FromBase, Result};

/// A `str` argument as UTF-8. A lone surrogate (`"\ud800"`, which no UTF-8
/// text can hold) raises `InvalidArgument` naming the argument instead of
/// Python's `UnicodeEncodeError`.
pub fn text(s: &Bound<'_, PyString>, arg: &str) -> Result<String> {
    s.to_cow().map(|c| c.into_owned()).map_err(|_| {
        let n = s.to_string_lossy();
        let at = n.chars().position(|c| c == char::REPLACEMENT_CHARACTER);
        Error::invalid(format!(
            "{arg} is not valid Unicode text: it holds a lone surrogate{}",
            at.map(|i| format!(" (at character {i})"))
                .unwrap_or_default()
        ))
    })
}

/// [`text`] of an optional argument.
pub fn opt_text(s: Option<&Bound<'_, PyString>>, arg: &str) -> Result<Option<String>> {
    s.map(|s| text(s, arg)).transpose()
}

/// `(name, value)` pairs (HTTP headers) as UTF-8, naming `arg` on a lone surrogate.
pub fn text_pairs(
    pairs: &[(Bound<'_, PyString>, Bound<'_, PyString>)],
    arg: &str,
) -> Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|(k, v)| Ok((text(k, arg)?, text(v, arg)?)))
        .collect()
}

/// A random UUID (version 4) string.
pub fn uuid4() -> String {
    let mut b = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        // Fall back on the clock: ids must be unique, not secret.
        let n = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b = n.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Now as RFC 3339 UTC with microseconds, e.g. `2026-01-02T03:04:05.123456Z`.
pub fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        let u = super::uuid4();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        let t = super::now_rfc3339();
        assert!(t.ends_with('Z') && t.len() == 27, "{t}");
    }
}
