"""Type stubs for the compiled module ``ruvector_embed._native``."""

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union, final

import numpy as np
import numpy.typing as npt

__version__: str

_Path = Union[str, "os.PathLike[str]"]
_Int = Union[int, np.integer[Any]]

def cpu_features() -> Dict[str, Union[bool, str]]:
    """CPU architecture and SIMD features detected at run time."""

def runtime_info() -> Dict[str, Any]:
    """State of this wheel's tokio runtime and thread pool (started lazily)."""

def sha256_file(path: _Path) -> str:
    """SHA-256 of a file as lower-case hex (GIL released)."""

@final
class Embedder:
    """Sentence embeddings computed in Rust (BERT encoder, tokenizers, safetensors).

    Results equal sentence-transformers' (cosine >= 0.9999 on every text):
    the text is stripped, tokenised with the model's ``tokenizer.json``,
    truncated to :attr:`max_seq_length` tokens, encoded, pooled (mean or
    CLS) and, if the model says so, L2-normalised. Thread-safe.
    """

    @classmethod
    def from_pretrained(
        cls,
        name: _Path,
        *,
        cache_dir: Optional[_Path] = None,
        download: Optional[bool] = None,
        sources: Optional[Sequence[str]] = None,
        pooling: Optional[str] = None,
        normalize: Optional[bool] = None,
        max_seq_length: Optional[_Int] = None,
    ) -> Embedder:
        """Loads a known model (``"all-MiniLM-L6-v2"``, ``"bge-small-en-v1.5"``)
        or a local folder, offline first (see ``ruvector_embed.resolve_model``),
        with the pinned digests of a known model verified. ``pooling``
        (``"mean"``/``"cls"``), ``normalize`` and ``max_seq_length`` override
        the folder's configuration."""

    def embed(self, text: str) -> npt.NDArray[np.float32]:
        """Embeds one text: shape ``(dim,)``."""

    def embed_batch(self, texts: Iterable[str]) -> npt.NDArray[np.float32]:
        """Embeds every text (a list, tuple, iterator... of str, not a single str) in
        parallel with the GIL released: shape ``(len(texts), dim)``."""

    async def embed_async(self, text: str) -> npt.NDArray[np.float32]:
        """Awaitable :meth:`embed`, run on the wheel's runtime."""

    async def embed_batch_async(self, texts: Iterable[str]) -> npt.NDArray[np.float32]:
        """Awaitable :meth:`embed_batch`, run on the wheel's runtime."""

    def tokenize(self, text: str) -> List[int]:
        """Token ids the model sees for ``text`` (special tokens included, truncated)."""

    @property
    def dim(self) -> int:
        """Length of the embeddings (384 for all-MiniLM-L6-v2)."""
    @property
    def max_seq_length(self) -> int:
        """Tokens per text, special tokens included; longer texts are truncated."""
    @property
    def pooling(self) -> str:
        """``"mean"`` or ``"cls"``."""
    @property
    def normalize(self) -> bool:
        """Whether embeddings have unit L2 norm."""
    @property
    def name(self) -> str:
        """The model's name (the folder name for a local path)."""
    @property
    def path(self) -> str:
        """The folder the model was loaded from."""
    @property
    def source(self) -> str:
        """Where it was found: directory, env, hf-cache, package, cache or download."""
    @property
    def verified(self) -> bool:
        """Whether pinned SHA-256 digests were checked while loading."""
    @property
    def num_layers(self) -> int:
        """Number of encoder layers."""
    @property
    def vocab_size(self) -> int:
        """Tokenizer vocabulary size (added tokens included)."""
    @property
    def memory_bytes(self) -> int:
        """Bytes of weights held in memory."""
