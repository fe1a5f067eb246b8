//! Reading model files with their SHA-256 digest checked on the very bytes
//! that are then parsed (no window between checking and using a file).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Largest configuration file (`config.json`, sentence-transformers module
/// configurations) read; real ones hold a few hundred bytes.
pub const MAX_JSON_BYTES: u64 = 1 << 20;
/// Largest `tokenizer.json` read (BERT tokenizers hold 0.5-2 MB, the largest
/// multilingual ones about 35 MB).
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

fn hex(digest: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Lower-case hex SHA-256 of the file at `path`, read in 1 MiB blocks.
pub fn sha256_file_hex(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
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

    /// Reads `rel` (at most [`MAX_JSON_BYTES`]), checking its pinned digest
    /// if there is one.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.read_limited(rel, MAX_JSON_BYTES)
    }

    /// Reads `rel`, a regular file of at most `limit` bytes, checking its
    /// pinned digest if there is one. Anything else (a device such as
    /// `/dev/zero`, a FIFO, a file past the limit) is refused before it is
    /// read, so a hostile folder cannot make a read unbounded.
    pub fn read_limited(&self, rel: &str, limit: u64) -> Result<Vec<u8>> {
        self.open_limited(rel, limit)?.read_all()
    }

    /// Opens `rel`, a regular file of at most `limit` bytes: read whole
    /// and verified if a digest is pinned for it, else left unread.
    pub fn open_limited(&self, rel: &str, limit: u64) -> Result<Opened> {
        self.open_at(self.path(rel), rel, limit)
    }

    /// Like [`ModelDir::open_limited`] for a file directly in the folder,
    /// named by an OS string (which need not be UTF-8).
    pub fn open_name(&self, name: &std::ffi::OsStr, limit: u64) -> Result<Opened> {
        self.open_at(self.root.join(name), &name.to_string_lossy(), limit)
    }

    fn open_at(&self, path: PathBuf, rel: &str, limit: u64) -> Result<Opened> {
        let cannot = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::Embed(format!(
                    "model file {} is missing (model directory {})",
                    path.display(),
                    self.root.display()
                ))
            } else {
                Error::Embed(format!("cannot read model file {}: {e}", path.display()))
            }
        };
        // Checked before opening: opening a FIFO would block.
        let meta = std::fs::metadata(&path).map_err(cannot)?;
        if !meta.is_file() {
            return Err(Error::Embed(format!(
                "model file {} is not a regular file",
                path.display()
            )));
        }
        if meta.len() > limit {
            return Err(too_big(&path, meta.len(), limit));
        }
        let file = std::fs::File::open(&path).map_err(cannot)?;
        let opened = OpenFile {
            file,
            size: meta.len(),
            limit,
            path,
        };
        match self.digests.get(rel) {
            None => Ok(Opened::File(opened)),
            Some(expected) => {
                let path = opened.path.clone();
                let data = Opened::File(opened).read_all()?;
                check_digest(&path, &data, expected)?;
                Ok(Opened::Verified(data))
            }
        }
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

fn too_big(path: &Path, size: u64, limit: u64) -> Error {
    Error::Embed(format!(
        "model file {} holds {size} bytes, more than the {limit} bytes accepted for it",
        path.display()
    ))
}

/// A regular model file, opened and not yet read.
pub struct OpenFile {
    pub file: std::fs::File,
    /// Its size when opened (at most `limit`).
    pub size: u64,
    pub limit: u64,
    pub path: PathBuf,
}

impl OpenFile {
    /// Reads what is left of the file, at most `limit` bytes in all,
    /// appending to `data`.
    pub fn read_rest(&mut self, data: &mut Vec<u8>) -> Result<()> {
        let left = self.limit.saturating_sub(data.len() as u64);
        (&mut self.file)
            .take(left.saturating_add(1))
            .read_to_end(data)
            .map_err(|e| {
                Error::Embed(format!(
                    "cannot read model file {}: {e}",
                    self.path.display()
                ))
            })?;
        if data.len() as u64 > self.limit {
            // The file grew while it was read.
            return Err(too_big(&self.path, data.len() as u64, self.limit));
        }
        Ok(())
    }

    /// Reads exactly `n` more bytes into `data` (fewer if the file ends).
    pub fn read_more(&mut self, data: &mut Vec<u8>, n: u64) -> Result<()> {
        (&mut self.file)
            .take(n)
            .read_to_end(data)
            .map(|_| ())
            .map_err(|e| {
                Error::Embed(format!(
                    "cannot read model file {}: {e}",
                    self.path.display()
                ))
            })
    }
}

/// A model file opened by [`ModelDir::open_limited`].
pub enum Opened {
    /// The whole file, read and checked against its pinned digest.
    Verified(Vec<u8>),
    /// A file without a pinned digest, not yet read.
    File(OpenFile),
}

impl Opened {
    /// All of the file's bytes.
    pub fn read_all(self) -> Result<Vec<u8>> {
        match self {
            Opened::Verified(data) => Ok(data),
            Opened::File(mut f) => {
                let mut data = Vec::with_capacity(f.size as usize);
                f.read_rest(&mut data)?;
                Ok(data)
            }
        }
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
    fn reads_are_bounded_and_regular_files_only() {
        let dir = std::env::temp_dir().join(format!("rv-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.json"), b"0123456789").unwrap();
        let m = ModelDir::new(&dir, HashMap::new());
        assert_eq!(m.read_limited("a.json", 10).unwrap(), b"0123456789");
        let e = m.read_limited("a.json", 9).unwrap_err().to_string();
        assert!(e.contains("holds 10 bytes, more than the 9 bytes"), "{e}");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("/dev/zero", dir.join("zero.json")).unwrap();
            let e = m.read("zero.json").unwrap_err().to_string();
            assert!(e.contains("not a regular file"), "{e}");
        }
        assert!(m
            .read("missing.json")
            .unwrap_err()
            .to_string()
            .contains("missing"));
        assert_eq!(
            sha256_file_hex(&dir.join("a.json")).unwrap(),
            sha256_hex(b"0123456789")
        );
        std::fs::remove_dir_all(&dir).unwrap();
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
