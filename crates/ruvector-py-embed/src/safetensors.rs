//! A reader for the `.safetensors` checkpoint format: an 8-byte little-endian
//! header length, a JSON header mapping tensor names to dtype, shape and
//! byte range, then the raw little-endian data. Every range is checked
//! against the file before it is read; tensors come out as f32.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;

use crate::error::{Error, Result};

use crate::files::{OpenFile, Opened};

/// Bytes read from a file at a time while a tensor is converted.
const READ_CHUNK: usize = 1 << 20;

/// Largest JSON header accepted (a BERT checkpoint's is about 20 KB; this
/// leaves room for tens of thousands of tensors while keeping the parsed
/// header small).
const MAX_HEADER: u64 = 8 << 20;

#[derive(Debug, Clone)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A parsed checkpoint: its header, and its tensor data either in memory
/// (a file read whole to check its digest) or still in the opened file,
/// read tensor by tensor in [`READ_CHUNK`] pieces as each is converted, so
/// that loading never holds the file's bytes and the converted weights at
/// once (peak: the weights plus one chunk, not twice the weights).
pub struct SafeTensors {
    file: String,
    /// The whole file (`Memory`), or its header only (`File`).
    data: Vec<u8>,
    body: usize,
    entries: HashMap<String, Entry>,
    rest: Option<Mutex<OpenFile>>,
}

fn bad(file: &str, msg: impl std::fmt::Display) -> Error {
    Error::Embed(format!(
        "{file} is not a valid safetensors checkpoint: {msg}"
    ))
}

/// Bytes per element of the safetensors dtypes of whole bytes (`None` for
/// the sub-byte and unknown ones, whose sizes are not checked here).
fn dtype_width(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" | "F8_E8M0" => 1,
        "U16" | "I16" | "F16" | "BF16" => 2,
        "U32" | "I32" | "F32" => 4,
        "U64" | "I64" | "F64" | "C64" => 8,
        _ => return None,
    })
}

/// Number of elements of `shape`, `None` if it overflows 64 bits.
fn element_count(shape: &[usize]) -> Option<u64> {
    shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(u64::try_from(d).ok()?))
}

/// The header length of a file of `total` bytes beginning with `first`.
fn header_len(file: &str, first: &[u8], total: u64) -> Result<u64> {
    let Some(len_bytes) = first.get(..8) else {
        return Err(bad(file, format!("{total} bytes, too short for a header")));
    };
    let mut len = [0u8; 8];
    len.copy_from_slice(len_bytes);
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER || n > total.saturating_sub(8) {
        return Err(bad(
            file,
            format!(
                "header length {n} does not fit the file ({total} bytes) or exceeds \
                 {MAX_HEADER} bytes"
            ),
        ));
    }
    Ok(n)
}

/// The entries of a JSON header, each checked: a shape whose size
/// overflows, a byte range outside the `body_len` bytes of data, or a byte
/// range that does not hold exactly shape × dtype bytes is refused.
fn parse_entries(file: &str, header: &[u8], body_len: u64) -> Result<HashMap<String, Entry>> {
    let header: serde_json::Value = serde_json::from_slice(header)
        .map_err(|e| bad(file, format!("header is not JSON: {e}")))?;
    let obj = header
        .as_object()
        .ok_or_else(|| bad(file, "header is not a JSON object"))?;
    let mut entries = HashMap::with_capacity(obj.len());
    for (name, v) in obj {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad(file, format!("tensor {name} has no dtype")))?
            .to_string();
        let shape = v
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad(file, format!("tensor {name} has no shape")))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad(file, format!("tensor {name} has a malformed shape")))?;
        let count = element_count(&shape).ok_or_else(|| {
            bad(
                file,
                format!("tensor {name} has shape {shape:?}, whose size overflows 64 bits"),
            )
        })?;
        let (start, end) = v
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
            .ok_or_else(|| bad(file, format!("tensor {name} has malformed data_offsets")))?;
        if start > end || end > body_len {
            return Err(bad(
                file,
                format!(
                    "tensor {name} spans bytes {start}..{end}, beyond the data ({body_len} bytes): \
                     the file is truncated"
                ),
            ));
        }
        if let Some(width) = dtype_width(&dtype) {
            let need = count.checked_mul(width);
            if need != Some(end - start) {
                return Err(bad(
                    file,
                    format!(
                        "tensor {name} of dtype {dtype} and shape {shape:?} needs {} bytes, \
                         but its data_offsets span {} bytes",
                        need.map_or("more than 2^64".to_string(), |b| b.to_string()),
                        end - start
                    ),
                ));
            }
        }
        entries.insert(
            name.clone(),
            Entry {
                dtype,
                shape,
                // Both are at most body_len, the size of data in memory.
                start: start as usize,
                end: end as usize,
            },
        );
    }
    Ok(entries)
}

impl SafeTensors {
    /// Parses a whole file's bytes; `file` names the file in error
    /// messages. Every entry is checked (see [`parse_entries`]) before any
    /// tensor is read.
    pub fn parse(file: &str, data: Vec<u8>) -> Result<Self> {
        let n = header_len(file, &data, data.len() as u64)?;
        let body = 8 + n as usize;
        let entries = parse_entries(file, &data[8..body], (data.len() - body) as u64)?;
        Ok(Self {
            file: file.to_string(),
            data,
            body,
            entries,
            rest: None,
        })
    }

    /// Reads a checkpoint from an opened file. A file with a pinned digest
    /// was read whole and verified; any other is read header first, and
    /// `check` (which may only look at the tensor names and shapes) can
    /// refuse it before its data is read, so a mismatched or hostile
    /// checkpoint costs a few kilobytes of reading, not gigabytes.
    pub fn open(
        file: &str,
        opened: Opened,
        check: impl FnOnce(&SafeTensors) -> Result<()>,
    ) -> Result<Self> {
        let mut f = match opened {
            Opened::Verified(data) => {
                let st = Self::parse(file, data)?;
                check(&st)?;
                return Ok(st);
            }
            Opened::File(f) => f,
        };
        let mut data = Vec::new();
        f.read_more(&mut data, 8)?;
        let n = header_len(file, &data, f.size)?;
        f.read_more(&mut data, n)?;
        let changed = || bad(file, "the file changed while it was read");
        if data.len() as u64 != 8 + n {
            return Err(changed());
        }
        let body_len = f.size - 8 - n;
        let entries = parse_entries(file, &data[8..], body_len)?;
        let st = Self {
            file: file.to_string(),
            data,
            body: 8 + n as usize,
            entries,
            rest: Some(Mutex::new(f)),
        };
        check(&st)?;
        Ok(st)
    }

    /// Calls `f` on the bytes of `e` in order: one slice from memory, or
    /// [`READ_CHUNK`]-byte pieces (a multiple of every dtype's width) read
    /// from the file.
    fn chunks(&self, e: &Entry, mut f: impl FnMut(&[u8])) -> Result<()> {
        let Some(rest) = &self.rest else {
            // parse() checked that the range lies in the data.
            f(&self.data[self.body + e.start..self.body + e.end]);
            return Ok(());
        };
        let mut open = rest.lock().map_err(|_| {
            bad(
                &self.file,
                "the file reader was poisoned by an earlier panic",
            )
        })?;
        let failed = |err: std::io::Error| {
            if err.kind() == std::io::ErrorKind::UnexpectedEof {
                bad(&self.file, "the file changed while it was read")
            } else {
                bad(&self.file, format!("cannot read tensor data: {err}"))
            }
        };
        let at = (self.body + e.start) as u64;
        open.file.seek(SeekFrom::Start(at)).map_err(failed)?;
        let mut buf = vec![0u8; READ_CHUNK.min(e.end - e.start)];
        let mut left = e.end - e.start;
        while left > 0 {
            let n = left.min(READ_CHUNK);
            open.file.read_exact(&mut buf[..n]).map_err(failed)?;
            f(&buf[..n]);
            left -= n;
        }
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// The file name given to [`SafeTensors::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The tensor `name` as f32, checked to have exactly `shape` (the shape
    /// the BERT model config asks for).
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.read(
            name,
            shape,
            |file, name| {
                format!("{file}: the checkpoint has no tensor {name} (does the model_type of config.json match the checkpoint?)")
            },
            "the model config",
        )
    }

    /// The tensor `name` as f32, checked to have exactly the `shape` that
    /// `model` (e.g. "torchvision's mobilenet_v3_small") needs. A missing
    /// tensor's message lists a few of the names the file does hold.
    pub fn f32_for(&self, name: &str, shape: &[usize], model: &str) -> Result<Vec<f32>> {
        self.read(
            name,
            shape,
            |file, name| {
                let mut names: Vec<&str> = self.names().collect();
                names.sort_unstable();
                let shown: Vec<&str> = names.iter().take(4).copied().collect();
                let more = if names.len() > shown.len() {
                    ", ..."
                } else {
                    ""
                };
                format!(
                    "{file}: the checkpoint has no tensor {name}, which {model} needs \
                     (is this a state_dict of that model, saved under its own key names? \
                     the file holds {} tensors: {}{more})",
                    names.len(),
                    shown.join(", ")
                )
            },
            model,
        )
    }

    /// Checks that `name` exists with exactly `shape` and a supported dtype,
    /// without converting it (so that a mismatched checkpoint is refused
    /// before memory is spent on its tensors).
    pub fn check(&self, name: &str, shape: &[usize]) -> Result<()> {
        self.entry(
            name,
            shape,
            |file, name| {
                format!("{file}: the checkpoint has no tensor {name} (does the model_type of config.json match the checkpoint?)")
            },
            "the model config",
        )
        .map(|_| ())
    }

    fn entry(
        &self,
        name: &str,
        shape: &[usize],
        missing: impl Fn(&str, &str) -> String,
        needs: &str,
    ) -> Result<&Entry> {
        let e = self
            .entries
            .get(name)
            .ok_or_else(|| Error::Embed(missing(&self.file, name)))?;
        if e.shape != shape {
            return Err(Error::Embed(format!(
                "{}: tensor {name} has shape {:?}, but {needs} needs {:?}",
                self.file, e.shape, shape
            )));
        }
        if !matches!(e.dtype.as_str(), "F32" | "F16" | "BF16") {
            return Err(Error::Embed(format!(
                "{}: tensor {name} has dtype {}; supported: F32, F16, BF16",
                self.file, e.dtype
            )));
        }
        Ok(e)
    }

    fn read(
        &self,
        name: &str,
        shape: &[usize],
        missing: impl Fn(&str, &str) -> String,
        needs: &str,
    ) -> Result<Vec<f32>> {
        let e = self.entry(name, shape, missing, needs)?;
        // parse_entries() checked that the range lies in the data and holds
        // exactly shape × dtype bytes.
        let width = if e.dtype == "F32" { 4 } else { 2 };
        let mut out: Vec<f32> = Vec::with_capacity((e.end - e.start) / width);
        self.chunks(e, |bytes| match e.dtype.as_str() {
            "F32" => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            ),
            "BF16" => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16)),
            ),
            _ => out.extend(
                bytes
                    .chunks_exact(2)
                    .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))),
            ),
        })?;
        if element_count(shape) != Some(out.len() as u64) {
            return Err(Error::Embed(format!(
                "{}: tensor {name} holds {} values, but shape {shape:?} needs {}",
                self.file,
                out.len(),
                element_count(shape).map_or("more than 2^64".to_string(), |n| n.to_string())
            )));
        }
        if let Some(i) = out.iter().position(|x| !x.is_finite()) {
            return Err(Error::Embed(format!(
                "{}: tensor {name} holds a non-finite value ({}) at flat index {i}",
                self.file, out[i]
            )));
        }
        Ok(out)
    }
}

/// IEEE half precision to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let man = u32::from(h & 0x3ff);
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, m) => {
            // Subnormal: value = m * 2^-24.
            let v = m as f32 * f32::from_bits(0x3380_0000);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, body: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn reads_f32_and_checks_shape() {
        let body: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let st = SafeTensors::parse(
            "m",
            file(
                r#"{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}}"#,
                &body,
            ),
        )
        .unwrap();
        assert_eq!(st.f32("w", &[2, 2]).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        let e = st.f32("w", &[4, 1]).unwrap_err().to_string();
        assert!(e.contains("has shape [2, 2]"), "{e}");
        assert!(st.f32("nope", &[1]).is_err());
    }

    #[test]
    fn truncated_data_is_refused() {
        let e = parse_error(
            r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
            &[0; 8],
        );
        assert!(e.contains("truncated"), "{e}");
        assert!(SafeTensors::parse("m", vec![1, 2, 3]).is_err());
        assert!(SafeTensors::parse("m", u64::MAX.to_le_bytes().to_vec()).is_err());
    }

    /// The message of parsing a one-tensor file with `header` and `data`
    /// (which must fail).
    fn parse_error(header: &str, data: &[u8]) -> String {
        SafeTensors::parse("m", file(header, data))
            .err()
            .expect("the file must be refused")
            .to_string()
    }

    #[test]
    fn sizes_are_checked_without_overflow() {
        // 2^62 x 384 elements wraps to 0 in 64-bit arithmetic: refused, even
        // for an empty byte range.
        let e = parse_error(
            r#"{"t":{"dtype":"F32","shape":[4611686018427387904,384],"data_offsets":[0,0]}}"#,
            &[],
        );
        assert!(e.contains("overflows 64 bits"), "{e}");
        // Elements fit, bytes do not.
        let e = parse_error(
            r#"{"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}"#,
            &[],
        );
        assert!(e.contains("needs more than 2^64 bytes"), "{e}");
        // A range that does not match shape x dtype.
        let e = parse_error(
            r#"{"t":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}}"#,
            &[0; 8],
        );
        assert!(
            e.contains("needs 6 bytes, but its data_offsets span 8"),
            "{e}"
        );
        // Offsets past 2^63, start after end, a negative dimension.
        for header in [
            r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}}"#,
            r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}}"#,
            r#"{"t":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#,
            r#"{"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}}"#,
            r#"[1]"#,
        ] {
            assert!(
                SafeTensors::parse("m", file(header, &[0])).is_err(),
                "{header}"
            );
        }
        // A header length near 2^64 does not wrap.
        let mut v = (u64::MAX - 4).to_le_bytes().to_vec();
        v.extend_from_slice(b"{}");
        assert!(SafeTensors::parse("m", v).is_err());
        // Unknown dtypes are kept unread; reading one is an error.
        let st = SafeTensors::parse(
            "m",
            file(
                r#"{"t":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#,
                &[0; 2],
            ),
        )
        .unwrap();
        assert!(st
            .f32("t", &[3])
            .unwrap_err()
            .to_string()
            .contains("dtype F4"));
    }

    #[test]
    fn open_reads_the_header_first() {
        use crate::files::ModelDir;
        let dir = std::env::temp_dir().join(format!("rv-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let body: Vec<u8> = [1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let header = r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        std::fs::write(dir.join("m.safetensors"), file(header, &body)).unwrap();
        let m = ModelDir::new(&dir, HashMap::new());
        let open = |check: &dyn Fn(&SafeTensors) -> Result<()>| {
            SafeTensors::open(
                "m",
                m.open_limited("m.safetensors", 1 << 20).unwrap(),
                check,
            )
        };
        let st = open(&|st| {
            assert!(st.contains("w"));
            Ok(())
        })
        .unwrap();
        assert_eq!(st.f32("w", &[2]).unwrap(), vec![1.0, 2.0]);
        // Tensor data is read when a tensor is converted, not at open: a
        // file cut short in between is named as changed.
        let st = open(&|_| Ok(())).unwrap();
        std::fs::write(dir.join("m.safetensors"), file(header, &body[..4])).unwrap();
        let e = st.f32("w", &[2]).unwrap_err().to_string();
        assert!(e.contains("changed while it was read"), "{e}");
        std::fs::write(dir.join("m.safetensors"), file(header, &body)).unwrap();
        let e = open(&|st| st.check("w", &[3])).err().unwrap().to_string();
        assert!(e.contains("has shape [2]"), "{e}");
        // Truncated data and a short file.
        std::fs::write(dir.join("m.safetensors"), file(header, &body[..4])).unwrap();
        let e = open(&|_| Ok(())).err().unwrap().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(dir.join("m.safetensors"), [1u8, 2]).unwrap();
        let e = open(&|_| Ok(())).err().unwrap().to_string();
        assert!(e.contains("2 bytes, too short"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn non_finite_values_are_named() {
        let body: Vec<u8> = [1.0f32, f32::NAN]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let st = SafeTensors::parse(
            "m",
            file(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                &body,
            ),
        )
        .unwrap();
        let e = st.f32("w", &[2]).unwrap_err().to_string();
        assert!(
            e.contains("tensor w holds a non-finite value (NaN) at flat index 1"),
            "{e}"
        );
        assert!(st.check("w", &[2]).is_ok());
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
