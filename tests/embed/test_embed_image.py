"""Image embeddings: ``ImageEmbedder`` (torchvision's ``mobilenet_v3_small``
features with torchvision's ImageNet preprocessing), through the installed
wheel.

Parity with torchvision needs no torch here: ``data/mobilenetv3-reference``
holds what torchvision 0.29 + Pillow computed (``make_reference.py``) for
random weights and test images that ``mobilenet_weights.py`` rebuilds from
fixed seeds with NumPy alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
from pathlib import Path
from typing import Any, Dict, List, Tuple

import mobilenet_weights as mw
import numpy as np
import numpy.typing as npt
import pytest
from embed_helpers import DATA, MIN_COSINE, cosines, minilm_package_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ruvector_embed as rve

REF = DATA / "mobilenetv3-reference"
#: Largest element difference against torchvision, relative to the largest
#: feature of the row (float32 rounding of a different summation order,
#: BatchNorm folded into the weights; measured about 1e-6).
MAX_REL_DIFF = 1e-4

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mw.write_safetensors(tmp_path_factory.mktemp("mnv3") / "model.safetensors", mw.make_weights())


@pytest.fixture(scope="module")
def raw(weights_file: Path) -> rve.ImageEmbedder:
    return rve.ImageEmbedder.from_pretrained(weights=weights_file, normalize=False)


@pytest.fixture(scope="module")
def images() -> Dict[str, Image]:
    return mw.make_images()


@pytest.fixture(scope="module")
def reference() -> Tuple[List[str], npt.NDArray[np.float32]]:
    names: List[str] = json.loads((REF / "names.json").read_text(encoding="utf-8"))
    feats: npt.NDArray[np.float32] = np.load(REF / "features.npy")
    return names, feats


@pytest.fixture(scope="module")
def untrained() -> rve.ImageEmbedder:
    return rve.ImageEmbedder.from_pretrained(weights="untrained")


# -- parity with torchvision ---------------------------------------------------


def test_features_match_torchvision(
    raw: rve.ImageEmbedder, images: Dict[str, Image], reference: Tuple[List[str], npt.NDArray[np.float32]]
) -> None:
    names, ref = reference
    assert ref.shape == (5, 576)
    got = np.stack([raw.embed_image(images[n]) for n in names])
    assert got.dtype == np.float32 and got.shape == (5, 576)
    assert cosines(got, ref).min() >= MIN_COSINE
    for row, want in zip(got, ref):
        assert np.abs(row - want).max() <= MAX_REL_DIFF * np.abs(want).max()


def test_preprocessing_is_torchvision_bit_for_bit(raw: rve.ImageEmbedder, images: Dict[str, Image]) -> None:
    # Resizing is Pillow's integer fixed-point arithmetic and the scaling the
    # same float32 operations as torchvision's, so no tolerance is needed.
    crop: Image = np.load(REF / "crop.npy")
    x = raw.preprocess(images[mw.PREPROCESS_IMAGE])
    assert x.shape == (3, 224, 224) and x.dtype == np.float32
    np.testing.assert_array_equal(x, mw.normalize_crop(crop))


def test_every_crop_is_torchvision_bit_for_bit(raw: rve.ImageEmbedder, images: Dict[str, Image]) -> None:
    # crops.json holds the SHA-256 of each image's uint8 crop under
    # torchvision + Pillow 13 (including a tall image resized vertically
    # first); the crop is recovered exactly from the normalised input.
    hashes: Dict[str, str] = json.loads((REF / "crops.json").read_text(encoding="utf-8"))
    assert sorted(hashes) == sorted(images)
    mean = np.array(mw.MEAN)[:, None, None]
    std = np.array(mw.STD)[:, None, None]
    for name, img in images.items():
        x = raw.preprocess(img)
        values = np.rint((x.astype(np.float64) * std + mean) * 255)
        crop = np.ascontiguousarray(np.clip(values, 0, 255).astype(np.uint8).transpose(1, 2, 0))
        np.testing.assert_array_equal(mw.normalize_crop(crop), x)
        assert hashlib.sha256(crop.tobytes()).hexdigest() == hashes[name], name


def test_normalized_by_default(weights_file: Path, raw: rve.ImageEmbedder, images: Dict[str, Image]) -> None:
    emb = rve.ImageEmbedder.from_pretrained(weights=str(weights_file))
    assert emb.normalize and not raw.normalize
    assert emb.pretrained and emb.weights_path == str(weights_file.resolve()) and emb.source == "explicit"
    assert emb.dim == 576 and emb.input_size == 224 and emb.name == "mobilenetv3-small"
    assert 3_000_000 < emb.memory_bytes < 5_000_000
    img = images["noise-200x300"]
    unit = emb.embed_image(img)
    assert abs(float(np.linalg.norm(unit)) - 1.0) < 1e-5
    plain = raw.embed_image(img)
    np.testing.assert_allclose(unit, plain / np.linalg.norm(plain), atol=1e-6)
    assert "pretrained=True" in repr(emb) and "NOT semantic" not in repr(emb)


# -- batches -----------------------------------------------------------------------


def test_batch_and_list_equal_singles(raw: rve.ImageEmbedder, images: Dict[str, Image]) -> None:
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 256, size=(5, 61, 83, 3), dtype=np.uint8)
    batch = raw.embed_images(stack)
    assert batch.shape == (5, 576) and batch.dtype == np.float32
    singles = np.stack([raw.embed_image(img) for img in stack])
    np.testing.assert_array_equal(batch, singles)
    np.testing.assert_array_equal(raw.embed_images(list(stack)), singles)
    # Differing sizes in one list, any iterable.
    mixed = list(images.values())
    got = raw.embed_images(iter(mixed))
    np.testing.assert_array_equal(got, np.stack([raw.embed_image(i) for i in mixed]))
    assert raw.embed_images([]).shape == (0, 576)
    assert raw.embed_images(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0, 576)


def test_views_and_array_likes(raw: rve.ImageEmbedder, images: Dict[str, Image]) -> None:
    img = images["mixed-480x640"]
    views = [img[::-1], img[:, ::2], img[10:300, 5:400], np.asfortranarray(img), img.transpose(1, 0, 2)]
    for view in views:
        np.testing.assert_array_equal(raw.embed_image(view), raw.embed_image(np.ascontiguousarray(view)))
    readonly = img.copy()
    readonly.flags.writeable = False
    np.testing.assert_array_equal(raw.embed_image(readonly), raw.embed_image(img))
    # Anything numpy.asarray turns into (H, W, 3) uint8, e.g. a PIL image.
    small = images["checker-97x411"][:4, :5]

    class PilLike:
        def __array__(self, dtype: object = None, copy: object = None) -> Image:
            return small

    np.testing.assert_array_equal(raw.embed_image(PilLike()), raw.embed_image(small))


def test_async_equals_sync(raw: rve.ImageEmbedder, images: Dict[str, Image]) -> None:
    imgs = list(images.values())

    async def main() -> Tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        many, one = await asyncio.gather(raw.embed_images_async(imgs), raw.embed_image_async(imgs[1]))
        return many, one

    many, one = asyncio.run(main())
    np.testing.assert_array_equal(many, raw.embed_images(imgs))
    np.testing.assert_array_equal(one, raw.embed_image(imgs[1]))
    with pytest.raises(rve.InvalidArgument):
        pending = raw.embed_images_async("not images")
        pending.close()  # pragma: no cover - not reached


def test_threads_share_one_embedder(raw: rve.ImageEmbedder, images: Dict[str, Image]) -> None:
    imgs = list(images.values())
    want = raw.embed_images(imgs)
    results: Dict[int, npt.NDArray[np.float32]] = {}

    def work(i: int) -> None:
        results[i] = raw.embed_images(imgs) if i % 2 else raw.embed_image(imgs[i % 4])[None, :]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, got in results.items():
        np.testing.assert_array_equal(got, want if i % 2 else want[i % 4][None, :])
    assert len(results) == 6


# -- untrained weights ---------------------------------------------------------------


#: The first raw features of ``mixed-480x640`` under the untrained weights:
#: they are drawn from a fixed seed, so every machine gets these (up to the
#: float rounding of its GEMM kernel).
UNTRAINED_MIXED = [-0.0024203223, -0.0731001198, 0.0091024451, 0.0055780229, -0.0062131383, 0.0117050018]


def test_untrained_on_request_says_not_semantic(caplog: pytest.LogCaptureFixture, images: Dict[str, Image]) -> None:
    # Untrained weights only when asked for (issue 15): pretrained=False or
    # weights="untrained"; nothing is logged, the object says what it is.
    with caplog.at_level(logging.WARNING, logger="ruvector_embed"):
        emb = rve.ImageEmbedder.from_pretrained("mobilenetv3-small", pretrained=False, normalize=False)
    assert not caplog.records
    assert not emb.pretrained and emb.weights_path is None and emb.source == "untrained"
    text = repr(emb)
    assert "pretrained=False" in text and "deterministic but NOT semantic" in text
    got = emb.embed_image(images["mixed-480x640"])
    np.testing.assert_allclose(got[:6], UNTRAINED_MIXED, rtol=1e-3, atol=1e-6)
    again = rve.ImageEmbedder.from_pretrained(weights="untrained", normalize=False)
    np.testing.assert_array_equal(again.embed_image(images["mixed-480x640"]), got)


def test_explicit_untrained_is_silent(caplog: pytest.LogCaptureFixture, untrained: rve.ImageEmbedder) -> None:
    with caplog.at_level(logging.WARNING, logger="ruvector_embed"):
        emb = rve.Embedder.from_pretrained("mobilenetv3-small", weights="untrained")
    assert not caplog.records
    assert type(emb) is rve.ImageEmbedder and not emb.pretrained and emb.normalize
    assert repr(emb) == repr(untrained)


# -- weight resolution ---------------------------------------------------------------


def test_weights_resolution(weights_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = weights_file.parent
    assert rve.ImageEmbedder.from_pretrained(weights=folder).weights_path == str(weights_file.resolve())
    by_path = rve.ImageEmbedder.from_pretrained(str(weights_file))
    assert by_path.source == "directory" and by_path.pretrained
    assert rve.ImageEmbedder.from_pretrained(folder).source == "directory"

    models = tmp_path / "models"
    (models / "mobilenetv3-small").mkdir(parents=True)
    (models / "mobilenetv3-small" / "model.safetensors").write_bytes(weights_file.read_bytes())
    monkeypatch.setenv("RUVECTOR_MODELS", str(models))
    name: str = "MobileNet_V3_Small"  # any spelling; typed as a text model name
    env: object = rve.Embedder.from_pretrained(name)
    assert isinstance(env, rve.ImageEmbedder) and env.source == "env" and env.pretrained

    monkeypatch.delenv("RUVECTOR_MODELS")
    cache = tmp_path / "cache"
    (cache / "mobilenetv3-small").mkdir(parents=True)
    (cache / "mobilenetv3-small" / "model.safetensors").write_bytes(weights_file.read_bytes())
    cached = rve.ImageEmbedder.from_pretrained(cache_dir=cache)
    assert cached.source == "cache" and cached.pretrained

    resolved = rve.resolve_image_weights(weights="untrained")
    assert resolved.path is None and not resolved.pretrained


def test_resolution_errors(tmp_path: Path, minilm_dir: Path) -> None:
    with pytest.raises(rve.EmbedError, match=r"weights .*nope.safetensors does not exist"):
        rve.ImageEmbedder.from_pretrained(weights=tmp_path / "nope.safetensors")
    with pytest.raises(rve.EmbedError, match=r"folder without model.safetensors"):
        rve.ImageEmbedder.from_pretrained(weights=tmp_path)
    with pytest.raises(rve.EmbedError, match=r"'all-MiniLM-L6-v2' is a text model.*Embedder.from_pretrained"):
        rve.ImageEmbedder.from_pretrained("all-MiniLM-L6-v2")
    with pytest.raises(rve.EmbedError, match=r"unknown image model 'no-such-net'.*mobilenetv3-small"):
        rve.ImageEmbedder.from_pretrained("no-such-net")
    with pytest.raises(
        rve.InvalidArgument, match=r"pooling, max_seq_length, prompts and default_prompt_name apply to text models"
    ):
        rve.Embedder.from_pretrained("mobilenetv3-small", pooling="cls")
    with pytest.raises(rve.InvalidArgument, match=r"weights= and pretrained= are for image models"):
        rve.Embedder.from_pretrained(minilm_dir, weights="untrained")  # type: ignore[call-overload]
    with pytest.raises(rve.InvalidArgument, match=r"weights must be a path, 'untrained' or None, got int"):
        rve.ImageEmbedder.from_pretrained(weights=3)  # type: ignore[arg-type]


# -- checkpoint errors -----------------------------------------------------------------


def checkpoint_error(path: Path) -> str:
    with pytest.raises(rve.EmbedError) as info:
        rve.ImageEmbedder.from_pretrained(weights=path)
    return str(info.value)


def test_wrong_shaped_tensor_is_named(tmp_path: Path) -> None:
    w = mw.make_weights()
    w["features.4.block.1.0.weight"] = np.zeros((96, 1, 3, 3), np.float32)
    msg = checkpoint_error(mw.write_safetensors(tmp_path / "bad.safetensors", w))
    assert "tensor features.4.block.1.0.weight has shape [96, 1, 3, 3]" in msg
    assert "mobilenet_v3_small needs [96, 1, 5, 5]" in msg and "bad.safetensors" in msg


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    w = mw.make_weights()
    del w["features.12.1.running_var"]
    msg = checkpoint_error(mw.write_safetensors(tmp_path / "missing.safetensors", w))
    assert "has no tensor features.12.1.running_var" in msg and "mobilenet_v3_small" in msg


def test_text_checkpoint_is_refused_clearly(minilm_dir: Path) -> None:
    msg = checkpoint_error(minilm_dir / "model.safetensors")
    assert "has no tensor features.0.0.weight" in msg
    assert "the file holds" in msg and "tensors: embeddings." in msg


def test_truncated_and_non_finite_checkpoints(tmp_path: Path) -> None:
    data = mw.safetensors_bytes(mw.make_weights())
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    assert "the file is truncated" in checkpoint_error(truncated)
    tiny = tmp_path / "tiny.safetensors"
    tiny.write_bytes(data[:5])
    assert "too short for a header" in checkpoint_error(tiny)
    w = mw.make_weights()
    bad = w["features.7.block.2.fc1.bias"].copy()
    bad[3] = np.nan
    w["features.7.block.2.fc1.bias"] = bad
    msg = checkpoint_error(mw.write_safetensors(tmp_path / "nan.safetensors", w))
    assert "features.7.block.2.fc1.bias holds a non-finite value (NaN) at flat index 3" in msg


def test_half_precision_checkpoint_loads(tmp_path: Path, images: Dict[str, Image], raw: rve.ImageEmbedder) -> None:
    half = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in mw.make_weights().items()}
    emb = rve.ImageEmbedder.from_pretrained(weights=mw.write_safetensors(tmp_path / "f16.safetensors", half))
    img = images["gradient-224x224"]
    got = emb.embed_image(img)
    want = raw.embed_image(img)
    assert float(got @ want) / float(np.linalg.norm(want)) > 0.999


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "pattern"),
    [
        (np.zeros((8, 8, 3), np.float32), r"image must have dtype uint8 \(RGB values 0-255\), got float32.*\* 255"),
        (np.zeros((8, 8, 3), np.int16), r"dtype uint8 .*got int16; convert with img.clip\(0, 255\)"),
        (np.zeros((8, 8, 3), bool), r"dtype uint8 .*got bool"),
        (
            np.zeros((8, 8), np.uint8),
            r"3-D array, expected shape \(H, W, 3\).*got a 2-D array of shape \(8, 8\).*grayscale",
        ),
        (
            np.zeros((8, 8, 4), np.uint8),
            r"3 channels, expected shape \(H, W, 3\).*got 4 channels in shape \(8, 8, 4\).*RGBA",
        ),
        (
            np.zeros((3, 8, 8), np.uint8),
            r"got 8 channels in shape \(3, 8, 8\); channels first\? .*transpose\(1, 2, 0\)",
        ),
        (np.zeros((0, 5, 3), np.uint8), r"at least 1 pixel per side, expected .*H, W >= 1, got shape \(0, 5, 3\)"),
        (np.zeros((5, 0, 3), np.uint8), r"got shape \(5, 0, 3\)"),
        (np.zeros((16385, 1, 3), np.uint8), r"at most 16384 pixels, got shape \(16385, 1, 3\)"),
        (
            np.zeros((2, 8, 8, 3), np.uint8),
            r"got a 4-D array of shape \(2, 8, 8, 3\); for a batch of images use embed_images",
        ),
        ("cat.jpg", r"image must be a NumPy uint8 array of shape \(H, W, 3\), got str"),
        ([[1.5, 2.5]], r"dtype uint8 .*got float64"),
    ],
)
def test_bad_image_is_named(untrained: rve.ImageEmbedder, image: object, pattern: str) -> None:
    with pytest.raises(rve.InvalidArgument, match=pattern):
        untrained.embed_image(image)  # type: ignore[arg-type]
    with pytest.raises(rve.InvalidArgument, match=pattern):
        untrained.preprocess(image)  # type: ignore[arg-type]


def test_bad_batches_are_named(untrained: rve.ImageEmbedder) -> None:
    ok = np.zeros((8, 8, 3), np.uint8)
    cases: List[Tuple[object, str]] = [
        (ok, r"images must be a 4-D array .*got a 3-D array of shape \(8, 8, 3\); for one image use embed_image"),
        (
            np.zeros((2, 8, 8, 4), np.uint8),
            r"images\[i\] must have 3 channels.*got 4 channels.*\(the batch has shape \(2, 8, 8, 4\)\)",
        ),
        (np.zeros((2, 8, 8, 3), np.float64), r"images must have dtype uint8 .*got float64"),
        ([ok, np.zeros((4, 4), np.uint8)], r"images\[1\] must be a 3-D array.*got a 2-D array of shape \(4, 4\)"),
        ([ok, ok.astype(np.float32)], r"images\[1\] must have dtype uint8.*got float32"),
        ("images", r"images must be a \(N, H, W, 3\) uint8 array or a sequence .*got str"),
        (5, r"images must be a \(N, H, W, 3\) uint8 array or a sequence .*got int"),
    ]
    for images, pattern in cases:
        with pytest.raises(rve.InvalidArgument, match=pattern):
            untrained.embed_images(images)  # type: ignore[arg-type]


_DTYPES = ["uint8", "int8", "uint16", "int32", "float16", "float32", "float64", "bool"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    shape=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=4),
    channels_last=st.booleans(),
    dtype=st.sampled_from(_DTYPES),
)
def test_validation_property(untrained: rve.ImageEmbedder, shape: List[int], channels_last: bool, dtype: str) -> None:
    if channels_last and len(shape) >= 2:
        shape[-1] = 3
    arr: npt.NDArray[Any] = np.ones(shape, dtype=np.dtype(dtype))
    u8 = dtype == "uint8"
    if u8 and len(shape) == 3 and shape[2] == 3 and min(shape[:2]) >= 1:
        out = untrained.embed_image(arr)
        assert out.shape == (576,) and np.isfinite(out).all()
    else:
        with pytest.raises(rve.InvalidArgument, match=r"got"):
            untrained.embed_image(arr)
    if u8 and len(shape) == 4 and shape[3] == 3 and min(shape[1:3]) >= 1:
        assert untrained.embed_images(arr).shape == (shape[0], 576)
    else:
        with pytest.raises(rve.InvalidArgument, match=r"got"):
            untrained.embed_images(arr)


def test_meta_package_reexports_image_embedder() -> None:
    import ruvector

    assert ruvector.ImageEmbedder is rve.ImageEmbedder
    assert minilm_package_dir().is_dir()
