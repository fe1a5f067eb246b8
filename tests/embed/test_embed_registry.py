"""``ruvector_embed.list_models()`` (issue 15): the registry as users read it,
checked against the files and models it describes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mobilenet_weights as mw
import pytest

import ruvector_embed as rve
from ruvector_embed import convert_mobilenet as cm


def test_every_known_model_is_listed_text_first() -> None:
    models = rve.list_models()
    assert [m.name for m in models] == [
        "all-MiniLM-L6-v2",
        "all-mpnet-base-v2",
        "bge-small-en-v1.5",
        "multilingual-e5-base",
        "multilingual-e5-small",
        "nomic-embed-text-v1",
        "nomic-embed-text-v1.5",
        "paraphrase-multilingual-MiniLM-L12-v2",
        "paraphrase-multilingual-mpnet-base-v2",
        "mobilenetv3-small",
    ]
    assert {m.name for m in models} == set(rve.KNOWN_MODELS)
    assert all(isinstance(m, rve.ModelInfo) for m in models)
    with pytest.raises(dataclasses.FrozenInstanceError):
        models[0].dim = 3  # type: ignore[misc]
    assert rve.list_models() == models  # a fresh list, equal records


def test_minilm_record_matches_the_loaded_model(minilm_dir: Path) -> None:
    info = {m.name: m for m in rve.list_models()}["all-MiniLM-L6-v2"]
    assert (info.kind, info.architecture, info.languages) == ("text", "bert", ("en",))
    assert info.digests_pinned and info.repo == "sentence-transformers/all-MiniLM-L6-v2"
    # The pinned weights file is the one the weights package ships.
    assert info.size_bytes == (minilm_dir / "model.safetensors").stat().st_size
    emb = rve.Embedder.from_pretrained("all-MiniLM-L6-v2")  # the package, verified
    assert emb.verified and emb.source == "package"
    assert (emb.dim, emb.max_seq_length, emb.pooling, emb.normalize) == (
        info.dim,
        info.max_tokens,
        info.pooling,
        info.normalize,
    )


def test_bge_is_listed_as_unverified() -> None:
    info = {m.name: m for m in rve.list_models()}["bge-small-en-v1.5"]
    assert (info.dim, info.max_tokens, info.pooling, info.normalize) == (384, 512, "cls", True)
    assert not info.digests_pinned and info.size_bytes is None
    assert "unverified" in info.note
    with pytest.raises(rve.EmbedError, match=r"download: refused, digests not pinned, unverified"):
        rve.resolve_model("bge-small-en-v1.5", download=True, sources=["download"])


def test_every_unpinned_text_model_says_so_in_the_same_words() -> None:
    text = [m for m in rve.list_models() if m.kind == "text"]
    unpinned = [m for m in text if not m.digests_pinned]
    assert [m.name for m in text if m.digests_pinned] == ["all-MiniLM-L6-v2"]
    assert len(unpinned) == 8
    lead = "digests not pinned, unverified: no copy of its files could be checked here"
    for m in unpinned:
        assert m.note.startswith(lead), m.name
        # One sentence, said once: details follow it, never repeat it.
        assert m.note.count("digests not pinned") == 1, m.note
        assert m.note.count("never downloaded") == 1, m.note


def test_image_record_matches_the_converter(tmp_path: Path) -> None:
    info = {m.name: m for m in rve.list_models()}["mobilenetv3-small"]
    assert (info.kind, info.architecture, info.dim, info.max_tokens, info.pooling) == (
        "image",
        "mobilenet_v3_small",
        576,
        None,
        "avg",
    )
    assert not info.digests_pinned and info.languages == () and "convert_mobilenet" in info.note
    # The converter writes every tensor of torchvision's state dict (the
    # stand-in weights have exactly those names, shapes and dtypes).
    assert len(cm.safetensors_bytes(mw.make_weights())) == info.size_bytes
    assert rve.ImageEmbedder.from_pretrained(pretrained=False).dim == info.dim
