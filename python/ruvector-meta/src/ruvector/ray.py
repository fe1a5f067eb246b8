"""RuVector on a Ray cluster (``pip install 'ruvector[ray]'``).

Two helpers for a corpus or a query load that outgrows one machine, over the
Ray the user already runs (this module starts no cluster of its own: call
``ray.init`` first, or let Ray start a local one):

* :class:`ShardedIndex`: ``N`` shards, each a ``ruvector_rabitq`` index held
  by one Ray actor. A search fans out to every shard and merges the per-shard
  top-``k`` into one top-``k``; writes go to the shard that owns the id (a
  fixed hash of the id, so no owner map has to be kept or shipped).
* :func:`embed_dataset`: embeds a text column of a Ray Dataset with
  ``ruvector_embed`` inside ``map_batches``, one model load per worker.

>>> import numpy as np, ray
>>> from ruvector.ray import ShardedIndex
>>> ray.init(num_cpus=2)                                      # doctest: +SKIP
>>> x = np.random.default_rng(0).standard_normal((10_000, 64), dtype=np.float32)
>>> index = ShardedIndex.build(x, shards=2, kind="FlatF32Index")  # doctest: +SKIP
>>> index.search(x[3], k=1)[0].id                             # doctest: +SKIP
3

Faults: each shard actor is created with ``max_restarts``; a restarted actor
reloads its shard from the directory it was saved to (``build(dir=...)``,
:meth:`ShardedIndex.save` to that directory, or :meth:`ShardedIndex.load`),
else rebuilds it from the vectors it was built from. Either way it comes back
as of that save or build: writes made after it are lost with the process.
A call that meets a restarting shard waits up to ``timeout`` seconds and then
raises :class:`ShardUnavailable`; it never returns a partial answer unless
``allow_partial=True`` is passed.

Importing :mod:`ruvector` does not import this module, nor Ray.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union, cast

import numpy as np
import numpy.typing as npt

import ruvector_rabitq
from ruvector_common.errors import InvalidArgument, MissingComponentError, NotFound, VectorIndexError
from ruvector_rabitq import SearchHit

# Ray's own annotations are partial (handles and refs are generic in the
# remote class): the module is used untyped, the types are this module's.
try:
    ray: Any = importlib.import_module("ray")
    importlib.import_module("ray.exceptions")
except ModuleNotFoundError as _missing:
    if _missing.name is None or not _missing.name.startswith("ray"):
        raise
    raise MissingComponentError("ruvector.ray", "ray", "ray", "ray") from _missing

__all__ = ["ShardedIndex", "ShardUnavailable", "shard_of", "embed_dataset", "KINDS"]

#: The index kinds a shard can be (the ``ruvector_rabitq`` class names).
KINDS: Tuple[str, ...] = ("FlatF32Index", "RabitqIndex", "RabitqPlusIndex", "RabitqAsymIndex", "IvfRabitqIndex")

_MANIFEST = "sharded-index.json"
_FORMAT = 1
_IdArray = npt.NDArray[np.int64]
_F32 = npt.NDArray[np.float32]
_Batch = Tuple[_IdArray, _F32]
#: ``filter=``: an ``IdSet`` or a 1-D array or sequence of ids.
_Filter = Union[ruvector_rabitq.IdSet, npt.ArrayLike]


class ShardUnavailable(VectorIndexError, TimeoutError):
    """Raised when a shard of a :class:`ShardedIndex` did not answer within
    ``timeout`` seconds (its actor is restarting, or died for good).

    ``shards`` lists the shard numbers that did not answer."""

    def __init__(self, message: str = "", shards: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.shards: List[int] = list(shards)


def _count(value: object, name: str) -> int:
    number = _as_int(value)
    if number is None or number < 1:
        raise InvalidArgument(f"{name} must be an int >= 1, got {value!r}")
    return number


def shard_of(ids: npt.ArrayLike, shards: int) -> _IdArray:
    """The shard that owns each id: a SplitMix64 finaliser of the id modulo
    ``shards``, so consecutive or strided ids spread evenly. Stable across
    processes, machines and versions (it is part of the saved format)."""
    shards = _count(shards, "shards")
    z = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    owners: _IdArray = (z % np.uint64(shards)).astype(np.int64)
    return owners


def _index_class(kind: str) -> Any:
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return getattr(ruvector_rabitq, kind)


def _shard_path(directory: str, shard: int) -> str:
    return os.path.join(directory, f"shard-{shard:05d}.rbpx")


class _Shard:
    """The Ray actor holding one shard (created by :class:`ShardedIndex`).

    Ray reruns ``__init__`` with the same arguments when it restarts the
    actor: the shard then comes back from ``path`` if that file exists, else
    from the vectors it was built from."""

    def __init__(
        self,
        kind: str,
        path: Optional[str],
        mmap: bool,
        vectors: Optional[_F32],
        ids: Optional[_IdArray],
        options: Dict[str, Any],
    ) -> None:
        cls = _index_class(kind)
        if path is not None and os.path.exists(path):
            self.index: Any = cls.load(path, mmap=mmap)
        elif vectors is not None:
            self.index = cls.build(vectors, ids, **options)
        else:
            raise VectorIndexError(f"shard file {path!r} is missing and there are no vectors to rebuild it from")
        self.restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)

    def info(self) -> Dict[str, Any]:
        return {
            "len": len(self.index),
            "dim": self.index.dim,
            "metric": self.index.metric,
            "memory_bytes": self.index.memory_bytes,
            "restarted": self.restarted,
            "pid": os.getpid(),
        }

    def search_batch(self, queries: _F32, k: int, options: Dict[str, Any], filter: Optional[_IdArray]) -> _Batch:
        if len(self.index) == 0 or (filter is not None and len(filter) == 0):
            nq = queries.shape[0]
            return np.full((nq, k), -1, dtype=np.int64), np.full((nq, k), np.inf, dtype=np.float32)
        ids, scores = self.index.search_batch(queries, k, filter=filter, **options)
        return ids, scores

    def add_batch(self, vectors: _F32, ids: _IdArray) -> None:
        self.index.add_batch(vectors, ids)

    def upsert(self, ids: _IdArray, vectors: _F32) -> None:
        self.index.upsert(ids, vectors)

    def remove(self, ids: _IdArray) -> int:
        removed: int = self.index.remove(ids)
        return removed

    def contains(self, ids: _IdArray) -> List[bool]:
        return [int(i) in self.index for i in ids]

    def get(self, id: int) -> _F32:
        vector: _F32 = self.index[id]
        return vector

    def ids(self) -> _IdArray:
        held: _IdArray = self.index.ids
        return held

    def save(self, path: str) -> None:
        tmp = path + ".tmp"
        self.index.save(tmp)
        os.replace(tmp, path)

    def set_option(self, name: str, value: int) -> None:
        setattr(self.index, name, value)


def _as_matrix(vectors: npt.ArrayLike, what: str) -> _F32:
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise InvalidArgument(f"{what} must be a 2-D array of shape (n, dim), got shape {array.shape}")
    if array.dtype.kind != "f":
        raise InvalidArgument(f"{what} must be float32 (or float16/float64), got dtype {array.dtype}")
    matrix: _F32 = np.ascontiguousarray(array, dtype=np.float32)
    return matrix


def _as_ids(ids: npt.ArrayLike, what: str = "ids") -> _IdArray:
    array = np.asarray(ids)
    if array.ndim != 1:
        raise InvalidArgument(f"{what} must be a 1-D array of ids, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise InvalidArgument(f"{what} must be integers (int64/uint64), got dtype {array.dtype}")
    out: _IdArray = array.astype(np.int64)
    if out.size and int(out.min()) < 0:
        raise InvalidArgument(f"{what} must be >= 0, got {int(out.min())}")
    return out


def _check_k(k: object) -> int:
    value = _as_int(k)
    if value is None or not 1 <= value <= ruvector_rabitq.MAX_K:
        raise InvalidArgument(f"k must be an int from 1 to {ruvector_rabitq.MAX_K}, got {k!r}")
    return value


def _as_int(value: object) -> Optional[int]:
    """``value`` as an int if it is an int or numpy integer (not a bool)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, np.integer):
        return int(cast(Any, value))
    return None


def _is_dataset(value: object) -> bool:
    """Whether ``value`` is a Ray Dataset (without importing Ray Data for it:
    whoever made one has imported it already)."""
    data = sys.modules.get("ray.data")
    return data is not None and isinstance(value, data.Dataset)


def _from_dataset(ds: Any, column: str, id_column: Optional[str]) -> Tuple[_F32, Optional[_IdArray]]:
    """The ``column`` vectors (and ``id_column`` ids) of a Ray Dataset, in row order."""
    columns: List[str] = list(ds.columns() or ())
    for name in (column, id_column):
        if name is not None and name not in columns:
            raise InvalidArgument(f"the dataset has no column {name!r}; expected one of {columns}")
    rows: List[_F32] = []
    ids: List[_IdArray] = []
    for batch in ds.iter_batches(batch_size=65536, batch_format="numpy"):
        rows.append(np.asarray(np.stack(list(batch[column])) if batch[column].dtype == object else batch[column]))
        if id_column is not None:
            ids.append(np.asarray(batch[id_column]))
    if not rows:
        raise InvalidArgument("the dataset has no rows")
    matrix = np.concatenate(rows).astype(np.float32, copy=False)
    return matrix, (np.concatenate(ids).astype(np.int64) if id_column is not None else None)


def merge_top_k(parts: Sequence[_Batch], k: int, higher_is_better: bool) -> _Batch:
    """Merges per-shard ``(ids, scores)`` of shape ``(nq, k_i)`` into one
    ``(nq, k)``: best score first, ties by ascending id, padding (id ``-1``)
    last with score ``+inf`` (``-inf`` for ``ip``/``cosine``, as one index pads)."""
    ids = np.concatenate([p[0] for p in parts], axis=1)
    scores = np.concatenate([p[1] for p in parts], axis=1).astype(np.float32)
    pad = ids < 0
    key = np.where(pad, np.inf, -scores.astype(np.float64) if higher_is_better else scores.astype(np.float64))
    # lexsort: the last key is the primary one. Ties by id; padding sorts last.
    order = np.lexsort((np.where(pad, np.iinfo(np.int64).max, ids), key), axis=1)[:, :k]
    out_ids: _IdArray = np.take_along_axis(ids, order, axis=1)
    out_scores: _F32 = np.take_along_axis(scores, order, axis=1)
    width = out_ids.shape[1]
    if width < k:
        fill = -np.inf if higher_is_better else np.inf
        out_ids = np.pad(out_ids, ((0, 0), (0, k - width)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, k - width)), constant_values=fill)
    out_scores[out_ids < 0] = -np.inf if higher_is_better else np.inf
    return out_ids, out_scores


class ShardedIndex:
    """An index split over ``N`` Ray actors, searched as one.

    Create one with :meth:`build` or :meth:`load`. Each shard is a
    ``ruvector_rabitq`` index of the same ``kind`` and options; a vector goes
    to the shard :func:`shard_of` its id. A search asks every shard for its
    top ``k`` and merges them, so with exact shards (``FlatF32Index``) the
    ids and scores are those of one ``FlatF32Index`` over all the vectors
    (hits of equal score come by ascending id). With approximate shards each
    shard searches its own part with the same options, so recall is at least
    that of one index of the shard's size.
    """

    def __init__(
        self,
        actors: List[Any],
        kind: str,
        metric: str,
        dim: int,
        *,
        directory: Optional[str] = None,
        timeout: float = 60.0,
    ) -> None:
        """Wraps existing shard actors; use :meth:`build` or :meth:`load`."""
        self._actors = actors
        self.kind = kind
        """The ``ruvector_rabitq`` class name of every shard."""
        self.metric = metric
        """``"l2"``, ``"ip"`` or ``"cosine"`` (as the shards rank)."""
        self.dim = dim
        """The vectors' dimension."""
        self.directory = directory
        """Where a restarted shard reloads from (``None``: from its build vectors)."""
        self.timeout = timeout
        """Seconds a call waits for a restarting shard before :class:`ShardUnavailable`."""
        self.missing_shards: List[int] = []
        """Shards left out of the last ``allow_partial=True`` search."""
        # Without a directory a restarted shard rebuilds from its creation
        # arguments in the object store: they must stay referenced.
        self._build_refs: List[Any] = []

    # -- creation -----------------------------------------------------------------

    @staticmethod
    def _actor_class(max_restarts: int, actor_options: Optional[Dict[str, Any]]) -> Any:
        options: Dict[str, Any] = {"max_restarts": max_restarts, "max_task_retries": 0, "num_cpus": 0}
        options.update(actor_options or {})
        return ray.remote(_Shard).options(**options)

    @classmethod
    def build(
        cls,
        vectors: Any,
        ids: Optional[npt.ArrayLike] = None,
        *,
        shards: int,
        kind: str = "IvfRabitqIndex",
        dir: Optional[Union[str, os.PathLike[str]]] = None,
        max_restarts: int = 3,
        timeout: float = 60.0,
        actor_options: Optional[Dict[str, Any]] = None,
        column: str = "embedding",
        id_column: Optional[str] = None,
        **index_options: Any,
    ) -> ShardedIndex:
        """Splits ``vectors`` (ids ``ids``, default ``0..n-1``) by owner into
        ``shards`` actors, each building a ``kind`` index with ``index_options``
        (``seed``, ``nlist``, ``metric``, ...). With ``dir`` every shard is saved
        there once built, and a restarted actor reloads it from there.
        ``actor_options`` go to Ray's ``.options`` (e.g. ``num_cpus``,
        ``memory``, ``resources``); shards take ``num_cpus=0`` by default.

        ``vectors`` may also be a Ray Dataset (e.g. from :func:`embed_dataset`):
        its ``column`` holds the vectors and ``id_column`` (if given) the ids;
        the rows pass through this process once on their way to the shards."""
        cls_index = _index_class(kind)
        del cls_index
        shards = _count(shards, "shards")
        if _is_dataset(vectors):
            vectors, ids = _from_dataset(vectors, column, id_column)
        matrix = _as_matrix(vectors, "vectors")
        n = matrix.shape[0]
        id_array = np.arange(n, dtype=np.int64) if ids is None else _as_ids(ids)
        if id_array.shape[0] != n:
            raise InvalidArgument(f"ids must have one id per vector: expected {n}, got {id_array.shape[0]}")
        if np.unique(id_array).shape[0] != n:
            raise InvalidArgument("ids must be distinct, got repeated ids")
        owners = shard_of(id_array, shards)
        directory = None if dir is None else os.fspath(dir)
        if directory is not None:
            os.makedirs(directory, exist_ok=True)
        actor_cls = cls._actor_class(max_restarts, actor_options)
        actors: List[Any] = []
        refs: List[Any] = []
        for s in range(shards):
            mask = owners == s
            part_vectors = ray.put(np.ascontiguousarray(matrix[mask]))
            part_ids = ray.put(id_array[mask])
            refs += [part_vectors, part_ids]
            path = None if directory is None else _shard_path(directory, s)
            actors.append(actor_cls.remote(kind, path, False, part_vectors, part_ids, dict(index_options)))
        infos = ray.get([a.info.remote() for a in actors])
        index = cls(actors, kind, str(infos[0]["metric"]), int(infos[0]["dim"]), directory=directory, timeout=timeout)
        if directory is not None:
            index.save(directory)
        else:
            index._build_refs = refs
        return index

    @classmethod
    def load(
        cls,
        dir: Union[str, os.PathLike[str]],
        *,
        mmap: bool = False,
        max_restarts: int = 3,
        timeout: float = 60.0,
        actor_options: Optional[Dict[str, Any]] = None,
    ) -> ShardedIndex:
        """Opens a directory written by :meth:`save`: one actor per shard file,
        each loading (``mmap=True``: mapping) its shard; a restarted actor
        reloads from the same file. On several machines ``dir`` must be on
        storage every node sees."""
        directory = os.fspath(dir)
        manifest_path = os.path.join(directory, _MANIFEST)
        try:
            with open(manifest_path, encoding="utf-8") as f:
                manifest = json.load(f)
        except FileNotFoundError:
            raise NotFound(f"no sharded index in {directory!r}: {_MANIFEST} is missing", key=directory) from None
        if manifest.get("format") != _FORMAT:
            raise InvalidArgument(f"sharded index format must be {_FORMAT}, got {manifest.get('format')!r}")
        kind = str(manifest["kind"])
        _index_class(kind)
        actor_cls = cls._actor_class(max_restarts, actor_options)
        actors = [
            actor_cls.remote(kind, _shard_path(directory, s), mmap, None, None, {})
            for s in range(int(manifest["shards"]))
        ]
        index = cls(actors, kind, str(manifest["metric"]), int(manifest["dim"]), directory=directory, timeout=timeout)
        index._call("info", [(a, ()) for a in actors], timeout)
        return index

    def save(self, dir: Union[str, os.PathLike[str]]) -> None:
        """Saves every shard to ``dir/shard-NNNNN.rbpx`` (each actor writes its
        own file, atomically) and a small ``sharded-index.json`` manifest.
        Saving to the directory the shards restart from updates what a
        restarted shard comes back as."""
        directory = os.fspath(dir)
        os.makedirs(directory, exist_ok=True)
        calls = [(a, (_shard_path(directory, s),)) for s, a in enumerate(self._actors)]
        self._call("save", calls, self.timeout)
        manifest = {
            "format": _FORMAT,
            "kind": self.kind,
            "shards": len(self._actors),
            "metric": self.metric,
            "dim": self.dim,
            "owner": "splitmix64 % shards",
        }
        tmp = os.path.join(directory, _MANIFEST + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
        os.replace(tmp, os.path.join(directory, _MANIFEST))

    # -- calls to the shards ------------------------------------------------------

    @property
    def shards(self) -> int:
        """How many shards (actors) there are."""
        return len(self._actors)

    @property
    def actors(self) -> List[Any]:
        """The shard actors' handles, shard 0 first (for ``ray.kill`` and monitoring)."""
        return list(self._actors)

    def _call(
        self,
        method: str,
        calls: Sequence[Tuple[Any, Tuple[Any, ...]]],
        timeout: Optional[float],
        allow_partial: bool = False,
    ) -> List[Any]:
        """Runs ``method`` on each ``(actor, args)``; a call that fails because
        its actor is restarting is sent again until ``timeout`` runs out."""
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        results: List[Any] = [None] * len(calls)
        pending = {i: getattr(actor, method).remote(*args) for i, (actor, args) in enumerate(calls)}
        dead: Dict[int, str] = {}
        while pending:
            remaining = deadline - time.monotonic()
            ready, _ = ray.wait(list(pending.values()), num_returns=len(pending), timeout=max(remaining, 0.0))
            ready_set = set(ready)
            for i, ref in list(pending.items()):
                if ref not in ready_set:
                    continue
                del pending[i]
                try:
                    results[i] = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    # A call in flight when its actor died fails even when Ray
                    # restarts the actor: send it again until the deadline. An
                    # actor out of restarts keeps failing and so times out.
                    died = isinstance(error, ray.exceptions.ActorDiedError)
                    if time.monotonic() < deadline:
                        time.sleep(0.1 if died else 0.05)
                        actor, args = calls[i]
                        pending[i] = getattr(actor, method).remote(*args)
                    else:
                        dead[i] = "is dead (no restart left)" if died else "was restarting"
            if pending and time.monotonic() >= deadline:
                for i in pending:
                    dead.setdefault(i, "was restarting or busy")
                pending.clear()
        if dead:
            shard_numbers = [self._shard_number(calls[i][0]) for i in sorted(dead)]
            if allow_partial:
                self.missing_shards = shard_numbers
                return [r for i, r in enumerate(results) if i not in dead]
            detail = "; ".join(f"shard {self._shard_number(calls[i][0])} {why}" for i, why in sorted(dead.items()))
            raise ShardUnavailable(
                f"{method}: {len(dead)} of {len(calls)} shards did not answer within {wait:g} s ({detail}); "
                "pass allow_partial=True to search for an answer from the others",
                shard_numbers,
            )
        self.missing_shards = []
        return results

    def _shard_number(self, actor: Any) -> int:
        for s, a in enumerate(self._actors):
            if a is actor:
                return s
        return -1

    def _search_calls(
        self, queries: _F32, k: int, filter: Optional[_Filter], options: Dict[str, Any]
    ) -> List[Tuple[Any, Tuple[Any, ...]]]:
        if queries.shape[1] != self.dim:
            raise InvalidArgument(f"queries must have dim {self.dim} columns, got {queries.shape[1]}")
        opts = {name: value for name, value in options.items() if value is not None}
        # One object-store copy shared by every shard for a big batch; a
        # small one goes inline with each call (no store round trip).
        queries_ref: Any = ray.put(queries) if queries.nbytes > 64 * 1024 else queries
        if filter is None:
            return [(a, (queries_ref, k, opts, None)) for a in self._actors]
        allowed = _as_ids(filter.ids if isinstance(filter, ruvector_rabitq.IdSet) else filter, "filter")
        owners = shard_of(allowed, len(self._actors))
        return [(a, (queries_ref, k, opts, allowed[owners == s])) for s, a in enumerate(self._actors)]

    def _higher_is_better(self) -> bool:
        return self.metric in ("ip", "cosine")

    def search_batch(
        self,
        queries: npt.ArrayLike,
        k: int,
        *,
        rerank_factor: Optional[int] = None,
        nprobe: Optional[int] = None,
        filter: Optional[_Filter] = None,
        timeout: Optional[float] = None,
        allow_partial: bool = False,
    ) -> Tuple[_IdArray, _F32]:
        """Searches every row on every shard (in parallel) and merges:
        ``(ids, scores)`` of shape ``(nq, k)``, padded like one index's.
        ``filter`` (ids or an ``IdSet``) is split by owner, each shard getting
        its own ids. Waits up to ``timeout`` (default :attr:`timeout`) for a
        restarting shard, then raises :class:`ShardUnavailable`; with
        ``allow_partial=True`` merges the shards that answered instead (and
        lists the others in :attr:`missing_shards`)."""
        k = _check_k(k)
        matrix = _as_matrix(queries, "queries")
        calls = self._search_calls(matrix, k, filter, {"rerank_factor": rerank_factor, "nprobe": nprobe})
        parts = self._call("search_batch", calls, timeout, allow_partial)
        if not parts:
            raise ShardUnavailable("search: no shard answered", list(range(len(self._actors))))
        return merge_top_k(parts, k, self._higher_is_better())

    def search(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        rerank_factor: Optional[int] = None,
        nprobe: Optional[int] = None,
        filter: Optional[_Filter] = None,
        timeout: Optional[float] = None,
        allow_partial: bool = False,
    ) -> List[SearchHit]:
        """One query: the ``min(k, available)`` best hits, best first (see
        :meth:`search_batch`)."""
        vector = np.asarray(query)
        if vector.ndim != 1:
            raise InvalidArgument(f"query must be a 1-D array of shape (dim,), got shape {vector.shape}")
        ids, scores = self.search_batch(
            vector[None, :],
            k,
            rerank_factor=rerank_factor,
            nprobe=nprobe,
            filter=filter,
            timeout=timeout,
            allow_partial=allow_partial,
        )
        return [SearchHit(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    async def search_batch_async(
        self,
        queries: npt.ArrayLike,
        k: int,
        *,
        rerank_factor: Optional[int] = None,
        nprobe: Optional[int] = None,
        filter: Optional[_Filter] = None,
        timeout: Optional[float] = None,
        allow_partial: bool = False,
    ) -> Tuple[_IdArray, _F32]:
        """Awaitable :meth:`search_batch` (the waiting runs in a worker thread,
        so the event loop is free meanwhile)."""
        return await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: self.search_batch(
                queries,
                k,
                rerank_factor=rerank_factor,
                nprobe=nprobe,
                filter=filter,
                timeout=timeout,
                allow_partial=allow_partial,
            ),
        )

    async def search_async(
        self,
        query: npt.ArrayLike,
        k: int,
        *,
        rerank_factor: Optional[int] = None,
        nprobe: Optional[int] = None,
        filter: Optional[_Filter] = None,
        timeout: Optional[float] = None,
        allow_partial: bool = False,
    ) -> List[SearchHit]:
        """Awaitable :meth:`search`."""
        return await asyncio.get_running_loop().run_in_executor(
            None,
            lambda: self.search(
                query,
                k,
                rerank_factor=rerank_factor,
                nprobe=nprobe,
                filter=filter,
                timeout=timeout,
                allow_partial=allow_partial,
            ),
        )

    # -- writes --------------------------------------------------------------------

    def _split(self, ids: _IdArray) -> List[Tuple[int, npt.NDArray[np.bool_]]]:
        owners = shard_of(ids, len(self._actors))
        return [(s, owners == s) for s in range(len(self._actors)) if bool((owners == s).any())]

    def add_batch(self, vectors: npt.ArrayLike, ids: npt.ArrayLike) -> None:
        """Adds the rows of ``vectors`` with ``ids`` (required: a sharded index
        has no single "next id"), each to its owning shard. Each shard's part
        is all or nothing; ids held already raise there."""
        matrix = _as_matrix(vectors, "vectors")
        id_array = _as_ids(ids)
        if id_array.shape[0] != matrix.shape[0]:
            raise InvalidArgument(
                f"ids must have one id per vector: expected {matrix.shape[0]}, got {id_array.shape[0]}"
            )
        calls = [(self._actors[s], (matrix[m], id_array[m])) for s, m in self._split(id_array)]
        self._call("add_batch", calls, None)

    def add(self, id: int, vector: npt.ArrayLike) -> None:
        """Adds one vector to the shard owning ``id``."""
        self.add_batch(np.asarray(vector)[None, :], np.array([id], dtype=np.int64))

    def upsert(self, ids: npt.ArrayLike, vectors: npt.ArrayLike) -> None:
        """Replaces the vectors of held ids and adds the others, each on its owning shard."""
        matrix = _as_matrix(vectors, "vectors")
        id_array = _as_ids(ids)
        if id_array.shape[0] != matrix.shape[0]:
            raise InvalidArgument(
                f"ids must have one id per vector: expected {matrix.shape[0]}, got {id_array.shape[0]}"
            )
        calls = [(self._actors[s], (id_array[m], matrix[m])) for s, m in self._split(id_array)]
        self._call("upsert", calls, None)

    def remove(self, ids: npt.ArrayLike) -> int:
        """Removes ``ids`` from their owning shards (ids not held are ignored);
        returns how many were removed."""
        id_array = _as_ids(ids)
        calls = [(self._actors[s], (id_array[m],)) for s, m in self._split(id_array)]
        return sum(int(r) for r in self._call("remove", calls, None))

    # -- reads ---------------------------------------------------------------------

    def __len__(self) -> int:
        """How many vectors all the shards hold."""
        return sum(int(info["len"]) for info in self.info())

    def __contains__(self, id: object) -> bool:
        key = _as_int(id)
        if key is None or key < 0:
            return False
        s = int(shard_of(np.array([key]), len(self._actors))[0])
        found: List[bool] = self._call("contains", [(self._actors[s], (np.array([id], dtype=np.int64),))], None)[0]
        return bool(found[0])

    def __getitem__(self, id: int) -> _F32:
        """The stored vector of ``id`` (from its owning shard)."""
        s = int(shard_of(np.array([id]), len(self._actors))[0])
        vector: _F32 = self._call("get", [(self._actors[s], (int(id),))], None)[0]
        return vector

    @property
    def ids(self) -> _IdArray:
        """Every id held, sorted."""
        parts: List[_IdArray] = self._call("ids", [(a, ()) for a in self._actors], None)
        return np.sort(np.concatenate(parts)) if parts else np.empty(0, dtype=np.int64)

    def info(self) -> List[Dict[str, Any]]:
        """Per shard: ``len``, ``dim``, ``metric``, ``memory_bytes``,
        ``restarted`` (the actor was restarted since it was created) and ``pid``."""
        infos: List[Dict[str, Any]] = self._call("info", [(a, ()) for a in self._actors], None)
        return infos

    @property
    def memory_bytes(self) -> int:
        """The shards' index memory added up."""
        return sum(int(info["memory_bytes"]) for info in self.info())

    def shutdown(self) -> None:
        """Ends the shard actors (without restart); the object is unusable afterwards."""
        for actor in self._actors:
            ray.kill(actor, no_restart=True)
        self._actors = []

    def __repr__(self) -> str:
        return f"ShardedIndex(kind={self.kind!r}, shards={len(self._actors)}, dim={self.dim}, metric={self.metric!r})"


# -- distributed embedding ----------------------------------------------------------


class _EmbedBatch:
    """The ``map_batches`` callable: one model load per Ray worker."""

    def __init__(self, model: str, column: str, output_column: str, options: Dict[str, Any]) -> None:
        import ruvector_embed

        self.embedder = ruvector_embed.Embedder.from_pretrained(model, **options)
        self.column = column
        self.output_column = output_column

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        texts = [str(t) for t in batch[self.column]]
        out = dict(batch)
        out[self.output_column] = np.asarray(self.embedder.embed_batch(texts), dtype=np.float32)
        return out


def embed_dataset(
    ds: Any,
    column: str = "text",
    model: Union[str, os.PathLike[str]] = "all-MiniLM-L6-v2",
    *,
    batch_size: int = 256,
    output_column: str = "embedding",
    concurrency: int = 1,
    num_cpus: Optional[float] = None,
    **embedder_options: Any,
) -> Any:
    """Embeds the ``column`` texts of the Ray Dataset ``ds`` with
    ``ruvector_embed`` (``model``: a name or a local folder, as
    ``Embedder.from_pretrained`` takes) and returns a Dataset with an
    ``output_column`` of float32 vectors (one ``(dim,)`` row per text).

    Runs ``map_batches`` with a callable class over ``concurrency`` workers,
    so each worker loads the model once, not once per batch. Every text is
    embedded on its own inside the batch (the embedder pads nothing across
    texts), so the vectors equal ``Embedder.embed_batch`` in one process bit
    for bit whatever the batching. Lazy like any Dataset transform:
    ``.materialize()``, ``.to_numpy_refs()`` or a write starts it.
    """
    batch_size = _count(batch_size, "batch_size")
    concurrency = _count(concurrency, "concurrency")
    extra: Dict[str, Any] = {}
    if num_cpus is not None:
        extra["num_cpus"] = num_cpus
    # A fixed pool of `concurrency` actors (map_batches' `concurrency=` is
    # deprecated from Ray 2.51; ActorPoolStrategy(size=) works on every Ray >= 2.40).
    pool = importlib.import_module("ray.data").ActorPoolStrategy(size=concurrency)
    return ds.map_batches(
        _EmbedBatch,
        fn_constructor_args=(os.fspath(model), column, output_column, dict(embedder_options)),
        batch_size=batch_size,
        batch_format="numpy",
        compute=pool,
        **extra,
    )
