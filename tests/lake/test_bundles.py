# pyright: reportPrivateUsage=false
"""Bundles (table.rulake.json): publish, refresh, witness checks, and files
moving both ways between the SDK and the Rust crate's own code."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Tuple, Union

import numpy as np
import pytest

import ruvector_lake as rl
from ruvector_lake import _native

from .conftest import F32, U64


def witness_of(data_ref: str, dim: int, seed: int, rf: int, generation: Union[int, str]) -> str:
    """The documented witness, recomputed independently in Python."""

    def u64(v: int) -> bytes:
        return struct.pack("<Q", v)

    g = b"\x00" + u64(generation) if isinstance(generation, int) else b"\x01" + generation.encode()
    ref = data_ref.encode()
    h = hashlib.shake_256()
    h.update(
        b"rulake-bundle-witness-v1|"
        + u64(len(ref))
        + ref
        + b"|"
        + u64(dim)
        + u64(seed)
        + u64(rf)
        + b"|"
        + u64(len(g))
        + g
    )
    return h.hexdigest(32)


def test_publish_refresh_roundtrip(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], small: Tuple[F32, U64], tmp_path: Path
) -> None:
    """M2 acceptance 3: publish, mutate, re-publish, refresh -> INVALIDATED."""
    lake, hot = lake_with_local
    x, _ = small
    d = tmp_path / "bundle"
    assert lake.refresh_from_bundle_dir("hot", "docs", d) is rl.RefreshResult.BUNDLE_MISSING
    lake.search_one("hot", "docs", x[0])
    published = lake.publish_bundle("hot", "docs", d)
    assert published.witness == lake.witness("hot", "docs")
    assert lake.refresh_from_bundle_dir("hot", "docs", d) is rl.RefreshResult.UP_TO_DATE
    hot.upsert("docs", [999], x[:1])
    republished = lake.publish_bundle("hot", "docs", d)
    assert republished.witness != published.witness
    assert lake.refresh_from_bundle_dir("hot", "docs", d) is rl.RefreshResult.INVALIDATED
    assert ("hot", "docs") not in lake
    # Nothing cached: up to date (the next search primes).
    assert lake.refresh_from_bundle_dir("hot", "docs", d) is rl.RefreshResult.UP_TO_DATE
    assert lake.search_one("hot", "docs", x[0], k=1)[0].score == 0.0


def test_bundle_fields_and_python_witness(lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], tmp_path: Path) -> None:
    lake, _ = lake_with_local
    b = lake.publish_bundle("hot", "docs", tmp_path)
    assert (b.data_ref, b.dim, b.rotation_seed, b.rerank_factor, b.format_version) == (
        "local://hot/docs",
        16,
        42,
        20,
        2,
    )
    assert isinstance(b.generation, int) and b.pii_policy is None and b.lineage_id is None
    assert b.witness == witness_of(b.data_ref, 16, 42, 20, b.generation)
    assert b.verify() and rl.Bundle.read(tmp_path) == b
    assert rl.Bundle.from_json(b.to_json()) == b and "local://hot/docs" in repr(b)
    on_disk = json.loads((tmp_path / "table.rulake.json").read_text())
    assert on_disk["rvf_witness"] == b.witness


def test_bundles_written_by_the_sdk_verify_in_the_crate(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], tmp_path: Path
) -> None:
    lake, _ = lake_with_local
    b = lake.publish_bundle("hot", "docs", tmp_path)
    assert _native._crate_read_bundle(tmp_path) == b.witness


def test_bundles_written_by_the_crate_verify_in_the_sdk(tmp_path: Path) -> None:
    w = _native._crate_write_bundle(tmp_path, "gs://bucket/t.parquet", 128, 7, 20, 99)
    b = rl.Bundle.read(tmp_path)
    assert b.witness == w == witness_of("gs://bucket/t.parquet", 128, 7, 20, 99)
    assert (b.dim, b.generation) == (128, 99)


def test_opaque_generation_witness(tmp_path: Path) -> None:
    hot = rl.FsBackend("fs", tmp_path / "data")
    hot.write("c", [1, 2], np.eye(2, dtype=np.float32))
    lake = rl.RuLake()
    lake.register_backend(hot)
    b = lake.publish_bundle("fs", "c", tmp_path / "pub")
    assert isinstance(b.generation, str)
    assert b.witness == witness_of(b.data_ref, 2, 42, 20, b.generation)
    assert _native._crate_read_bundle(tmp_path / "pub") == b.witness


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dim", 17),
        ("rotation_seed", 43),
        ("data_ref", "local://evil/docs"),
        ("generation", 12345),
        ("rerank_factor", 1),
    ],
)
def test_tampered_witness_is_refused_and_changes_nothing(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend],
    small: Tuple[F32, U64],
    tmp_path: Path,
    field: str,
    value: object,
) -> None:
    lake, _ = lake_with_local
    x, _ = small
    lake.search_one("hot", "docs", x[0])
    lake.publish_bundle("hot", "docs", tmp_path)
    path = tmp_path / "table.rulake.json"
    doc = json.loads(path.read_text())
    doc[field] = value
    path.write_text(json.dumps(doc))
    with pytest.raises(rl.WitnessMismatch, match="altered"):
        lake.refresh_from_bundle_dir("hot", "docs", tmp_path)
    with pytest.raises(rl.WitnessMismatch):
        rl.Bundle.read(tmp_path)
    assert not rl.Bundle.from_json(path.read_text()).verify()
    assert ("hot", "docs") in lake


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"dim": 3}', b"\xff\xfe", b"x" * 70_000])
def test_malformed_sidecars_are_lake_errors(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], tmp_path: Path, body: bytes
) -> None:
    lake, _ = lake_with_local
    (tmp_path / "table.rulake.json").write_bytes(body)
    with pytest.raises(rl.LakeError):
        lake.refresh_from_bundle_dir("hot", "docs", tmp_path)
    with pytest.raises(rl.LakeError):
        rl.Bundle.read(tmp_path)
    with pytest.raises(rl.LakeError, match=r"no table\.rulake\.json"):
        rl.Bundle.read(tmp_path / "missing")


def test_publish_needs_a_known_backend_and_collection(
    lake_with_local: Tuple[rl.RuLake, rl.LocalBackend], tmp_path: Path
) -> None:
    lake, _ = lake_with_local
    with pytest.raises(rl.LakeError, match="unknown backend"):
        lake.publish_bundle("nope", "docs", tmp_path)
    with pytest.raises(rl.LakeError, match="no collection"):
        lake.publish_bundle("hot", "nope", tmp_path)
    assert not (tmp_path / "table.rulake.json").exists()
