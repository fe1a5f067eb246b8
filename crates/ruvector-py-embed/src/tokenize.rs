//! Text to token ids the way sentence-transformers prepares them: strip the
//! text (Python `str.strip()`), lower-case it if the model asks, then run the
//! model's `tokenizer.json` with special tokens, right truncation to
//! `max_seq_length` tokens (special tokens included) and no padding.
//!
//! Two guards keep the work per text bounded:
//!
//! * **The configuration is inspected before use.** Every normalizer and
//!   pre-tokenizer has a worst-case growth factor in bytes (a `Replace` of
//!   `"o"` by 1,000 `"o"`s: 1000; NFKC: 11; BERT's normalizer: 7.5); their
//!   product must stay within [`MAX_EXPANSION`]. Regular expressions must be
//!   linear-time (no look-around or back-references), a WordPiece word may
//!   hold at most [`MAX_WORD_CHARS`] characters, the post-processor must add
//!   fewer special tokens than `max_seq_length`, and BPE dropout (random
//!   tokenisation) is refused.
//! * **Long texts are cut before tokenising.** Only the first
//!   `max_seq_length` tokens are used, so a long text is tokenised by
//!   growing prefixes (cut at the start of a whitespace run where possible)
//!   until two consecutive prefixes both overflow `max_seq_length` and give
//!   the same ids: the ids of the whole text. Texts up to
//!   [`FIRST_BYTES_PER_TOKEN`] bytes per token are tokenised whole, as
//!   before; at most `max_seq_length` × [`MAX_BYTES_PER_TOKEN`] bytes (less
//!   for a tokenizer that expands text, so that the normalized text stays
//!   within [`MAX_NORMALIZED_BYTES`]) of a text are ever read.

use serde_json::Value;
use tokenizers::models::ModelWrapper;
use tokenizers::{
    PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};

/// Largest worst-case growth (in bytes) of a text through the normalizers
/// and pre-tokenizers together.
pub const MAX_EXPANSION: f64 = 64.0;
/// Largest `max_input_chars_per_word` of a WordPiece model (BERT: 100); the
/// WordPiece search is cubic in the word length.
pub const MAX_WORD_CHARS: usize = 256;
/// Texts up to `max_seq_length` × this many bytes are tokenised whole.
pub const FIRST_BYTES_PER_TOKEN: usize = 16;
/// At most `max_seq_length` × this many bytes of a text are tokenised.
pub const MAX_BYTES_PER_TOKEN: usize = 128;
/// Bound on the worst-case normalized length of the part of a text that is
/// tokenised (the tokenizer keeps about 17 bytes of alignment per byte).
pub const MAX_NORMALIZED_BYTES: usize = 4 << 20;

pub struct TextTokenizer {
    inner: Tokenizer,
    lower_case: bool,
    /// Texts up to this many bytes are tokenised whole.
    whole_bytes: usize,
    /// At most this many bytes of a text are tokenised.
    max_text_bytes: usize,
    expansion: f64,
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
        let expansion =
            inspect(&inner, max_seq_length).map_err(|m| Error::Embed(format!("{file}: {m}")))?;
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
        let max_text_bytes = max_seq_length
            .saturating_mul(MAX_BYTES_PER_TOKEN)
            .min((MAX_NORMALIZED_BYTES as f64 / expansion) as usize)
            .max(1024);
        let whole_bytes = max_seq_length
            .saturating_mul(FIRST_BYTES_PER_TOKEN)
            .clamp(256, max_text_bytes);
        Ok(Self {
            inner,
            lower_case,
            whole_bytes,
            max_text_bytes,
            expansion,
        })
    }

    /// Token ids of one text, with special tokens, truncated.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let stripped = text.trim_matches(py_space);
        if stripped.len() <= self.whole_bytes {
            return Ok(self.encode_whole(stripped)?.0);
        }
        let mut n = self.whole_bytes;
        // The last prefix that overflowed: its length and ids.
        let mut previous: Option<(usize, Vec<u32>)> = None;
        loop {
            let cut = cut_point(stripped, n);
            let (ids, overflowed) = self.encode_whole(&stripped[..cut])?;
            if overflowed {
                // Text past the cut no longer reaches the kept tokens once a
                // strictly longer prefix gives the same ids.
                match &previous {
                    Some((at, same)) if *at < cut && *same == ids => return Ok(ids),
                    Some((at, _)) if *at == cut => {}
                    _ => previous = Some((cut, ids.clone())),
                }
            } else {
                previous = None;
            }
            if n >= self.max_text_bytes {
                return Ok(ids);
            }
            n = n.saturating_mul(2).min(self.max_text_bytes);
            if n >= stripped.len() {
                return Ok(self.encode_whole(stripped)?.0);
            }
        }
    }

    /// Ids of `text` as it is, and whether truncation dropped tokens.
    fn encode_whole(&self, text: &str) -> Result<(Vec<u32>, bool)> {
        let lowered;
        let input = if self.lower_case {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let enc = self
            .inner
            .encode_fast(input, true)
            .map_err(|e| Error::Embed(format!("tokenizing failed: {e}")))?;
        Ok((enc.get_ids().to_vec(), !enc.get_overflowing().is_empty()))
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Largest token id the tokenizer can produce: its vocabulary, added
    /// tokens and the special tokens its post-processor adds.
    pub fn max_id(&self) -> Result<Option<u32>> {
        let vocab = self.inner.get_vocab(true).values().copied().max();
        let special = self.encode_whole("")?.0.into_iter().max();
        Ok(vocab.max(special))
    }

    /// The worst-case growth factor of a text through the normalizers and
    /// pre-tokenizers (see [`MAX_EXPANSION`]).
    pub fn expansion(&self) -> f64 {
        self.expansion
    }

    /// At most this many bytes of a text are tokenised.
    pub fn max_text_bytes(&self) -> usize {
        self.max_text_bytes
    }
}

/// Where to cut `s` (longer than `n` bytes) to keep about `n` bytes: at the
/// start of a whitespace run in the upper half of `..n` if there is one
/// (normalizers and pre-tokenizers treat that as a word boundary), else at
/// the last character boundary before `n`.
fn cut_point(s: &str, n: usize) -> usize {
    let mut b = n.min(s.len());
    while !s.is_char_boundary(b) {
        b -= 1;
    }
    let floor = b / 2;
    let mut after_is_space = s[b..].chars().next().is_some_and(py_space);
    for (i, c) in s[..b].char_indices().rev() {
        let end = i + c.len_utf8();
        if end < floor {
            break;
        }
        let space = py_space(c);
        if after_is_space && !space {
            return end;
        }
        after_is_space = space;
    }
    b
}

/// Checks the tokenizer's configuration (see the module documentation) and
/// returns its worst-case growth factor.
fn inspect(tok: &Tokenizer, max_seq_length: usize) -> std::result::Result<f64, String> {
    let json = |what: &str, v: std::result::Result<Value, serde_json::Error>| {
        v.map_err(|e| format!("cannot inspect the {what}: {e}"))
    };
    let norm = match tok.get_normalizer() {
        None => 1.0,
        Some(n) => normalizer_factor(&json("normalizer", serde_json::to_value(n))?, "normalizer")?,
    };
    let pre = match tok.get_pre_tokenizer() {
        None => 1.0,
        Some(p) => pre_tokenizer_factor(
            &json("pre_tokenizer", serde_json::to_value(p))?,
            "pre_tokenizer",
        )?,
    };
    let expansion = norm * pre;
    if expansion.is_nan() || expansion > MAX_EXPANSION {
        return Err(format!(
            "the normalizer and pre_tokenizer can expand a text up to {expansion:.3e} times \
             (normalizer {norm:.3e}, pre_tokenizer {pre:.3e}); at most {MAX_EXPANSION} is \
             accepted, so that a short text cannot grow without bound"
        ));
    }
    match tok.get_model() {
        ModelWrapper::WordPiece(wp) if wp.max_input_chars_per_word > MAX_WORD_CHARS => {
            return Err(format!(
                "model.max_input_chars_per_word must be between 1 and {MAX_WORD_CHARS}, got {}",
                wp.max_input_chars_per_word
            ));
        }
        ModelWrapper::BPE(bpe) if bpe.dropout.is_some_and(|d| d != 0.0) => {
            return Err(format!(
                "model.dropout is {:?}: BPE dropout tokenises at random, so embeddings would \
                 not be reproducible; use a tokenizer without dropout",
                bpe.dropout
            ));
        }
        _ => {}
    }
    if let Some(post) = tok.get_post_processor() {
        let added = post.added_tokens(false);
        if added >= max_seq_length {
            return Err(format!(
                "the post_processor adds {added} special tokens to a text, which leaves no room \
                 in max_seq_length = {max_seq_length} tokens"
            ));
        }
    }
    Ok(expansion)
}

fn kind<'a>(v: &'a Value, at: &str) -> std::result::Result<&'a str, String> {
    match v.get("type").and_then(Value::as_str) {
        Some(t) => Ok(t),
        None => Err(format!("{at} has no type: {}", shorten(v))),
    }
}

fn shorten(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 80 {
        return s;
    }
    let mut cut = 77;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &s[..cut])
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn text_len(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_str).map_or(0, str::len) as f64
}

/// A regex of a `Replace` or `Split` must run in linear time: the syntax of
/// the `regex` crate (no look-around, back-references or atomic groups), and
/// a compiled program of reasonable size.
fn linear_regex(pattern: &str, at: &str) -> std::result::Result<(), String> {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map(|_| ())
        .map_err(|e| {
            format!(
                "{at}: the regular expression {pattern:?} is refused: only linear-time expressions \
                 (no look-around, back-references or atomic groups) of moderate size are \
                 accepted ({})",
                e.to_string().lines().last().unwrap_or("")
            )
        })
}

/// `(pattern, is_regex)` of a `Replace` / `Split` pattern.
fn pattern(v: &Value, at: &str) -> std::result::Result<(String, bool), String> {
    let p = v.get("pattern");
    if let Some(s) = p.and_then(|p| p.get("String")).and_then(Value::as_str) {
        return Ok((s.to_string(), false));
    }
    if let Some(r) = p.and_then(|p| p.get("Regex")).and_then(Value::as_str) {
        linear_regex(r, at)?;
        return Ok((r.to_string(), true));
    }
    Err(format!("{at} has a malformed pattern: {}", shorten(v)))
}

/// Worst-case growth in bytes of one normalizer. Factors apply per input
/// byte, with one byte of slack for insertions between characters.
fn normalizer_factor(v: &Value, at: &str) -> std::result::Result<f64, String> {
    if v.is_null() {
        return Ok(1.0);
    }
    Ok(match kind(v, at)? {
        "Sequence" => {
            let list = v
                .get("normalizers")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{at} (Sequence) has no normalizers list"))?;
            let mut f = 1.0;
            for (i, n) in list.iter().enumerate() {
                f *= normalizer_factor(n, &format!("{at}.normalizers[{i}]"))?;
            }
            f
        }
        "BertNormalizer" => {
            let lowercase = flag(v, "lowercase");
            let strip_accents = v
                .get("strip_accents")
                .and_then(Value::as_bool)
                .unwrap_or(lowercase);
            let mut f = 1.0;
            if flag(v, "handle_chinese_chars") {
                // " 中 " for "中": 5 bytes for 3.
                f *= 5.0 / 3.0;
            }
            if strip_accents {
                f *= 3.0; // NFD
            }
            if lowercase {
                f *= 1.5;
            }
            f
        }
        // Measured over every code point in the tests below (lower-casing:
        // "İ" (2 bytes) becomes "i̇" (3 bytes); UTF-8 NFC/NFD at most 3x,
        // NFKC/NFKD at most 11x, as the Unicode FAQ states).
        "Lowercase" => 1.5,
        "NFC" | "NFD" => 3.0,
        "NFKC" | "NFKD" => 11.0,
        "Strip" | "StripAccents" | "Nmt" => 1.0,
        // Each byte becomes one character of at most 2 bytes.
        "ByteLevel" => 2.0,
        "Replace" => {
            let (p, is_regex) = pattern(v, at)?;
            let content = text_len(v, "content");
            // Matches are disjoint: each of at least `shortest` bytes becomes
            // `content`; an empty match is an insertion (one per byte).
            let shortest = if is_regex { regex_min_len(&p) } else { p.len() };
            if shortest == 0 {
                1.0 + content
            } else {
                (content / shortest as f64).max(1.0)
            }
        }
        "Prepend" => 1.0 + text_len(v, "prepend"),
        "Precompiled" => {
            let map = v
                .get("precompiled_charsmap")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{at} (Precompiled) has no precompiled_charsmap"))?;
            precompiled_factor(map)
                .ok_or_else(|| format!("{at} (Precompiled) has a malformed precompiled_charsmap"))?
        }
        other => return Err(format!("{at} has the unknown type {other:?}")),
    })
}

/// The shortest match of a regular expression in bytes (0 if it can match
/// the empty string or cannot be analysed).
fn regex_min_len(pattern: &str) -> usize {
    regex_syntax::Parser::new()
        .parse(pattern)
        .ok()
        .and_then(|h| h.properties().minimum_len())
        .unwrap_or(0)
}

/// Trie nodes [`precompiled_factor`] visits at most (each costs 255 label
/// checks) before it falls back to the longest replacement. The trie is a
/// DAWG (shared suffixes), so a walk revisits nodes: SentencePiece's
/// `nmt_nfkc` map (44,800 units) takes 262,841 visits.
const TRIE_MAX_VISITS: usize = 1 << 21;

/// Worst-case growth of a SentencePiece character map (base64 of
/// `[u32 trie length][trie][NUL-separated replacements]`): the largest ratio
/// of a replacement's length to its key's, found by walking every key of the
/// double-array trie (a key matched as a prefix of a longer grapheme only
/// shrinks the ratio). A trie that cannot be walked within bounds falls back
/// to the longest replacement over a one-byte key.
fn precompiled_factor(b64: &str) -> Option<f64> {
    let raw = base64_decode(b64)?;
    let trie_len = u32::from_le_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    let trie = raw.get(4..4usize.checked_add(trie_len)?)?;
    let normalized = raw.get(4usize.checked_add(trie_len)?..)?;
    let longest = normalized
        .split(|&b| b == 0)
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    let fallback = (longest as f64).max(1.0);
    let units: Vec<u32> = trie
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Some(trie_ratio(&units, normalized).map_or(fallback, |r| r.max(1.0)))
}

/// The largest replacement-to-key length ratio of a darts-clone double
/// array (`None` if it is malformed or too costly to walk).
fn trie_ratio(units: &[u32], normalized: &[u8]) -> Option<f64> {
    let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
    let has_leaf = |u: u32| (u >> 8) & 1 == 1;
    let label = |u: u32| u & ((1 << 31) | 0xFF);
    let repl_len = |at: usize| -> Option<usize> {
        let rest = normalized.get(at..)?;
        Some(rest.iter().position(|&b| b == 0).unwrap_or(rest.len()))
    };
    let mut budget = TRIE_MAX_VISITS;
    let mut best = 0.0f64;
    // (position after the node's offset, key length in bytes)
    let mut stack = vec![(offset(*units.first()?), 0usize)];
    while let Some((pos, depth)) = stack.pop() {
        if depth > 64 {
            return None;
        }
        for c in 1..=255u32 {
            let child = pos ^ c as usize;
            let Some(&u) = units.get(child) else { continue };
            if label(u) != c {
                continue;
            }
            budget = budget.checked_sub(1)?;
            let next = child ^ offset(u);
            if has_leaf(u) {
                let value = (*units.get(next)? & 0x7fff_ffff) as usize;
                best = best.max(repl_len(value)? as f64 / (depth + 1) as f64);
            }
            stack.push((next, depth + 1));
        }
    }
    Some(best)
}

/// Standard base64 (with or without padding); `None` if malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Worst-case growth in bytes of one pre-tokenizer.
fn pre_tokenizer_factor(v: &Value, at: &str) -> std::result::Result<f64, String> {
    if v.is_null() {
        return Ok(1.0);
    }
    Ok(match kind(v, at)? {
        "Sequence" => {
            let list = v
                .get("pretokenizers")
                .and_then(Value::as_array)
                .ok_or_else(|| format!("{at} (Sequence) has no pretokenizers list"))?;
            let mut f = 1.0;
            for (i, p) in list.iter().enumerate() {
                f *= pre_tokenizer_factor(p, &format!("{at}.pretokenizers[{i}]"))?;
            }
            f
        }
        // Splitting only (the delimiters are kept or dropped).
        "BertPreTokenizer" | "Whitespace" | "WhitespaceSplit" | "Punctuation" | "Digits"
        | "UnicodeScripts" | "CharDelimiterSplit" | "Delimiter" | "FixedLength" => 1.0,
        "Split" => {
            pattern(v, at)?;
            1.0
        }
        // Bytes to characters of at most 2 bytes, plus a prefix space per word.
        "ByteLevel" => 4.0,
        // A one-byte ' ' becomes the replacement; a split that does not
        // start with it gets one prepended: at most 1 + its length per byte.
        "Metaspace" => 1.0 + text_len(v, "replacement").max(1.0),
        other => return Err(format!("{at} has the unknown type {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::normalizers::{BertNormalizer, Lowercase, NFC, NFD, NFKC, NFKD};
    use tokenizers::{NormalizedString, Normalizer};

    #[test]
    fn strips_like_python() {
        assert_eq!(" \t a b \n\u{1f}".trim_matches(py_space), "a b");
        assert_eq!("\u{3000}x\u{a0}".trim_matches(py_space), "x");
    }

    /// The largest bytes-out / bytes-in of `n` over every single code point.
    fn worst_growth(n: &dyn Normalizer) -> f64 {
        let mut worst = 0.0f64;
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = c.to_string();
            let mut ns = NormalizedString::from(s.as_str());
            n.normalize(&mut ns).unwrap();
            worst = worst.max(ns.get().len() as f64 / s.len() as f64);
        }
        worst
    }

    #[test]
    fn growth_factors_hold_for_every_code_point() {
        let lower = worst_growth(&Lowercase);
        assert!(lower <= 1.5, "{lower}");
        for (n, bound) in [
            (&NFC as &dyn Normalizer, 3.0),
            (&NFD, 3.0),
            (&NFKC, 11.0),
            (&NFKD, 11.0),
        ] {
            let w = worst_growth(n);
            assert!(w <= bound, "{w} > {bound}");
        }
        let bert = worst_growth(&BertNormalizer::new(true, true, Some(true), true));
        assert!(bert <= 7.5, "{bert}");
        // Rust's own lower-casing (do_lower_case) grows no more.
        let rust_lower = (0..=0x10FFFFu32)
            .filter_map(char::from_u32)
            .map(|c| {
                c.to_lowercase().map(char::len_utf8).sum::<usize>() as f64 / c.len_utf8() as f64
            })
            .fold(0.0, f64::max);
        assert!(rust_lower <= 1.5, "{rust_lower}");
    }

    fn factor_of(normalizer: Value) -> std::result::Result<f64, String> {
        normalizer_factor(&normalizer, "normalizer")
    }

    #[test]
    fn expanding_normalizers_are_measured() {
        let rep = |n: usize| serde_json::json!({"type": "Replace", "pattern": {"String": "o"}, "content": "o".repeat(n)});
        assert_eq!(factor_of(rep(1000)).unwrap(), 1000.0);
        let chain = serde_json::json!({"type": "Sequence", "normalizers": [rep(1000), rep(1000), rep(1000), rep(1000)]});
        assert_eq!(factor_of(chain).unwrap(), 1e12);
        assert_eq!(
            factor_of(
                serde_json::json!({"type": "Replace", "pattern": {"String": "''"}, "content": "\""})
            )
            .unwrap(),
            1.0
        );
        assert_eq!(
            factor_of(serde_json::json!({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})).unwrap(),
            1.0
        );
        // The shortest match counts: one byte for "a|bb", none for "x*".
        assert_eq!(
            factor_of(serde_json::json!({"type": "Replace", "pattern": {"Regex": "a|bb"}, "content": "xyz"})).unwrap(),
            3.0
        );
        assert_eq!(
            factor_of(
                serde_json::json!({"type": "Replace", "pattern": {"Regex": "x*"}, "content": "ab"})
            )
            .unwrap(),
            3.0
        );
        assert_eq!(
            factor_of(
                serde_json::json!({"type": "Replace", "pattern": {"String": ""}, "content": "abc"})
            )
            .unwrap(),
            4.0
        );
        let e = factor_of(
            serde_json::json!({"type": "Replace", "pattern": {"Regex": "(?=a)b"}, "content": ""}),
        )
        .unwrap_err();
        assert!(e.contains("linear-time"), "{e}");
        assert!(factor_of(serde_json::json!({"type": "Frobnicate"}))
            .unwrap_err()
            .contains("unknown type"));
    }

    #[test]
    fn precompiled_maps_are_measured() {
        // An empty trie (no key), then "ab\0cdef\0": nothing is replaced.
        let mut raw = 4u32.to_le_bytes().to_vec();
        raw.extend_from_slice(&[0, 0, 0, 0]);
        raw.extend_from_slice(b"ab\0cdef\0");
        let enc = base64_encode(&raw);
        assert_eq!(base64_decode(&enc).unwrap(), raw);
        assert_eq!(precompiled_factor(&enc), Some(1.0));
        // One key "a" -> "cdef" (offset 3): root offset 1, the child at
        // 1 ^ 'a' = 96 has a leaf whose value sits at 96 ^ 1 = 97.
        let mut units = vec![0u32; 98];
        units[0] = 1 << 10;
        units[96] = (1 << 10) | (1 << 8) | u32::from(b'a');
        units[97] = 3;
        let mut raw = ((units.len() * 4) as u32).to_le_bytes().to_vec();
        for u in &units {
            raw.extend_from_slice(&u.to_le_bytes());
        }
        raw.extend_from_slice(b"ab\0cdef\0");
        assert_eq!(precompiled_factor(&base64_encode(&raw)), Some(4.0));
        // A trie whose walk leaves the array falls back to the longest
        // replacement over one byte.
        units[97] = 1 << 30;
        let mut raw = ((units.len() * 4) as u32).to_le_bytes().to_vec();
        for u in &units {
            raw.extend_from_slice(&u.to_le_bytes());
        }
        raw.extend_from_slice(b"ab\0cdef\0");
        assert_eq!(precompiled_factor(&base64_encode(&raw)), Some(4.0));
        assert_eq!(precompiled_factor("!!"), None);
        assert_eq!(precompiled_factor(""), None);
    }

    fn base64_encode(data: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    s.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }

    #[test]
    fn every_known_component_serializes_to_a_known_type() {
        use tokenizers::normalizers::*;
        use tokenizers::pre_tokenizers::{
            bert::BertPreTokenizer,
            byte_level::ByteLevel as BL,
            delimiter::CharDelimiterSplit,
            digits::Digits,
            metaspace::Metaspace,
            punctuation::Punctuation,
            whitespace::{Whitespace, WhitespaceSplit},
        };
        let normalizers: Vec<NormalizerWrapper> = vec![
            BertNormalizer::default().into(),
            Strip::new(true, true).into(),
            StripAccents.into(),
            NFC.into(),
            NFD.into(),
            NFKC.into(),
            NFKD.into(),
            Lowercase.into(),
            Nmt.into(),
            Prepend::new("_".into()).into(),
            ByteLevel.into(),
            Replace::new("a", "bb").unwrap().into(),
            Sequence::new(vec![NFC.into(), Lowercase.into()]).into(),
        ];
        for n in normalizers {
            let v = serde_json::to_value(&n).unwrap();
            let f = normalizer_factor(&v, "n").unwrap_or_else(|e| panic!("{v}: {e}"));
            assert!((1.0..=MAX_EXPANSION).contains(&f), "{v}: {f}");
        }
        let pres: Vec<tokenizers::PreTokenizerWrapper> = vec![
            BertPreTokenizer.into(),
            BL::default().into(),
            CharDelimiterSplit::new(' ').into(),
            Digits::new(true).into(),
            Metaspace::default().into(),
            Punctuation::default().into(),
            Whitespace.into(),
            WhitespaceSplit.into(),
        ];
        for p in pres {
            let v = serde_json::to_value(&p).unwrap();
            let f = pre_tokenizer_factor(&v, "p").unwrap_or_else(|e| panic!("{v}: {e}"));
            assert!((1.0..=8.0).contains(&f), "{v}: {f}");
        }
    }

    #[test]
    fn cuts_fall_at_the_start_of_a_whitespace_run() {
        let s = "alpha beta   gamma delta";
        // n = 14 ("alpha beta   g"): the run after "beta" starts at 10.
        assert_eq!(cut_point(s, 14), 10);
        assert_eq!(&s[..cut_point(s, 14)], "alpha beta");
        // No whitespace in the upper half: a character boundary.
        let t = "ab cdefghijklmnop";
        assert_eq!(cut_point(t, 12), 12);
        let u = "ééééé";
        assert_eq!(cut_point(u, 5), 4);
    }
}
