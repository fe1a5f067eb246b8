"""A backend over Parquet files and dataset directories (pyarrow)."""

from __future__ import annotations

import hashlib
import inspect
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ruvector_common.errors import BackendError

from ._adapter import BackendAdapter
from ._stores import optional_import

if TYPE_CHECKING:
    from ._stores import Ids, Vectors

_PathLike = Union[str, "os.PathLike[str]"]

#: Rows per record batch a pull reads (about 100 MB of 384-d float32).
_BATCH_ROWS = 65_536
#: Bytes of the buffer pages are streamed through (local files).
_STREAM_BUFFER = 8 << 20


class ParquetBackend(BackendAdapter):
    """Serve the Parquet files under ``root`` as collections.

    Each ``root/<name>.parquet`` file, and each directory ``root/<name>``
    holding ``.parquet`` files (a dataset directory, read as one table), is
    the collection ``<name>``. Every row carries an integer id
    (``id_column``, 0 to 2**64 - 2) and a vector (``vector_column``): a
    ``fixed_size_list<float32>`` or a ``list``/``large_list`` of floats, all
    rows of one length, no nulls, finite values. The vectors are read batch
    by batch (64k rows, one batch read ahead) into one ``(n, dim)`` float32
    array, each value copied once: a pull's peak memory is that array plus a
    few batches, not the whole Arrow table next to it.

    The generation is derived from the files' identity (size, ``mtime_ns``,
    inode and path of each file), so rewriting, replacing, adding or
    removing a file changes it. A rewrite in place that keeps the size and
    lands within the filesystem's timestamp granularity is not seen: write
    a new file and rename it over the old one (new inode) to be certain.

    Object stores: pass a ``pyarrow.fs.FileSystem`` (``S3FileSystem``,
    ``GcsFileSystem``, ``AzureFileSystem``, ...) as ``filesystem`` and the
    path inside it as ``root`` (``"bucket/prefix"``); the generation is then
    built from each object's size and modification time (no inode).

    **No incremental refresh** (``changes_since`` is the base class's
    ``None``): a Parquet file is immutable and a change is a new file, with
    no record of which rows differ. Telling them apart means reading the
    whole new file and comparing every row with the old data (which this
    backend does not keep), i.e. the full read a pull costs; only the
    encoding would be saved. A moved generation therefore re-pulls the
    collection. For cheap refreshes, keep changing data in a store with a
    change log (``PostgresBackend``) or write a ``BackendAdapter`` whose
    ``changes_since`` reads your own log (e.g. Delta Lake's or Iceberg's
    change feed).

    Needs the ``parquet`` extra: ``pip install 'ruvector-lake[parquet]'``.

    Args:
        name: The backend's name within a lake.
        root: The directory holding the files.
        id_column: Name of the id column.
        vector_column: Name of the vector column.
        filesystem: A ``pyarrow.fs.FileSystem`` to read ``root`` from
            (default: the local filesystem, with inodes in the generation).
    """

    def __init__(
        self,
        name: str,
        root: _PathLike,
        id_column: str = "id",
        vector_column: str = "embedding",
        *,
        filesystem: Optional[Any] = None,
    ) -> None:
        """See the class docstring; ``root`` must be an existing directory."""
        super().__init__(name)
        self._pa = optional_import("pyarrow", "parquet", "pyarrow", "ParquetBackend")
        self._pq = optional_import("pyarrow.parquet", "parquet", "pyarrow", "ParquetBackend")
        self._pafs = optional_import("pyarrow.fs", "parquet", "pyarrow", "ParquetBackend")
        self._ds = optional_import("pyarrow.dataset", "parquet", "pyarrow", "ParquetBackend")
        self._pc = optional_import("pyarrow.compute", "parquet", "pyarrow", "ParquetBackend")
        for label, value in (("id_column", id_column), ("vector_column", vector_column)):
            if not isinstance(value, str) or not value:
                raise TypeError(f"{label} must be a non-empty str, got {value!r}")
        self._fs = filesystem
        if filesystem is None:
            self._root = str(Path(os.fspath(root)).resolve())
            is_dir = os.path.isdir(self._root)
        else:
            if not isinstance(filesystem, self._pafs.FileSystem):
                raise TypeError(f"filesystem must be a pyarrow.fs.FileSystem, got {type(filesystem).__name__}")
            self._root = os.fspath(root).rstrip("/")
            try:
                is_dir = filesystem.get_file_info(self._root).type == self._pafs.FileType.Directory
            except Exception as error:
                raise BackendError(
                    f"ParquetBackend {name!r}: cannot list {self._root!r}: {error}", backend=name
                ) from error
        if not is_dir:
            raise BackendError(f"ParquetBackend {name!r}: root must be a directory, got {str(root)!r}", backend=name)
        self._id_column = id_column
        self._vector_column = vector_column

    @property
    def root(self) -> str:
        """The directory the collections are read from (absolute for a local root)."""
        return self._root

    def _listing(self) -> Dict[str, Tuple[str, bool, List[Tuple[str, int, int, int]]]]:
        """Every collection: its path, whether it is one file, and each
        file's ``(relative path, size, mtime_ns, inode)`` (inode 0 on a
        pyarrow filesystem)."""
        found: Dict[str, Tuple[str, bool, List[Tuple[str, int, int, int]]]] = {}
        if self._fs is None:
            for entry in sorted(os.scandir(self._root), key=lambda e: e.name):
                if entry.is_file() and entry.name.endswith(".parquet"):
                    st = entry.stat()
                    found[entry.name[: -len(".parquet")]] = (
                        entry.path,
                        True,
                        [(entry.name, st.st_size, st.st_mtime_ns, st.st_ino)],
                    )
                elif entry.is_dir():
                    files: List[Tuple[str, int, int, int]] = []
                    for file in sorted(Path(entry.path).rglob("*.parquet")):
                        if file.is_file():
                            st = file.stat()
                            rel = file.relative_to(entry.path).as_posix()
                            files.append((rel, st.st_size, st.st_mtime_ns, st.st_ino))
                    if files:
                        found.setdefault(entry.name, (entry.path, False, files))
            return found
        try:
            infos = self._fs.get_file_info(self._pafs.FileSelector(self._root, recursive=True))
        except Exception as error:
            raise BackendError(f"{self.name}: cannot list {self._root!r}: {error}", backend=self.name) from error
        for info in sorted(infos, key=lambda i: str(i.path)):
            if info.type != self._pafs.FileType.File or not str(info.path).endswith(".parquet"):
                continue
            rel = str(info.path)[len(self._root) + 1 :]
            head, sep, rest = rel.partition("/")
            mtime = int(info.mtime_ns or 0)
            if not sep:
                found[head[: -len(".parquet")]] = (str(info.path), True, [(rel, int(info.size), mtime, 0)])
            else:
                dataset = found.setdefault(head, (f"{self._root}/{head}", False, []))
                if not dataset[1]:
                    dataset[2].append((rest, int(info.size), mtime, 0))
        return found

    def _locate(self, collection: str) -> Tuple[str, bool, List[Tuple[str, int, int, int]]]:
        if not collection or "/" in collection or "\\" in collection or collection in (".", ".."):
            raise BackendError(f"{self.name}: bad collection name {collection!r}", backend=self.name)
        listing = self._listing()
        if collection not in listing:
            raise BackendError(
                f"{self.name}: no collection {collection!r}: expected {self._root}/{collection}.parquet or a "
                f"directory {self._root}/{collection} holding .parquet files; have {sorted(listing)}",
                backend=self.name,
            )
        return listing[collection]

    def collections(self) -> List[str]:
        """The collection names under ``root``, sorted."""
        return sorted(self._listing())

    def generation(self, collection: str) -> str:
        """A token of the files' identity: ``size:mtime_ns:inode`` for a
        file, a digest of every file's path and identity for a directory."""
        _, is_file, files = self._locate(collection)
        if is_file:
            _, size, mtime, ino = files[0]
            return f"{size}:{mtime}:{ino}"
        digest = hashlib.sha256()
        for rel, size, mtime, ino in files:
            digest.update(f"{rel}\0{size}:{mtime}:{ino}\n".encode())
        return "dir:" + digest.hexdigest()[:32]

    def data_ref(self, collection: str) -> str:
        """URI of the collection's file or directory (``file://`` for a
        local root, ``<filesystem type>://`` otherwise), with the columns."""
        path = self._locate(collection)[0]
        uri = Path(path).as_uri() if self._fs is None else f"{self._fs.type_name}://{path}"
        return f"{uri}#{self._id_column},{self._vector_column}"

    def _fail(self, collection: str, message: str) -> BackendError:
        return BackendError(f"{self.name}/{collection}: {message}", backend=self.name)

    def _scan_options(self) -> Dict[str, Any]:
        """Read-ahead of one batch and one file; on the local filesystem, pages
        streamed through a small buffer rather than each row group's column
        chunks read whole first (pre-buffering pays on object stores, where
        it coalesces requests, and is kept there). 1M x 384 in 64k-row
        groups: peak 1.4x the vectors instead of 3.4x. Options an older
        pyarrow lacks are left out."""
        options: Dict[str, Any] = {"batch_readahead": 1, "fragment_readahead": 1}
        if self._fs is None or isinstance(self._fs, self._pafs.LocalFileSystem):
            try:
                options["fragment_scan_options"] = self._ds.ParquetFragmentScanOptions(
                    use_buffered_stream=True, buffer_size=_STREAM_BUFFER, pre_buffer=False
                )
            except TypeError:
                pass
        try:
            accepted = inspect.signature(self._ds.Dataset.to_batches).parameters
        except (TypeError, ValueError):  # no signature to check against: pass none
            return {}
        return {k: v for k, v in options.items() if k in accepted}

    def pull(self, collection: str) -> Tuple[Ids, Vectors]:
        """Read ``(ids, vectors)``: ``n`` uint64 ids and an ``(n, dim)``
        float32 array. ``BackendError`` for a missing collection or column, a
        wrong column type, rows of different lengths, nulls or non-finite values."""
        path, is_file, files = self._locate(collection)
        pa = self._pa
        try:
            first = path if is_file else f"{path}/{files[0][0]}"
            schema = self._pq.read_schema(first, filesystem=self._fs)
        except Exception as error:
            raise self._fail(collection, f"cannot read the Parquet schema of {path}: {error}") from error
        for column in (self._id_column, self._vector_column):
            if schema.get_field_index(column) < 0:
                raise self._fail(collection, f"no column {column!r}; columns: {schema.names}")
        id_type = schema.field(self._id_column).type
        if not pa.types.is_integer(id_type):
            raise self._fail(collection, f"id column {self._id_column!r} must be integers, got {id_type}")
        vtype = schema.field(self._vector_column).type
        is_fixed = pa.types.is_fixed_size_list(vtype)
        if not (is_fixed or pa.types.is_list(vtype) or pa.types.is_large_list(vtype)):
            raise self._fail(
                collection,
                f"vector column {self._vector_column!r} must be fixed_size_list<float32> or a list of floats, "
                f"got {vtype}",
            )
        if not pa.types.is_floating(vtype.value_type):
            raise self._fail(collection, f"vector column {self._vector_column!r} must hold floats, got {vtype}")
        columns = [self._id_column, self._vector_column]
        try:
            # Batch by batch (a bounded read-ahead), each copied once into
            # the output: the whole table is never held next to it.
            dataset = self._ds.dataset(path, format="parquet", filesystem=self._fs)
            n = dataset.count_rows()
            batches = dataset.to_batches(columns=columns, batch_size=_BATCH_ROWS, **self._scan_options())
        except Exception as error:
            raise self._fail(collection, f"cannot read {path}: {error}") from error
        dim: Optional[int] = int(vtype.list_size) if is_fixed else None
        ids = np.empty(n, dtype=np.uint64)
        out: Optional[np.ndarray] = None
        row = 0
        try:
            for batch in batches:
                m = batch.num_rows
                if m == 0:
                    continue
                id_arr, vec_arr = batch.column(0), batch.column(1)
                if id_arr.null_count:
                    raise self._fail(collection, f"id column {self._id_column!r} has {id_arr.null_count} null(s)")
                if vec_arr.null_count:
                    raise self._fail(
                        collection, f"vector column {self._vector_column!r} has {vec_arr.null_count} null row(s)"
                    )
                if not is_fixed:
                    lengths = self._pc.list_value_length(vec_arr).to_numpy(zero_copy_only=False)
                    if dim is None:
                        dim = int(lengths[0])
                    bad = np.flatnonzero(lengths != dim)
                    if bad.size:
                        raise self._fail(
                            collection,
                            f"ragged vectors: expected {dim} values per row, got {int(lengths[bad[0]])} in a row",
                        )
                if not dim:  # 0 (never None here: a list column's is set above)
                    raise self._fail(collection, "vectors must have at least 1 value, got 0")
                if row + m > n:
                    raise self._fail(collection, f"{path} changed while being read (more than {n} rows)")
                if out is None:
                    out = np.empty((n, dim), dtype=np.float32)
                batch_ids = id_arr.to_numpy(zero_copy_only=False)
                if batch_ids.dtype.kind == "i" and int(batch_ids.min()) < 0:
                    raise self._fail(collection, f"ids must be 0 or more, got {int(batch_ids.min())}")
                ids[row : row + m] = batch_ids
                values = vec_arr.flatten()
                if values.null_count:
                    raise self._fail(
                        collection, f"vector column {self._vector_column!r} has null values inside vectors"
                    )
                block = out[row : row + m]
                # A zero-copy view of the batch's values, copied (and cast)
                # once, into the output.
                block[:] = values.to_numpy(zero_copy_only=False).reshape(m, dim)
                finite = np.isfinite(block).all(axis=1)
                if not finite.all():
                    bad_row = row + int(np.flatnonzero(~finite)[0])
                    raise self._fail(
                        collection,
                        f"vectors must be finite, got NaN or infinity in row {bad_row} (id {int(ids[bad_row])})",
                    )
                row += m
        except BackendError:
            raise
        except Exception as error:
            raise self._fail(collection, f"cannot read {path}: {error}") from error
        if row != n:
            raise self._fail(collection, f"{path} changed while being read ({row} of {n} rows)")
        if out is None:
            out = np.empty((0, dim or 0), dtype=np.float32)
        return ids, out


__all__ = ["ParquetBackend"]
