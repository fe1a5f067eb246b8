"""Bounded tokenizer work per text (issue 10, item 2): tokenizer.json
configurations that can blow a text up are refused when the model loads,
and a long text is cut before it is tokenised, with the same ids as before.

Loads that could exhaust memory before the fix run in a child interpreter
under ``RLIMIT_AS`` (so a regression fails the test instead of taking the
machine down).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
from embed_helpers import json_bytes, limited_load, link_model

import ruvector_embed as rve


def tokenizer_json(minilm_dir: Path) -> Dict[str, Any]:
    tok: Dict[str, Any] = json.loads((minilm_dir / "tokenizer.json").read_text(encoding="utf-8"))
    return tok


def with_tokenizer(minilm_dir: Path, folder: Path, tok: Dict[str, Any]) -> Path:
    return link_model(minilm_dir, folder, {"tokenizer.json": json_bytes(tok)})


BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}


def replace(pattern: str, content: str, regex: bool = False) -> Dict[str, Any]:
    return {"type": "Replace", "pattern": {"Regex" if regex else "String": pattern}, "content": content}


def test_chained_expanding_normalizer_is_refused(minilm_dir: Path, tmp_path: Path) -> None:
    """The reported case: "o" -> 1,000 "o"s, four times, grew a one-letter
    text to 13.5 GB (or aborted the interpreter under a memory limit)."""
    tok = tokenizer_json(minilm_dir)
    tok["normalizer"] = {"type": "Sequence", "normalizers": [replace("o", "o" * 1000)] * 4}
    folder = with_tokenizer(minilm_dir, tmp_path / "m", tok)
    out = limited_load(folder, "o")
    assert out.startswith("REFUSED EmbedError"), out
    assert "tokenizer.json" in out and "1.000e12 times" in out, out
    assert "at most 64 is accepted" in out, out


@pytest.mark.parametrize(
    ("normalizer", "pre_tokenizer", "expected"),
    [
        (replace("o", "o" * 1000), None, "1.000e3 times"),
        (replace("", "xy" * 40), None, "8.100e1 times"),
        (replace(".", "o" * 100, regex=True), None, "1.000e2 times"),
        ({"type": "Prepend", "prepend": "p" * 200}, None, "2.010e2 times"),
        (
            {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "NFKD"}]},
            None,
            "1.210e2 times",
        ),
        (None, {"type": "Sequence", "pretokenizers": [BYTE_LEVEL] * 4}, "pre_tokenizer 2.560e2"),
        (replace("(?<=a)b", "c", regex=True), None, "only linear-time expressions"),
        (None, {"type": "Split", "pattern": {"Regex": r"(\w)\1"}, "behavior": "Isolated", "invert": False}, "linear"),
    ],
)
def test_expanding_or_backtracking_configurations_are_refused(
    minilm_dir: Path, tmp_path: Path, normalizer: Any, pre_tokenizer: Any, expected: str
) -> None:
    tok = tokenizer_json(minilm_dir)
    if normalizer is not None:
        tok["normalizer"] = normalizer
    if pre_tokenizer is not None:
        tok["pre_tokenizer"] = pre_tokenizer
    folder = with_tokenizer(minilm_dir, tmp_path / "m", tok)
    out = limited_load(folder, "o" * 50)
    assert out.startswith("REFUSED EmbedError"), out
    assert expected in out, out


def test_mild_replacements_still_load(minilm_dir: Path, tmp_path: Path) -> None:
    """Normalizers that grow text a little (as real tokenizers do) are fine."""
    tok = tokenizer_json(minilm_dir)
    tok["normalizer"] = {
        "type": "Sequence",
        "normalizers": [replace("''", '"'), replace(" {2,}", " ", regex=True), tok["normalizer"]],
    }
    emb = rve.Embedder.from_pretrained(with_tokenizer(minilm_dir, tmp_path / "m", tok))
    v = emb.embed("it''s   fine")
    assert np.isfinite(v).all() and abs(float(np.linalg.norm(v)) - 1) < 1e-5


def test_wordpiece_word_length_and_special_tokens_are_bounded(minilm_dir: Path, tmp_path: Path) -> None:
    tok = tokenizer_json(minilm_dir)
    tok["model"]["max_input_chars_per_word"] = 10**9
    with pytest.raises(rve.EmbedError, match=r"max_input_chars_per_word must be between 1 and 256, got 1000000000"):
        rve.Embedder.from_pretrained(with_tokenizer(minilm_dir, tmp_path / "a", tok))

    # A post-processor that adds more special tokens than max_seq_length.
    tok = tokenizer_json(minilm_dir)
    post = tok["post_processor"]
    post["single"] = [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}] * 300 + [{"Sequence": {"id": "A", "type_id": 0}}]
    with pytest.raises(rve.EmbedError, match=r"adds 300 special tokens .* max_seq_length = 256"):
        rve.Embedder.from_pretrained(with_tokenizer(minilm_dir, tmp_path / "b", tok))

    # Special tokens outside the checkpoint's vocabulary are refused at load.
    tok = tokenizer_json(minilm_dir)
    tok["post_processor"]["special_tokens"]["[SEP]"]["ids"] = [40000]
    with pytest.raises(rve.EmbedError, match=r"token ids up to 40000"):
        rve.Embedder.from_pretrained(with_tokenizer(minilm_dir, tmp_path / "c", tok))


# -- long texts are cut before tokenising -------------------------------------------


def long_text(n_bytes: int) -> str:
    base = "The quick brown fox jumps over the lazy dog, again and again; "
    return (base * (n_bytes // len(base) + 1))[:n_bytes]


def test_20_mb_text_is_fast_and_equals_its_prefix(minilm: rve.Embedder) -> None:
    """The reported case: a 20 MB text took 14 s though only 256 tokens are used."""
    text = long_text(20_000_000)
    minilm.embed("warm up")
    t0 = time.perf_counter()
    got = minilm.embed(text)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"embedding a 20 MB text took {elapsed:.1f} s"
    np.testing.assert_array_equal(got, minilm.embed(text[:3000]))
    t0 = time.perf_counter()
    batch = minilm.embed_batch([text, "short"])
    assert time.perf_counter() - t0 < 4.0
    np.testing.assert_array_equal(batch[0], got)
    assert minilm.tokenize(text) == minilm.tokenize(text[:3000])


def mixed_texts(seed: int, n: int) -> List[str]:
    """Long texts of words, CJK, accents, emoji, punctuation, digits, runs
    of whitespace and over-long words, in random order."""
    rng = np.random.default_rng(seed)
    pieces = [
        "hello",
        "Straße",
        "naïve",
        "ΣΊΣΥΦΟΣ",
        "日本語のテキスト",
        "中文",
        "😀👍🏽",
        "12,345.67",
        "...",
        "[SEP]",
        "[CLS]",
        "don't",
        "e\u0301",
        "x" * 150,
        "\u00a0",
        "\t\n",
        "   ",
        "a-b_c",
    ]
    seps = [" ", " ", " ", "", "\n", "  "]
    out: List[str] = []
    for _ in range(n):
        count = int(rng.integers(1500, 4000))
        words = rng.integers(0, len(pieces), size=count)
        gaps = rng.integers(0, len(seps), size=count)
        out.append("".join(pieces[int(w)] + seps[int(g)] for w, g in zip(words, gaps)))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_long_texts_give_the_same_ids_as_a_whole_prefix(minilm: rve.Embedder, seed: int) -> None:
    """A text longer than the tokenised-whole bound gets the ids of a prefix
    short enough to be tokenised whole (and long enough to overflow 256
    tokens, so the cut itself is past the kept tokens)."""
    for text in mixed_texts(seed, 8):
        head = text.encode()[:4000].decode("utf-8", "ignore")
        want = minilm.tokenize(head)
        assert len(want) == 256
        assert minilm.tokenize(text) == want
        # Starting with a long run of whitespace or at a cut inside a word.
        for variant in ("  \t " + text, "x" * 90 + text, text.replace(" ", "")):
            head = variant.encode()[:4000].decode("utf-8", "ignore")
            if len(minilm.tokenize(head)) == 256:
                assert minilm.tokenize(variant) == minilm.tokenize(head)


def test_lower_casing_models_cut_the_same_way(minilm_dir: Path, tmp_path: Path) -> None:
    folder = link_model(
        minilm_dir,
        tmp_path / "m",
        {"sentence_bert_config.json": json_bytes({"max_seq_length": 128, "do_lower_case": True})},
    )
    emb = rve.Embedder.from_pretrained(folder)
    for text in mixed_texts(7, 4):
        head = text.encode()[:2000].decode("utf-8", "ignore")
        assert len(emb.tokenize(head)) == 128
        assert emb.tokenize(text) == emb.tokenize(head)


def test_text_past_the_read_bound_is_ignored(minilm: rve.Embedder) -> None:
    """Whitespace yields no tokens, so a text of 100 kB of spaces between two
    words would be read whole; only the first 256 x 128 bytes are read
    (documented), so the second word is not seen."""
    assert minilm.tokenize("alpha" + " " * 20_000 + "beta") == minilm.tokenize("alpha beta")
    assert minilm.tokenize("alpha" + " " * 100_000 + "beta") == minilm.tokenize("alpha")
