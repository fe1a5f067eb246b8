"""Sentence embeddings computed in Rust: ``all-MiniLM-L6-v2`` and
``bge-small-en-v1.5`` with the results of sentence-transformers, no PyTorch.

>>> import ruvector_embed as re
>>> emb = re.Embedder.from_pretrained("all-MiniLM-L6-v2")   # offline first, verified
>>> emb.embed("hello world").shape
(384,)
>>> emb.embed_batch(["hello", "world"]).shape                 # parallel, GIL released
(2, 384)
>>> emb.encode(["hello", "world"], batch_size=64).shape       # sentence-transformers' encode()
(2, 384)
>>> [m.name for m in re.list_models()]
['all-MiniLM-L6-v2', 'bge-small-en-v1.5', 'mobilenetv3-small']

Image embeddings: torchvision's ``mobilenet_v3_small`` features (576-d),
with torchvision's ImageNet preprocessing, from a ``model.safetensors``
converted once with ``python -m ruvector_embed.convert_mobilenet`` (see
:class:`ImageEmbedder`); without it, asking for the pretrained model raises
:class:`EmbedError`. Untrained weights (deterministic, NOT semantic) only
when asked for:

>>> img = re.ImageEmbedder.from_pretrained(weights="untrained")
>>> import numpy as np
>>> img.embed_image(np.zeros((480, 640, 3), np.uint8)).shape
(576,)

Models are resolved offline first (a folder, ``$RUVECTOR_MODELS``, the
Hugging Face cache, an installed weights package, ruvector's cache) and only
then downloaded where a network exists; see :func:`resolve_model`. Files of
known models are checked against pinned SHA-256 digests.

Errors are the shared classes of ``ruvector_common.errors``:
:class:`EmbedError` for model and inference failures,
:class:`InvalidArgument` for bad arguments.
"""

# The native module first: if ruvector-common is missing or too old, its
# ImportError names the distribution to install.
from . import _native  # noqa: F401  (loaded first on purpose)

# isort: split
from ruvector_common.errors import EmbedError, InvalidArgument, RuVectorError

from ._models import (
    KNOWN_MODELS,
    SOURCES,
    ModelInfo,
    ModelSpec,
    ResolvedImageWeights,
    ResolvedModel,
    default_cache_dir,
    list_models,
    resolve_image_weights,
    resolve_model,
)
from ._native import (
    Embedder,
    ImageEmbedder,
    __version__,
    cpu_features,
    get_num_threads,
    runtime_info,
    set_num_threads,
    sha256_file,
)

__all__ = [
    "KNOWN_MODELS",
    "SOURCES",
    "EmbedError",
    "Embedder",
    "ImageEmbedder",
    "InvalidArgument",
    "ModelInfo",
    "ModelSpec",
    "ResolvedImageWeights",
    "ResolvedModel",
    "RuVectorError",
    "__version__",
    "cpu_features",
    "get_num_threads",
    "default_cache_dir",
    "list_models",
    "resolve_image_weights",
    "resolve_model",
    "runtime_info",
    "set_num_threads",
    "sha256_file",
]
