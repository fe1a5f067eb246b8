"""Reading the stored vectors back: ``idx[id]``, iteration, ``idx.ids`` and
``numpy.asarray(idx)``.

Views are read-only and share the index's buffer without a copy. The buffer
is copy-on-write: a later add copies it first, so a view taken earlier keeps
its contents and shape, and stays valid after the index is gone.
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, List, Tuple

import numpy as np
import numpy.typing as npt
import pytest

import ruvector_rabitq as rr

if TYPE_CHECKING:
    from conftest import Builder, Data


def test_getitem_returns_a_read_only_float32_view_of_the_row(data: Data, build_with_vectors: Builder) -> None:
    x, _ = data
    ids = np.arange(len(x)) * 2 + 1
    idx = build_with_vectors(x, ids)
    v = idx[21]  # row 10
    assert (v.dtype, v.shape) == (np.dtype(np.float32), (x.shape[1],))
    np.testing.assert_array_equal(v, x[10])
    assert not v.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        v[0] = 1.0
    assert idx[np.int64(21)] is not v and np.array_equal(idx[np.int64(21)], v)


def test_getitem_of_a_missing_id_raises_not_found_with_the_key(data: Data, build_with_vectors: Builder) -> None:
    idx = build_with_vectors(data[0])
    for missing in [400, 10**6, 2**32 - 1]:
        with pytest.raises(rr.NotFound) as err:
            idx[missing]
        assert err.value.key == missing
        assert str(err.value) == f"id {missing} is not in the index"
        assert isinstance(err.value, LookupError) and not isinstance(err.value, KeyError)


def test_kinds_without_vectors_cannot_give_them_back(data: Data, build_codes_only: Builder) -> None:
    idx = build_codes_only(data[0])
    assert idx.keeps_vectors is False
    with pytest.raises(rr.NotFound) as err:
        idx[3]
    assert err.value.key == 3
    assert "keeps only 1-bit codes" in str(err.value) and "RabitqPlusIndex" in str(err.value)
    with pytest.raises(rr.InvalidArgument, match=r"cannot iterate over vectors; iterate over idx\.ids"):
        iter(idx)
    with pytest.raises(rr.InvalidArgument, match="has no array form"):
        np.asarray(idx)
    # ids are always available
    np.testing.assert_array_equal(idx.ids, np.arange(len(data[0])))


def test_iteration_yields_id_and_vector_pairs_in_insertion_order(data: Data, build_with_vectors: Builder) -> None:
    x, _ = data
    ids = np.arange(len(x))[::-1] * 5
    idx = build_with_vectors(x, ids.copy())
    pairs = list(idx)
    assert [i for i, _ in pairs] == ids.tolist()
    assert all(type(i) is int for i, _ in pairs)
    np.testing.assert_array_equal(np.stack([v for _, v in pairs]), x)
    assert all(not v.flags.writeable for _, v in pairs)
    assert dict(iter(idx)).keys() == set(ids.tolist())


def test_iteration_is_over_a_snapshot(data: Data) -> None:
    x, _ = data
    idx = rr.RabitqPlusIndex.build(x[:10])
    seen: List[Tuple[int, npt.NDArray[np.float32]]] = []
    for i, (id_, vec) in enumerate(idx):
        if i == 0:
            idx.add_batch(x[10:20])  # does not extend the running iteration
        seen.append((id_, vec.copy()))
    assert [s[0] for s in seen] == list(range(10))
    np.testing.assert_array_equal(np.stack([s[1] for s in seen]), x[:10])
    assert len(idx) == 20 and len(list(idx)) == 20


def test_ids_is_an_int64_copy(data: Data, build_any: Builder) -> None:
    x, _ = data
    idx = build_any(x)
    ids = idx.ids
    assert ids.dtype == np.int64 and ids.shape == (len(x),)
    ids[:] = -1
    np.testing.assert_array_equal(idx.ids, np.arange(len(x)))


def test_asarray_is_the_whole_matrix_without_a_copy(data: Data, build_with_vectors: Builder) -> None:
    x, _ = data
    idx = build_with_vectors(x)
    a = np.asarray(idx)
    assert (a.shape, a.dtype) == (x.shape, np.dtype(np.float32))
    np.testing.assert_array_equal(a, x)
    assert not a.flags.writeable
    assert a.base is not None, "a view, not an owning array"
    assert np.shares_memory(a, np.asarray(idx))
    assert np.shares_memory(a, idx[123])
    assert np.shares_memory(np.asarray(idx), np.asarray(idx))
    with pytest.raises(ValueError, match="read-only"):
        a[0, 0] = 1.0


def test_asarray_with_another_dtype_or_copy_true_is_a_copy(data: Data) -> None:
    x, _ = data
    idx = rr.RabitqPlusIndex.build(x)
    as64 = np.asarray(idx, dtype=np.float64)
    assert as64.dtype == np.float64
    np.testing.assert_array_equal(as64, x.astype(np.float64))
    assert not np.shares_memory(as64, np.asarray(idx))
    copied = np.array(idx, copy=True)
    assert copied.dtype == np.float32 and copied.flags.writeable
    assert not np.shares_memory(copied, np.asarray(idx))
    same = np.asarray(idx, dtype=np.float32)
    assert np.shares_memory(same, np.asarray(idx))
    with pytest.raises(ValueError, match="copy=False"):
        np.asarray(idx, dtype=np.float64, copy=False)


def test_asarray_of_an_empty_index_has_zero_rows() -> None:
    a = np.asarray(rr.FlatF32Index(5))
    assert (a.shape, a.dtype) == ((0, 5), np.dtype(np.float32))


def test_a_view_taken_before_an_add_keeps_its_contents_and_shape(data: Data) -> None:
    x, _ = data
    idx = rr.RabitqPlusIndex.build(x[:100])
    before = np.asarray(idx)
    row = idx[7]
    idx.add_batch(x[100:])
    idx.add(5000, x[0] + 1)
    assert before.shape == (100, x.shape[1])
    np.testing.assert_array_equal(before, x[:100])
    np.testing.assert_array_equal(row, x[7])
    after = np.asarray(idx)
    assert after.shape == (len(x) + 1, x.shape[1])
    np.testing.assert_array_equal(after[:-1], x)
    np.testing.assert_array_equal(after[-1], x[0] + 1)
    np.testing.assert_array_equal(idx[5000], x[0] + 1)


def test_views_outlive_the_index(data: Data) -> None:
    x, _ = data
    idx = rr.RabitqPlusIndex.build(x)
    whole, row = np.asarray(idx), idx[399]
    pairs = iter(idx)
    del idx
    gc.collect()
    np.testing.assert_array_equal(whole, x)
    np.testing.assert_array_equal(row, x[399])
    assert next(pairs)[0] == 0


def test_membership_never_raises(data: Data, build_any: Builder) -> None:
    idx = build_any(data[0])
    assert 0 in idx and np.int32(399) in idx
    for other in [400, -1, 2**64, 2**70, "0", 0.0, None, True]:
        assert (other in idx) is False, other
