//! Small pieces every file format of the SDK writes with: atomic
//! replacement of a file, a writer that checksums what passes through it,
//! and little-endian arrays in blocks.
//!
//! A save writes `.<name>.tmp.<pid>.<counter>.<nanos>` next to the target
//! and renames it over the target. A writer killed outright (`kill -9`, a
//! power cut) leaves that temporary behind; the next save of the same
//! target removes such leftovers (see [`remove_stale_temps`]), never a live
//! writer's file.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A leftover younger than this is left alone even when its writer looks
/// gone: it covers the instant between a writer creating its temporary and
/// locking it (see [`remove_stale_temps`]).
pub const STALE_TEMP_MIN_AGE: Duration = Duration::from_secs(1);

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

/// The writer's pid if `candidate` is exactly a temporary name that
/// [`unique_temp`] gives for a target named `target` (`.<target>.tmp.` and
/// three decimal fields), else `None`.
pub fn temp_writer_pid(candidate: &OsStr, target: &OsStr) -> Option<u32> {
    let candidate = candidate.to_str()?;
    let target = target.to_str()?;
    let rest = candidate.strip_prefix('.')?.strip_prefix(target)?;
    let fields: Vec<&str> = rest.strip_prefix(".tmp.")?.split('.').collect();
    let decimal = |f: &str| !f.is_empty() && f.len() <= 40 && f.bytes().all(|b| b.is_ascii_digit());
    if fields.len() != 3 || !fields.iter().all(|f| decimal(f)) {
        return None;
    }
    fields[0].parse().ok()
}

/// Whether process `pid` may be gone: never for this process; on Linux,
/// when `/proc/<pid>` does not exist. Elsewhere the pid cannot be checked
/// without a system-call binding, so this says yes and the lock that every
/// live writer holds decides alone.
fn process_gone(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        return !Path::new("/proc").join(pid.to_string()).exists();
    }
    true
}

/// Removes the temporaries that killed writers left next to `path` (its
/// own pattern only, see [`temp_writer_pid`]). A leftover is removed only
/// when all of these hold: it is a regular file; its writer is not this
/// process and (on Linux) no longer runs; no one holds the lock every
/// writer takes on its temporary (so a live writer in another pid
/// namespace or on another OS is safe); and it is older than
/// [`STALE_TEMP_MIN_AGE`] (a writer locks its file right after creating
/// it). Failures are ignored: this is housekeeping. Returns how many were
/// removed.
pub fn remove_stale_temps(path: &Path) -> usize {
    let Some(target) = path.file_name() else {
        return 0;
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_writer_pid(&name, target) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        let old_enough = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age >= STALE_TEMP_MIN_AGE);
        if !meta.file_type().is_file() || !old_enough || !process_gone(pid) {
            continue;
        }
        let candidate = entry.path();
        let Ok(f) = File::options().write(true).open(&candidate) else {
            continue;
        };
        // A live writer holds this lock until its file is renamed or closed.
        if f.try_lock().is_err() {
            continue;
        }
        if std::fs::remove_file(&candidate).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Writes `path` atomically through `write`: unique temp file (locked while
/// it is written), fsync, rename, and an fsync of the directory. The temp
/// file is removed on failure; leftovers of killed writers of the same
/// target are removed first (see [`remove_stale_temps`]).
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
    finish: impl FnOnce(&File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    remove_stale_temps(path);
    let tmp = unique_temp(path);
    let result = (|| {
        let f = File::create(&tmp)?;
        // Tells a cleaner in another process that this file is in use; the
        // lock goes with the process, however it ends. Filesystems without
        // locks still save (a cleaner then also finds nothing to lock).
        let _ = f.try_lock();
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
    fn temp_names_are_recognised_exactly() {
        let t = OsStr::new("x.rbpx");
        let pid = |s: &str| temp_writer_pid(OsStr::new(s), t);
        assert_eq!(pid(".x.rbpx.tmp.123.4.567"), Some(123));
        let made = unique_temp(Path::new("/d/x.rbpx"));
        assert_eq!(
            pid(made.file_name().unwrap().to_str().unwrap()),
            Some(std::process::id())
        );
        for other in [
            "x.rbpx",
            ".x.rbpx.tmp.123.4",
            ".x.rbpx.tmp.123.4.5.6",
            ".x.rbpx.tmp.12a.4.5",
            ".x.rbpx.tmp..4.5",
            ".y.rbpx.tmp.1.2.3",
            ".x.rbpx.tmp.1.tmp.1.2.3",
            ".x.rbpx.bak.1.2.3",
        ] {
            assert_eq!(pid(other), None, "{other}");
        }
        // A target whose name looks like a temporary of another target.
        assert_eq!(
            temp_writer_pid(OsStr::new(".x.tmp.1.2.3"), OsStr::new("x.tmp.1")),
            None
        );
    }

    #[test]
    fn only_dead_writers_unlocked_old_temporaries_are_removed() {
        let dir = std::env::temp_dir().join(format!("rvpy-io-stale-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("t.bin");
        // A pid that ran and exited: gone (unless reused at once, which
        // would only keep its file).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        let make = |name: &str, age: SystemTime| {
            let p = dir.join(name);
            let f = File::create(&p).unwrap();
            f.set_modified(age).unwrap();
            p
        };
        let stale = make(&format!(".t.bin.tmp.{dead}.0.1"), old);
        let mine = make(&format!(".t.bin.tmp.{}.0.1", std::process::id()), old);
        let young = make(&format!(".t.bin.tmp.{dead}.0.2"), SystemTime::now());
        let locked = make(&format!(".t.bin.tmp.{dead}.0.3"), old);
        let other_target = make(&format!(".u.bin.tmp.{dead}.0.1"), old);
        let unrelated = make(&format!(".t.bin.tmp.{dead}.0"), old);
        let holder = File::options().write(true).open(&locked).unwrap();
        holder.lock().unwrap();
        assert_eq!(remove_stale_temps(&target), 1);
        assert!(!stale.exists());
        for kept in [&mine, &young, &locked, &other_target, &unrelated] {
            assert!(kept.exists(), "{} was removed", kept.display());
        }
        // A save cleans up as well, and leaves only its target behind.
        drop(holder);
        std::fs::remove_file(&young).unwrap();
        std::fs::remove_file(&mine).unwrap();
        write_atomic(&target, |w| w.write_all(b"x"), |_| Ok(())).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want = vec![
            "t.bin".to_string(),
            format!(".u.bin.tmp.{dead}.0.1"),
            format!(".t.bin.tmp.{dead}.0"),
        ];
        want.sort();
        assert_eq!(names, want);
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
