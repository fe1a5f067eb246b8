"""``Embedder.encode``: sentence-transformers' ``encode`` on the Rust embedder.

:meth:`ruvector_embed.Embedder.encode` (a method of the native class)
delegates here. It takes the keyword arguments of
``SentenceTransformer.encode`` and gives the same shapes: one ``str`` in, a
``(dim,)`` array out; any iterable of ``str`` in (a list, a tuple, a NumPy
array of str, a generator...), a ``(n, dim)`` array out. The texts are read
``batch_size`` at a time and each batch is embedded by the wheel's thread pool
(its size is :func:`ruvector_embed.set_num_threads`), so an iterator of any
length streams through with the memory of one batch of texts plus the output.

Differences from sentence-transformers, on purpose:

* ``normalize_embeddings`` defaults to the model's own setting
  (``Embedder.normalize``); ``False`` gives the pooled embeddings without any
  normalisation, even for a model whose folder has a ``Normalize`` module
  (sentence-transformers would still normalise those);
* ``convert_to_numpy=False`` gives a list of 1-D NumPy arrays (where
  sentence-transformers gives a list of 1-D tensors); no PyTorch is used, so
  ``convert_to_tensor=True`` is refused;
* an empty list gives a ``(0, dim)`` array (sentence-transformers: ``(0,)``).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Protocol, Tuple, Union, cast

import numpy as np
import numpy.typing as npt

from ruvector_common.errors import EmbedError, InvalidArgument

__all__ = ["MAX_BATCH_SIZE", "PROMPTS_FILE", "encode", "model_prompts"]

_log = logging.getLogger("ruvector_embed")

#: Largest ``batch_size`` accepted.
MAX_BATCH_SIZE = 1 << 20
#: The file of a sentence-transformers folder that declares prompts.
PROMPTS_FILE = "config_sentence_transformers.json"
#: Largest prompts file read.
_MAX_PROMPTS_BYTES = 1 << 20

_Array = npt.NDArray[np.float32]


class _Embedder(Protocol):
    """What :func:`encode` uses of :class:`ruvector_embed.Embedder`."""

    @property
    def dim(self) -> int: ...
    @property
    def normalize(self) -> bool: ...
    @property
    def prompts(self) -> Dict[str, str]: ...
    @property
    def default_prompt_name(self) -> Optional[str]: ...
    def _embed_batch(self, texts: List[str], normalize: bool, offset: int) -> _Array: ...


def _type_name(value: object) -> str:
    return type(value).__name__


# --- prompts ------------------------------------------------------------------


def _prompt_text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a str, got {_type_name(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(
            f"{what} holds a lone surrogate U+{ord(value[e.start]):04X} at index {e.start}, "
            "which is not valid Unicode text"
        ) from None
    return value


def _prompt_map(value: object, what: str) -> Dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidArgument(f"{what} must be a dict of prompt name -> prompt text, got {_type_name(value)}")
    out: Dict[str, str] = {}
    for name, text in cast("Mapping[object, object]", value).items():
        key = _prompt_text(name, f"the prompt names of {what}")
        out[key] = _prompt_text(text, f"{what}[{key!r}]")
    return out


def _read_prompts_file(folder: Path) -> Tuple[Dict[str, str], Optional[str]]:
    """The ``prompts`` and ``default_prompt_name`` of ``folder``'s
    ``config_sentence_transformers.json`` (none if the file is absent)."""
    path = folder / PROMPTS_FILE
    if not path.is_file():
        return {}, None
    size = path.stat().st_size
    if size > _MAX_PROMPTS_BYTES:
        raise EmbedError(f"{path} is {size} bytes, more than the {_MAX_PROMPTS_BYTES} accepted")
    try:
        parsed: object = json.loads(path.read_bytes())
    except (OSError, ValueError) as e:
        raise EmbedError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(parsed, dict):
        raise EmbedError(f"{path} must hold a JSON object, got {_type_name(parsed)}")
    data = cast("Dict[str, object]", parsed)
    raw: object = data.get("prompts") or {}
    default = data.get("default_prompt_name")
    try:
        prompts = _prompt_map(raw, f"{path}: prompts")
        if default is not None:
            default = _prompt_text(default, f"{path}: default_prompt_name")
    except InvalidArgument as e:
        raise EmbedError(str(e)) from None
    if default is not None and default not in prompts:
        raise EmbedError(f"{path}: default_prompt_name {default!r} is not one of its prompts ({_names(prompts)})")
    return prompts, default


def _names(prompts: Mapping[str, str]) -> str:
    return ", ".join(repr(n) for n in sorted(prompts)) if prompts else "none"


def model_prompts(
    folder: Union[str, os.PathLike[str]],
    registry: Optional[Mapping[str, str]],
    prompts: object,
    default_prompt_name: object,
) -> Tuple[Dict[str, str], Optional[str]]:
    """The prompts of a text model and the name of its default prompt.

    ``prompts`` (given to ``from_pretrained``) replace the others; else the
    ``prompts`` of the folder's ``config_sentence_transformers.json``; else
    those of the registry for a known model (``registry``). The default
    prompt name is ``default_prompt_name`` if given, else the file's; it
    must name one of the prompts. Called by ``Embedder.from_pretrained``.
    """
    file_prompts, file_default = _read_prompts_file(Path(folder))
    if prompts is not None:
        chosen = _prompt_map(prompts, "prompts")
    elif file_prompts:
        chosen = file_prompts
    else:
        chosen = dict(registry or {})
    if default_prompt_name is not None:
        default: Optional[str] = _prompt_text(default_prompt_name, "default_prompt_name")
    else:
        default = file_default if file_default in chosen else None
    if default is not None and default not in chosen:
        raise InvalidArgument(
            f"default_prompt_name must be one of the model's prompts ({_names(chosen)}), got {default!r}"
        )
    return chosen, default


def _resolve_prompt(emb: _Embedder, prompt_name: object, prompt: object) -> str:
    if prompt is not None:
        text = _prompt_text(prompt, "prompt")
        if prompt_name is not None:
            _log.warning(
                "encode() was given both prompt and prompt_name=%r: using prompt (as sentence-transformers does)",
                prompt_name,
            )
        return text
    if prompt_name is None:
        name = emb.default_prompt_name
        return "" if name is None else emb.prompts[name]
    name = _prompt_text(prompt_name, "prompt_name")
    prompts = emb.prompts
    if name not in prompts:
        raise InvalidArgument(
            f"unknown prompt_name {name!r}: the model's prompts are {_names(prompts)} "
            "(from its config_sentence_transformers.json, the registry, or from_pretrained(prompts=...)); "
            "or pass the text itself as prompt=..."
        )
    return prompts[name]


# --- arguments ------------------------------------------------------------------


def _shown(value: object) -> str:
    return f"{type(value).__name__} {value!r}"


def _batch_size(value: object) -> int:
    shown = _shown(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgument(f"batch_size must be an int between 1 and {MAX_BATCH_SIZE}, got {shown}")
    n = int(cast(Any, value))
    if not 1 <= n <= MAX_BATCH_SIZE:
        raise InvalidArgument(f"batch_size must be an int between 1 and {MAX_BATCH_SIZE}, got {n}")
    return n


def _flag(value: object, what: str, allow_none: bool) -> Optional[bool]:
    if value is None and allow_none:
        return None
    shown = _shown(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(cast(object, value))
    expected = "True, False or None" if allow_none else "True or False"
    raise InvalidArgument(f"{what} must be {expected}, got {shown}")


def _only(value: object, what: str, accepted: Tuple[object, ...], why: str) -> None:
    if isinstance(value, str):
        ok = value.strip().lower() in accepted
    else:
        ok = any(value is a for a in accepted if not isinstance(a, str))
    if not ok:
        shown = " or ".join(repr(a) for a in accepted)
        raise InvalidArgument(f"{what} must be {shown}, got {value!r}: {why}")


# --- progress -------------------------------------------------------------------


class _Progress:
    """A progress bar on stderr: ``tqdm``'s if it is importable, else a
    one-line counter redrawn at most ten times a second."""

    def __init__(self, total: Optional[int], enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.last = 0.0
        self.bar: Any = None
        if not enabled:
            return
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self.bar = tqdm(total=total, desc="Encoding", unit=" sentences", file=sys.stderr)

    def update(self, n: int) -> None:
        if not self.enabled:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= 0.1:
            self.last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            pct = 100.0 * self.done / self.total
            text = f"Encoding: {pct:5.1f}% {self.done}/{self.total} sentences [{elapsed:.1f}s, {rate:.0f} sentences/s]"
        else:
            text = f"Encoding: {self.done} sentences [{elapsed:.1f}s, {rate:.0f} sentences/s]"
        sys.stderr.write("\r" + text)
        sys.stderr.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
            return
        self._draw(time.monotonic())
        sys.stderr.write("\n")
        sys.stderr.flush()


def _progress_default() -> bool:
    stream = sys.stderr
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


# --- the output -----------------------------------------------------------------


class _Rows:
    """The ``(n, dim)`` float32 output, filled batch by batch: allocated once
    when the number of texts is known, else grown in place by an eighth at a
    time (``ndarray.resize``, a ``realloc``), and trimmed at the end, so that
    its memory stays within 1.125 times the result."""

    def __init__(self, dim: int, expected: Optional[int]) -> None:
        self.dim = dim
        self.n = 0
        self.buf: _Array = np.empty((expected or 0, dim), dtype=np.float32)

    def add(self, rows: _Array) -> None:
        need = self.n + rows.shape[0]
        cap = self.buf.shape[0]
        if need > cap:
            new_cap = max(need, cap + cap // 8, 64)
            # No view of the buffer exists outside this object, so the
            # reference check (which a debugger or profiler can defeat) is off.
            self.buf.resize((new_cap, self.dim), refcheck=False)
        self.buf[self.n : need] = rows
        self.n = need

    def result(self) -> _Array:
        if self.buf.shape[0] != self.n:
            self.buf.resize((self.n, self.dim), refcheck=False)
        out = self.buf
        self.buf = np.empty((0, self.dim), dtype=np.float32)
        return out


def _texts(sentences: object) -> Tuple[bool, Iterator[object], Optional[int]]:
    """``(single, iterator, length if known)`` of the ``sentences`` argument."""
    kind = _type_name(sentences)
    if isinstance(sentences, str):
        return True, iter((sentences,)), 1
    if isinstance(sentences, (bytes, bytearray, memoryview)):
        raise InvalidArgument(f"sentences must be a str or an iterable of str, got {kind}; decode it first")
    if isinstance(sentences, Mapping):
        raise InvalidArgument(f"sentences must be a str or an iterable of str, got {kind}; pass its values() or keys()")
    given: Any = sentences
    try:
        it: Iterator[object] = iter(given)
    except TypeError:
        raise InvalidArgument(f"sentences must be a str or an iterable of str, got {kind}") from None
    size: Optional[int]
    try:
        size = len(given)
    except TypeError:
        size = None
    return False, it, size


def encode(
    emb: _Embedder,
    sentences: Union[str, Iterable[str]],
    batch_size: int = 32,
    *,
    show_progress_bar: Optional[bool] = None,
    normalize_embeddings: Optional[bool] = None,
    convert_to_numpy: bool = True,
    prompt_name: Optional[str] = None,
    prompt: Optional[str] = None,
    convert_to_tensor: bool = False,
    device: Optional[str] = None,
    precision: str = "float32",
    output_value: Optional[str] = "sentence_embedding",
) -> Union[_Array, List[_Array]]:
    """Embeds ``sentences`` with the arguments of ``SentenceTransformer.encode``.

    * ``sentences``: one str (gives a ``(dim,)`` array) or any iterable of
      str, including a generator (gives ``(n, dim)``); read ``batch_size``
      (1 to 2**20) texts at a time, each batch embedded in parallel by the
      wheel's thread pool (:func:`ruvector_embed.set_num_threads`).
    * ``show_progress_bar``: a bar on stderr (``tqdm``'s if installed, else a
      built-in counter); ``None``: only when stderr is a terminal.
    * ``normalize_embeddings``: unit L2 norm (``True``), none (``False``),
      or the model's setting (``None``, :attr:`Embedder.normalize`).
    * ``convert_to_numpy=False``: a list of ``(dim,)`` arrays instead of one
      2-D array (one str still gives one ``(dim,)`` array).
    * ``prompt`` is prepended to every text; else ``prompt_name`` names one of
      :attr:`Embedder.prompts`; else the model's ``default_prompt_name``, if
      any.
    * ``convert_to_tensor``, ``device``, ``precision``, ``output_value``:
      accepted for code written for sentence-transformers, with the values
      this CPU, float32 embedder gives (``False``, ``None``/``"cpu"``,
      ``"float32"``, ``"sentence_embedding"``); others are refused.

    Ctrl-C stops it with ``KeyboardInterrupt`` within a batch's work.
    Bad arguments raise :class:`InvalidArgument` naming the argument.
    """
    size = _batch_size(batch_size)
    progress_flag = _flag(show_progress_bar, "show_progress_bar", allow_none=True)
    normalize = _flag(normalize_embeddings, "normalize_embeddings", allow_none=True)
    to_numpy = _flag(convert_to_numpy, "convert_to_numpy", allow_none=False)
    if _flag(convert_to_tensor, "convert_to_tensor", allow_none=False):
        raise InvalidArgument(
            "convert_to_tensor=True needs PyTorch, which ruvector-embed does not use; take the NumPy "
            "array (the default) and torch.from_numpy(...) it if you need a tensor"
        )
    if device is not None:
        _only(device, "device", ("cpu",), "ruvector-embed computes on the CPU")
    _only(precision, "precision", ("float32",), "ruvector-embed computes float32 embeddings")
    _only(output_value, "output_value", ("sentence_embedding",), "only sentence embeddings are computed")
    text_prompt = _resolve_prompt(emb, prompt_name, prompt)
    single, it, expected = _texts(sentences)
    if normalize is None:
        normalize = emb.normalize

    bar = _Progress(expected, _progress_default() if progress_flag is None else progress_flag)
    rows = _Rows(emb.dim, expected if to_numpy else None)
    listed: List[_Array] = []
    offset = 0
    try:
        while True:
            batch: List[str] = []
            for item in itertools.islice(it, size):
                if not isinstance(item, str):
                    raise InvalidArgument(f"sentences[{offset + len(batch)}] must be a str, got {_type_name(item)}")
                batch.append(text_prompt + item if text_prompt else item)
            if not batch:
                break
            out = emb._embed_batch(batch, normalize, offset)  # pyright: ignore[reportPrivateUsage]
            if to_numpy:
                rows.add(out)
            else:
                listed.extend(out)
            offset += len(batch)
            bar.update(len(batch))
            del batch, out
    finally:
        bar.close()
    if single:
        return listed[0] if not to_numpy else rows.result()[0]
    if not to_numpy:
        return listed
    return rows.result()
