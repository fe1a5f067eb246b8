"""Pretrained image weights (issue 15): a missing file is an ``EmbedError``
naming where the resolver looked and the one command that writes it
(``python -m ruvector_embed.convert_mobilenet``), never a silent fallback to
untrained weights; the converter's writer and its command line, without
PyTorch (its state dict comes from ``mobilenet_weights``, which has every
tensor of torchvision's, as its reference script checks).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List

import mobilenet_weights as mw
import numpy as np
import numpy.typing as npt
import pytest
from embed_helpers import child_env

import ruvector_embed as rve
from ruvector_embed import convert_mobilenet as cm

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture(scope="module")
def state() -> Dict[str, mw.Tensor]:
    return mw.make_weights()


@pytest.fixture(scope="module")
def image() -> npt.NDArray[np.uint8]:
    return mw.make_images()["mixed-480x640"]


# -- the error -------------------------------------------------------------------------


def test_missing_pretrained_weights_are_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "ruvector-cache"  # $RUVECTOR_CACHE_DIR of the isolated environment
    monkeypatch.setenv("RUVECTOR_CACHE_DIR", str(cache))
    target = cache / "mobilenetv3-small"
    loads: List[Callable[[], object]] = [
        lambda: rve.ImageEmbedder.from_pretrained(),
        lambda: rve.ImageEmbedder.from_pretrained("mobilenetv3-small", pretrained=True),
        lambda: rve.Embedder.from_pretrained("mobilenetv3-small"),
    ]
    for load in loads:
        with pytest.raises(rve.EmbedError) as info:
            load()
        msg = str(info.value)
        assert msg.startswith("no pretrained weights for mobilenetv3-small (env: $RUVECTOR_MODELS not set; "), msg
        assert f"cache: {target / 'model.safetensors'} (absent)" in msg, msg
        assert f"python -m ruvector_embed.convert_mobilenet --out {target}" in msg, msg
        assert "weights='untrained' (or pretrained=False)" in msg, msg

    models = tmp_path / "models"
    monkeypatch.setenv("RUVECTOR_MODELS", str(models))
    with pytest.raises(
        rve.EmbedError, match=re.escape(f"env: {models / 'mobilenetv3-small' / 'model.safetensors'} (absent)")
    ):
        rve.ImageEmbedder.from_pretrained()
    with pytest.raises(rve.EmbedError, match=r"\(no source enabled\)"):
        rve.ImageEmbedder.from_pretrained(sources=["package"])


def test_the_command_in_the_error_makes_it_load(
    tmp_path: Path, state: Dict[str, mw.Tensor], image: npt.NDArray[np.uint8]
) -> None:
    cache = tmp_path / "my cache"  # a space: the command quotes the folder
    with pytest.raises(rve.EmbedError) as info:
        rve.ImageEmbedder.from_pretrained(cache_dir=cache)
    command = re.search(r"once with: (python -m \S+ --out '[^']+')", str(info.value))
    assert command is not None, str(info.value)
    argv = shlex.split(command.group(1))
    assert argv[:4] == ["python", "-m", "ruvector_embed.convert_mobilenet", "--out"]
    out = Path(argv[4])
    assert out == cache / "mobilenetv3-small"
    # What the command does after fetching torchvision's state dict:
    cm.write_state_dict(state, out)
    emb = rve.ImageEmbedder.from_pretrained(cache_dir=cache, normalize=False)
    assert emb.pretrained and emb.source == "cache" and emb.weights_path == str((out / "model.safetensors").resolve())
    reference = rve.ImageEmbedder.from_pretrained(
        weights=mw.write_safetensors(tmp_path / "ref.safetensors", state), normalize=False
    )
    np.testing.assert_array_equal(emb.embed_image(image), reference.embed_image(image))


def test_untrained_only_when_asked(tmp_path: Path, image: npt.NDArray[np.uint8]) -> None:
    by_flag = rve.ImageEmbedder.from_pretrained(pretrained=False)
    by_name = rve.ImageEmbedder.from_pretrained(weights="untrained")
    via_embedder = rve.Embedder.from_pretrained("mobilenetv3-small", pretrained=False)
    for emb in (by_flag, by_name, via_embedder):
        assert not emb.pretrained and emb.source == "untrained"
    np.testing.assert_array_equal(by_flag.embed_image(image), by_name.embed_image(image))
    np.testing.assert_array_equal(via_embedder.embed_image(image), by_name.embed_image(image))
    resolved = rve.resolve_image_weights(pretrained=False)
    assert resolved.path is None and resolved.source == "untrained"


def test_contradictions_are_refused(tmp_path: Path, state: Dict[str, mw.Tensor], minilm_dir: Path) -> None:
    weights = mw.write_safetensors(tmp_path / "model.safetensors", state)
    with pytest.raises(
        rve.InvalidArgument, match=r"pretrained=False asks for the untrained weights, but weights=.* names a file"
    ):
        rve.ImageEmbedder.from_pretrained(weights=weights, pretrained=False)
    with pytest.raises(
        rve.InvalidArgument, match=r"pretrained=False asks for the untrained weights, but the name .* is a weights path"
    ):
        rve.ImageEmbedder.from_pretrained(str(weights), pretrained=False)
    with pytest.raises(rve.InvalidArgument, match=r"pretrained=True contradicts weights='untrained'"):
        rve.ImageEmbedder.from_pretrained(weights="untrained", pretrained=True)
    with pytest.raises(rve.InvalidArgument, match=r"pretrained must be True, False or None, got int"):
        rve.resolve_image_weights(pretrained=1)  # type: ignore[arg-type]
    with pytest.raises(rve.InvalidArgument, match=r"weights= and pretrained= are for image models"):
        rve.Embedder.from_pretrained(minilm_dir, pretrained=True)  # type: ignore[call-overload]
    # pretrained=True with a file is simply that file.
    assert rve.ImageEmbedder.from_pretrained(weights=weights, pretrained=True).pretrained


# -- the converter's writer ----------------------------------------------------------------


def test_writer_output_loads_and_matches(
    tmp_path: Path, state: Dict[str, mw.Tensor], image: npt.NDArray[np.uint8]
) -> None:
    target = cm.write_state_dict(state, tmp_path / "out")
    assert target == tmp_path / "out" / "model.safetensors"
    assert sorted(p.name for p in target.parent.iterdir()) == ["model.safetensors"]  # no temporary left
    # Its size is the registry's figure (list_models): the same tensors,
    # names, shapes and dtypes as torchvision's state dict.
    spec = rve.KNOWN_MODELS["mobilenetv3-small"]
    assert target.stat().st_size == spec.size_bytes
    got = rve.ImageEmbedder.from_pretrained(weights=target, normalize=False).embed_image(image)
    ref = rve.ImageEmbedder.from_pretrained(
        weights=mw.write_safetensors(tmp_path / "ref.safetensors", state), normalize=False
    ).embed_image(image)
    np.testing.assert_array_equal(got, ref)
    # Deterministic: the same state dict, in any order, gives the same bytes.
    shuffled = dict(reversed(list(state.items())))
    assert cm.safetensors_bytes(shuffled) == target.read_bytes()


def test_writer_keeps_an_existing_file_and_checks_before_replacing(tmp_path: Path, state: Dict[str, mw.Tensor]) -> None:
    out = tmp_path / "out"
    target = cm.write_state_dict(state, out)
    before = target.read_bytes()
    with pytest.raises(FileExistsError, match=r"model.safetensors exists; pass --force"):
        cm.write_state_dict(state, out)
    broken = dict(state)
    broken["features.0.0.weight"] = np.zeros((16, 3, 5, 5), np.float32)
    with pytest.raises(rve.EmbedError, match=r"features.0.0.weight"):
        cm.write_state_dict(broken, out, force=True)
    # A state dict that does not load replaced nothing and left nothing.
    assert target.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["model.safetensors"]
    with pytest.raises(ValueError, match=r"tensor x has dtype uint8; float32, float16 or int64 expected"):
        cm.safetensors_bytes({"x": np.zeros(3, np.uint8)})


# -- the command line ----------------------------------------------------------------------


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cm.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--out DIR" in out and "--checkpoint FILE" in out and "--force" in out
    assert "torchvision" in out and "model.safetensors" in out


def test_bad_arguments_exit_2(tmp_path: Path, state: Dict[str, mw.Tensor], capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    existing = tmp_path / "existing"
    cm.write_state_dict(state, existing)
    cases = [
        (["--out", str(a_file)], f"--out {a_file} is a file"),
        (["--out", str(existing)], "model.safetensors exists; pass --force"),
        (["--out", str(tmp_path / "new"), "--checkpoint", str(tmp_path / "nope.pth")], "nope.pth is not a file"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as info:
            cm.main(argv)
        assert info.value.code == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "new").exists()


@pytest.mark.skipif(HAS_TORCH, reason="checks the message shown where PyTorch is not installed")
def test_without_torch_names_what_to_install(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cm.main(["--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "needs PyTorch and torchvision (for this step only): pip install torch torchvision" in err
    assert not (tmp_path / "out").exists()


def test_runs_as_a_module() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ruvector_embed.convert_mobilenet", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env=child_env(),
    )
    assert out.returncode == 0, out.stderr
    assert "usage: python -m ruvector_embed.convert_mobilenet" in out.stdout
