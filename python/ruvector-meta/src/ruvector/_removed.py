"""Names of ruvector 0.1.4 that ruvector 0.2 does not carry. Each one stays
importable and raises, on use, a :class:`ruvector.RuVectorError` naming
what to use instead. Internal; loads nothing."""

from __future__ import annotations

from typing import Any, Dict, NoReturn

from ruvector_common.errors import RuVectorError

__all__ = ["REMOVED", "removed"]

_MIGRATION = "see the migration table in docs/migrating-from-0.1.4.md"
_KEEP_014 = (
    "it is not part of ruvector 0.2 (the SDK of the RuVector Rust crates); keep using it from "
    "ruvector 0.1.4 in its own environment (pip install 'ruvector==0.1.4')"
)
#: 0.1.4 name -> what replaces it.
REMOVED: Dict[str, str] = {
    "HnswIndex": (
        "the SDK has no graph index: use ruvector.Collection (documents, metadata filters, delete, "
        "persistence; exact search while small, IVF above 5k vectors) or ruvector.IvfRabitqIndex "
        "(the index alone: recall@10 0.99 at a p50 of 0.16 ms on 100k x 384)"
    ),
    "GraphDB": _KEEP_014,
    "GnnLayer": _KEEP_014,
    "AttentionReranker": _KEEP_014,
    "SonaEngine": _KEEP_014,
    "KVCache": _KEEP_014,
    "RvfStore": _KEEP_014,
    "kmeans": _KEEP_014,
}


def removed(name: str) -> RuVectorError:
    """The error raised when 0.1.4's ``name`` is used."""
    return RuVectorError(
        f"ruvector.{name} (ruvector 0.1.4) is not available in ruvector 0.2: {REMOVED[name]}; {_MIGRATION}"
    )


class _Removed:
    """Stands in for a removed 0.1.4 class: using it raises."""

    _name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise removed(cls._name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

    @classmethod
    def create(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise removed(cls._name)

    @classmethod
    def load(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise removed(cls._name)

    @classmethod
    def build(cls, *args: Any, **kwargs: Any) -> NoReturn:
        raise removed(cls._name)


def placeholder(name: str) -> Any:
    """A stand-in for 0.1.4's ``name`` (a class, or ``kmeans``, a function)."""
    if name == "kmeans":

        def kmeans(*args: Any, **kwargs: Any) -> NoReturn:
            raise removed("kmeans")

        kmeans.__doc__ = removed("kmeans").message
        return kmeans
    cls = type(name, (_Removed,), {"_name": name, "__doc__": removed(name).message, "__module__": "ruvector"})
    return cls
