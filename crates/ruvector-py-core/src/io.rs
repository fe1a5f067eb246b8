//! Small pieces every file format of the SDK writes with: atomic
//! replacement of a file, a writer that checksums what passes through it,
//! and little-endian arrays in blocks.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A temporary name next to `final_path` that no other writer (thread or
/// process) uses: pid, a process-wide counter and the clock.
pub fn unique_temp(final_path: &Path) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    final_path.with_file_name(format!(".{name}.tmp.{}.{n}.{nanos}", std::process::id()))
}

/// Writes `path` atomically through `write`: unique temp file, fsync, rename,
/// and an fsync of the directory. The temp file is removed on failure.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    finish: impl FnOnce(&File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = unique_temp(path);
    let result = (|| {
        let f = File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        finish(&f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A writer that feeds a CRC-32 with every byte it writes.
pub struct CrcWriter<W: Write> {
    pub inner: W,
    pub crc: crc32fast::Hasher,
}

impl<W: Write> CrcWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            crc: crc32fast::Hasher::new(),
        }
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `items` as their little-endian bytes (`to_le` is e.g.
/// `f32::to_le_bytes`), 64 KiB at a time.
pub fn write_le<W: Write + ?Sized, T: Copy, const N: usize>(
    w: &mut W,
    items: &[T],
    to_le: fn(T) -> [u8; N],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1 << 16);
    for chunk in items.chunks(((1 << 16) / N).max(1)) {
        buf.clear();
        chunk.iter().for_each(|&x| buf.extend_from_slice(&to_le(x)));
        w.write_all(&buf)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_atomic_write_replaces_the_file_or_leaves_it_alone() {
        let dir = std::env::temp_dir().join(format!("rvpy-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        write_atomic(&path, |w| w.write_all(b"one"), |_| Ok(())).unwrap();
        let failed = write_atomic(
            &path,
            |w| {
                w.write_all(b"two, half")?;
                Err(std::io::Error::other("disk full"))
            },
            |_| Ok(()),
        );
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"one");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            vec![std::ffi::OsString::from("f.bin")],
            "no temporary file is left"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn arrays_are_little_endian_and_checksummed() {
        let mut w = CrcWriter::new(Vec::new());
        let big: Vec<u32> = (0..20_000).collect();
        write_le(&mut w, &[1.5f32, -2.0], f32::to_le_bytes).unwrap();
        write_le(&mut w, &big, u32::to_le_bytes).unwrap();
        let bytes = w.inner.clone();
        assert_eq!(&bytes[..8], &[0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0]);
        assert_eq!(bytes.len(), 8 + 4 * big.len());
        assert_eq!(&bytes[8 + 4 * 19_999..], &19_999u32.to_le_bytes());
        assert_eq!(w.crc.finalize(), crc32fast::hash(&bytes));
    }
}
