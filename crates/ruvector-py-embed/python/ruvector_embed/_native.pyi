"""Type stubs for the compiled module ``ruvector_embed._native``."""

import os
from typing import Any, Dict, Iterable, List, Literal, Mapping, Optional, Sequence, Union, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "_error_classes",
    "cpu_features",
    "runtime_info",
    "set_num_threads",
    "get_num_threads",
    "Embedder",
    "ImageEmbedder",
    "sha256_file",
]

__version__: str
#: Names of the ``ruvector_common.errors`` classes this module raises
#: (checked against ``ruvector_common`` at import).
_error_classes: List[str]

_Path = Union[str, "os.PathLike[str]"]
_Int = Union[int, np.integer[Any]]
#: Names of the image model (``Embedder.from_pretrained`` returns an ImageEmbedder).
_ImageModelName = Literal["mobilenetv3-small", "mobilenet_v3_small"]
#: One image: an ``(H, W, 3)`` uint8 array, or anything ``numpy.asarray`` makes
#: one of (checked at run time).
_Image = npt.ArrayLike
#: ``Embedder.encode``'s ``device``: the CPU only.
_Device = Optional[Literal["cpu"]]

def cpu_features() -> Dict[str, Union[bool, str]]:
    """CPU architecture and SIMD features detected at run time."""

def set_num_threads(n: int) -> None:
    """Sets the size of this wheel's thread pool from now on (1 to 1024):
    the threads of ``embed_batch``, ``encode`` and ``embed_images``.

    Like ``faiss.omp_set_num_threads``; overrides ``RUVECTOR_NUM_THREADS``.
    Calls already running finish on the old pool. Raises
    :class:`ruvector_common.errors.InvalidArgument` outside 1..1024.
    """

def get_num_threads() -> int:
    """The size of this wheel's thread pool: the value set by
    :func:`set_num_threads`, else ``RUVECTOR_NUM_THREADS``, else the CPU count."""

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
    :meth:`encode` takes the arguments of ``SentenceTransformer.encode``.
    """

    @overload
    @classmethod
    def from_pretrained(  # type: ignore[overload-overlap]
        cls,
        name: _ImageModelName,
        *,
        cache_dir: Optional[_Path] = None,
        download: Optional[bool] = None,
        sources: Optional[Sequence[str]] = None,
        normalize: Optional[bool] = None,
        weights: Optional[_Path] = None,
        pretrained: Optional[bool] = None,
    ) -> ImageEmbedder:
        """The image model: the same as ``ImageEmbedder.from_pretrained(name, ...)``."""
    @overload
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
        prompts: Optional[Mapping[str, str]] = None,
        default_prompt_name: Optional[str] = None,
    ) -> Embedder:
        """Loads a known model (``"all-MiniLM-L6-v2"``, ``"all-mpnet-base-v2"``,
        ``"multilingual-e5-small"``, ...; see ``ruvector_embed.list_models()``) or a local folder, offline first
        (see ``ruvector_embed.resolve_model``), with the pinned digests of a
        known model verified. ``pooling`` (``"mean"``/``"cls"``/``"lasttoken"``),
        ``normalize`` and ``max_seq_length`` override the folder's
        configuration; ``prompts`` (name -> text) and ``default_prompt_name``
        replace the prompts :meth:`encode` knows (by default those of the
        folder's ``config_sentence_transformers.json``, else the registry's).
        The image model name ``"mobilenetv3-small"`` gives an
        :class:`ImageEmbedder` instead."""

    def __reduce__(self) -> tuple[Any, tuple[Dict[str, Any]]]:
        """Pickles by reference: the model's file paths, sizes and SHA-256
        digests and its settings, not the weights. Unpickling checks every file
        again and loads it; a missing or changed file raises ``EmbedError``
        naming the file, the expected and the found size or digest."""
    def __copy__(self) -> Embedder:
        """The same embedder (it is immutable)."""
    def __deepcopy__(self, memo: Any) -> Embedder:
        """The same embedder (it is immutable)."""
    def embed(self, text: str) -> npt.NDArray[np.float32]:
        """Embeds one text: shape ``(dim,)``. Only the first :attr:`max_seq_length`
        tokens count; a long text is cut before it is tokenised (see the README)."""

    def embed_batch(self, texts: Iterable[str]) -> npt.NDArray[np.float32]:
        """Embeds every text (a list, tuple, iterator... of str, not a single str) in
        parallel with the GIL released: shape ``(len(texts), dim)``. Ctrl-C stops
        it promptly with ``KeyboardInterrupt``. A text holding a lone surrogate is
        ``InvalidArgument``; a model whose output is not finite raises ``EmbedError``."""

    @overload
    def encode(  # type: ignore[overload-overlap]
        self,
        sentences: str,
        batch_size: _Int = 32,
        *,
        show_progress_bar: Optional[bool] = None,
        normalize_embeddings: Optional[bool] = None,
        convert_to_numpy: bool = True,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        convert_to_tensor: Literal[False] = False,
        device: _Device = None,
        precision: Literal["float32"] = "float32",
        output_value: Optional[Literal["sentence_embedding"]] = "sentence_embedding",
    ) -> npt.NDArray[np.float32]:
        """One text: a ``(dim,)`` float32 array (see the next overload)."""
    @overload
    def encode(
        self,
        sentences: Iterable[str],
        batch_size: _Int = 32,
        *,
        show_progress_bar: Optional[bool] = None,
        normalize_embeddings: Optional[bool] = None,
        convert_to_numpy: Literal[True] = True,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        convert_to_tensor: Literal[False] = False,
        device: _Device = None,
        precision: Literal["float32"] = "float32",
        output_value: Optional[Literal["sentence_embedding"]] = "sentence_embedding",
    ) -> npt.NDArray[np.float32]:
        """Embeds texts with the arguments of ``SentenceTransformer.encode``:
        a ``(n, dim)`` float32 array (one str gives ``(dim,)``).

        ``sentences`` is read ``batch_size`` (1 to 2**20) texts at a time, so
        any iterable streams through (a generator of any length) holding one
        batch of texts plus the output, which is allocated once when
        ``len(sentences)`` is known and grown in place otherwise. Each batch is
        embedded like :meth:`embed_batch` (the same values, bit for bit) on the
        wheel's thread pool: :func:`set_num_threads` sets its size.

        * ``show_progress_bar``: a bar on stderr (``tqdm``'s if it is
          installed, else a built-in one); ``None``: only if stderr is a TTY.
        * ``normalize_embeddings``: ``None`` (default) follows
          :attr:`normalize`; ``True`` unit length; ``False`` the pooled
          embeddings without normalisation (sentence-transformers would still
          apply a model's own ``Normalize`` module).
        * ``convert_to_numpy=False``: a list of ``(dim,)`` arrays.
        * ``prompt``: prepended to every text; ``prompt_name``: one of
          :attr:`prompts` (an unknown name is ``InvalidArgument`` listing
          them); neither: the :attr:`default_prompt_name` prompt, if any.
        * ``convert_to_tensor``, ``device``, ``precision``, ``output_value``
          accept only what this CPU float32 embedder gives, for code written
          for sentence-transformers.

        An empty iterable gives ``(0, dim)``. Ctrl-C raises
        ``KeyboardInterrupt`` within a batch's work. Bad arguments (a
        ``batch_size`` of 0, a non-str item) raise ``InvalidArgument``.
        """
    @overload
    def encode(
        self,
        sentences: Iterable[str],
        batch_size: _Int = 32,
        *,
        show_progress_bar: Optional[bool] = None,
        normalize_embeddings: Optional[bool] = None,
        convert_to_numpy: Literal[False],
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        convert_to_tensor: Literal[False] = False,
        device: _Device = None,
        precision: Literal["float32"] = "float32",
        output_value: Optional[Literal["sentence_embedding"]] = "sentence_embedding",
    ) -> List[npt.NDArray[np.float32]]:
        """``convert_to_numpy=False``: a list of ``(dim,)`` float32 arrays."""
    @overload
    def encode(
        self,
        sentences: Iterable[str],
        batch_size: _Int = 32,
        *,
        show_progress_bar: Optional[bool] = None,
        normalize_embeddings: Optional[bool] = None,
        convert_to_numpy: bool = True,
        prompt_name: Optional[str] = None,
        prompt: Optional[str] = None,
        convert_to_tensor: Literal[False] = False,
        device: _Device = None,
        precision: Literal["float32"] = "float32",
        output_value: Optional[Literal["sentence_embedding"]] = "sentence_embedding",
    ) -> Union[npt.NDArray[np.float32], List[npt.NDArray[np.float32]]]:
        """``convert_to_numpy`` known only at run time."""
    def _embed_batch(self, texts: List[str], normalize: bool, offset: int) -> npt.NDArray[np.float32]:
        """One batch of :meth:`encode` (private)."""

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
        """``"mean"``, ``"cls"`` or ``"lasttoken"``."""
    @property
    def normalize(self) -> bool:
        """Whether embeddings have unit L2 norm."""
    @property
    def prompts(self) -> Dict[str, str]:
        """Prompt name -> text :meth:`encode` prepends for ``prompt_name=``
        (a new dict on every access)."""
    @property
    def default_prompt_name(self) -> Optional[str]:
        """The prompt :meth:`encode` uses when given none (``None``: no prompt)."""
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

@final
class ImageEmbedder:
    """Image embeddings computed in Rust: the 576-d features of torchvision's
    ``mobilenet_v3_small`` (global average pool of its last convolution),
    no PyTorch.

    Preprocessing equals torchvision's ImageNet evaluation transform on a PIL
    image (bit for bit): resize the shorter side to 256 (antialiased
    bilinear), centre crop 224 x 224, scale to [0, 1], normalise with the
    ImageNet mean and std, HWC -> CHW. Images are ``(H, W, 3)`` uint8 RGB
    arrays (channels last); sides from 1 to 16384 pixels.

    Weights: torchvision's pretrained ``state_dict``, converted once with::

        python -m ruvector_embed.convert_mobilenet   # needs torch + torchvision for this step only

    which writes ``model.safetensors`` where ``ImageEmbedder.from_pretrained()``
    looks (``--out DIR`` elsewhere, then ``weights=DIR``). Without them,
    ``from_pretrained()`` raises ``EmbedError`` naming where it looked and that
    command. ``weights="untrained"`` (or ``pretrained=False``) asks for
    **untrained** weights: deterministic features (the same on every machine)
    that are NOT semantic; :attr:`pretrained` is then ``False``.

    >>> emb = ImageEmbedder.from_pretrained()    # after convert_mobilenet
    >>> emb.embed_image(np.zeros((480, 640, 3), np.uint8)).shape
    (576,)
    >>> emb.embed_images([img_a, img_b]).shape                # any sizes, GIL released
    (2, 576)
    """

    @classmethod
    def from_pretrained(
        cls,
        name: Optional[_Path] = None,
        *,
        weights: Optional[_Path] = None,
        pretrained: Optional[bool] = None,
        normalize: Optional[bool] = None,
        cache_dir: Optional[_Path] = None,
        sources: Optional[Sequence[str]] = None,
    ) -> ImageEmbedder:
        """Loads ``mobilenetv3-small`` (``name``, the default when omitted or
        ``None``; it may also be the path of a
        ``.safetensors`` file or of a folder holding ``model.safetensors``).
        ``weights``: a ``.safetensors`` file or folder, or ``"untrained"``;
        by default ``$RUVECTOR_MODELS/mobilenetv3-small/model.safetensors``
        then ``<cache>/mobilenetv3-small/model.safetensors`` (see
        ``ruvector_embed.resolve_image_weights``); if neither exists,
        ``EmbedError`` naming both and the conversion command
        (``python -m ruvector_embed.convert_mobilenet``). ``pretrained=False``
        is ``weights="untrained"``: deterministic, NOT semantic features.
        ``normalize`` (default ``True``): L2-normalise the features; ``False``
        gives torchvision's raw pooled features."""

    def __reduce__(self) -> tuple[Any, tuple[Dict[str, Any]]]:
        """Pickles by reference: the model's file paths, sizes and SHA-256
        digests and its settings, not the weights. Unpickling checks every file
        again and loads it; a missing or changed file raises ``EmbedError``
        naming the file, the expected and the found size or digest."""
    def __copy__(self) -> ImageEmbedder:
        """The same embedder (it is immutable)."""
    def __deepcopy__(self, memo: Any) -> ImageEmbedder:
        """The same embedder (it is immutable)."""
    def embed_image(self, image: _Image) -> npt.NDArray[np.float32]:
        """Embeds one ``(H, W, 3)`` uint8 image: shape ``(576,)``."""

    def embed_images(self, images: Union[npt.NDArray[Any], Iterable[_Image]]) -> npt.NDArray[np.float32]:
        """Embeds a ``(N, H, W, 3)`` uint8 array or a sequence of ``(H, W, 3)``
        uint8 arrays (sizes may differ) in parallel with the GIL released:
        shape ``(N, 576)``; each row equals :meth:`embed_image` of that image.
        Ctrl-C stops it promptly with ``KeyboardInterrupt``."""

    async def embed_image_async(self, image: _Image) -> npt.NDArray[np.float32]:
        """Awaitable :meth:`embed_image`, run on the wheel's runtime."""

    async def embed_images_async(self, images: Union[npt.NDArray[Any], Iterable[_Image]]) -> npt.NDArray[np.float32]:
        """Awaitable :meth:`embed_images`, run on the wheel's runtime."""

    def preprocess(self, image: _Image) -> npt.NDArray[np.float32]:
        """The network input of one image: ``(3, 224, 224)`` float32."""

    @property
    def dim(self) -> int:
        """Length of the features: 576."""
    @property
    def input_size(self) -> int:
        """Side of the square network input: 224."""
    @property
    def pretrained(self) -> bool:
        """Whether weights were loaded from a file (``False``: untrained, NOT semantic)."""
    @property
    def weights_path(self) -> Optional[str]:
        """The ``.safetensors`` file of the weights (``None``: untrained)."""
    @property
    def normalize(self) -> bool:
        """Whether features have unit L2 norm."""
    @property
    def name(self) -> str:
        """The architecture: ``"mobilenetv3-small"``."""
    @property
    def source(self) -> str:
        """Where the weights came from: explicit, directory, env, cache or untrained."""
    @property
    def memory_bytes(self) -> int:
        """Bytes of weights held in memory."""
