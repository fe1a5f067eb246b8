"""The embeddings equal sentence-transformers' on the 31 reference sentences
(empty, non-Latin, emoji, over-long), through every entry point."""

from __future__ import annotations

import asyncio
import threading
from typing import Dict, List

import numpy as np
import numpy.typing as npt
import pytest
from embed_helpers import MIN_COSINE, cosines

import ruvector_embed as rve


def test_batch_matches_sentence_transformers(
    minilm: rve.Embedder, sentences: List[str], reference: npt.NDArray[np.float32]
) -> None:
    got = minilm.embed_batch(sentences)
    assert got.shape == reference.shape == (31, 384)
    assert got.dtype == np.float32
    cos = cosines(got, reference)
    worst = int(np.argmin(cos))
    assert cos.min() >= MIN_COSINE, f"row {worst} ({sentences[worst][:40]!r}) has cosine {cos[worst]}"
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # In practice the match is far tighter than the gate.
    assert np.abs(got - reference).max() < 1e-4


def test_single_equals_batch_rows(minilm: rve.Embedder, sentences: List[str]) -> None:
    batch = minilm.embed_batch(sentences)
    for i, s in enumerate(sentences):
        one = minilm.embed(s)
        assert one.shape == (384,) and one.dtype == np.float32
        np.testing.assert_allclose(one, batch[i], atol=2e-6)


def test_order_and_duplicates_do_not_matter(minilm: rve.Embedder, sentences: List[str]) -> None:
    base = minilm.embed_batch(sentences)
    rev = minilm.embed_batch(list(reversed(sentences)) + sentences[:3])
    np.testing.assert_allclose(rev[:31][::-1], base, atol=2e-6)
    np.testing.assert_allclose(rev[31:], base[:3], atol=2e-6)


def test_truncates_to_256_tokens_like_sentence_transformers(minilm: rve.Embedder, sentences: List[str]) -> None:
    assert minilm.max_seq_length == 256
    longest = max(sentences, key=len)
    ids = minilm.tokenize(longest)
    assert len(ids) == 256
    assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
    assert minilm.tokenize("") == [101, 102]
    # Text past the cut changes nothing.
    np.testing.assert_allclose(minilm.embed(longest), minilm.embed(longest + " more words here"), atol=1e-6)


def test_properties_and_repr(minilm: rve.Embedder) -> None:
    assert minilm.dim == 384
    assert minilm.pooling == "mean"
    assert minilm.normalize is True
    assert minilm.num_layers == 6
    assert minilm.vocab_size == 30522
    assert minilm.memory_bytes > 80_000_000
    assert minilm.source == "directory" and minilm.verified is False
    r = repr(minilm)
    assert "dim=384" in r and "pooling='mean'" in r and "kind='text'" in r


def test_empty_batch(minilm: rve.Embedder) -> None:
    out = minilm.embed_batch([])
    assert out.shape == (0, 384) and out.dtype == np.float32


def test_batch_accepts_any_sequence(minilm: rve.Embedder) -> None:
    a = minilm.embed_batch(("cat", "dog"))
    b = minilm.embed_batch(iter(["cat", "dog"]))
    c = minilm.embed_batch(np.array(["cat", "dog"]))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)


def test_bad_arguments(minilm: rve.Embedder) -> None:
    with pytest.raises(rve.InvalidArgument, match="single str"):
        minilm.embed_batch("hello")
    with pytest.raises(rve.InvalidArgument, match=r"texts\[1\] must be a str, got int"):
        minilm.embed_batch(["a", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="text must be a str"):
        minilm.embed(["a"])  # type: ignore[arg-type]
    with pytest.raises(rve.InvalidArgument, match="sequence of strings"):
        minilm.embed_batch(5)  # type: ignore[arg-type]


def test_async_matches_sync(minilm: rve.Embedder, sentences: List[str]) -> None:
    async def main() -> List[npt.NDArray[np.float32]]:
        return list(
            await asyncio.gather(
                minilm.embed_batch_async(sentences),
                minilm.embed_async(sentences[0]),
                minilm.embed_batch_async(sentences[:5]),
            )
        )

    batch, one, five = asyncio.run(main())
    sync = minilm.embed_batch(sentences)
    np.testing.assert_allclose(batch, sync, atol=2e-6)
    np.testing.assert_allclose(one, sync[0], atol=2e-6)
    np.testing.assert_allclose(five, sync[:5], atol=2e-6)


def test_async_bad_arguments_raise_at_call(minilm: rve.Embedder) -> None:
    with pytest.raises(rve.InvalidArgument):
        pending = minilm.embed_batch_async("not a list")
        pending.close()  # pragma: no cover - not reached


def test_threads_share_one_embedder(minilm: rve.Embedder, sentences: List[str]) -> None:
    want = minilm.embed_batch(sentences)
    results: Dict[int, npt.NDArray[np.float32]] = {}
    errors: List[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = minilm.embed_batch(sentences) if i % 2 else minilm.embed(sentences[i])[None, :]
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, got in results.items():
        if i % 2:
            np.testing.assert_allclose(got, want, atol=2e-6)
        else:
            np.testing.assert_allclose(got[0], want[i], atol=2e-6)


def test_larger_batch_is_consistent(minilm: rve.Embedder, sentences: List[str]) -> None:
    texts = [f"{s} #{i}" for i in range(12) for s in sentences]
    out = minilm.embed_batch(texts)
    assert out.shape == (len(texts), 384)
    for j in (0, 5, 77, len(texts) - 1):
        np.testing.assert_allclose(out[j], minilm.embed(texts[j]), atol=2e-6)
