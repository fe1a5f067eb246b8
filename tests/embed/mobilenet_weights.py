"""Deterministic stand-in weights and test images for torchvision's
``mobilenet_v3_small``, made with NumPy alone.

Shared by the image tests (``test_embed_image.py``) and the script that
computed their reference values with torchvision
(``data/mobilenetv3-reference/make_reference.py``): both build the same
weights and images from the same seeds, so the weights themselves are never
committed. The weights are random, not trained; they only have to exercise
every tensor of the architecture with values that keep the activations in a
sane range through the twelve stages (BatchNorm statistics included, so that
folding BatchNorm into the convolutions is tested too).

:func:`write_safetensors` writes the checkpoint format by hand (8-byte
little-endian header length, JSON header, raw little-endian data), so the
tests need no ``safetensors`` package.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Mapping, NamedTuple, Tuple, Union

import numpy as np
import numpy.typing as npt

#: Seed of the test weights.
WEIGHTS_SEED = 20240611
#: Seed of the test images.
IMAGES_SEED = 7


class Block(NamedTuple):
    """One inverted-residual block of torchvision's configuration table."""

    inp: int
    kernel: int
    expanded: int
    out: int
    se: bool
    hardswish: bool
    stride: int


#: ``features.1`` .. ``features.11`` of mobilenet_v3_small.
BLOCKS: Tuple[Block, ...] = (
    Block(16, 3, 16, 16, True, False, 2),
    Block(16, 3, 72, 24, False, False, 2),
    Block(24, 3, 88, 24, False, False, 1),
    Block(24, 5, 96, 40, True, True, 2),
    Block(40, 5, 240, 40, True, True, 1),
    Block(40, 5, 240, 40, True, True, 1),
    Block(40, 5, 120, 48, True, True, 1),
    Block(48, 5, 144, 48, True, True, 1),
    Block(48, 5, 288, 96, True, True, 2),
    Block(96, 5, 576, 96, True, True, 1),
    Block(96, 5, 576, 96, True, True, 1),
)
FEATURE_DIM = 576


def make_divisible(value: float, divisor: int = 8) -> int:
    """Rounds a channel count to a multiple of ``divisor`` the way the
    MobileNet papers' reference code does (never more than 10% down)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def feature_shapes() -> Dict[str, Tuple[int, ...]]:
    """Name → shape of every float tensor the feature extractor reads."""
    shapes: Dict[str, Tuple[int, ...]] = {}

    def conv_bn(prefix: str, out: int, inp: int, k: int) -> None:
        shapes[f"{prefix}.0.weight"] = (out, inp, k, k)
        for part in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.1.{part}"] = (out,)

    conv_bn("features.0", 16, 3, 3)
    for i, b in enumerate(BLOCKS, start=1):
        j = 0
        if b.expanded != b.inp:
            conv_bn(f"features.{i}.block.{j}", b.expanded, b.inp, 1)
            j += 1
        conv_bn(f"features.{i}.block.{j}", b.expanded, 1, b.kernel)
        j += 1
        if b.se:
            sq = make_divisible(b.expanded // 4)
            shapes[f"features.{i}.block.{j}.fc1.weight"] = (sq, b.expanded, 1, 1)
            shapes[f"features.{i}.block.{j}.fc1.bias"] = (sq,)
            shapes[f"features.{i}.block.{j}.fc2.weight"] = (b.expanded, sq, 1, 1)
            shapes[f"features.{i}.block.{j}.fc2.bias"] = (b.expanded,)
            j += 1
        conv_bn(f"features.{i}.block.{j}", b.out, b.expanded, 1)
    conv_bn("features.12", FEATURE_DIM, 96, 1)
    return shapes


Tensor = Union[npt.NDArray[np.float32], npt.NDArray[np.float16], npt.NDArray[np.int64]]


def make_weights(seed: int = WEIGHTS_SEED) -> Dict[str, Tensor]:
    """A full torchvision-style state dict (classifier and
    ``num_batches_tracked`` included, as in a real checkpoint) of random
    weights drawn with ``np.random.default_rng(seed)`` (uniform draws only)."""
    rng = np.random.default_rng(seed)
    out: Dict[str, Tensor] = {}

    def uniform(lo: float, hi: float, shape: Tuple[int, ...]) -> npt.NDArray[np.float32]:
        return rng.uniform(lo, hi, size=shape).astype(np.float32)

    for name, shape in feature_shapes().items():
        if name.endswith("running_var"):
            out[name] = uniform(0.5, 2.0, shape)
        elif name.endswith("running_mean"):
            out[name] = uniform(-0.2, 0.2, shape)
        elif name.endswith(".1.weight"):  # BatchNorm gamma
            out[name] = uniform(0.5, 1.5, shape)
        elif name.endswith(".1.bias"):  # BatchNorm beta
            out[name] = uniform(-0.2, 0.2, shape)
        elif name.endswith("fc1.bias") or name.endswith("fc2.bias"):
            out[name] = uniform(-0.5, 0.5, shape)
        else:
            # Convolutions: uniform with the variance 2 / fan_in.
            fan_in = shape[1] * shape[2] * shape[3]
            bound = math.sqrt(6.0 / fan_in)
            out[name] = uniform(-bound, bound, shape)
        if name.endswith("running_var"):
            out[name[: -len("running_var")] + "num_batches_tracked"] = np.array(1000, dtype=np.int64)
    out["classifier.0.weight"] = uniform(-0.05, 0.05, (1024, FEATURE_DIM))
    out["classifier.0.bias"] = uniform(-0.05, 0.05, (1024,))
    out["classifier.3.weight"] = uniform(-0.05, 0.05, (1000, 1024))
    out["classifier.3.bias"] = uniform(-0.05, 0.05, (1000,))
    return out


_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64", np.dtype(np.float16): "F16"}


def safetensors_bytes(tensors: Mapping[str, Tensor]) -> bytes:
    """The checkpoint file holding ``tensors`` (little-endian, in order)."""
    header: Dict[str, object] = {}
    blobs: List[bytes] = []
    offset = 0
    for name, arr in tensors.items():
        dtype = _DTYPES[arr.dtype]
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def write_safetensors(path: Path, tensors: Mapping[str, Tensor]) -> Path:
    path.write_bytes(safetensors_bytes(tensors))
    return path


def make_images(seed: int = IMAGES_SEED) -> Dict[str, npt.NDArray[np.uint8]]:
    """Five ``(H, W, 3)`` uint8 test images of various sizes: smooth,
    noisy, sharp-edged and mixed content; upscaled and downscaled, one tall
    enough that Pillow resizes it vertically first."""
    rng = np.random.default_rng(seed)
    images: Dict[str, npt.NDArray[np.uint8]] = {}

    y, x = np.mgrid[0:224, 0:224].astype(np.float64)
    grad = np.stack([x / 223 * 255, y / 223 * 255, (x + y) / 446 * 255], axis=-1)
    images["gradient-224x224"] = np.round(grad).astype(np.uint8)

    images["noise-200x300"] = rng.integers(0, 256, size=(200, 300, 3), dtype=np.uint8)

    y, x = np.mgrid[0:97, 0:411]
    board = ((y // 7 + x // 7) % 2).astype(np.uint8)
    colours = np.array([[250, 20, 40], [10, 90, 230]], dtype=np.uint8)
    images["checker-97x411"] = colours[board]

    y, x = np.mgrid[0:480, 0:640].astype(np.float64)
    base = np.stack([128 + 100 * np.sin(x / 40), 128 + 100 * np.cos(y / 30), (x * y) / (480 * 640) * 255], axis=-1)
    disc = (x - 400) ** 2 + (y - 200) ** 2 < 90**2
    base[disc] = (255, 255, 0)
    base += rng.uniform(-20, 20, size=base.shape)
    images["mixed-480x640"] = np.clip(np.round(base), 0, 255).astype(np.uint8)

    y, x = np.mgrid[0:700, 0:300].astype(np.float64)
    tall = np.stack([y / 699 * 255, 255 - x / 299 * 255, 128 + 90 * np.sin((x + y) / 17)], axis=-1)
    tall += rng.uniform(-40, 40, size=tall.shape)
    images["tall-700x300"] = np.clip(np.round(tall), 0, 255).astype(np.uint8)
    return images


#: The image whose preprocessed (resized, cropped) pixels are stored.
PREPROCESS_IMAGE = "mixed-480x640"
#: ImageNet normalisation of torchvision's weight transforms.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def normalize_crop(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """A ``(224, 224, 3)`` uint8 crop → the ``(3, 224, 224)`` float32 model
    input, with the float32 operations torchvision performs (``/255``, then
    ``(x - mean) / std``)."""
    chw = crop.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    mean = np.array(MEAN, dtype=np.float32)[:, None, None]
    std = np.array(STD, dtype=np.float32)[:, None, None]
    out: npt.NDArray[np.float32] = ((chw - mean) / std).astype(np.float32)
    return out
