"""Bad input: each a clear ruvector exception, and nothing changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ruvector_lake as rl

DIM = 16


def fixture_lake() -> Tuple[rl.RuLake, rl.LocalBackend]:
    hot = rl.LocalBackend("hot")
    rng = np.random.default_rng(0)
    hot.upsert("docs", np.arange(50, dtype=np.uint64), rng.standard_normal((50, DIM)).astype(np.float32))
    lake = rl.RuLake()
    lake.register_backend(hot)
    return lake, hot


LAKE, HOT = fixture_lake()
GOOD = np.ones(DIM, dtype=np.float32)


def test_unknown_backend_and_collection() -> None:
    with pytest.raises(rl.LakeError, match=r'unknown backend "nope"; registered backends: \["hot"\]'):
        LAKE.search_one("nope", "docs", GOOD)
    with pytest.raises(rl.LakeError, match='backend "hot" has no collection "nope"'):
        LAKE.search_one("hot", "nope", GOOD)
    with pytest.raises(rl.LakeError):
        LAKE.search_batch("nope", "docs", GOOD[None, :])
    with pytest.raises(rl.LakeError):
        LAKE.search_federated([("hot", "docs"), ("nope", "docs")], GOOD)
    with pytest.raises(rl.LakeError, match="no backend"):
        rl.RuLake().search_federated("docs", GOOD)
    with pytest.raises(rl.NotFound):
        HOT.count("nope")


def test_dimension_mismatch_names_expected_and_got() -> None:
    with pytest.raises(rl.DimensionMismatch, match="has dimension 8, but the index has dimension 16") as info:
        LAKE.search_one("hot", "docs", np.ones(8, dtype=np.float32))
    assert (info.value.expected, info.value.got) == (16, 8)
    with pytest.raises(rl.DimensionMismatch) as info:
        LAKE.search_batch("hot", "docs", np.ones((3, 4), dtype=np.float32))
    assert (info.value.expected, info.value.got) == (16, 4)
    with pytest.raises(rl.DimensionMismatch):
        HOT.upsert("docs", [1000], np.ones((1, 8), dtype=np.float32))
    assert HOT.count("docs") == 50


def test_dimension_mismatch_between_federated_backends() -> None:
    small = rl.LocalBackend("small")
    small.upsert("docs", [1], np.ones((1, 8), dtype=np.float32))
    lake = rl.RuLake()
    lake.register_backend(HOT)
    lake.register_backend(small)
    with pytest.raises(rl.DimensionMismatch, match="small") as info:
        lake.search_federated("docs", GOOD)
    assert (info.value.expected, info.value.got) == (8, 16)


def test_duplicate_targets_and_bad_target_shapes() -> None:
    with pytest.raises(rl.InvalidArgument, match="more than once"):
        LAKE.search_federated([("hot", "docs"), ("hot", "docs")], GOOD)
    for bad in ([], [("hot",)], [("hot", 1)], 5, [["hot", "docs", "x"]]):
        with pytest.raises(rl.InvalidArgument, match="targets"):
            LAKE.search_federated(bad, GOOD)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        (np.ones(DIM, dtype=np.int64), "dtype float32"),
        (np.ones(DIM, dtype=np.complex64), "dtype float32"),
        (np.ones((1, DIM), dtype=np.float32), "search_batch"),
        (np.ones((2, DIM), dtype=np.float32), "1-D"),
        (np.ones(2 * DIM, dtype=np.float32)[::2], "C-contiguous"),
        (np.array([], dtype=np.float32), "at least one"),
        (np.full(DIM, np.nan, dtype=np.float32), "finite"),
        (np.full(DIM, -np.inf, dtype=np.float32), "finite"),
        (np.full(DIM, 1e19, dtype=np.float32), "squared L2 norm"),
        ("not a vector", "float32"),
    ],
)
def test_bad_queries(query: Any, needle: str) -> None:
    with pytest.raises(rl.InvalidArgument, match=needle):
        LAKE.search_one("hot", "docs", query)


@settings(max_examples=60, deadline=None)
@given(
    k=st.one_of(
        st.integers(max_value=0), st.integers(min_value=100_000_001), st.floats(), st.booleans(), st.text(max_size=3)
    )
)
def test_bad_k(k: Any) -> None:
    with pytest.raises(rl.InvalidArgument, match="k must"):
        LAKE.search_one("hot", "docs", GOOD, k)


@settings(max_examples=40, deadline=None)
@given(rf=st.one_of(st.integers(max_value=0), st.integers(min_value=1025), st.floats(), st.booleans()))
def test_bad_rerank_factor(rf: Any) -> None:
    with pytest.raises(rl.InvalidArgument, match="rerank_factor"):
        LAKE.search_one("hot", "docs", GOOD, 5, rerank_factor=rf)
    with pytest.raises(rl.InvalidArgument, match="rerank_factor"):
        rl.RuLake(rerank_factor=rf)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=DIM, max_size=DIM),
)
def test_queries_with_any_floats(values: Any) -> None:
    q = np.array(values, dtype=np.float32)
    ok = bool(np.isfinite(q).all()) and float((q.astype(np.float64) ** 2).sum()) <= 1e36
    if ok:
        hits = LAKE.search_one("hot", "docs", q, 3)
        assert len(hits) == 3 and all(np.isfinite(h.score) for h in hits)
    else:
        with pytest.raises(rl.InvalidArgument):
            LAKE.search_one("hot", "docs", q, 3)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=4),
    bad_row=st.integers(min_value=0, max_value=3),
    bad_value=st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e30]),
)
def test_upsert_with_a_bad_value_changes_nothing(rows: int, bad_row: int, bad_value: float) -> None:
    hot = rl.LocalBackend("h")
    hot.upsert("c", [1], np.ones((1, 4), dtype=np.float32))
    v = np.ones((rows, 4), dtype=np.float32)
    v[min(bad_row, rows - 1), 2] = bad_value
    with pytest.raises(rl.InvalidArgument):
        hot.upsert("c", np.arange(10, 10 + rows, dtype=np.uint64), v)
    assert hot.count("c") == 1


@pytest.mark.parametrize(
    ("ids", "needle"),
    [
        ([1, 1], "more than once"),
        ([-1, 2], "negative|between 0 and"),
        ([1.5, 2.0], "integer"),
        ([1], "2"),
        ([2**64, 1], "2\\*\\*64|18446744073709551616"),
        # 2**64 - 1 pads short batch rows, so no vector may have it.
        ([2**64 - 1, 1], "18446744073709551615 does not fit.*between 0 and 18446744073709551614"),
        ([True, False], "integer|bool"),
    ],
)
def test_bad_ids(ids: Any, needle: str) -> None:
    hot = rl.LocalBackend("h")
    with pytest.raises(rl.InvalidArgument, match=needle):
        hot.upsert("c", ids, np.ones((2, 4), dtype=np.float32))
    assert hot.collections() == []


def test_the_padding_id_is_reserved_everywhere_ids_enter(tmp_path: Path) -> None:
    """``PAD_ID`` marks padded batch slots, so a file or an adapter that
    hands the lake a vector with that id is refused, naming the limit."""
    assert (rl.MAX_ID, rl.PAD_ID) == (2**64 - 2, 2**64 - 1)
    fs = rl.FsBackend("fs", tmp_path)
    with pytest.raises(rl.InvalidArgument, match="between 0 and 18446744073709551614"):
        fs.write("c", np.array([rl.PAD_ID], dtype=np.uint64), np.ones((1, 4), np.float32))

    class Hostile(rl.BackendAdapter):
        def generation(self, collection: str) -> int:
            return 1

        def pull(self, collection: str) -> Tuple[Any, Any]:
            return np.array([rl.PAD_ID, 0], dtype=np.uint64), np.ones((2, 4), np.float32)

    lake = rl.RuLake()
    lake.register_backend(Hostile("hostile"))
    with pytest.raises(rl.BackendError, match="18446744073709551615 does not fit") as refused:
        lake.search_one("hostile", "c", np.ones(4, np.float32), k=1)
    assert refused.value.backend == "hostile"


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"consistency": "fresh"}, "Consistency member"),
        ({"consistency": rl.Consistency.EVENTUAL}, "needs ttl_ms"),
        ({"consistency": rl.Consistency.FRESH, "ttl_ms": 5}, "only to Consistency.EVENTUAL"),
        ({"ttl_ms": 5}, "only to Consistency.EVENTUAL"),
        ({"consistency": rl.Consistency.EVENTUAL, "ttl_ms": 0}, "ttl_ms"),
        ({"max_cache_entries": 0}, "max_cache_entries"),
        ({"rotation_seed": -1}, "rotation_seed"),
        ({"rotation_seed": 2**64}, "rotation_seed"),
    ],
)
def test_bad_lake_settings(kwargs: Any, needle: str) -> None:
    with pytest.raises(rl.InvalidArgument, match=needle):
        rl.RuLake(**kwargs)
    builder = rl.RuLake.builder()
    if "consistency" in kwargs:
        builder.consistency(kwargs["consistency"], ttl_ms=kwargs.get("ttl_ms"))
    for key in ("max_cache_entries", "rotation_seed"):
        if key in kwargs:
            getattr(builder, key)(kwargs[key])
    if "ttl_ms" in kwargs and "consistency" not in kwargs:
        builder.consistency(rl.Consistency.FRESH, ttl_ms=kwargs["ttl_ms"])
    with pytest.raises(rl.InvalidArgument, match=needle):
        builder.build()


def test_upsert_limits() -> None:
    hot = rl.LocalBackend("h")
    with pytest.raises(rl.InvalidArgument, match="between 1 and 2048"):
        hot.upsert("c", [1], np.ones((1, 4096), dtype=np.float32))
    with pytest.raises(rl.InvalidArgument, match="between 1 and 2048"):
        hot.upsert("c", np.zeros(0, dtype=np.uint64), np.ones((0, 0), dtype=np.float32))
    with pytest.raises(rl.InvalidArgument, match="float32"):
        hot.upsert("c", [1], np.ones((1, 4), dtype=np.int64))
    assert hot.collections() == []


# ── text and paths that are not valid Unicode ───────────────────────────────

BAD = "do\ud800cs"  # a lone surrogate: a str, but not encodable text


def lone_surrogate_calls(tmp: Any) -> Dict[str, Tuple[str, Callable[[], Any]]]:
    """(argument named in the error, call) for every text or path argument."""
    fs = rl.FsBackend("fs", tmp / "fs")
    q, qs = GOOD, np.ones((2, DIM), dtype=np.float32)
    ids, x = np.arange(2, dtype=np.uint64), np.ones((2, DIM), dtype=np.float32)
    session = LAKE.session()
    bundle = LAKE.current_bundle("hot", "docs")
    return {
        "LocalBackend name": ("name", lambda: rl.LocalBackend(BAD)),
        "upsert collection": ("collection", lambda: HOT.upsert(BAD, ids, x)),
        "count collection": ("collection", lambda: HOT.count(BAD)),
        "FsBackend name": ("name", lambda: rl.FsBackend(BAD, tmp)),
        "FsBackend root": ("root", lambda: rl.FsBackend("fs", str(tmp / BAD))),
        "write collection": ("collection", lambda: fs.write(BAD, ids, x)),
        "write filename": ("filename", lambda: fs.write("c", ids, x, filename=BAD)),
        "register collection": ("collection", lambda: fs.register(BAD, "f.ruvec")),
        "register filename": ("filename", lambda: fs.register("c", BAD)),
        "search_one backend": ("backend", lambda: LAKE.search_one(BAD, "docs", q)),
        "search_one collection": ("collection", lambda: LAKE.search_one("hot", BAD, q)),
        "search_one_async backend": ("backend", lambda: LAKE.search_one_async(BAD, "docs", q)),
        "search_batch collection": ("collection", lambda: LAKE.search_batch("hot", BAD, qs)),
        "search_batch_async backend": ("backend", lambda: LAKE.search_batch_async(BAD, "docs", qs)),
        "search_federated name": ("targets", lambda: LAKE.search_federated(BAD, q)),
        "search_federated pair": ("targets[1][0]", lambda: LAKE.search_federated([("hot", "docs"), (BAD, "d")], q)),
        "search_federated_async": ("targets[0][1]", lambda: LAKE.search_federated_async([("hot", BAD)], q)),
        "current_bundle": ("backend", lambda: LAKE.current_bundle(BAD, "docs")),
        "publish_bundle dir": ("dir", lambda: LAKE.publish_bundle("hot", "docs", str(tmp / BAD))),
        "refresh_from_bundle_dir dir": ("dir", lambda: LAKE.refresh_from_bundle_dir("hot", "docs", str(tmp / BAD))),
        "witness": ("collection", lambda: LAKE.witness("hot", BAD)),
        "cached_bundle": ("backend", lambda: LAKE.cached_bundle(BAD, "docs")),
        "invalidate_cache": ("collection", lambda: LAKE.invalidate_cache("hot", BAD)),
        "save_cache_to_dir dir": ("dir", lambda: LAKE.save_cache_to_dir("hot", "docs", str(tmp / BAD))),
        "warm_from_dir dir": ("dir", lambda: LAKE.warm_from_dir("hot", "docs", str(tmp / BAD))),
        "warm_from_dir collection": ("collection", lambda: LAKE.warm_from_dir("hot", BAD, tmp)),
        "session search_one": ("backend", lambda: session.search_one(BAD, "docs", q)),
        "session search_batch": ("collection", lambda: session.search_batch("hot", BAD, qs)),
        "session witness": ("backend", lambda: session.witness(BAD, "docs")),
        "Bundle.read": ("dir", lambda: rl.Bundle.read(str(tmp / BAD))),
        "Bundle.write": ("dir", lambda: bundle.write(str(tmp / BAD))),
        "Bundle.from_json": ("text", lambda: rl.Bundle.from_json('{"data_ref": "' + BAD + '"}')),
    }


def test_lone_surrogates_in_text_and_paths_are_invalid_arguments(tmp_path: Any) -> None:
    """Issue 10: ``"\\ud800"`` as a collection name, backend name or path
    raised UnicodeEncodeError; it is InvalidArgument naming the argument."""
    LAKE.search_one("hot", "docs", GOOD)
    before = (LAKE.cache_stats(), HOT.collections(), sorted(p.name for p in tmp_path.iterdir()))
    wrong = {}
    for name, (arg, call) in lone_surrogate_calls(tmp_path).items():
        try:
            call()
        except rl.InvalidArgument as e:
            if not str(e).startswith(arg):
                wrong[name] = f"names the wrong argument: {e}"
        except BaseException as e:  # the finding is the type
            wrong[name] = f"{type(e).__name__}: {e}"
        else:
            wrong[name] = "no error"
    assert wrong == {}
    assert before[:2] == (LAKE.cache_stats(), HOT.collections())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fs"]


def test_names_that_are_not_str_are_type_errors(tmp_path: Any) -> None:
    for call in (
        lambda: rl.LocalBackend(5),  # type: ignore[arg-type]
        lambda: LAKE.search_one(b"hot", "docs", GOOD),  # type: ignore[arg-type]
        lambda: LAKE.warm_from_dir("hot", "docs", b"dir"),  # type: ignore[arg-type]
        lambda: rl.FsBackend("fs", 3),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError):
            call()


def test_a_str_generation_with_a_lone_surrogate_is_a_backend_error() -> None:
    class Gen(rl.BackendAdapter):
        def pull(self, collection: str) -> Any:
            return np.arange(2, dtype=np.uint64), np.ones((2, DIM), dtype=np.float32)

        def generation(self, collection: str) -> Any:
            return "v\ud800"

    lake = rl.RuLake()
    lake.register_backend(Gen("g"))
    with pytest.raises(rl.BackendError, match="valid Unicode") as info:
        lake.search_one("g", "docs", GOOD)
    assert isinstance(info.value.__cause__, UnicodeError)


# ── float16 / float64 input ─────────────────────────────────────────────────


def test_float64_and_float16_input_is_converted_like_float32(tmp_path: Any) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, DIM)).astype(np.float16).astype(np.float32)  # exact in all three
    ids = np.arange(40, dtype=np.uint64)
    results: List[Tuple[object, object, object]] = []
    for form in (np.float32, np.float64, np.float16, "memoryview"):

        def conv(a: Any, form: Any = form) -> Any:
            return memoryview(a.astype(np.float64)) if form == "memoryview" else a.astype(form)

        hot = rl.LocalBackend("hot")
        hot.upsert("docs", ids, conv(x))
        fs = rl.FsBackend("fs", tmp_path / str(form))
        fs.write("docs", ids, conv(x))
        lake = rl.RuLake()
        lake.register_backend(hot)
        lake.register_backend(fs)
        results.append(
            (
                lake.search_one("hot", "docs", conv(x[3])),
                [a.tolist() for a in lake.search_batch("fs", "docs", conv(x[:5]))],
                lake.search_federated("docs", conv(x[7])),
            )
        )
    assert all(r == results[0] for r in results[1:])
    with pytest.raises(rl.InvalidArgument, match=r"query holds 1e300 at query\[2\]"):
        LAKE.search_one("hot", "docs", np.array([0, 0, 1e300] + [0] * (DIM - 3), dtype=np.float64))
