//! Thread-count settings read from the environment when a pool is first
//! built. Precedence: `RUVECTOR_<COMPONENT>_<NAME>`, then `RUVECTOR_<NAME>`,
//! then the default.

use crate::errors::{Error, Result};

/// Largest thread count accepted, from the environment or at runtime.
pub const MAX_THREADS: usize = 1024;

/// Number of CPUs this process may use (at least 1).
pub fn available_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Parses a positive thread count from the environment (see module docs).
pub fn thread_count(component: &str, name: &str, default: usize) -> Result<usize> {
    let specific = format!("RUVECTOR_{}_{}", component.to_ascii_uppercase(), name);
    let general = format!("RUVECTOR_{name}");
    for var in [specific, general] {
        if let Ok(raw) = std::env::var(&var) {
            return parse_count(&var, &raw);
        }
    }
    Ok(default)
}

fn parse_count(var: &str, raw: &str) -> Result<usize> {
    match raw.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_THREADS).contains(&n) => Ok(n),
        _ => Err(Error::invalid(format!(
            "environment variable {var} must be a whole number between 1 and {MAX_THREADS}, got {raw:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parse_or_explain() {
        assert_eq!(parse_count("X", " 3 ").unwrap(), 3);
        assert_eq!(
            parse_count("RUVECTOR_NUM_THREADS", "zero").unwrap_err().to_string(),
            "environment variable RUVECTOR_NUM_THREADS must be a whole number between 1 and 1024, got \"zero\""
        );
        assert!(parse_count("X", "0").is_err());
    }

    #[test]
    fn default_when_unset() {
        assert_eq!(
            thread_count("nosuchcomponent", "NOSUCH_SETTING_XYZ", 7).unwrap(),
            7
        );
    }
}
