"""Strings the embed API takes (issue 10, item 6): a lone surrogate in a
text, model name, option or path is ``InvalidArgument`` naming the argument
and the position, not ``UnicodeEncodeError``; file names that are not UTF-8
(surrogate escapes on POSIX) still work as paths."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from embed_helpers import link_model

import ruvector_embed as rve

LONE = "\ud800"


def test_texts_with_lone_surrogates(minilm: rve.Embedder) -> None:
    with pytest.raises(rve.InvalidArgument, match=r"^text holds a lone surrogate U\+D800 at index 3,"):
        minilm.embed("abc" + LONE)
    with pytest.raises(rve.InvalidArgument, match=r"^texts\[1\] holds a lone surrogate U\+DFFF at index 0,"):
        minilm.embed_batch(["fine", "\udfff tail"])
    with pytest.raises(rve.InvalidArgument, match=r"^text holds a lone surrogate U\+D800 at index 0"):
        minilm.tokenize(LONE)
    with pytest.raises(rve.InvalidArgument, match=r"texts\[0\] holds a lone surrogate"):
        minilm.embed_batch_async([LONE]).close()
    with pytest.raises(rve.InvalidArgument, match=r"^text holds a lone surrogate"):
        minilm.embed_async(LONE).close()
    # Valid astral characters (a surrogate pair in UTF-16) are fine.
    assert np.isfinite(minilm.embed("emoji 😀")).all()


def test_names_and_options_with_lone_surrogates(minilm_dir: Path) -> None:
    with pytest.raises(rve.InvalidArgument, match=r"^name holds a lone surrogate U\+D800 at index 3"):
        rve.Embedder.from_pretrained("all" + LONE)
    with pytest.raises(rve.InvalidArgument, match=r"^name holds a lone surrogate"):
        rve.resolve_model(LONE)
    with pytest.raises(rve.InvalidArgument, match=r"^pooling holds a lone surrogate U\+D800 at index 4"):
        rve.Embedder.from_pretrained(minilm_dir, pooling="mean" + LONE)
    with pytest.raises(rve.InvalidArgument, match=r"^cache_dir holds a lone surrogate"):
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", cache_dir="/tmp/" + LONE)
    with pytest.raises(rve.InvalidArgument, match=r"^weights holds a lone surrogate U\+D800 at index 1"):
        rve.ImageEmbedder.from_pretrained(weights="/" + LONE)
    with pytest.raises(rve.InvalidArgument, match=r"^name holds a lone surrogate"):
        rve.ImageEmbedder.from_pretrained(LONE)
    with pytest.raises(rve.InvalidArgument, match=r"unknown source"):
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", sources=[LONE])
    with pytest.raises(rve.InvalidArgument, match=r"sources must be a sequence of names, got int"):
        rve.Embedder.from_pretrained("all-MiniLM-L6-v2", sources=5)  # type: ignore[call-overload]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX byte file names")
def test_non_utf8_folder_names_still_load(minilm_dir: Path, tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-model"
    folder = link_model(minilm_dir, Path(os.fsdecode(raw)))
    name = os.fsdecode(raw)
    assert "\udce9" in name
    emb = rve.Embedder.from_pretrained(name)
    assert emb.path == str(Path(name).resolve())
    assert np.isfinite(emb.embed("hello")).all()
    assert folder.is_dir()


def test_async_surrogate_error_is_raised_at_call(minilm: rve.Embedder) -> None:
    async def main() -> None:
        with pytest.raises(rve.InvalidArgument):
            await minilm.embed_async("x" + LONE)

    asyncio.run(main())
