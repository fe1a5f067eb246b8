"""Every kind of bad input is refused with the right exception class and a
message that names the argument, what was expected and what was got.

The input space (dtypes, shapes, NaN/inf placement, k, ids, parameters) is
explored with Hypothesis. Examples are derandomized, so runs are
reproducible.

Vector-taking operations and the name each uses for its array argument:

=================  ==========  =====
operation          argument    ndim
=================  ==========  =====
``cls.build``      vectors     2
``add_batch``      vectors     2
``search_batch``   queries     2
``search``         query       1
``add``            vector      1
=================  ==========  =====
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Set, Tuple, Type, Union, cast

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Builder, IndexClass, SeededIndexClass

FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

DIM = 8


def resolve(result: Any) -> Any:
    """Runs a coroutine to completion, so sync and async calls can be tested
    alike (an async method may refuse bad input at call or at await)."""
    if asyncio.iscoroutine(result):
        return asyncio.run(result)
    return result


OpCall = Callable[[rr.RabitqPlusIndex, npt.ArrayLike], object]


def op_call(call: OpCall) -> OpCall:
    """Returns ``call`` unchanged; gives pyright the lambda's parameter types,
    which it does not infer from a NamedTuple field."""
    return call


class Op(NamedTuple):
    arg: str
    ndim: int
    call: OpCall


OPS: Dict[str, Op] = {
    "build": Op("vectors", 2, op_call(lambda idx, a: rr.RabitqPlusIndex.build(a))),
    "add_batch": Op("vectors", 2, op_call(lambda idx, a: idx.add_batch(a))),
    "search_batch": Op("queries", 2, op_call(lambda idx, a: idx.search_batch(a, 1))),
    "search_batch_async": Op("queries", 2, op_call(lambda idx, a: resolve(idx.search_batch_async(a, 1)))),
    "search": Op("query", 1, op_call(lambda idx, a: idx.search(a, 1))),
    "search_async": Op("query", 1, op_call(lambda idx, a: resolve(idx.search_async(a, 1)))),
    "add": Op("vector", 1, op_call(lambda idx, a: idx.add(10_000, a))),
}
ONE_D = [name for name, op in OPS.items() if op.ndim == 1]
TWO_D = [name for name, op in OPS.items() if op.ndim == 2]


def small_index() -> rr.RabitqPlusIndex:
    x = np.random.default_rng(3).standard_normal((20, DIM)).astype(np.float32)
    return rr.RabitqPlusIndex.build(x, seed=1)


def good_input(op: Op, rows: int = 3, dim: int = DIM) -> npt.NDArray[np.float32]:
    a = np.random.default_rng(4).standard_normal((rows, dim)).astype(np.float32)
    return a[0].copy() if op.ndim == 1 else a


def snapshot(idx: Any) -> Tuple[object, ...]:
    """Everything observable about an index's contents."""
    q = np.random.default_rng(9).standard_normal((4, idx.dim)).astype(np.float32)
    k = min(5, len(idx))
    ids, scores = idx.search_batch(q, k)
    vectors = np.array(idx, copy=True) if idx.keeps_vectors else None
    return len(idx), idx.ids.tolist(), ids.tolist(), scores.tolist(), None if vectors is None else vectors.tolist()


# ── dtype, layout, shape ────────────────────────────────────────────────────

BAD_DTYPES = [
    np.longdouble,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.bool_,
    np.complex64,
    object,
]


@FUZZ
@given(op_name=st.sampled_from(list(OPS)), dtype=st.sampled_from(BAD_DTYPES))
def test_only_float_dtypes_are_accepted(op_name: str, dtype: npt.DTypeLike) -> None:
    op = OPS[op_name]
    bad = good_input(op).astype(dtype)
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), bad)
    msg = str(err.value)
    assert f"{op.arg} must have dtype float32, got {np.dtype(dtype)}" in msg
    assert "float16 and float64 are converted too" in msg
    assert f"{op.arg}.astype(numpy.float32)" in msg


def as_buffer(a: npt.NDArray[Any]) -> Any:
    """A ``memoryview`` of ``a`` (the buffer protocol, not an ndarray)."""
    return memoryview(cast(Any, a))


# float16 / float64 / the other byte order, as arrays and as buffers: all
# converted once to float32, with the same result as a float32 array.
CONVERTED: Dict[str, Callable[[npt.NDArray[np.float32]], Any]] = {
    "float64 array": lambda a: a.astype(np.float64),
    "float16 array": lambda a: a.astype(np.float16),
    "big-endian float32 array": lambda a: a.astype(">f4"),
    "big-endian float64 array": lambda a: a.astype(">f8"),
    "strided float64 array": lambda a: np.repeat(a.astype(np.float64), 2, axis=-1)[..., ::2],
    "float64 memoryview": lambda a: as_buffer(a.astype(np.float64)),
    "float16 memoryview": lambda a: as_buffer(a.astype(np.float16)),
    "float32 memoryview": lambda a: as_buffer(a),
    "float64 list": lambda a: a.astype(np.float64).tolist(),
}


@pytest.mark.parametrize("form", list(CONVERTED))
@pytest.mark.parametrize("op_name", list(OPS))
def test_float16_and_float64_arrays_and_buffers_agree_with_float32(op_name: str, form: str) -> None:
    op = OPS[op_name]
    good = good_input(op)
    if "float16" in form:
        good = good.astype(np.float16).astype(np.float32)  # exactly representable
    want_idx, got_idx = small_index(), small_index()
    want = op.call(want_idx, good)
    got = op.call(got_idx, CONVERTED[form](good))
    if op_name.startswith("search_batch"):  # (ids, scores)
        pairs = zip(cast(Tuple[Any, ...], want), cast(Tuple[Any, ...], got))
        assert all(np.array_equal(w, g) for w, g in pairs)
    else:  # an index (build), a list of hits, or None
        assert want == got
    assert snapshot(want_idx) == snapshot(got_idx)


@pytest.mark.parametrize("op_name", list(OPS))
def test_a_float64_value_beyond_float32_is_refused_with_its_position(op_name: str) -> None:
    op = OPS[op_name]
    bad = good_input(op).astype(np.float64)
    where = (2,) if op.ndim == 1 else (1, 2)
    bad[where] = 1e300
    place = f"{op.arg}[2]" if op.ndim == 1 else f"{op.arg}[1, 2]"
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), bad)
    assert f"{op.arg} holds 1e300 at {place}, beyond the float32 range" in str(err.value)
    # Through the buffer protocol, the same message.
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), as_buffer(bad))
    assert f"{op.arg} holds 1e300 at {place}" in str(err.value)


@pytest.mark.parametrize("op_name", list(OPS))
def test_buffers_of_other_types_are_refused_like_arrays(op_name: str) -> None:
    op = OPS[op_name]
    ints = good_input(op).astype(np.int32)
    for bad in (ints, as_buffer(ints)):
        with pytest.raises(rr.InvalidArgument, match=f"{op.arg} must have dtype float32, got int32"):
            op.call(small_index(), bad)


def strided_2d(a: npt.NDArray[np.float32], how: str) -> npt.NDArray[np.float32]:
    if how == "every other column":
        return np.repeat(a, 2, axis=1)[:, ::2]
    if how == "every other row":
        return np.repeat(a, 2, axis=0)[::2]
    if how == "transposed":
        transposed: npt.NDArray[np.float32] = np.ascontiguousarray(a.T).T
        return transposed
    if how == "fortran order":
        return np.asfortranarray(a)
    if how == "reversed rows":
        return a[::-1]
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how", ["every other column", "every other row", "transposed", "fortran order", "reversed rows"]
)
@pytest.mark.parametrize("op_name", TWO_D)
def test_a_strided_matrix_is_refused(op_name: str, how: str) -> None:
    op = OPS[op_name]
    bad = strided_2d(good_input(op), how)
    assert bad.shape == (3, DIM) and not bad.flags.c_contiguous
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), bad)
    assert f"{op.arg} must be C-contiguous, got a strided view" in str(err.value)
    assert f"numpy.ascontiguousarray({op.arg})" in str(err.value)


@pytest.mark.parametrize("how", ["every other value", "reversed"])
@pytest.mark.parametrize("op_name", ONE_D)
def test_a_strided_vector_is_refused(op_name: str, how: str) -> None:
    op = OPS[op_name]
    v = good_input(op)
    bad = np.repeat(v, 2)[::2] if how == "every other value" else v[::-1]
    assert bad.shape == (DIM,) and not bad.flags.c_contiguous
    with pytest.raises(rr.InvalidArgument, match=f"{op.arg} must be C-contiguous"):
        op.call(small_index(), bad)


@pytest.mark.parametrize("op_name", list(OPS))
def test_a_misaligned_buffer_is_refused(op_name: str) -> None:
    op = OPS[op_name]
    shape = (DIM,) if op.ndim == 1 else (3, DIM)
    raw = np.zeros(4 * int(np.prod(shape)) + 1, dtype=np.uint8)
    bad = np.frombuffer(raw.data, dtype=np.float32, count=int(np.prod(shape)), offset=1).reshape(shape)
    assert not bad.flags.aligned and bad.flags.c_contiguous
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), bad)
    assert f"{op.arg} must be aligned to 4 bytes, got a misaligned buffer" in str(err.value)


@FUZZ
@given(op_name=st.sampled_from(TWO_D), shape=st.sampled_from([(), (DIM,), (0,), (2, 3, DIM), (1, 1, 1, DIM)]))
def test_matrix_arguments_must_be_two_dimensional(op_name: str, shape: Tuple[int, ...]) -> None:
    op = OPS[op_name]
    bad = np.ones(shape, dtype=np.float32)
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), bad)
    shown = f"({shape[0]},)" if len(shape) == 1 else "(" + ", ".join(map(str, shape)) + ")"
    assert f"{op.arg} must be a 2-D array of shape (n, dim), got shape {shown}" in str(err.value)


@FUZZ
@given(op_name=st.sampled_from(ONE_D), shape=st.sampled_from([(), (2, DIM), (DIM, 1), (2, 2, DIM)]))
def test_vector_arguments_must_be_one_dimensional(op_name: str, shape: Tuple[int, ...]) -> None:
    op = OPS[op_name]
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), np.ones(shape, dtype=np.float32))
    shown = "(" + ", ".join(map(str, shape)) + ")"
    assert f"{op.arg} must be a 1-D array of shape (dim,), got shape {shown}" in str(err.value)


@pytest.mark.parametrize("op_name", ["search", "search_async"])
def test_a_single_row_matrix_query_points_to_search_batch(op_name: str) -> None:
    op = OPS[op_name]
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), np.ones((1, DIM), dtype=np.float32))
    msg = str(err.value)
    assert f"got shape (1, {DIM})" in msg
    assert "pass query[0]" in msg and "search_batch" in msg


def test_a_single_row_matrix_given_to_add_points_to_add_batch() -> None:
    with pytest.raises(rr.InvalidArgument) as err:
        small_index().add(10_000, np.ones((1, DIM), dtype=np.float32))
    msg = str(err.value)
    assert f"vector must be a 1-D array of shape (dim,), got shape (1, {DIM})" in msg
    # The hint must name the batch form of *this* operation.
    assert "add_batch" in msg, msg
    assert "search_batch" not in msg, msg


@FUZZ
@given(op_name=st.sampled_from([n for n in OPS if n != "build"]), got=st.integers(1, 40))
def test_a_wrong_dimension_is_a_dimension_mismatch(op_name: str, got: int) -> None:
    assume(got != DIM)
    op = OPS[op_name]
    with pytest.raises(rr.DimensionMismatch) as err:
        op.call(small_index(), good_input(op, dim=got))
    e = err.value
    assert (e.expected, e.got) == (DIM, got)
    assert str(e) == f"{op.arg} has dimension {got}, but the index has dimension {DIM}"
    assert isinstance(e, rr.InvalidArgument) and isinstance(e, ValueError)


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ([[1.0, 2.0], [3.0]], "got list that NumPy cannot convert"),
        ("abc", "got str that NumPy cannot convert"),
        ([["a", "b"]], "got list that NumPy cannot convert"),
        ({"a": 1}, "got dict that NumPy cannot convert"),
        (None, "must be a 2-D array"),
        ([], "got shape (0,)"),
    ],
)
def test_sequences_numpy_cannot_turn_into_a_matrix_are_refused(bad: Any, fragment: str) -> None:
    with pytest.raises(rr.InvalidArgument) as err:
        rr.RabitqPlusIndex.build(bad)
    assert fragment in str(err.value)


# ── non-finite and overflowing values ───────────────────────────────────────

NON_FINITE = {"nan": (np.nan, "NaN"), "inf": (np.inf, "inf"), "-inf": (-np.inf, "-inf")}


@FUZZ
@given(
    op_name=st.sampled_from(TWO_D),
    rows=st.integers(1, 6),
    dim_pos=st.data(),
    value=st.sampled_from(list(NON_FINITE)),
)
def test_a_non_finite_value_in_a_matrix_is_refused_with_its_position(
    op_name: str, rows: int, dim_pos: st.DataObject, value: str
) -> None:
    op = OPS[op_name]
    row = dim_pos.draw(st.integers(0, rows - 1), label="row")
    col = dim_pos.draw(st.integers(0, DIM - 1), label="col")
    bad = good_input(op, rows=rows)
    bad[row, col], shown = NON_FINITE[value]
    idx = small_index()
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(idx, bad)
    assert f"{op.arg} must hold only finite values, got {shown} at {op.arg}[{row}, {col}]" in str(err.value)


@FUZZ
@given(op_name=st.sampled_from(ONE_D), col=st.integers(0, DIM - 1), value=st.sampled_from(list(NON_FINITE)))
def test_a_non_finite_value_in_a_vector_is_refused_with_its_position(op_name: str, col: int, value: str) -> None:
    op = OPS[op_name]
    bad = good_input(op)
    bad[col], shown = NON_FINITE[value]
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), bad)
    assert f"{op.arg} must hold only finite values, got {shown} at {op.arg}[{col}]" in str(err.value)


def test_a_one_row_matrix_reports_the_row_and_the_column() -> None:
    # vectors[3] would mean row 3; for a (1, dim) matrix the place is vectors[0, 3].
    wrong = {}
    for name in TWO_D:
        op = OPS[name]
        bad = good_input(op, rows=1)
        bad[0, 3] = np.nan
        with pytest.raises(rr.InvalidArgument) as err:
            op.call(small_index(), bad)
        if f"got NaN at {op.arg}[0, 3]" not in str(err.value):
            wrong[name] = str(err.value)
    assert wrong == {}


def test_add_names_its_own_argument_in_value_errors() -> None:
    idx = small_index()
    v = good_input(OPS["add"])
    v[3] = np.nan
    with pytest.raises(rr.InvalidArgument) as err:
        idx.add(10_000, v)
    assert str(err.value) == "vector must hold only finite values, got NaN at vector[3]"
    v[3] = 1e19
    with pytest.raises(rr.InvalidArgument) as err:
        idx.add(10_000, v)
    assert str(err.value).startswith("vector has squared L2 norm")


@FUZZ
@given(op_name=st.sampled_from(list(OPS)), data=st.data(), magnitude=st.sampled_from([1e19, -1e19, 3e38, 1e18 * 1.5]))
def test_a_row_whose_squared_norm_overflows_is_refused(op_name: str, data: st.DataObject, magnitude: float) -> None:
    op = OPS[op_name]
    bad = good_input(op, rows=4)
    if op.ndim == 1:
        bad[data.draw(st.integers(0, DIM - 1))] = magnitude
        place = op.arg
    else:
        row = data.draw(st.integers(0, 3))
        bad[row, data.draw(st.integers(0, DIM - 1))] = magnitude
        place = f"{op.arg}[{row}]"
    with pytest.raises(rr.InvalidArgument) as err:
        op.call(small_index(), bad)
    msg = str(err.value)
    assert f"{place} has squared L2 norm" in msg
    assert "above the supported maximum 1e36" in msg


def test_large_but_safe_values_are_accepted() -> None:
    x = np.full((3, DIM), 1e17, dtype=np.float32)  # squared norm 8e34 < 1e36
    x[1] *= -1
    x[2] = 0
    idx = rr.RabitqPlusIndex.build(x)
    hits = idx.search(x[0], 3)
    assert hits[0] == (0, 0.0)
    assert [h.id for h in hits] == [0, 2, 1]
    assert all(np.isfinite(h.score) for h in hits)


# ── k ───────────────────────────────────────────────────────────────────────


@FUZZ
@given(k=st.integers(-(2**70), 2**70), how=st.sampled_from(["search", "search_batch", "search_async"]))
def test_k_must_be_between_1_and_max_k(k: int, how: str) -> None:
    """The one k rule: 1 <= k <= MAX_K; above len the hits are min(k, len), batches padded."""
    idx = small_index()  # 20 vectors
    q = good_input(OPS["search"])
    call: Callable[[], Any] = {
        "search": lambda: idx.search(q, k),
        "search_batch": lambda: idx.search_batch(q[None, :], k),
        "search_async": lambda: resolve(idx.search_async(q, k)),
    }[how]
    if 1 <= k <= 1000:
        result = call()
        if how == "search_batch":
            ids, scores = result
            assert ids.shape == scores.shape == (1, k)
            assert (ids[0, :20] >= 0).all() and (ids[0, 20:] == -1).all()
            assert np.isfinite(scores[0, :20]).all() and (scores[0, 20:] == np.inf).all()
        else:
            assert len(result) == min(k, 20)
        return
    if 1000 < k <= rr.MAX_K:
        if how != "search_batch":  # a batch of one query would allocate k columns
            assert len(call()) == 20
        return
    with pytest.raises(rr.InvalidArgument) as err:
        call()
    msg = str(err.value)
    if -(2**63) <= k < 2**64:
        assert f"k must be between 1 and {rr.MAX_K}, got {k}" in msg
    else:
        assert "k must be between 1 and" in msg


@pytest.mark.parametrize(
    "k, type_name",
    [
        (True, "bool"),
        (False, "bool"),
        (3.0, "float"),
        (np.float32(3), "float32"),
        ("3", "str"),
        (None, "NoneType"),
        ([3], "list"),
    ],
)
def test_k_must_be_an_integer(k: Any, type_name: str) -> None:
    idx = small_index()
    q = good_input(OPS["search"])
    calls: List[Callable[[], object]] = [
        lambda: idx.search(q, k),
        lambda: idx.search_batch(q[None, :], k),
        lambda: resolve(idx.search_async(q, k)),
    ]
    for call in calls:
        with pytest.raises(rr.InvalidArgument) as err:
            call()
        assert str(err.value) == f"k must be an integer, got {type_name}"


def test_searching_an_empty_index_raises_empty_index(build_any: Builder) -> None:
    idx = build_any(np.zeros((0, DIM), dtype=np.float32))
    q = np.ones(DIM, dtype=np.float32)
    calls: Dict[str, Callable[[], object]] = {
        "search": lambda: idx.search(q, 1),
        "search_batch": lambda: idx.search_batch(q[None, :], 1),
        "search_batch with no queries": lambda: idx.search_batch(q[:0].reshape(0, DIM), 1),
        "search_async": lambda: resolve(idx.search_async(q, 1)),
        "search_batch_async": lambda: resolve(idx.search_batch_async(q[None, :], 1)),
    }
    for call in calls.values():
        with pytest.raises(rr.EmptyIndex, match="the index is empty: add vectors before searching"):
            call()
    assert issubclass(rr.EmptyIndex, ValueError)
    with pytest.raises(rr.InvalidArgument, match="k must be between 1 and"):
        idx.search(q, 0)  # a bad k is reported before the emptiness


# ── ids ─────────────────────────────────────────────────────────────────────

RABITQ_MAX_ID = 2**32 - 1
FLAT_MAX_ID = 2**63 - 1


def expected_id_error(ids: List[int], max_id: int) -> str | None:
    """The message the first offending id must produce, or None if all are fine.

    Negative ids are found while converting the ids to unsigned integers, so
    they are reported first; then ids are checked in order for range and for
    repeats."""
    for i, v in enumerate(ids):
        if v < 0:
            return f"ids[{i}] = {v} is negative: ids must be >= 0"
    seen: Set[int] = set()
    for i, v in enumerate(ids):
        if v > max_id:
            return f"ids[{i}] = {v} does not fit this index: ids must be between 0 and {max_id}"
        if v in seen:
            return f"ids[{i}] = {v} appears more than once: ids must be unique"
        seen.add(v)
    return None


def interesting_ids(max_id: int) -> st.SearchStrategy[int]:
    # Python lists of ids stay below 2**63, so that NumPy reads them as int64
    # (ids at and above 2**63 are tested with uint64 arrays below).
    edges = [v for v in [max_id - 1, max_id, max_id + 1, 2**32 - 1, 2**32] if v < 2**63]
    return st.one_of(
        st.integers(-3, 6),
        st.sampled_from(edges),
        st.integers(-(2**40), min(2**62, max_id * 2)),
    )


@FUZZ
@given(
    data=st.data(),
    kind=st.sampled_from(["RabitqIndex", "RabitqPlusIndex", "RabitqAsymIndex", "FlatF32Index", "IvfRabitqIndex"]),
)
def test_build_checks_every_id(data: st.DataObject, kind: str) -> None:
    cls = getattr(rr, kind)
    max_id = FLAT_MAX_ID if cls in (rr.FlatF32Index, rr.IvfRabitqIndex) else RABITQ_MAX_ID
    ids = data.draw(st.lists(interesting_ids(max_id), min_size=1, max_size=6), label="ids")
    x = np.random.default_rng(0).standard_normal((len(ids), DIM)).astype(np.float32)
    expected = expected_id_error(ids, max_id)
    if expected is None:
        idx = cls.build(x, ids)
        assert idx.ids.tolist() == ids
        return
    with pytest.raises(rr.InvalidArgument) as err:
        cls.build(x, ids)
    assert str(err.value) == expected


@pytest.mark.parametrize("cls", [rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex])
def test_rabitq_ids_stop_at_u32_max_and_are_never_truncated(cls: SeededIndexClass) -> None:
    x = np.eye(2, DIM, dtype=np.float32)
    idx = cls.build(x, ids=[0, 2**32 - 1])
    assert idx.ids.tolist() == [0, 2**32 - 1]
    assert idx.search(x[1], 1)[0].id == 2**32 - 1
    for too_big in [2**32, 2**32 + 1, 2**40]:
        with pytest.raises(rr.InvalidArgument, match=f"ids\\[1\\] = {too_big} does not fit this index"):
            cls.build(x, ids=np.array([0, too_big], dtype=np.uint64))
        with pytest.raises(rr.InvalidArgument, match=f"id must be between 0 and 4294967295, got {too_big}"):
            idx.add(too_big, x[0])
    assert 0 not in cls.build(x, ids=[1, 2]) and 2**32 not in idx


def test_flat_ids_go_up_to_i64_max() -> None:
    x = np.eye(3, DIM, dtype=np.float32)
    idx = rr.FlatF32Index.build(x, ids=[0, 2**40, 2**63 - 1])
    assert idx.ids.tolist() == [0, 2**40, 2**63 - 1]
    assert idx.search(x[2], 1)[0].id == 2**63 - 1
    with pytest.raises(rr.InvalidArgument, match="ids\\[1\\] = 9223372036854775808 does not fit this index"):
        rr.FlatF32Index.build(x[:2], ids=np.array([0, 2**63], dtype=np.uint64))
    with pytest.raises(
        rr.InvalidArgument, match="id must be between 0 and 9223372036854775807, got 9223372036854775808"
    ):
        idx.add(2**63, x[0])


def test_an_out_of_range_id_in_a_python_list_is_named_in_the_message() -> None:
    # A list mixing small and huge ints is not an int64 array to NumPy (it
    # becomes float64 or object); the message must still say which id is out
    # of range rather than claim that the ids are not integers.
    x = np.eye(2, DIM, dtype=np.float32)
    wrong = {}
    for too_big in [2**63, 2**64 - 1, 2**64, 2**70]:
        with pytest.raises(rr.InvalidArgument) as err:
            rr.FlatF32Index.build(x, ids=[0, too_big])
        if str(too_big) not in str(err.value):
            wrong[too_big] = str(err.value)
    assert wrong == {}


def test_an_empty_id_list_goes_with_an_empty_batch() -> None:
    empty = np.zeros((0, DIM), dtype=np.float32)
    assert len(rr.RabitqPlusIndex.build(empty, ids=np.array([], dtype=np.int64))) == 0
    assert len(rr.RabitqPlusIndex.build(empty, ids=[])) == 0
    idx = small_index()
    idx.add_batch(empty)
    idx.add_batch(empty, ids=[])
    assert len(idx) == 20


@pytest.mark.parametrize(
    "ids, fragment",
    [
        ([0.0, 1.0, 2.0], "ids must hold integers, got dtype float64"),
        (np.array([0, 1, 2], dtype=np.float32), "ids must hold integers, got dtype float32"),
        ([True, False, True], "ids must hold integers, got dtype bool"),
        (["0", "1", "2"], "ids must hold integers, got dtype <U1"),
        ([0, 1], "ids must be a 1-D sequence of 3 ids (one per vector), got shape (2,)"),
        ([0, 1, 2, 3], "ids must be a 1-D sequence of 3 ids (one per vector), got shape (4,)"),
        ([[0, 1, 2]], "ids must be a 1-D sequence of 3 ids (one per vector), got shape (1, 3)"),
        (7, "ids must be a 1-D sequence of 3 ids (one per vector), got shape ()"),
    ],
)
def test_ids_must_be_one_integer_per_vector(ids: Any, fragment: str) -> None:
    x = np.eye(3, DIM, dtype=np.float32)
    calls: List[Callable[[], object]] = [
        lambda: rr.RabitqPlusIndex.build(x, ids),
        lambda: rr.FlatF32Index(DIM).add_batch(x, ids),
    ]
    for call in calls:
        with pytest.raises(rr.InvalidArgument) as err:
            call()
        assert fragment in str(err.value)


def test_unsigned_and_narrow_integer_id_arrays_are_accepted() -> None:
    x = np.eye(3, DIM, dtype=np.float32)
    for dtype in [np.uint8, np.int16, np.uint32, np.int64, np.uint64]:
        assert rr.RabitqPlusIndex.build(x, np.array([5, 6, 7], dtype=dtype)).ids.tolist() == [5, 6, 7]


@pytest.mark.parametrize(
    "bad_id, fragment",
    [
        (-1, "id must be between 0 and"),
        (True, "id must be an integer, got bool"),
        (1.0, "id must be an integer, got float"),
        ("1", "id must be an integer, got str"),
    ],
)
def test_add_checks_its_id(bad_id: Any, fragment: str) -> None:
    idx = small_index()
    with pytest.raises(rr.InvalidArgument) as err:
        idx.add(bad_id, good_input(OPS["add"]))
    assert fragment in str(err.value)


def test_ids_already_in_the_index_are_refused() -> None:
    idx = small_index()  # ids 0..19
    v = good_input(OPS["add"])
    with pytest.raises(rr.InvalidArgument, match="ids\\[0\\] = 5 is already in the index: ids must be unique"):
        idx.add(5, v)
    with pytest.raises(rr.InvalidArgument, match="ids\\[1\\] = 19 is already in the index"):
        idx.add_batch(np.stack([v, v]), ids=[100, 19])
    assert len(idx) == 20


def test_default_ids_of_add_batch_skip_explicit_ids() -> None:
    idx = rr.RabitqPlusIndex.build(np.eye(2, DIM, dtype=np.float32), ids=[2, 3])
    idx.add_batch(np.ones((2, DIM), dtype=np.float32))  # 2, 3 are held: 4, 5
    assert idx.ids.tolist() == [2, 3, 4, 5]
    idx.add_batch(np.ones((1, DIM), dtype=np.float32))  # 4 is held: from 6
    assert idx.ids.tolist() == [2, 3, 4, 5, 6]


# ── a failed add changes nothing ────────────────────────────────────────────

BAD_BATCHES = [
    "nan",
    "inf",
    "huge norm",
    "duplicate in batch",
    "id already present",
    "id too big",
    "negative id",
    "float ids",
    "too few ids",
    "wrong dim",
    "int32",
    "strided",
]


def bad_batch(kind: str, idx: Any, draw: Any) -> Tuple[npt.NDArray[Any], Any]:
    n = draw(st.integers(1, 5), label="rows")
    x = np.random.default_rng(n).standard_normal((n, idx.dim)).astype(np.float32) + 3
    ids: List[Any] = list(range(1000, 1000 + n))  # ints, made bad below
    where = (draw(st.integers(0, n - 1), label="row"), draw(st.integers(0, idx.dim - 1), label="col"))
    if kind == "nan":
        x[where] = np.nan
    elif kind == "inf":
        x[where] = -np.inf
    elif kind == "huge norm":
        x[where] = 1e19
    elif kind == "duplicate in batch":
        if n == 1:
            x, ids = np.concatenate([x, x]), [1000, 1000]
        else:
            ids[-1] = ids[0]
    elif kind == "id already present":
        ids[where[0]] = int(idx.ids[0])
    elif kind == "id too big":
        ids[where[0]] = 2**63 if isinstance(idx, (rr.FlatF32Index, rr.IvfRabitqIndex)) else 2**32
    elif kind == "negative id":
        ids[where[0]] = -1
    elif kind == "float ids":
        ids = [float(i) for i in ids]
    elif kind == "too few ids":
        ids = ids[:-1]
    elif kind == "wrong dim":
        x = np.ones((n, idx.dim + 1), dtype=np.float32)
    elif kind == "int32":
        x = x.astype(np.int32)
    elif kind == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    return x, np.array(ids, dtype=np.uint64) if kind == "id too big" else ids


@FUZZ
@given(data=st.data(), kind=st.sampled_from(BAD_BATCHES), single=st.booleans())
def test_a_failed_add_leaves_the_index_unchanged(
    build_any: Builder, data: st.DataObject, kind: str, single: bool
) -> None:
    x = np.random.default_rng(11).standard_normal((30, DIM)).astype(np.float32)
    idx, twin = build_any(x), build_any(x)
    before = snapshot(idx)
    vectors, ids = bad_batch(kind, idx, data.draw)
    with pytest.raises(rr.InvalidArgument):
        if single and len(vectors) == 1 and len(ids) == 1:
            idx.add(ids[0], vectors[0])
        else:
            idx.add_batch(vectors, ids)
    assert snapshot(idx) == before
    assert idx == twin


# ── index parameters ────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    "dim, fragment", [(0, "got 0"), (-1, "got -1"), (8193, "got 8193"), (2**64, "got 18446744073709551616")]
)
@pytest.mark.parametrize(
    "cls", [rr.FlatF32Index, rr.RabitqIndex, rr.RabitqPlusIndex, rr.RabitqAsymIndex, rr.IvfRabitqIndex]
)
def test_dim_must_be_between_1_and_8192(cls: IndexClass, dim: int, fragment: str) -> None:
    with pytest.raises(rr.InvalidArgument) as err:
        cls(dim)
    assert "dim must be between 1 and 8192" in str(err.value) and fragment in str(err.value)


def test_the_largest_dims_are_accepted_where_cheap() -> None:
    assert rr.FlatF32Index(8192).dim == 8192
    assert rr.RabitqPlusIndex(8192, rotation="hadamard").dim == 8192
    assert rr.RabitqIndex(3, rotation="hadamard").dim == 3  # not a power of two


def test_dim_zero_from_an_n_by_0_matrix_is_refused() -> None:
    with pytest.raises(rr.InvalidArgument, match="dim must be between 1 and 8192, got 0"):
        rr.RabitqPlusIndex.build(np.zeros((3, 0), dtype=np.float32))


@pytest.mark.parametrize("cls", [rr.RabitqIndex, rr.RabitqPlusIndex, rr.IvfRabitqIndex])
def test_haar_rotation_stops_at_dim_2048_and_suggests_hadamard(
    cls: Type[Union[rr.RabitqIndex, rr.RabitqPlusIndex, rr.IvfRabitqIndex]],
) -> None:
    for dim in [2049, 8192]:
        with pytest.raises(rr.InvalidArgument) as err:
            cls(dim, rotation="haar")
        msg = str(err.value)
        assert "dim <= 2048" in msg and f"got dim {dim}" in msg and 'rotation="hadamard"' in msg
    with pytest.raises(rr.InvalidArgument, match="dim <= 2048"):
        cls.build(np.zeros((1, 2049), dtype=np.float32), rotation="haar")


@pytest.mark.parametrize("dim", ["8", 8.0, True, None])
def test_dim_must_be_an_integer(dim: Any) -> None:
    with pytest.raises(rr.InvalidArgument, match="dim must be an integer"):
        rr.RabitqPlusIndex(dim)


@pytest.mark.parametrize("rotation", ["HAAR", "", "hadamard ", "random"])
def test_rotation_must_be_haar_or_hadamard(rotation: str) -> None:
    with pytest.raises(rr.InvalidArgument) as err:
        rr.RabitqPlusIndex(DIM, rotation=rotation)
    assert str(err.value) == f'rotation must be "haar" or "hadamard", got "{rotation}"'


def test_asym_supports_only_the_haar_rotation() -> None:
    with pytest.raises(rr.InvalidArgument, match='RabitqAsymIndex supports only rotation="haar"'):
        rr.RabitqAsymIndex(DIM, rotation="hadamard")
    assert rr.RabitqAsymIndex(DIM, rotation="haar").rotation == "haar"


@FUZZ
@given(seed=st.one_of(st.integers(-(2**65), 2**65), st.sampled_from([0, 2**64 - 1, 2**64, -1])))
def test_seed_is_any_u64(seed: int) -> None:
    if 0 <= seed < 2**64:
        assert rr.RabitqIndex(DIM, seed=seed).seed == seed
        return
    with pytest.raises(rr.InvalidArgument) as err:
        rr.RabitqIndex(DIM, seed=seed)
    assert str(err.value) == f"seed must be between 0 and {2**64 - 1}, got {seed}"


@pytest.mark.parametrize("seed", [1.0, True, "1"])
def test_seed_must_be_an_integer(seed: Any) -> None:
    with pytest.raises(rr.InvalidArgument, match="seed must be an integer"):
        rr.RabitqPlusIndex(DIM, seed=seed)


@FUZZ
@given(
    rf=st.one_of(st.integers(-3, 1030), st.sampled_from([0, 1, 1024, 1025, 2**64])),
    where=st.sampled_from(["constructor", "build", "setter", "search", "search_batch"]),
    cls=st.sampled_from([rr.RabitqPlusIndex, rr.RabitqAsymIndex]),
)
def test_rerank_factor_is_between_1_and_1024(
    rf: int, where: str, cls: Type[Union[rr.RabitqPlusIndex, rr.RabitqAsymIndex]]
) -> None:
    x = np.random.default_rng(0).standard_normal((30, DIM)).astype(np.float32)

    def apply() -> Any:
        if where == "constructor":
            return cls(DIM, rerank_factor=rf)
        if where == "build":
            return cls.build(x, rerank_factor=rf)
        idx = cls.build(x, rerank_factor=2)
        if where == "setter":
            idx.rerank_factor = rf
            return idx
        if where == "search":
            return idx.search(x[0], 3, rerank_factor=rf)
        return idx.search_batch(x[:2], 3, rerank_factor=rf)

    ok = 1 <= rf <= 1024 and not (cls is rr.RabitqAsymIndex and where == "setter" and rf == 1)
    if ok:
        apply()
        return
    with pytest.raises(rr.InvalidArgument) as err:
        apply()
    if not 1 <= rf <= 1024:
        assert str(err.value) == f"rerank_factor must be between 1 and 1024, got {rf}"


@pytest.mark.parametrize("cls", [rr.FlatF32Index, rr.RabitqIndex])
def test_kinds_without_rerank_refuse_a_rerank_factor(cls: Any) -> None:
    x = np.random.default_rng(0).standard_normal((10, DIM)).astype(np.float32)
    idx = cls.build(x)
    name = cls.__name__
    with pytest.raises(rr.InvalidArgument, match=f"{name} does not rerank and takes no rerank_factor"):
        cls.build(x, rerank_factor=2)
    with pytest.raises(rr.InvalidArgument, match=f"{name} does not rerank and takes no rerank_factor"):
        cls(DIM, rerank_factor=2)
    call: Callable[[], object]
    for call in [
        lambda: idx.search(x[0], 2, rerank_factor=2),
        lambda: idx.search_batch(x, 2, rerank_factor=2),
        lambda: resolve(idx.search_async(x[0], 2, rerank_factor=2)),
        lambda: resolve(idx.search_batch_async(x, 2, rerank_factor=2)),
    ]:
        with pytest.raises(
            rr.InvalidArgument, match=f"{name} does not rerank; rerank_factor applies to RabitqPlusIndex"
        ):
            call()
    with pytest.raises(rr.InvalidArgument, match=f"{name} has no rerank_factor to set"):
        idx.rerank_factor = 2
    # None means "not given", so it is accepted everywhere.
    assert idx.search(x[0], 2, rerank_factor=None) == idx.search(x[0], 2)


def test_flat_index_takes_no_seed_or_rotation() -> None:
    x = np.eye(2, DIM, dtype=np.float32)
    for kwargs in cast(
        List[Dict[str, Any]], [{"seed": 1}, {"rotation": "haar"}, {"rotation": "hadamard"}, {"seed": 0}]
    ):
        with pytest.raises(rr.InvalidArgument, match="FlatF32Index is exact and takes no seed or rotation"):
            rr.FlatF32Index.build(x, **kwargs)
        with pytest.raises(rr.InvalidArgument, match="FlatF32Index is exact and takes no seed or rotation"):
            rr.FlatF32Index(DIM, **kwargs)
    # The stub types FlatF32Index's ``seed``/``rerank_factor``/``rotation`` as None: the only value taken.
    assert rr.FlatF32Index.build(x, seed=None, rerank_factor=None, rotation=None) == rr.FlatF32Index.build(x)


def test_a_negative_id_lookup_is_not_found_like_any_missing_key() -> None:
    idx = rr.FlatF32Index.build(np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(rr.NotFound) as err:
        idx[-1]
    assert err.value.key == -1
    assert "id -1 is not in the index" in str(err.value)
    assert -1 not in idx


def test_a_rotation_that_is_not_a_string_is_an_invalid_argument() -> None:
    with pytest.raises(rr.InvalidArgument, match=r'rotation must be "haar" or "hadamard", got 1'):
        rotation: Any = 1
        rr.RabitqPlusIndex(4, rotation=rotation)
    with pytest.raises(rr.InvalidArgument, match='got "HAAR"'):
        rr.RabitqIndex(4, rotation="HAAR")


def test_a_rotation_with_a_lone_surrogate_is_an_invalid_argument() -> None:
    for cls in (rr.RabitqPlusIndex, rr.IvfRabitqIndex):
        with pytest.raises(rr.InvalidArgument, match="rotation must be"):
            cls(4, rotation="haar\ud800")
        with pytest.raises(rr.InvalidArgument, match="rotation must be"):
            cls.build(np.ones((2, 4), dtype=np.float32), rotation="\ud800")
