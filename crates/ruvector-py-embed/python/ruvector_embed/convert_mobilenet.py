"""Converts torchvision's pretrained ``mobilenet_v3_small`` weights to the
``model.safetensors`` that :class:`ruvector_embed.ImageEmbedder` reads.

One command, run once (PyTorch and torchvision are needed for this step
only; the embedder never imports them)::

    pip install torch torchvision          # CPU wheels are enough
    python -m ruvector_embed.convert_mobilenet

This writes ``~/.cache/ruvector/models/mobilenetv3-small/model.safetensors``
(``$RUVECTOR_CACHE_DIR`` moves it; ``--out DIR`` writes ``DIR/model.safetensors``
instead), where ``ImageEmbedder.from_pretrained()`` finds it with no
arguments. torchvision fetches its ``IMAGENET1K_V1`` checkpoint into its own
cache (``$TORCH_HOME``) the first time; offline, pass a checkpoint already on
disk with ``--checkpoint mobilenet_v3_small-047dcff4.pth`` (then torchvision
is not needed, torch is).

The file holds the whole state dict, names sorted, each tensor as stored
(float32; BatchNorm counters as int64): the embedder reads the feature
extractor and ignores the classifier. It is written to a temporary file,
loaded back by the embedder and checked, then renamed into place.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, cast

import numpy as np
import numpy.typing as npt

from ._models import IMAGE_WEIGHTS_FILE, default_cache_dir

__all__ = ["MODEL_NAME", "default_out_dir", "main", "safetensors_bytes", "write_state_dict"]

#: The registry name of the model the weights are for.
MODEL_NAME = "mobilenetv3-small"

_DTYPES: Dict[np.dtype[Any], str] = {
    np.dtype("<f4"): "F32",
    np.dtype("<f2"): "F16",
    np.dtype("<i8"): "I64",
}

_INSTALL_HINT = (
    "the conversion needs PyTorch and torchvision (for this step only): pip install torch torchvision "
    "(the CPU wheels are enough); ruvector-embed does not need them afterwards"
)


def default_out_dir() -> Path:
    """Where the weights go by default: ``<ruvector cache>/mobilenetv3-small``
    (see :func:`ruvector_embed.default_cache_dir`)."""
    return default_cache_dir() / MODEL_NAME


def safetensors_bytes(tensors: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """The safetensors file holding ``tensors`` (float32, float16 or int64
    arrays), names sorted, data little-endian and C-ordered."""
    header: Dict[str, Any] = {"__metadata__": {"format": "pt", "source": "torchvision mobilenet_v3_small"}}
    blobs: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name])
        le = arr.dtype.newbyteorder("<")
        dtype = _DTYPES.get(le)
        if dtype is None:
            raise ValueError(f"tensor {name} has dtype {arr.dtype}; float32, float16 or int64 expected")
        data = np.ascontiguousarray(arr, dtype=le).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def write_state_dict(tensors: Mapping[str, npt.NDArray[Any]], out_dir: Path, *, force: bool = False) -> Path:
    """Writes ``out_dir/model.safetensors`` from a state dict of NumPy
    arrays, checks that :class:`ruvector_embed.ImageEmbedder` loads it and
    gives finite features, and only then moves it into place (an existing
    file is kept unless ``force``). Returns the file's path."""
    from ._native import ImageEmbedder

    out_dir = Path(out_dir).expanduser()
    target = out_dir / IMAGE_WEIGHTS_FILE
    if target.exists() and not force:
        raise FileExistsError(f"{target} exists; pass --force (force=True) to replace it")
    out_dir.mkdir(parents=True, exist_ok=True)
    data = safetensors_bytes(tensors)
    fd, tmp = tempfile.mkstemp(prefix=f".{IMAGE_WEIGHTS_FILE}.", suffix=".part", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        emb = ImageEmbedder.from_pretrained(weights=tmp)
        probe = np.full((224, 224, 3), 128, dtype=np.uint8)
        if not np.isfinite(emb.embed_image(probe)).all():
            raise ValueError("the converted weights give non-finite features")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _torch_state_dict(checkpoint: Optional[Path]) -> Dict[str, npt.NDArray[Any]]:
    """torchvision's pretrained state dict (or ``checkpoint``'s) as NumPy
    arrays; raises ImportError when torch/torchvision are missing."""
    torch: Any = importlib.import_module("torch")
    state: Any
    if checkpoint is not None:
        try:
            state = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
        except TypeError:  # torch before 1.13 has no weights_only
            state = torch.load(str(checkpoint), map_location="cpu")
        if not isinstance(state, dict):
            raise ValueError(f"{checkpoint} holds a {type(state).__name__}, not a state dict")
    else:
        models: Any = importlib.import_module("torchvision.models")
        weights = models.MobileNet_V3_Small_Weights.IMAGENET1K_V1
        state = models.mobilenet_v3_small(weights=weights).state_dict()
    out: Dict[str, npt.NDArray[Any]] = {}
    pairs: List[Tuple[Any, Any]] = list(cast(Any, state).items())
    for name, tensor in pairs:
        t: Any = tensor.detach().cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        out[str(name)] = t.numpy()
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ruvector_embed.convert_mobilenet",
        description=(
            "Convert torchvision's pretrained mobilenet_v3_small (IMAGENET1K_V1) weights to the "
            "model.safetensors that ruvector_embed.ImageEmbedder reads. Needs torch and torchvision "
            "for this step only."
        ),
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help=f"folder to write {IMAGE_WEIGHTS_FILE} into (default: {default_out_dir()}, "
        "where ImageEmbedder.from_pretrained() looks)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        type=Path,
        default=None,
        help="a torchvision checkpoint (.pth) already on disk, instead of torchvision's download (needs torch only)",
    )
    p.add_argument("--force", action="store_true", help=f"replace an existing {IMAGE_WEIGHTS_FILE}")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The command line; returns the exit status (0 done, 1 failed, 2 bad
    arguments)."""
    parser = _parser()
    args = parser.parse_args(argv)
    out_dir: Path = (args.out if args.out is not None else default_out_dir()).expanduser()
    checkpoint: Optional[Path] = args.checkpoint
    if out_dir.exists() and not out_dir.is_dir():
        parser.error(f"--out {out_dir} is a file; pass a folder (the weights go to DIR/{IMAGE_WEIGHTS_FILE})")
    if (out_dir / IMAGE_WEIGHTS_FILE).exists() and not args.force:
        parser.error(f"{out_dir / IMAGE_WEIGHTS_FILE} exists; pass --force to replace it")
    if checkpoint is not None and not checkpoint.expanduser().is_file():
        parser.error(f"--checkpoint {checkpoint} is not a file")
    try:
        state = _torch_state_dict(None if checkpoint is None else checkpoint.expanduser())
    except ImportError as e:
        print(f"error: {_INSTALL_HINT} ({e})", file=sys.stderr)
        return 1
    try:
        target = write_state_dict(state, out_dir, force=args.force)
    except Exception as e:
        print(f"error: the conversion failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    print(f"wrote {target} ({target.stat().st_size} bytes, SHA-256 {digest})")
    if out_dir.resolve() == default_out_dir().resolve():
        print("ruvector_embed.ImageEmbedder.from_pretrained() finds it now")
    else:
        print(f"load it with ruvector_embed.ImageEmbedder.from_pretrained(weights={str(target)!r})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
