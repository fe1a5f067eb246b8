"""ruvector 0.1.4 compatibility: its ``RabitqIndex``, its in-memory
collections and its two-file format (``PATH`` + ``PATH.meta.json``).

0.1.4's ``RabitqIndex`` was the crate's RaBitQ+ index (1-bit scan, exact
rerank of ``k·rerank_factor`` candidates, default 20): that is this SDK's
:class:`ruvector.RabitqPlusIndex`, which reads the same ``.rbpx`` files. The
SDK's 1-bit-only index of that name stays ``ruvector.rabitq.RabitqIndex``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

from ruvector_common.errors import InvalidArgument, NotFound, PersistError, RuVectorError

from ._index import rabitq_module
from ._where import as_int, as_list, as_mapping

if TYPE_CHECKING:
    import numpy.typing as npt

    from .collection import Collection, CollectionCore

__all__ = ["RabitqIndex", "legacy_collection", "load_legacy", "save_legacy"]

_rr = rabitq_module("ruvector.RabitqIndex")

#: 0.1.4 hnsw metric names -> this SDK's metrics.
_METRICS = {"cosine": "cosine", "euclidean": "l2", "l2": "l2", "dot": "ip", "dot_product": "ip", "ip": "ip"}
#: And back, for files 0.1.4 reads.
_METRICS_014 = {"cosine": "cosine", "l2": "euclidean", "ip": "dot"}
_U32 = 2**32 - 1


def _metric(name: object) -> str:
    if not isinstance(name, str) or name.lower() not in _METRICS:
        raise InvalidArgument(
            f"metric {name!r} is not available: use 'cosine', 'euclidean'/'l2' (squared L2 here) "
            "or 'dot'/'ip' (manhattan is not served)"
        )
    return _METRICS[name.lower()]


def legacy_collection(
    cls: type[Collection], dim: int, backend: str, rerank_factor: int, seed: int, metric: str
) -> Collection:
    """An in-memory collection set up as 0.1.4's ``Collection.create`` was."""
    return _legacy_collection(cls, dim, backend, rerank_factor, seed, metric)[0]


def _legacy_collection(
    cls: type[Collection], dim: object, backend: str, rerank_factor: object, seed: int, metric: str
) -> Tuple[Collection, CollectionCore]:
    """:func:`legacy_collection` and the engine behind it."""
    from .collection import MAX_DIM, CollectionCore, configure

    if backend not in ("hnsw", "rabitq"):
        raise InvalidArgument(f"unknown backend {backend!r}; expected 'hnsw' or 'rabitq'")
    checked_dim = as_int(dim)
    if checked_dim is None or not 1 <= checked_dim <= MAX_DIM:
        raise InvalidArgument(f"dim must be an integer in [1, {MAX_DIM}], got {dim!r}")
    rerank = as_int(rerank_factor)
    if rerank is None or not 1 <= rerank <= 10_000:
        raise InvalidArgument(f"rerank_factor must be an integer in [1, 10000], got {rerank_factor!r}")
    if backend == "rabitq":
        index, chosen = "RabitqPlusIndex", "l2"
        params: Dict[str, Any] = {"rerank_factor": rerank, "seed": seed}
    else:
        index, params, chosen = "auto", {}, _metric(metric)
    core = CollectionCore(None, False)
    try:
        configure(core, False, None, checked_dim, chosen, index, params, None)
    except BaseException:
        core.conn.close()
        raise
    core.config["legacy_backend"] = backend
    return cls(core), core


# -- files -----------------------------------------------------------------------------


def _write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_legacy(coll: Collection, core: CollectionCore, path: Path) -> None:
    """Writes ``path`` + ``path.meta.json`` as 0.1.4's ``Collection.save`` did."""
    from .collection import stack_vectors

    records = coll.get(include_vectors=True)
    for record in records:
        if not isinstance(record.id, int) or record.id < 0:
            raise InvalidArgument(f"0.1.4 files hold non-negative integer ids only, got {record.id!r}")
    dim = coll.dim or 0
    ids = [int(r.id) for r in records]
    metadata = {str(r.id): r.metadata for r in records if r.metadata}
    texts = {str(r.id): r.text for r in records if r.text is not None}
    next_id = int(core.meta("next_id", 0))
    rabitq = core.config.get("legacy_backend") == "rabitq" or (
        core.config["index"] == "RabitqPlusIndex" and core.config["metric"] == "l2"
    )
    vectors = stack_vectors(records, dim)
    sidecar: Dict[str, Any]
    if rabitq:
        if any(i > _U32 for i in ids):
            raise InvalidArgument(f"0.1.4's rabitq files hold ids up to {_U32}")
        params: Dict[str, Any] = core.config.get("index_params") or {}
        rerank = int(params.get("rerank_factor", 20))
        seed = int(params.get("seed", 42))
        if records:
            index = _rr.RabitqPlusIndex.build(
                vectors, np.asarray(ids, dtype=np.uint64), seed=seed, rerank_factor=rerank, rotation="haar"
            )
            index.save(str(path))
        sidecar = {
            "backend": "rabitq",
            "dim": dim,
            "rerank_factor": rerank,
            "seed": seed,
            "next_id": next_id,
            "tombstones": [],
            "metadata": metadata,
            "empty": not records,
        }
    else:
        _write_atomic(path, lambda handle: np.save(handle, vectors.astype(np.float32)))
        sidecar = {
            "backend": "hnsw",
            "dim": dim,
            "metric": _METRICS_014[str(core.config["metric"])],
            "hnsw_m": 16,
            "hnsw_ef_construction": 200,
            "hnsw_ef_search": 50,
            "next_id": next_id,
            "ids": ids,
            "metadata": metadata,
            "empty": not records,
        }
    if texts:
        sidecar["texts"] = texts  # ruvector >= 0.2 only; 0.1.4 ignores the key
    meta_path = path.with_name(path.name + ".meta.json")
    _write_atomic(meta_path, lambda handle: handle.write(json.dumps(sidecar).encode("utf-8")))


def _int_list(value: object, what: str, where: Path) -> List[int]:
    items = as_list(value)  # JSON: a list
    ints = [i for i in items or () if isinstance(i, int) and not isinstance(i, bool)]
    if items is None or len(ints) != len(items):
        raise PersistError(f"{where}: {what} must be a list of integers", str(where))
    return ints


def load_legacy(cls: type[Collection], path: Path) -> Collection:
    """Reads a collection saved by ruvector 0.1.4 (or by :func:`save_legacy`)."""
    meta_path = path.with_name(path.name + ".meta.json")
    if not meta_path.is_file():
        raise NotFound(
            f"no collection at {str(path)!r}: neither a collection directory nor a ruvector 0.1.4 file "
            f"with its {meta_path.name}",
            str(path),
        )
    try:
        sidecar = json.loads(meta_path.read_text("utf-8"))
    except (OSError, ValueError) as error:
        raise PersistError(f"cannot read {meta_path}: {error}", str(meta_path)) from error
    checked = as_mapping(sidecar)  # JSON: a dict
    if checked is None or not all(isinstance(key, str) for key in checked):
        raise PersistError(f"{meta_path}: the sidecar must be a JSON object", str(meta_path))
    try:
        return _load_validated(cls, path, {str(key): value for key, value in checked.items()})
    except (PersistError, InvalidArgument):
        raise
    except RuVectorError as error:
        raise PersistError(f"corrupt collection at {path}: {error}", str(path)) from error
    except (KeyError, TypeError, ValueError, OSError) as error:
        raise PersistError(f"corrupt collection at {path}: {type(error).__name__}: {error}", str(path)) from error


def _load_validated(cls: type[Collection], path: Path, sidecar: Dict[str, Any]) -> Collection:
    backend = sidecar.get("backend", "rabitq")  # files before 0.1.4's hnsw backend had no key
    dim = sidecar["dim"]
    metadata_map = as_mapping(sidecar.get("metadata") or {})
    metadata_raw: Dict[str, Dict[str, Any]] = {}
    for key, value in (metadata_map or {}).items():
        meta = as_mapping(value)
        if meta is None:
            break
        metadata_raw[str(key)] = {str(k): v for k, v in meta.items()}  # JSON keys are strings
    if metadata_map is None or len(metadata_raw) != len(metadata_map):
        raise PersistError(f"{path}: 'metadata' must map ids to objects", str(path))
    texts_map = as_mapping(sidecar.get("texts") or {})
    if texts_map is None:
        raise PersistError(f"{path}: 'texts' must map ids to texts", str(path))
    texts_raw = {str(key): value if isinstance(value, str) else None for key, value in texts_map.items()}
    if backend == "hnsw":
        coll, core = _legacy_collection(cls, dim, "hnsw", 20, 42, sidecar["metric"])
        ids: List[int] = []
        vectors: npt.NDArray[np.float32] = np.zeros((0, dim), np.float32)
        if not sidecar.get("empty"):
            ids = _int_list(sidecar["ids"], "'ids'", path)
            with open(path, "rb") as handle:
                vectors = np.load(handle, allow_pickle=False)
            if vectors.ndim != 2 or vectors.shape != (len(ids), dim) or vectors.dtype != np.float32:
                raise PersistError(
                    f"{path}: vectors {vectors.shape}/{vectors.dtype} do not match the sidecar "
                    f"({len(ids)} ids, dim {dim}, float32)",
                    str(path),
                )
    elif backend == "rabitq":
        rerank = sidecar.get("rerank_factor", 20)
        seed = sidecar.get("seed", 42)
        coll, core = _legacy_collection(cls, dim, "rabitq", rerank, seed, "cosine")
        tombstones = set(_int_list(sidecar.get("tombstones", []), "'tombstones'", path))
        ids = []
        vectors = np.zeros((0, dim), np.float32)
        if not sidecar.get("empty"):
            index = _rr.RabitqPlusIndex.load(str(path))
            if index.dim != dim:
                raise PersistError(f"{path}: the index has dim {index.dim}, the sidecar {dim}", str(path))
            all_ids = [int(i) for i in index.ids]
            keep = [row for row, i in enumerate(all_ids) if i not in tombstones]
            ids = [all_ids[row] for row in keep]
            vectors = np.asarray(index)[keep]
    else:
        raise PersistError(f"{path}: unknown backend {backend!r}", str(path))
    if ids:
        coll.add(
            [texts_raw.get(str(i)) for i in ids],
            ids=ids,
            metadata=[metadata_raw.get(str(i)) for i in ids],
            vectors=vectors,
        )
    next_id = sidecar.get("next_id", 0)
    if isinstance(next_id, int) and not isinstance(next_id, bool):
        core.set_meta("next_id", max(next_id, int(core.meta("next_id", 0))))
    return coll


# -- 0.1.4's RabitqIndex ------------------------------------------------------------------


class RabitqIndex:
    """ruvector 0.1.4's ``RabitqIndex``: RaBitQ+ (1-bit scan, then an exact
    rerank of ``k·rerank_factor`` candidates; default 20, seed 42), now
    :class:`ruvector.RabitqPlusIndex` underneath, which reads 0.1.4's
    ``.rbpx`` files. ``search`` returns ``SearchHit(id, score)`` tuples,
    which unpack as 0.1.4's ``(id, score)``; ``add_batch`` takes 0.1.4's
    ``(ids, vectors)`` or this SDK's ``(vectors, ids=None)``. Every other
    attribute is the wrapped index's."""

    def __init__(
        self,
        dim: int,
        *,
        seed: Optional[int] = 42,
        rerank_factor: Optional[int] = 20,
        rotation: Optional[str] = None,
    ) -> None:
        self._index = _rr.RabitqPlusIndex(dim, seed=seed, rerank_factor=rerank_factor, rotation=rotation)

    @classmethod
    def _wrap(cls, index: Any) -> RabitqIndex:
        self = cls.__new__(cls)
        self._index = index
        return self

    @classmethod
    def build(
        cls,
        vectors: Any,
        ids: Any = None,
        *,
        rerank_factor: Optional[int] = 20,
        seed: Optional[int] = 42,
        rotation: Optional[str] = None,
    ) -> RabitqIndex:
        """Builds over the rows of ``vectors`` (ids default to 0..n-1)."""
        return cls._wrap(
            _rr.RabitqPlusIndex.build(vectors, ids, seed=seed, rerank_factor=rerank_factor, rotation=rotation)
        )

    @classmethod
    def load(cls, path: Any) -> RabitqIndex:
        """Loads a ``.rbpx`` file (0.1.4's, the crate's or this SDK's)."""
        return cls._wrap(_rr.RabitqPlusIndex.load(path))

    def search(self, query: Any, k: int, **kwargs: Any) -> Any:
        """The ``k`` nearest: ``SearchHit(id, score)`` tuples, squared L2, ascending."""
        return self._index.search(query, k, **kwargs)

    def add(self, id: int, vector: Any) -> None:
        self._index.add(id, vector)

    def add_batch(self, first: Any, second: Any = None, *, ids: Any = None) -> None:
        """``add_batch(ids, vectors)`` (0.1.4) or ``add_batch(vectors, ids=None)``."""
        if second is not None and ids is None and np.ndim(first) == 1 and np.ndim(second) == 2:
            first, second = second, first
        self._index.add_batch(first, second if ids is None else ids)

    def export_items(self) -> List[Tuple[int, npt.NDArray[np.float32]]]:
        """0.1.4: every ``(id, vector)`` pair held."""
        return [(int(i), v) for i, v in self._index]

    def __getattr__(self, name: str) -> Any:
        if name == "_index":
            raise AttributeError(name)
        return getattr(self._index, name)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, id: object) -> bool:
        return id in self._index

    def __getitem__(self, id: int) -> Any:
        return self._index[id]

    def __iter__(self) -> Iterator[Tuple[int, Any]]:
        return iter(self._index)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        array = np.asarray(self._index)
        return array if dtype is None else array.astype(dtype)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RabitqIndex):
            return bool(self._index == other._index)
        return bool(self._index == other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RabitqIndex(n={len(self)}, dim={self._index.dim}, rerank_factor={self._index.rerank_factor})"
