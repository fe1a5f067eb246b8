"""The base class for backends implemented in Python."""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, List, Optional, Tuple, Union

if TYPE_CHECKING:
    import numpy.typing as npt

    from ._types import Changes


class BackendAdapter(abc.ABC):
    """Plug your own store into a lake: subclass, implement :meth:`pull` and
    :meth:`generation`, and pass an instance to ``RuLake.register_backend``.

    The lake calls these methods from its own worker threads (holding the
    GIL only for the call). It asks :meth:`generation` on every coherence
    check and calls :meth:`pull` only when the generation moved (or the
    entry was dropped): return a new generation whenever the data changes.
    Override :meth:`changes_since` too, and a moved generation costs the
    change instead of the collection (an incremental refresh).
    An exception raised here reaches the caller as ``BackendError`` naming
    the backend, with your exception as ``__cause__``; a ``BaseException``
    that is not an ``Exception`` (``KeyboardInterrupt``, ``SystemExit``)
    reaches it unchanged.

    >>> import numpy as np
    >>> class Mine(BackendAdapter):
    ...     def pull(self, collection):
    ...         return np.arange(3, dtype=np.uint64), np.eye(3, dtype=np.float32)
    ...     def generation(self, collection):
    ...         return 1
    >>> Mine("mine").name
    'mine'
    """

    def __init__(self, name: str) -> None:
        """Name the backend (unique within a lake; no ``/``, ``\\``, ``:``)."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self._name = name

    @property
    def name(self) -> str:
        """The backend's name."""
        return self._name

    @abc.abstractmethod
    def pull(self, collection: str) -> Tuple[npt.ArrayLike, npt.ArrayLike]:
        """Return ``(ids, vectors)`` of ``collection``: ``n`` unique unsigned
        64-bit ids and an ``(n, dim)`` float32 array (float16 / float64 are
        converted, with a copy)."""

    @abc.abstractmethod
    def generation(self, collection: str) -> Union[int, str]:
        """Return a token that changes whenever ``collection``'s data does
        (a version number, a snapshot id, an ETag)."""

    def changes_since(self, collection: str, generation: Union[int, str]) -> Optional[Changes]:
        """Return what changed in ``collection`` since ``generation`` (a
        token your :meth:`generation` returned earlier) as a
        :class:`~ruvector_lake.Changes`, or ``None`` when you cannot tell
        (the default; then the lake pulls the whole collection).

        The lake calls this instead of :meth:`pull` when the generation of
        a collection it holds moved on: it removes ``removed_ids`` and
        replaces or adds ``upserted_ids`` in its cached index, encoding only
        those rows, and labels the entry with the returned ``generation``.
        The result must equal a fresh :meth:`pull` at that generation (same
        ids and vectors), or the cache serves data the store never had.
        What you return is checked (ids unique and at most ``MAX_ID``,
        vectors finite with the cached dimension, no id both upserted and
        removed, sizes bounded); a violation is a ``BackendError`` naming
        the backend.
        """
        return None

    def data_ref(self, collection: str) -> str:
        """Return the URI of ``collection``'s data, part of its bundle's
        witness. Two backends with equal data refs and generations share one
        cache entry. Default: ``python://<name>/<collection>``."""
        return f"python://{self.name}/{collection}"

    def collections(self) -> List[str]:
        """Return the collection names (for diagnostics; default: none)."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


__all__ = ["BackendAdapter"]
