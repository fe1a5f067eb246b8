//! Text to token ids the way sentence-transformers prepares them: strip the
//! text (Python `str.strip()`), lower-case it if the model asks, then run the
//! model's `tokenizer.json` with special tokens, right truncation to
//! `max_seq_length` tokens (special tokens included) and no padding.

use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::error::{Error, Result};

pub struct TextTokenizer {
    inner: Tokenizer,
    lower_case: bool,
}

/// Whitespace as Python's `str.isspace()` sees it (Unicode White_Space plus
/// the ASCII information separators U+001C‥U+001F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

impl TextTokenizer {
    /// Builds from the bytes of a `tokenizer.json`; `file` names it in errors.
    pub fn from_json(
        file: &str,
        bytes: &[u8],
        max_seq_length: usize,
        lower_case: bool,
    ) -> Result<Self> {
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| {
            Error::Embed(format!(
                "{file} is not a tokenizer the tokenizers library can read: {e}"
            ))
        })?;
        inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length: max_seq_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| {
                Error::Embed(format!("{file}: cannot truncate to {max_seq_length}: {e}"))
            })?;
        inner.with_padding(None);
        Ok(Self { inner, lower_case })
    }

    /// Token ids of one text, with special tokens, truncated.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let stripped = text.trim_matches(py_space);
        let lowered;
        let input = if self.lower_case {
            lowered = stripped.to_lowercase();
            lowered.as_str()
        } else {
            stripped
        };
        let enc = self
            .inner
            .encode_fast(input, true)
            .map_err(|e| Error::Embed(format!("tokenizing failed: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Largest token id the tokenizer can produce.
    pub fn max_id(&self) -> Option<u32> {
        self.inner.get_vocab(true).values().copied().max()
    }
}

#[cfg(test)]
mod tests {
    use super::py_space;

    #[test]
    fn strips_like_python() {
        assert_eq!(" \t a b \n\u{1f}".trim_matches(py_space), "a b");
        assert_eq!("\u{3000}x\u{a0}".trim_matches(py_space), "x");
    }
}
