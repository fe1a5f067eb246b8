# type: ignore
# (A developer script: torch, torchvision and Pillow are not test dependencies,
# so the type checkers that CI runs over tests/ skip this file.)
"""Regenerates the mobilenet_v3_small reference data of ``test_embed_image.py``.

A developer script, never run by CI (it needs torch, torchvision and
Pillow, which are not test dependencies)::

    python tests/embed/data/mobilenetv3-reference/make_reference.py

It builds the deterministic NumPy weights and test images of
``tests/embed/mobilenet_weights.py``, loads the weights into torchvision's
own ``mobilenet_v3_small`` (eval mode), runs every image through the weight
transforms of ``MobileNet_V3_Small_Weights.IMAGENET1K_V1`` on a PIL image
(resize the shorter side to 256 with antialiased bilinear filtering, centre
crop 224, scale to [0, 1], ImageNet mean/std) and the network up to the
global average pool, and writes:

* ``features.npy`` — float32 ``(5, 576)``, the pooled features, rows in the
  order of ``names.json``;
* ``crops.json`` — the SHA-256 of every image's resized and cropped uint8
  pixels (``(224, 224, 3)``, C order), to check the preprocessing of each
  image exactly without storing its pixels;
* ``crop.npy`` — uint8 ``(224, 224, 3)``, the resized and cropped pixels of
  ``mixed-480x640`` (the model input before ``/255`` and normalisation,
  which the tests apply in float32 as torchvision does: 150 KB instead of
  600 KB for the float input);
* ``meta.json`` — versions, and how far torchvision's tensor path (uint8
  tensors instead of PIL images) is from the PIL path on these images.

The reference follows Pillow 13, which resizes vertically first when the
height shrinks by more than twice as many pixels as the width (older
Pillow always starts horizontally; the two differ by one unit in a few
8-bit values, on ``tall-700x300`` here).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import PIL
import torch
import torchvision
from PIL import Image
from torchvision.models import MobileNet_V3_Small_Weights, mobilenet_v3_small
from torchvision.transforms import v2
from torchvision.transforms.functional import center_crop, resize

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))  # tests/embed: the shared helper

import mobilenet_weights as mw  # noqa: E402


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    weights = mw.make_weights()
    model = mobilenet_v3_small().eval()
    state = {k: torch.from_numpy(np.array(v)) for k, v in weights.items()}
    model.load_state_dict(state, strict=True)
    expected_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if "num_batches" not in k}
    ours = mw.feature_shapes()
    assert all(expected_shapes[k] == s for k, s in ours.items()), "helper shapes differ from torchvision"
    assert set(ours) == {k for k in expected_shapes if k.startswith("features.")}

    transform = MobileNet_V3_Small_Weights.IMAGENET1K_V1.transforms()
    tensor_v2 = v2.Compose(
        [
            v2.Resize(256, antialias=True),
            v2.CenterCrop(224),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mw.MEAN, mw.STD),
        ]
    )
    images = mw.make_images()
    names = list(images)
    feats = []
    crops = {}
    tensor_diff = {}
    with torch.no_grad():
        for name in names:
            img = images[name]
            x_pil = transform(Image.fromarray(img))
            chw = torch.from_numpy(img).permute(2, 0, 1).contiguous()
            x_tensor = tensor_v2(chw)
            x_tensor_v1 = transform(chw)
            d = (x_pil - x_tensor).abs()
            tensor_diff[name] = {
                "max_abs": float(d.max()),
                "fraction_of_values_differing": float((d > 1e-6).float().mean()),
                "v1_equals_v2": bool(torch.equal(x_tensor, x_tensor_v1)),
            }
            crop = np.asarray(center_crop(resize(Image.fromarray(img), [256]), [224]))
            assert np.array_equal(mw.normalize_crop(crop), x_pil.numpy()), name
            crops[name] = hashlib.sha256(np.ascontiguousarray(crop).tobytes()).hexdigest()
            if name == mw.PREPROCESS_IMAGE:
                np.save(HERE / "crop.npy", crop)
            x = x_pil.unsqueeze(0)
            # Stage-by-stage magnitudes: the random weights must keep them sane.
            h = x
            for i, stage in enumerate(model.features):
                h = stage(h)
                print(f"{name} features.{i}: std {h.std():.3f} max {h.abs().max():.3f}")
            f = torch.flatten(model.avgpool(h), 1)
            feats.append(f[0].numpy().astype(np.float32))
    np.save(HERE / "features.npy", np.stack(feats))
    (HERE / "names.json").write_text(json.dumps(names, indent=1) + "\n")
    (HERE / "crops.json").write_text(json.dumps(crops, indent=1) + "\n")
    meta = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "pillow": PIL.__version__,
        "numpy": np.__version__,
        "weights_seed": mw.WEIGHTS_SEED,
        "images_seed": mw.IMAGES_SEED,
        "transform": str(transform),
        "tensor_path_vs_pil": tensor_diff,
    }
    (HERE / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(json.dumps(tensor_diff, indent=1))


if __name__ == "__main__":
    main()
