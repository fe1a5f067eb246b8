"""Files of a collection directory: the lock that keeps two writers apart,
and the clean-up of what a killed save leaves behind. Internal."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import IO, Optional

from ruvector_common.errors import PersistError

__all__ = ["DB_NAME", "LOCK_NAME", "DirLock", "index_file_name", "stale_files"]

DB_NAME = "ruvector.sqlite"
LOCK_NAME = "lock"
_INDEX_RE = re.compile(r"^index\.(\d+)\.rbpx$")
# io::write_atomic's temporary names: ".<final name>.tmp.<pid>.<n>.<nanos>".
_TEMP_RE = re.compile(r"^\.index\.\d+\.rbpx\.tmp\.")


def index_file_name(generation: int) -> str:
    """The index file saved at store generation ``generation``."""
    return f"index.{generation}.rbpx"


def stale_files(directory: Path, keep: Optional[str]) -> list[Path]:
    """Index files other than ``keep`` and temporary files of killed saves."""
    found: list[Path] = []
    for entry in directory.iterdir():
        if (_INDEX_RE.match(entry.name) and entry.name != keep) or _TEMP_RE.match(entry.name):
            found.append(entry)
    return found


class DirLock:
    """An advisory lock on ``<dir>/lock``: exclusive for a writer, shared for
    readers, held until :meth:`release`. A second writer (another process,
    or another open collection in this one) gets a :class:`PersistError`
    at once instead of waiting or corrupting anything."""

    def __init__(self, directory: Path, shared: bool) -> None:
        self.path = directory / LOCK_NAME
        self._file: Optional[IO[str]] = open(self.path, "a+", encoding="utf-8")
        try:
            self._acquire(shared)
        except BaseException:
            self._file.close()
            self._file = None
            raise
        if not shared:
            # Who holds it, for the message another opener gets.
            self._file.seek(0)
            self._file.truncate()
            self._file.write(f"{os.getpid()}\n")
            self._file.flush()

    def _acquire(self, shared: bool) -> None:
        assert self._file is not None
        try:
            import fcntl
        except ImportError:  # Windows: one byte locked exclusively either way
            import msvcrt

            try:
                msvcrt.locking(self._file.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
            except OSError:
                raise self._busy() from None
            return
        flags = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        try:
            fcntl.flock(self._file.fileno(), flags)
        except BlockingIOError:
            raise self._busy() from None

    def _busy(self) -> PersistError:
        try:
            holder = self.path.read_text("utf-8").strip()
        except OSError:
            holder = ""
        who = f" (writer pid {holder})" if holder.isdigit() else ""
        return PersistError(
            f"collection {str(self.path.parent)!r} is open for writing elsewhere{who}: close it there first "
            "(Collection.close() or a with block); any number of read_only=True opens may share it "
            "when no writer has it open",
            self.path.parent,
        )

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the lock
            self._file = None
