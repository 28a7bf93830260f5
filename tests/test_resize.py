"""One resize everywhere, equal to the reference's: torchvision `Resize((H, W), interpolation=3)` on a PIL image
(Pillow's antialiased bicubic), as the authors resize every training and test image.

Measured max pixel difference to it (0..255), downscales 512x256..257x129 and upscales 200x90..64x32 to 256x128:
runtime/resize.py 0; the OpenCV resizes hicmd used before (INTER_AREA/INTER_CUBIC in training and evaluation,
INTER_LINEAR in the runtime) up to 56 and 115 on noise, 9 and 18 on smooth images with sharp edges.
"""

from __future__ import annotations

import json
import logging
import shutil

import cv2
import numpy as np
import pytest
from PIL import Image
from torchvision import transforms

from testkit.graphs import HEIGHT, WIDTH, make_export
from hicmd.data.io import read_image
from hicmd.runtime.embedder import Embedder
from hicmd.runtime.manifest import ManifestError, load_manifest
from hicmd.runtime.resize import RESIZE, resize

DOWN = [(512, 256), (400, 170), (300, 150), (257, 129)]
UP = [(200, 90), (100, 40), (64, 32)]


def _reference(image: np.ndarray, height: int = 256, width: int = 128) -> np.ndarray:
    """The authors' test/train transform's resize step, on the PIL image their loader makes (convert('RGB'))."""
    resize_step = transforms.Resize((height, width), interpolation=transforms.InterpolationMode.BICUBIC)
    return np.asarray(resize_step(Image.fromarray(image).convert("RGB")))


def _images(height: int, width: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    scene = cv2.GaussianBlur(noise, (0, 0), 2)  # smooth regions ...
    scene[:, ::7] = 255 - scene[:, ::7]  # ... with sharp edges
    return [noise, scene]


def _max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max())


@pytest.mark.parametrize("size", DOWN + UP)
def test_resize_equals_the_reference_pil_bicubic(size):
    for image in _images(*size, seed=size[0]):
        assert _max_diff(resize(image, 256, 128), _reference(image)) == 0
    # the test can fail: the OpenCV resizes used before differ from the reference on the same images
    noise = _images(*size, seed=size[0])[0]
    before = cv2.INTER_AREA if size[0] > 256 else cv2.INTER_CUBIC
    assert _max_diff(cv2.resize(noise, (128, 256), interpolation=before), _reference(noise)) >= 20
    assert _max_diff(cv2.resize(noise, (128, 256), interpolation=cv2.INTER_LINEAR), _reference(noise)) >= 20


def test_gray_resizes_as_each_channel_of_its_rgb_copy():
    gray = np.random.default_rng(1).integers(0, 256, (300, 150), dtype=np.uint8)
    assert np.array_equal(np.repeat(resize(gray, 256, 128)[..., None], 3, axis=2), _reference(gray))
    assert resize(gray[..., None], 256, 128).shape == (256, 128, 1)
    with pytest.raises(ValueError, match="uint8"):
        resize(gray.astype(np.float32), 256, 128)


@pytest.mark.parametrize("size", DOWN + UP + [(171, 63)])
def test_resize_commutes_with_the_mirror_flip(size):
    """The embedder mirrors a crop by flipping its resized batch (runtime/embedder.py), which must be what the
    resized mirror image is: bit for bit, colour and gray, odd sizes too."""
    for image in [*_images(*size, seed=size[1]), _images(*size, seed=size[1])[0][..., 0]]:
        assert np.array_equal(resize(np.ascontiguousarray(image[:, ::-1]), 256, 128), resize(image, 256, 128)[:, ::-1])
    # the check can fail: a resize whose sample grid is not symmetric (OpenCV's nearest neighbour, by a factor
    # that is not a whole number) does not commute
    noise = _images(171, 63, seed=size[1])[0]
    nearest = lambda im: cv2.resize(im, (128, 256), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    assert not np.array_equal(nearest(np.ascontiguousarray(noise[:, ::-1])), nearest(noise)[:, ::-1])


def test_training_evaluation_and_runtime_preprocess_the_same_pixels(tmp_path):
    """read_image (training, evaluation, export parity) and Embedder.preprocess (the runtime, on OpenCV's BGR or
    gray crops) give the reference's pixels for the same files."""
    files = {}
    for k, (height, width) in enumerate([(300, 150), (90, 40)]):
        colour, _ = _images(height, width, seed=k)
        files[f"rgb{k}"] = (tmp_path / f"rgb{k}.png", colour)
        files[f"ir{k}"] = (tmp_path / f"ir{k}.png", colour[..., 1].copy())
    for path, image in files.values():
        cv2.imwrite(str(path), image[..., ::-1] if image.ndim == 3 else image)
    manifest = make_export(tmp_path / "model", manifest_size=(256, 128))
    embedder = Embedder(manifest, modalities=())
    for name, (path, image) in files.items():
        want = _reference(image)
        crop = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if name.startswith("ir") else cv2.IMREAD_COLOR)
        assert np.array_equal(read_image(path, 256, 128), want), name
        assert np.array_equal(embedder.preprocess([crop])[0], want), name


def _edit_manifest(src, dst, change) -> None:
    shutil.copytree(src, dst)
    data = json.loads((dst / "manifest.json").read_text())
    change(data["input"])
    (dst / "manifest.json").write_text(json.dumps(data))


def test_the_manifest_records_the_resize_and_the_runtime_refuses_another(tmp_path, caplog):
    make_export(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "manifest.json").read_text())["input"]["resize"] == RESIZE
    assert load_manifest(tmp_path / "model").input.resize == RESIZE

    _edit_manifest(tmp_path / "model", tmp_path / "linear", lambda i: i.update(resize="cv2-linear"))
    with pytest.raises(ManifestError, match="cv2-linear.*re-export"):
        Embedder(tmp_path / "linear", backend="onnxruntime", device="cpu")

    # exported before the field existed: served with this resize (the weights do not depend on it), with a note
    _edit_manifest(tmp_path / "model", tmp_path / "old", lambda i: i.pop("resize"))
    assert load_manifest(tmp_path / "old").input.resize == ""
    crop = np.random.default_rng(2).integers(0, 256, (40, 20, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="hicmd.runtime.embedder"):
        with Embedder(tmp_path / "old", backend="onnxruntime", device="cpu") as old, \
                Embedder(tmp_path / "model", backend="onnxruntime", device="cpu") as new:
            assert np.array_equal(old.embed([crop], "rgb"), new.embed([crop], "rgb"))
    assert sum("does not record its resize" in r.getMessage() for r in caplog.records) == 1
    assert old.size == new.size == (HEIGHT, WIDTH)
