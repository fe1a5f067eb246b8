"""The exception hierarchy shared by every RuVector Python package.

Each compiled RuVector wheel (``ruvector-rabitq``, ``ruvector-lake``,
``ruvector-embed``, ``ruvector-a2a``) imports its exception classes from this
module instead of defining its own, so that a single ``except RuVectorError``
catches errors from any of them, whichever subset is installed.

``__all__`` below is the one list of the classes: ``ruvector_common`` and
``ruvector`` re-export it, and each wheel checks at import that the classes
it raises (its ``_native._error_classes``) are here. The class names and
constructor signatures are a contract with the Rust side: classes may be
added, but never renamed or removed. :data:`ERRORS_ABI` is bumped if that
contract ever has to change incompatibly.

Every class also derives from the builtin exception a plain-Python caller
would expect (``ValueError`` for bad input, ``LookupError`` for a missing key,
``OSError`` for persistence failures, ...), so code that knows nothing about
RuVector still handles these errors sensibly. ``str(error)`` is always exactly
the message, and every instance, extra attributes included, survives
:mod:`pickle` and :func:`copy.copy`.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Final, Optional, Tuple, Union

__all__ = [
    "ERRORS_ABI",
    "RuVectorError",
    "InvalidArgument",
    "DimensionMismatch",
    "NotFound",
    "VectorIndexError",
    "EmptyIndex",
    "PersistError",
    "LakeError",
    "BackendError",
    "CacheMissError",
    "WitnessMismatch",
    "EmbedError",
    "A2aError",
    "CardSignatureInvalid",
    "PolicyViolation",
    "BudgetExceeded",
    "TransportError",
    "MissingComponentError",
]

ERRORS_ABI: Final[int] = 1
"""Version of the exception contract; compiled wheels refuse to load if it is
lower than the one they were built against. Classes are only ever added, so a
higher value is always compatible."""

_ReduceValue = Tuple[Any, Tuple[Any, ...], Dict[str, Any]]


class RuVectorError(Exception):
    """Root of every error raised by a RuVector package.

    Raised directly only for failures that fit no more specific class; catch
    it to handle any RuVector error. It is also an :class:`Exception`.

    Args:
        message: The human-readable description; ``str(error)`` returns it.
    """

    message: str
    """The human-readable description, identical to ``str(error)``."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def _init_args(self) -> Tuple[Any, ...]:
        """Return the positional arguments that rebuild this instance."""
        return (self.message,)

    def __reduce__(self) -> _ReduceValue:
        """Support :mod:`pickle` and :mod:`copy` for the class and its subclasses.

        The constructor is called again with the original arguments; any other
        instance attributes (for example notes added with ``add_note``) are
        restored from the instance dictionary afterwards.
        """
        return (type(self), self._init_args(), dict(self.__dict__))

    def __str__(self) -> str:
        """Return the message, unchanged."""
        return str(self.message)

    def __repr__(self) -> str:
        """Return ``ClassName(arguments...)``, the call that rebuilds the error."""
        args = ", ".join(repr(a) for a in self._init_args())
        return f"{type(self).__name__}({args})"


class InvalidArgument(RuVectorError, ValueError):
    """Raised for bad input: a wrong dtype or shape, a NaN, an out-of-range
    ``k``, an unknown id format and the like.

    It is also a :class:`ValueError`.
    """


class DimensionMismatch(InvalidArgument):
    """Raised when a vector's length differs from the dimension the index or
    model expects.

    It is also a :class:`ValueError` (through :class:`InvalidArgument`).

    Args:
        message: The human-readable description.
        expected: The dimension that was expected, if known.
        got: The dimension that was given, if known.
    """

    expected: Optional[int]
    """The dimension that was expected, or ``None`` if unknown."""
    got: Optional[int]
    """The dimension that was given, or ``None`` if unknown."""

    def __init__(
        self,
        message: str = "",
        expected: Optional[int] = None,
        got: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.expected = expected
        self.got = got

    def _init_args(self) -> Tuple[Any, ...]:
        """Return ``(message, expected, got)``."""
        return (self.message, self.expected, self.got)


class NotFound(RuVectorError, LookupError):
    """Raised when a key (a vector id, a name, a dataset) is not present.

    It is also a :class:`LookupError`, but deliberately not a
    :class:`KeyError`, whose ``str()`` would wrap the message in quotes.

    Args:
        message: The human-readable description.
        key: The key that was looked up, if known.
    """

    key: object
    """The key that was looked up, or ``None`` if unknown."""

    def __init__(self, message: str = "", key: object = None) -> None:
        super().__init__(message)
        self.key = key

    def _init_args(self) -> Tuple[Any, ...]:
        """Return ``(message, key)``."""
        return (self.message, self.key)


class VectorIndexError(RuVectorError):
    """Base class of errors raised by a vector index; raised directly for an
    index failure that fits no subclass.

    (It is not called ``IndexError`` so as not to shadow the builtin.) It is
    also an :class:`Exception`, but not a builtin :class:`IndexError`.
    """


class EmptyIndex(VectorIndexError, ValueError):
    """Raised when an index holding no vectors is searched.

    It is also a :class:`ValueError`.
    """


class PersistError(VectorIndexError, OSError):
    """Raised when saving or loading an index fails: an I/O error, a bad or
    truncated file, a checksum or version mismatch.

    It is also an :class:`OSError`. Unlike a plain ``OSError``, its
    constructor does not interpret extra arguments as ``errno``/``strerror``;
    ``errno``, ``strerror`` and ``filename`` stay ``None`` and the file
    involved is in :attr:`path`.

    Args:
        message: The human-readable description.
        path: The file or directory involved, if known.
    """

    path: Optional[str]
    """The file or directory involved (as a ``str``), or ``None`` if unknown."""

    def __init__(
        self,
        message: str = "",
        path: Union[str, os.PathLike[str], None] = None,
    ) -> None:
        # OSError parses its arguments in __init__ (not __new__) for subclasses
        # that override __init__, so passing only the message here keeps
        # errno/strerror/filename unset and str() equal to the message.
        super().__init__(message)
        self.path = None if path is None else os.fspath(path)

    def _init_args(self) -> Tuple[Any, ...]:
        """Return ``(message, path)``."""
        return (self.message, self.path)


class LakeError(RuVectorError):
    """Base class of errors raised by the RuLake data-lake component; raised
    directly for a lake failure that fits no subclass.

    It is also an :class:`Exception`.
    """


class BackendError(LakeError, RuntimeError):
    """Raised when a storage backend of the lake (object store, filesystem,
    remote service) fails.

    It is also a :class:`RuntimeError`.

    Args:
        message: The human-readable description.
        backend: The name of the backend that failed, if known.
    """

    backend: Optional[str]
    """The name of the backend that failed, or ``None`` if unknown."""

    def __init__(self, message: str = "", backend: Optional[str] = None) -> None:
        super().__init__(message)
        self.backend = backend

    def _init_args(self) -> Tuple[Any, ...]:
        """Return ``(message, backend)``."""
        return (self.message, self.backend)


class CacheMissError(LakeError, LookupError):
    """Raised when an entry required to be served from the lake's cache is
    not cached (for example in offline or cache-only mode).

    It is also a :class:`LookupError`.
    """


class WitnessMismatch(LakeError, ValueError):
    """Raised when data read from the lake does not match its recorded
    witness (content hash or proof), i.e. it was altered or corrupted.

    It is also a :class:`ValueError`.
    """


class EmbedError(RuVectorError):
    """Raised when computing embeddings fails (model loading, tokenisation,
    inference).

    It is also an :class:`Exception`.
    """


class A2aError(RuVectorError):
    """Base class of errors raised by the agent-to-agent (A2A) component;
    raised directly for an A2A failure that fits no subclass.

    It is also an :class:`Exception`.
    """


class CardSignatureInvalid(A2aError):
    """Raised when an agent card's signature is missing or does not verify.

    It is also an :class:`Exception`.
    """


class PolicyViolation(A2aError, ValueError):
    """Raised when a request or message breaks the configured A2A policy.

    It is also a :class:`ValueError`.
    """


class BudgetExceeded(A2aError):
    """Raised when an A2A call would exceed its allotted budget (tokens,
    cost, calls or time).

    It is also an :class:`Exception`.
    """


class TransportError(A2aError, ConnectionError):
    """Raised when talking to a remote agent fails at the transport level
    (connection refused or reset, timeout, bad response framing).

    It is also a :class:`ConnectionError` (and so an :class:`OSError`).
    """


class MissingComponentError(RuVectorError, ImportError):
    """Raised by the ``ruvector`` meta package when a name is requested whose
    optional component distribution is not installed.

    It is also an :class:`ImportError`; its ``name`` attribute (from
    ``ImportError``) is the module that could not be imported.

    Args:
        name: The name that was requested, e.g. ``"ruvector.RuLake"``.
        extra: The ``ruvector`` extra that installs the component, e.g.
            ``"lake"``.
        dist: The component's distribution name, e.g. ``"ruvector-lake"``.
        module: The component's import name; defaults to ``dist`` with
            dashes replaced by underscores.
    """

    name_requested: str
    """The name that was requested, e.g. ``"ruvector.RuLake"``."""
    extra: str
    """The ``ruvector`` extra that installs the missing component."""
    dist: str
    """The distribution name of the missing component."""

    def __init__(
        self,
        name: str = "",
        extra: str = "",
        dist: str = "",
        module: Optional[str] = None,
    ) -> None:
        message = (
            f"{name} is provided by the optional {dist!r} package, which is not "
            f"installed; install it with: pip install 'ruvector[{extra}]' "
            f"(or: pip install {dist})"
        )
        super().__init__(message)
        self.name_requested = name
        self.extra = extra
        self.dist = dist
        if module is None and dist:
            module = dist.replace("-", "_")
        # ImportError.name: the module whose import failed.
        self.name = module

    def _init_args(self) -> Tuple[Any, ...]:
        """Return ``(name, extra, dist, module)``."""
        return (self.name_requested, self.extra, self.dist, self.name)
