"""Pickling embedders by reference to their model files.

A pickled :class:`Embedder` / :class:`ImageEmbedder` holds the paths, sizes
and SHA-256 digests of its files and its settings, never the weights; the
unpickled one embeds exactly as the original, in this process or a spawned
one, and a file changed in between is refused with an ``EmbedError`` naming
the file, the expected and the found size or digest.
"""

from __future__ import annotations

import copy
import multiprocessing
import pickle
import shutil
from pathlib import Path
from typing import Any, List

import mobilenet_weights as mw
import numpy as np
import numpy.typing as npt
import pytest

import ruvector_embed as rve


def _embed_in_child(blob: bytes, texts: List[str]) -> npt.NDArray[np.float32]:
    emb = pickle.loads(blob)
    out: npt.NDArray[np.float32] = emb.embed_batch(texts)
    return out


def test_an_embedder_pickles_by_reference_and_embeds_the_same(minilm_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "minilm"
    shutil.copytree(minilm_dir, folder)
    emb = rve.Embedder.from_pretrained(folder, max_seq_length=64, normalize=True)
    texts = ["a cat sat on the mat", "vector search in Rust"]
    blob = pickle.dumps(emb)
    assert len(blob) < 10_000, "the weights are not in the pickle"
    back = pickle.loads(blob)
    assert type(back) is rve.Embedder
    assert (back.max_seq_length, back.normalize, back.pooling, back.path) == (64, True, emb.pooling, emb.path)
    np.testing.assert_array_equal(back.embed_batch(texts), emb.embed_batch(texts))
    assert copy.copy(emb) is emb and copy.deepcopy(emb) is emb
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        got = pool.apply(_embed_in_child, (blob, texts))
    np.testing.assert_array_equal(got, emb.embed_batch(texts))

    # A changed file: same size, other bytes -> the digest names both.
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(
        rve.EmbedError,
        match=r"model.safetensors changed since it was pickled: expected SHA-256 [0-9a-f]{64}, got [0-9a-f]{64}",
    ):
        pickle.loads(blob)
    weights.write_bytes(bytes(data[:-10]))
    with pytest.raises(rve.EmbedError, match=rf"expected {len(data)} bytes, got {len(data) - 10}"):
        pickle.loads(blob)
    weights.unlink()
    with pytest.raises(rve.EmbedError, match="is missing"):
        pickle.loads(blob)


def test_an_image_embedder_pickles_by_reference(tmp_path: Path) -> None:
    weights = mw.write_safetensors(tmp_path / "model.safetensors", mw.make_weights())
    emb = rve.ImageEmbedder.from_pretrained(weights=weights, normalize=False)
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    blob = pickle.dumps(emb)
    assert len(blob) < 10_000
    back = pickle.loads(blob)
    assert type(back) is rve.ImageEmbedder and back.weights_path == emb.weights_path and not back.normalize
    np.testing.assert_array_equal(back.embed_image(image), emb.embed_image(image))
    untrained = rve.ImageEmbedder.from_pretrained(weights="untrained")
    again = pickle.loads(pickle.dumps(untrained))
    np.testing.assert_array_equal(again.embed_image(image), untrained.embed_image(image))
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    with pytest.raises(rve.EmbedError, match="changed since it was pickled: expected SHA-256"):
        pickle.loads(blob)


def test_a_pickle_of_another_kind_or_version_is_refused() -> None:
    from ruvector_embed import _pickle

    with pytest.raises(rve.EmbedError, match="expected the state of an Embedder, got 'ImageEmbedder'"):
        _pickle.restore_embedder({"kind": "ImageEmbedder", "version": 1})
    state: Any = {"kind": "Embedder", "version": 99}
    with pytest.raises(rve.EmbedError, match="expected pickle state version 1, got 99"):
        _pickle.restore_embedder(state)


def test_the_thread_count_is_set_at_runtime(minilm: rve.Embedder) -> None:
    # The same core code as ruvector_rabitq.set_num_threads (one pool per wheel).
    before = rve.get_num_threads()
    texts = ["one", "two", "three"]
    want = minilm.embed_batch(texts)
    try:
        rve.set_num_threads(1)
        assert rve.get_num_threads() == 1
        np.testing.assert_array_equal(minilm.embed_batch(texts), want)
        assert rve.runtime_info()["pool_threads"] == 1
        with pytest.raises(rve.InvalidArgument, match="between 1 and 1024, got 0"):
            rve.set_num_threads(0)
    finally:
        rve.set_num_threads(before)
