"""Embedders a collection accepts, behind one small interface. Internal.

* a model name (``"all-MiniLM-L6-v2"``): ``ruvector_embed.Embedder``, loaded
  on first use (offline first; the ``embed`` extra);
* an object with ``embed_batch(texts)`` (a ``ruvector_embed.Embedder``);
* an object with ``embed_documents(texts)`` / ``embed_query(text)`` (a
  LangChain ``Embeddings``);
* a callable taking a list of texts and returning one vector per text.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence

from ruvector_common.errors import DimensionMismatch, EmbedError, InvalidArgument, MissingComponentError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["DEFAULT_MODEL", "EmbedderAdapter", "make_embedder"]

#: The model a collection embeds with when none is named.
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def _embed_module(requested: str) -> Any:
    try:
        return importlib.import_module("ruvector_embed")
    except ModuleNotFoundError as error:
        if error.name != "ruvector_embed":
            raise
        raise MissingComponentError(requested, "embed", "ruvector-embed", "ruvector_embed") from error


class EmbedderAdapter:
    """Turns texts into float32 rows, whatever the embedder given."""

    def __init__(self, name: Optional[str], target: Any) -> None:
        self.name = name
        self._target = target  # a model name until loaded
        self._load_lock = threading.Lock()

    def _pending(self) -> Optional[str]:
        """The model name while it is not loaded yet."""
        return self._target if isinstance(self._target, str) else None

    def _resolved(self) -> Any:
        if self._pending() is not None:
            with self._load_lock:
                name = self._pending()  # again under the lock: another thread may have loaded it
                if name is not None:
                    module = _embed_module(f"embedding with {name!r}")
                    self._target = module.Embedder.from_pretrained(name)
        return self._target

    @property
    def loaded(self) -> Any:
        """The embedder object (a model name is loaded now)."""
        return self._resolved()

    def embed(self, texts: Sequence[str], *, query: bool = False) -> npt.NDArray[np.float32]:
        """``(len(texts), dim)`` float32; ``query`` picks ``embed_query`` where offered."""
        import numpy as np

        target = self._resolved()
        texts = list(texts)
        if hasattr(target, "embed_batch"):
            out = target.embed_batch(texts)
        elif hasattr(target, "embed_documents"):
            if query and hasattr(target, "embed_query"):
                out = [target.embed_query(t) for t in texts]
            else:
                out = target.embed_documents(texts)
        elif callable(target):
            out = target(texts)
        else:  # checked in make_embedder
            raise InvalidArgument(f"cannot embed with {type(target).__name__}")
        try:
            array = np.asarray(out, dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise EmbedError(f"the embedder returned something that is not a matrix of numbers: {error}") from error
        if array.ndim != 2 or array.shape[0] != len(texts):
            raise EmbedError(
                f"the embedder returned shape {array.shape} for {len(texts)} texts; expected ({len(texts)}, dim)"
            )
        return np.ascontiguousarray(array)

    def check_dim(self, got: int, expected: Optional[int]) -> None:
        if expected is not None and got != expected:
            raise DimensionMismatch(
                f"the embedder makes {got}-d vectors but the collection holds {expected}-d vectors",
                expected,
                got,
            )


def make_embedder(spec: object) -> Optional[EmbedderAdapter]:
    """An adapter for ``spec`` (``None`` stays ``None``: vectors only)."""
    if spec is None:
        return None
    if isinstance(spec, EmbedderAdapter):
        return spec
    if isinstance(spec, str):
        if not spec:
            raise InvalidArgument("embedder name must not be empty")
        return EmbedderAdapter(spec, spec)
    # callable() as its own statement: narrowing `object` with it in a condition
    # makes mypy invent a "<callable subtype of object>" class in this module.
    is_callable = callable(spec)
    if hasattr(spec, "embed_batch") or hasattr(spec, "embed_documents") or is_callable:
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not name:
            name = getattr(spec, "model_name", None)
        return EmbedderAdapter(name if isinstance(name, str) and name else None, spec)
    raise InvalidArgument(
        "embedder must be a model name, an object with embed_batch() or embed_documents(), "
        f"a callable, or None; got {type(spec).__name__}"
    )


EmbedFn = Callable[[List[str]], Any]
