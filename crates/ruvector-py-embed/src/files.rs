//! Reading model files with their SHA-256 digest checked on the very bytes
//! that are then parsed (no window between checking and using a file).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A model directory and the digests pinned for its files (relative paths
/// with `/` separators, e.g. `"1_Pooling/config.json"`).
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub root: PathBuf,
    pub digests: HashMap<String, String>,
}

impl ModelDir {
    pub fn new(root: impl Into<PathBuf>, digests: HashMap<String, String>) -> Self {
        Self {
            root: root.into(),
            digests: digests
                .into_iter()
                .map(|(k, v)| (k, v.to_ascii_lowercase()))
                .collect(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        rel.split('/')
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path(rel).is_file()
    }

    /// Reads `rel`, checking its pinned digest if there is one.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.path(rel);
        let data = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Embed(format!(
                    "model file {} is missing (model directory {})",
                    path.display(),
                    self.root.display()
                ))
            } else {
                Error::Embed(format!("cannot read model file {}: {e}", path.display()))
            }
        })?;
        if let Some(expected) = self.digests.get(rel) {
            check_digest(&path, &data, expected)?;
        }
        Ok(data)
    }

    /// Reads `rel` as JSON if the file exists (`None` if it does not).
    pub fn read_json_opt(&self, rel: &str) -> Result<Option<serde_json::Value>> {
        if !self.exists(rel) {
            if self.digests.contains_key(rel) {
                // A pinned file must be there.
                self.read(rel)?;
            }
            return Ok(None);
        }
        self.read_json(rel).map(Some)
    }

    pub fn read_json(&self, rel: &str) -> Result<serde_json::Value> {
        let data = self.read(rel)?;
        serde_json::from_slice(&data).map_err(|e| {
            Error::Embed(format!(
                "model file {} is not valid JSON: {e}",
                self.path(rel).display()
            ))
        })
    }
}

/// Checks `data` (read from `path`) against the expected hex digest.
pub fn check_digest(path: &Path, data: &[u8], expected: &str) -> Result<()> {
    let got = sha256_hex(data);
    if !got.eq_ignore_ascii_case(expected) {
        return Err(Error::Embed(format!(
            "model file {} failed SHA-256 verification: expected {expected}, got {got} \
             ({} bytes); the file is corrupted, truncated or from another model version: \
             delete it and resolve the model again",
            path.display(),
            data.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn mismatch_names_file_and_both_digests() {
        let e = check_digest(Path::new("/m/model.safetensors"), b"abc", &"0".repeat(64))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/m/model.safetensors"), "{e}");
        assert!(e.contains(&"0".repeat(64)), "{e}");
        assert!(e.contains("ba7816bf8f01cfea"), "{e}");
    }
}
