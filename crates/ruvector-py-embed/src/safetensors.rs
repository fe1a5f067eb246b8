//! A reader for the `.safetensors` checkpoint format: an 8-byte little-endian
//! header length, a JSON header mapping tensor names to dtype, shape and
//! byte range, then the raw little-endian data. Every range is checked
//! against the file before it is read; tensors come out as f32.

use std::collections::HashMap;

use crate::error::{Error, Result};

/// Largest JSON header accepted (real checkpoints use a few tens of KB).
const MAX_HEADER: u64 = 100 << 20;

#[derive(Debug, Clone)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A parsed checkpoint held in memory.
pub struct SafeTensors {
    file: String,
    data: Vec<u8>,
    body: usize,
    entries: HashMap<String, Entry>,
}

fn bad(file: &str, msg: impl std::fmt::Display) -> Error {
    Error::Embed(format!(
        "{file} is not a valid safetensors checkpoint: {msg}"
    ))
}

impl SafeTensors {
    /// Parses `data`; `file` names the file in error messages.
    pub fn parse(file: &str, data: Vec<u8>) -> Result<Self> {
        if data.len() < 8 {
            return Err(bad(
                file,
                format!("{} bytes, too short for a header", data.len()),
            ));
        }
        let n = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        if n > MAX_HEADER || 8 + n > data.len() as u64 {
            return Err(bad(
                file,
                format!(
                    "header length {n} does not fit the file ({} bytes)",
                    data.len()
                ),
            ));
        }
        let body = 8 + n as usize;
        let header: serde_json::Value = serde_json::from_slice(&data[8..body])
            .map_err(|e| bad(file, format!("header is not JSON: {e}")))?;
        let obj = header
            .as_object()
            .ok_or_else(|| bad(file, "header is not a JSON object"))?;
        let body_len = data.len() - body;
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
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(file, format!("tensor {name} has a malformed shape")))?;
            let offsets = v
                .get("data_offsets")
                .and_then(|s| s.as_array())
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
                .ok_or_else(|| bad(file, format!("tensor {name} has malformed data_offsets")))?;
            let (start, end) = (offsets.0 as usize, offsets.1 as usize);
            if start > end || end > body_len {
                return Err(bad(
                    file,
                    format!(
                        "tensor {name} spans bytes {start}..{end}, beyond the data ({body_len} bytes): \
                         the file is truncated"
                    ),
                ));
            }
            entries.insert(
                name.clone(),
                Entry {
                    dtype,
                    shape,
                    start,
                    end,
                },
            );
        }
        Ok(Self {
            file: file.to_string(),
            data,
            body,
            entries,
        })
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
                format!("{file}: the checkpoint has no tensor {name} (is this a BERT model?)")
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

    fn read(
        &self,
        name: &str,
        shape: &[usize],
        missing: impl Fn(&str, &str) -> String,
        needs: &str,
    ) -> Result<Vec<f32>> {
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
        let count: usize = shape.iter().product();
        let bytes = &self.data[self.body + e.start..self.body + e.end];
        let width = match e.dtype.as_str() {
            "F32" => 4,
            "F16" | "BF16" => 2,
            other => {
                return Err(Error::Embed(format!(
                    "{}: tensor {name} has dtype {other}; supported: F32, F16, BF16",
                    self.file
                )))
            }
        };
        if bytes.len() != count * width {
            return Err(Error::Embed(format!(
                "{}: tensor {name} holds {} bytes, but shape {:?} of {} needs {}",
                self.file,
                bytes.len(),
                shape,
                e.dtype,
                count * width
            )));
        }
        Ok(match e.dtype.as_str() {
            "F32" => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            "BF16" => bytes
                .chunks_exact(2)
                .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
                .collect(),
            _ => bytes
                .chunks_exact(2)
                .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                .collect(),
        })
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
        let e = SafeTensors::parse(
            "m",
            file(
                r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                &[0; 8],
            ),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(SafeTensors::parse("m", vec![1, 2, 3]).is_err());
        assert!(SafeTensors::parse("m", u64::MAX.to_le_bytes().to_vec()).is_err());
    }

    #[test]
    fn half_precision_converts_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
