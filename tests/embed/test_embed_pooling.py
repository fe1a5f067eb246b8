"""The CLS-pooling path (the one bge-small-en-v1.5 uses) and the pooling /
normalisation choices of a model folder.

No installable package ships the bge-small-en-v1.5 weights, so CLS pooling is
checked on the all-MiniLM-L6-v2 weights against sentence-transformers run with
``Pooling(pooling_mode="cls")`` + ``Normalize`` on the same weights
(``data/minilm-cls-reference.npy``, made by ``bench/embed_bench.py
--make-cls-reference``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List

import numpy as np
import numpy.typing as npt
import pytest
from embed_helpers import DATA, MIN_COSINE, copy_model, cosines

import ruvector_embed as rve


def cls_reference() -> npt.NDArray[np.float32]:
    ref: npt.NDArray[np.float32] = np.load(DATA / "minilm-cls-reference.npy")
    return ref


def test_cls_override_matches_sentence_transformers(minilm_dir: Path, sentences: List[str]) -> None:
    emb = rve.Embedder.from_pretrained(minilm_dir, pooling="cls")
    assert emb.pooling == "cls" and emb.normalize
    got = emb.embed_batch(sentences)
    cos = cosines(got, cls_reference())
    assert cos.min() >= MIN_COSINE, cos.min()


def test_cls_from_folder_config_like_bge(minilm_dir: Path, tmp_path: Path, sentences: List[str]) -> None:
    """A folder laid out like bge-small-en-v1.5's: 1_Pooling says CLS."""
    folder = copy_model(minilm_dir, tmp_path / "bge-like")
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    emb = rve.Embedder.from_pretrained(folder)
    assert emb.pooling == "cls"
    cos = cosines(emb.embed_batch(sentences), cls_reference())
    assert cos.min() >= MIN_COSINE


def test_bge_name_resolves_from_local_sources_unverified(
    minilm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stand-in folder under the bge name (the real weights are not
    # installable here): resolution and the CLS default work, unverified.
    models = tmp_path / "models"
    folder = copy_model(minilm_dir, models / "bge-small-en-v1.5")
    (folder / "modules.json").unlink()
    monkeypatch.setenv("RUVECTOR_MODELS", str(models))
    emb = rve.Embedder.from_pretrained("BAAI/bge-small-en-v1.5")
    assert emb.source == "env" and not emb.verified
    assert emb.pooling == "cls" and emb.normalize
    # sentence_bert_config.json of the folder wins over the registry's 512.
    assert emb.max_seq_length == 256


def test_without_normalize_and_mean(minilm_dir: Path, sentences: List[str], reference: npt.NDArray[np.float32]) -> None:
    emb = rve.Embedder.from_pretrained(minilm_dir, normalize=False)
    raw = emb.embed_batch(sentences)
    norms = np.linalg.norm(raw, axis=1)
    assert not np.allclose(norms, 1.0)
    np.testing.assert_allclose(raw / norms[:, None], reference, atol=1e-5)


def test_plain_hf_folder_without_sentence_transformers_files(minilm_dir: Path, tmp_path: Path) -> None:
    folder = copy_model(minilm_dir, tmp_path / "plain")
    for f in ("modules.json", "sentence_bert_config.json"):
        (folder / f).unlink()
    emb = rve.Embedder.from_pretrained(folder)
    # A bare transformers folder: mean pooling, no normalisation, the
    # model's full 512 positions.
    assert (emb.pooling, emb.normalize, emb.max_seq_length) == ("mean", False, 512)
