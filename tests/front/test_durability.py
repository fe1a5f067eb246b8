"""Durability of a collection directory: processes killed with SIGKILL at
random points of add/upsert/delete/save lose at most the call in flight,
and the directory always reopens consistent (store and index agree); a
second writer is refused; a damaged or missing index file is rebuilt."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
from front_helpers import HashEmbedder

import ruvector
from ruvector.collection import batch_hits, single_hits
from ruvector_common.errors import PersistError

DIM = 16

# One deterministic sequence of operations: op(i) depends only on i and on
# the state the previous ops left. The child runs them; the test replays
# them in pure Python to know the state after each.
OPS = textwrap.dedent(
    """
    import random
    import numpy as np

    DIM = 16

    def vector(seed):
        return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)

    def op(i, state):
        # -> (name, args); state: {id: (text, metadata, vector seed)}
        r = random.Random(i)
        kind = i % 6
        keys = sorted(state)
        if kind in (0, 1) or len(keys) < 10:
            ids = [f"d{i}-{j}" for j in range(40)]
            return "add", ids
        if kind == 2:
            return "upsert", r.sample(keys, 5)
        if kind == 3:
            return "delete", r.sample(keys, 8)
        if kind == 4:
            return "delete_where", r.randrange(6)
        return "save", None

    def apply(i, state):
        name, arg = op(i, state)
        if name in ("add", "upsert"):
            for j, key in enumerate(arg):
                state[key] = (f"text {key} {i}", {"op": i, "g": j % 6}, i * 1000 + j)
        elif name == "delete":
            for key in arg:
                state.pop(key, None)
        elif name == "delete_where":
            for key in [k for k, v in state.items() if v[1]["g"] == arg]:
                del state[key]
        return name, arg
    """
)

CHILD = textwrap.dedent(
    """
    import sys, os
    sys.path.insert(0, sys.argv[3])
    from ops import op, apply, vector
    import numpy as np
    import ruvector

    path, start = sys.argv[1], int(sys.argv[2])
    coll = ruvector.Collection.open(path, embedder=None, metric="l2", index="flat")
    state = {r.id: (r.text, r.metadata, None) for r in coll.get()}
    ack = open(os.path.join(sys.argv[3], "ack"), "a")
    i = start
    while True:
        name, arg = op(i, state)
        before = dict(state)
        apply(i, state)
        if name in ("add", "upsert"):
            keys = arg
            vectors = np.stack([vector(state[k][2]) for k in keys])
            texts = [state[k][0] for k in keys]
            getattr(coll, name)(texts, ids=keys, metadata=[state[k][1] for k in keys], vectors=vectors)
        elif name == "delete":
            coll.delete(arg)
        elif name == "delete_where":
            coll.delete(where={"g": arg})
        else:
            coll.save()
        ack.write(f"{i}\\n")
        ack.flush()
        i += 1
    """
)


def _replay(ops: Any, upto: int) -> List[Dict[str, Tuple[Any, ...]]]:
    """States after 0..upto ops (index i = state after i ops)."""
    state: Dict[str, Tuple[Any, ...]] = {}
    states = [dict(state)]
    for i in range(upto):
        ops.apply(i, state)
        states.append(dict(state))
    return states


def _snapshot(coll: Any) -> Dict[str, Tuple[Any, ...]]:
    return {r.id: (r.text, r.metadata) for r in coll.get()}


def _check_index_agrees(coll: Any, ops: Any, state: Dict[str, Tuple[Any, ...]]) -> None:
    records = coll.get(include_vectors=True)
    if not records:
        assert coll.query(np.ones(DIM, np.float32), k=1) == []
        return
    for record in records:  # stored vectors are the ones the op sequence wrote
        np.testing.assert_array_equal(record.vector, ops.vector(state[record.id][2]))
    matrix = np.stack([r.vector for r in records])
    hits = coll.query(matrix, k=1)
    assert [row[0].id for row in hits] == [r.id for r in records]
    assert all(row[0].score < 1e-4 for row in hits)


def test_sigkill_loop_loses_at_most_the_call_in_flight(tmp_path: pathlib.Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "ops.py").write_text(OPS)
    (work / "child.py").write_text(CHILD)
    sys.path.insert(0, str(work))
    try:
        import ops  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(work))
    path = tmp_path / "coll"
    rng = random.Random(20241201)
    done = 0  # ops reflected by the store so far
    kills = 0
    for _ in range(14):
        (work / "ack").write_text("")
        child = subprocess.Popen([sys.executable, str(work / "child.py"), str(path), str(done), str(work)])
        deadline = time.monotonic() + 60
        # Wait until the child has the collection open, then kill it at a random moment.
        while not (work / "ack").read_text() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        assert child.returncode == -signal.SIGKILL, "the child stopped on its own"
        kills += 1
        acked = [int(x) for x in (work / "ack").read_text().split()]
        last = acked[-1] + 1 if acked else done
        states = _replay(ops, last + 1)
        coll = ruvector.Collection.open(path, embedder=None)
        got = _snapshot(coll)
        # Every acknowledged call is there; the one in flight is all there or not at all.
        candidates = {last: states[last], last + 1: states[last + 1]}
        matching = [n for n, s in candidates.items() if {k: (v[0], v[1]) for k, v in s.items()} == got]
        assert matching, f"state after kill {kills} is neither after op {last - 1} nor after op {last}"
        done = max(matching)
        _check_index_agrees(coll, ops, states[done])
        coll.close()
    assert done > 14


def test_a_killed_writer_releases_the_directory(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c"
    ruvector.Collection.open(path, embedder=None, dim=4).close()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, ruvector, time; c = ruvector.Collection.open(sys.argv[1]); print('open', flush=True); "
            "time.sleep(60)",
            str(path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "open"
        with pytest.raises(PersistError, match=f"writer pid {child.pid}"):
            ruvector.Collection.open(path)
        with pytest.raises(PersistError):
            ruvector.Collection.open(path, read_only=True)
    finally:
        child.kill()
        child.wait()
    ruvector.Collection.open(path).close()


def _filled(path: pathlib.Path) -> Tuple[Any, np.ndarray[Any, Any]]:
    coll = ruvector.Collection.open(path, embedder=None, metric="l2")
    vectors = np.random.default_rng(1).standard_normal((200, DIM)).astype(np.float32)
    coll.add(vectors=vectors, metadata=[{"i": i} for i in range(200)])
    return coll, vectors


def _index_files(path: pathlib.Path) -> List[pathlib.Path]:
    return sorted(p for p in path.iterdir() if p.name.startswith("index."))


def _texts_filled(path: pathlib.Path) -> Tuple[Any, List[str]]:
    texts = [f"document number {i} about topic {i % 7}" for i in range(120)]
    coll = ruvector.Collection.open(path, embedder=HashEmbedder(DIM), metric="cosine")
    coll.add(texts, metadata=[{"i": i} for i in range(120)])
    return coll, texts


def test_damaged_index_file_is_rebuilt_by_re_embedding_the_texts(tmp_path: pathlib.Path, caplog: Any) -> None:
    path = tmp_path / "c"
    coll, texts = _texts_filled(path)
    before = coll.get(include_vectors=True)
    coll.close()
    [index_file] = _index_files(path)
    data = index_file.read_bytes()
    index_file.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="ruvector.collection"):
        again = ruvector.Collection.open(path, embedder=HashEmbedder(DIM))
    assert "rebuilding the index" in caplog.text and "truncated" in caplog.text
    hits = again.query(texts[:20], k=1)
    assert [row[0].id for row in hits] == list(range(20))
    after = again.get(include_vectors=True)
    assert [r.id for r in after] == [r.id for r in before]
    for old, new in zip(before, after):
        assert old.vector is not None and new.vector is not None
        np.testing.assert_allclose(new.vector, old.vector, rtol=1e-5, atol=1e-6)
    again.close()
    # ... and saved again: the next open maps it without a warning.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ruvector.collection"):
        ruvector.Collection.open(path, embedder=HashEmbedder(DIM)).close()
    assert caplog.text == ""


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_lost_index_file_without_texts_is_a_clear_error(tmp_path: pathlib.Path, damage: str) -> None:
    # The index file is the one copy of saved vectors: vectors with no text
    # to re-embed cannot come back, and opening says so instead of guessing.
    path = tmp_path / "c"
    coll, _ = _filled(path)
    coll.close()
    [index_file] = _index_files(path)
    if damage == "delete":
        index_file.unlink()
    else:
        index_file.write_bytes(index_file.read_bytes()[:100])
    with pytest.raises(PersistError, match="only copy of 200 document vectors") as caught:
        ruvector.Collection.open(path)
    assert index_file.name in str(caught.value)
    # Nothing was changed by the failed open: the error repeats, the store is intact.
    with pytest.raises(PersistError, match="only copy"):
        ruvector.Collection.open(path)


def test_killed_save_leftovers_are_removed(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c"
    coll, vectors = _filled(path)
    coll.close()
    [kept] = _index_files(path)
    leftover = path / ".index.7.rbpx.tmp.123.0.456"
    leftover.write_bytes(b"partial")
    orphan = path / "index.99999.rbpx"
    orphan.write_bytes(b"never recorded")
    again = ruvector.Collection.open(path)
    assert [row[0].id for row in batch_hits(again.query(vectors[:10], k=1))] == list(range(10))
    assert not leftover.exists() and not orphan.exists()
    assert _index_files(path) == [kept]
    again.close()


def _pending(path: pathlib.Path) -> int:
    """Vectors the store holds (those not yet in the saved index file)."""
    import sqlite3

    conn = sqlite3.connect(path / "ruvector.sqlite")
    try:
        return int(conn.execute("SELECT count(*) FROM pending").fetchone()[0])
    finally:
        conn.close()


def _free_pages(path: pathlib.Path) -> int:
    import sqlite3

    conn = sqlite3.connect(path / "ruvector.sqlite")
    try:
        return int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    finally:
        conn.close()


def test_each_vector_is_stored_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c"
    coll, vectors = _filled(path)
    coll.save()
    assert _pending(path) == 0  # all 200 live in the index file only
    coll.add(vectors=vectors[:5] * 3, ids=[900, 901, 902, 903, 904])
    coll.upsert(vectors=vectors[:1] * 5, ids=[7])
    coll.delete([901])
    assert _pending(path) == 5  # changed since the save: kept by the store until the next one
    np.testing.assert_array_equal(coll.get([7], include_vectors=True)[0].vector, vectors[0] * 5)
    np.testing.assert_array_equal(coll.get([8], include_vectors=True)[0].vector, vectors[8])
    coll.close()
    assert _pending(path) == 0
    assert _free_pages(path) == 0  # the pages the vectors took went back to the file system
    [index_file] = _index_files(path)
    # The store holds ids and metadata; the vectors (204 x 16 float32) are in
    # the index file, compressed: their three low byte planes (near-random
    # mantissa bits) alone take 204 x 16 x 3 bytes.
    raw = index_file.read_bytes()
    assert raw[:8] == b"rvpx0001" and raw[35] & 16  # saved with compress=True
    assert 204 * DIM * 3 <= len(raw) < 204 * DIM * 4 + 1024
    again = ruvector.Collection.open(path, read_only=True)
    assert not _loaded(again)  # not mapped by the open
    np.testing.assert_array_equal(again.get([903], include_vectors=True)[0].vector, vectors[3] * 3)
    adapter = again._core.adapter  # pyright: ignore[reportPrivateUsage]
    assert adapter is not None and adapter.index is not None
    assert adapter.index.mapped is False  # compressed: read and decoded, not mapped
    assert single_hits(again.query(np.asarray(vectors[3] * 3), k=1))[0].id == 903
    again.close()


def test_unsaved_changes_are_replayed_on_open(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c"
    coll, vectors = _filled(path)
    coll.save()
    saved = _index_files(path)
    coll.add(vectors=vectors[:5] + 10, ids=[500, 501, 502, 503, 504])
    coll.delete([0, 1])
    # Simulate a process that dies without closing: drop the object's state, keep the files.
    coll._core.close = lambda: None  # type: ignore[method-assign,unused-ignore]
    coll._finalizer.detach()
    coll._core.conn.close()
    coll._core.release()
    assert _index_files(path) == saved  # the index file is behind the store
    again = ruvector.Collection.open(path)
    assert again.count() == 203
    assert single_hits(again.query(np.asarray(vectors[2] + 10), k=1))[0].id == 502
    assert 0 not in [h.id for h in single_hits(again.query(np.asarray(vectors[0]), k=3))]
    again.close()


def test_state_of_a_legacy_open_is_reported(tmp_path: pathlib.Path) -> None:
    coll, _ = _filled(tmp_path / "c")
    info = coll.describe()
    assert info["path"] == str(tmp_path / "c") and info["count"] == 200
    coll.close()
    assert json.loads(json.dumps(info)) == info


def test_a_big_call_writes_its_vectors_once_into_the_index_file(tmp_path: pathlib.Path) -> None:
    # A call that saves the index anyway (here: the one that makes the index
    # IVF) writes the file first and records it in the same commit, so its
    # vectors never pass through the store.
    path = tmp_path / "c"
    coll = ruvector.Collection.open(path, embedder=None, metric="l2")
    vectors = np.random.default_rng(4).standard_normal((6_000, DIM)).astype(np.float32)
    coll.add(vectors=vectors[:10])
    assert _pending(path) == 10
    coll.add(vectors=vectors[10:])
    assert coll.index_kind == "IvfRabitqIndex"
    assert _pending(path) == 0 and _free_pages(path) == 0
    [index_file] = _index_files(path)
    assert index_file.stat().st_size >= 6_000 * DIM * 4
    np.testing.assert_array_equal(coll.get([5_000], include_vectors=True)[0].vector, vectors[5_000])
    coll.close()
    assert _index_files(path) == [index_file]  # nothing left to save on close


def test_a_big_call_that_fails_before_its_commit_leaves_the_store_as_it_was(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c"
    coll = ruvector.Collection.open(path, embedder=None, metric="l2", index="flat")
    vectors = np.random.default_rng(5).standard_normal((10_050, DIM)).astype(np.float32)
    coll.add(vectors=vectors[:50])
    coll.save()
    [before] = _index_files(path)
    core = coll._core  # pyright: ignore[reportPrivateUsage]

    def fail(gen: int, name: Any) -> bool:
        raise OSError("disk full (simulated) after the index file was written")

    core.record_saved = fail  # type: ignore[method-assign]
    with pytest.raises(OSError, match="simulated"):
        coll.add(vectors=vectors[50:])  # 10,000 vectors: saved within the call
    del core.record_saved
    assert _index_files(path) == [before]  # the unrecorded file is gone
    assert coll.count() == 50 and _pending(path) == 0
    assert single_hits(coll.query(np.asarray(vectors[7]), k=1))[0].id == 7
    coll.close()
    again = ruvector.Collection.open(path)
    assert again.count() == 50 and single_hits(again.query(np.asarray(vectors[49]), k=1))[0].id == 49
    again.close()


def test_a_big_first_call_leaves_no_free_pages_and_unit_norms_take_no_bytes(tmp_path: pathlib.Path) -> None:
    # A call big enough to save the index in its own commit logs its changes
    # and clears them in that commit: the pages the log took go back to the
    # file system too. A cosine store keeps each vector's norm to give it
    # back as given; a norm that is 1 in float32 is stored as exactly 1.0.
    import sqlite3

    path = tmp_path / "c"
    coll = ruvector.Collection.open(path, embedder=None, index="flat")
    vectors = np.random.default_rng(6).standard_normal((12_000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[:3] *= np.float32(3.0)
    coll.add(vectors=vectors, metadata=[{"i": i} for i in range(12_000)])
    assert _pending(path) == 0 and _free_pages(path) == 0
    conn = sqlite3.connect(path / "ruvector.sqlite")
    try:
        norms = dict(conn.execute("SELECT doc, norm FROM docs").fetchall())
    finally:
        conn.close()
    assert [round(norms[d], 5) for d in range(3)] == [3.0, 3.0, 3.0]
    unit = [d for d in range(3, 12_000) if np.float32(np.linalg.norm(vectors[d].astype(np.float64))) == 1]
    assert len(unit) > 6_000 and all(norms[d] == 1.0 for d in unit)
    got = np.stack([np.asarray(r.vector) for r in coll.get(list(range(12_000)), include_vectors=True)])
    np.testing.assert_allclose(got, vectors, rtol=1e-6, atol=1e-7)
    coll.close()


def _loaded(coll: Any) -> bool:
    """Whether the collection has its index in memory (mapped or built)."""
    core = coll._core  # pyright: ignore[reportPrivateUsage]
    return core.adapter is not None and not core.index_deferred


def _flip_a_byte(index_file: pathlib.Path) -> None:
    """Damage that keeps the size: one byte in the middle changed."""
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))


def test_open_defers_mapping_the_index_until_a_call_needs_it(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c"
    coll, vectors = _filled(path)
    coll.save()
    expected = [[h.id for h in row] for row in batch_hits(coll.query(vectors[:20], k=5, where={"i": {"$lt": 150}}))]
    coll.close()
    again = ruvector.Collection.open(path, embedder=None)
    assert not _loaded(again)
    # Reading documents needs no index.
    assert len(again) == 200 and again.count({"i": {"$lt": 150}}) == 150
    assert again.get([7])[0].metadata == {"i": 7}
    assert not _loaded(again)
    got = [[h.id for h in row] for row in batch_hits(again.query(vectors[:20], k=5, where={"i": {"$lt": 150}}))]
    assert got == expected  # answers exactly as before
    assert _loaded(again)
    # A write call on a deferred open loads the index first, then writes.
    again.close()
    again = ruvector.Collection.open(path, embedder=None)
    again.add(vectors=vectors[:1] * 2, ids=[500])
    assert single_hits(again.query(np.asarray(vectors[0] * 2), k=1))[0].id == 500
    assert [h.id for h in single_hits(again.query(np.asarray(vectors[1]), k=1))] == [1]
    again.close()


def test_a_store_without_the_saved_size_loads_at_open(tmp_path: pathlib.Path) -> None:
    # Index states written before the size was recorded: mapped at open, as before.
    import sqlite3

    path = tmp_path / "c"
    coll, vectors = _filled(path)
    coll.save()
    coll.close()
    conn = sqlite3.connect(path / "ruvector.sqlite")
    state = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'index_state'").fetchone()[0])
    assert state["bytes"] == _index_files(path)[0].stat().st_size
    del state["bytes"]
    conn.execute("UPDATE meta SET value = ? WHERE key = 'index_state'", (json.dumps(state),))
    conn.commit()
    conn.close()
    again = ruvector.Collection.open(path, embedder=None)
    assert _loaded(again)
    assert single_hits(again.query(np.asarray(vectors[3]), k=1))[0].id == 3
    again.close()


def test_same_size_damage_is_found_by_the_first_call_that_needs_the_index(tmp_path: pathlib.Path, caplog: Any) -> None:
    path = tmp_path / "c"
    coll, texts = _texts_filled(path)
    before = [[h.id for h in row] for row in batch_hits(coll.query(texts[:20], k=1))]
    coll.close()
    [index_file] = _index_files(path)
    _flip_a_byte(index_file)
    with caplog.at_level(logging.WARNING, logger="ruvector.collection"):
        again = ruvector.Collection.open(path, embedder=HashEmbedder(DIM))
        assert caplog.text == ""  # the open did not read the file
        hits = [[h.id for h in row] for row in batch_hits(again.query(texts[:20], k=1))]
    assert "rebuilding the index" in caplog.text and "CRC" in caplog.text
    assert hits == before == [[i] for i in range(20)]
    again.close()
    # Without texts to re-embed, the first call that needs the index says so;
    # calls that do not need it still work, and a write changes nothing.
    path2 = tmp_path / "d"
    coll2, vectors = _filled(path2)
    coll2.close()
    [index_file] = _index_files(path2)
    _flip_a_byte(index_file)
    third = ruvector.Collection.open(path2)
    assert third.count() == 200
    with pytest.raises(PersistError, match="only copy of 200 document vectors"):
        third.query(vectors[0], k=1)
    with pytest.raises(PersistError, match="only copy"):
        third.add(vectors=vectors[:1], ids=[900])
    assert third.count() == 200 and 900 not in third
    third.close()
