"""Attribute swapping (index sets from attribute_layout), the Translator and `hicmd translate` on tiny graphs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from testkit.graphs import ATTR, HEIGHT, LAYOUT, WIDTH, make_export, reference_embedder, reference_generator
from hicmd.cli import app
from hicmd.errors import HicmdError
from hicmd.runtime.translate import Translator, attribute_indices, swap_attributes, swap_indices

PAPER_LAYOUT = {"chunks": 4, "style": [0, 256], "pose": [256, 384], "illumination": [384, 512]}


def test_paper_layout_indices_match_the_reference_table():
    """docs/reference/model.md: four 512-d chunks, style 0-255, pose 256-383, illumination 384-511 inside each chunk."""
    style = attribute_indices(PAPER_LAYOUT, 2048, "style")
    pose = attribute_indices(PAPER_LAYOUT, 2048, "pose")
    illumination = attribute_indices(PAPER_LAYOUT, 2048, "illumination")
    assert (len(style), len(pose), len(illumination)) == (1024, 512, 512)
    assert illumination[:2].tolist() == [384, 385] and illumination[128:130].tolist() == [896, 897]
    assert pose[-1] == 1919 and style[256] == 512
    assert sorted(np.concatenate([style, pose, illumination]).tolist()) == list(range(2048))
    assert swap_indices(PAPER_LAYOUT, 2048, "both").tolist() == sorted(pose.tolist() + illumination.tolist())


def test_swap_illumination_changes_only_illumination_dims():
    rng = np.random.default_rng(0)
    source, reference = rng.standard_normal((2, 2048)).astype(np.float32)
    mixed = swap_attributes(source, reference, swap_indices(PAPER_LAYOUT, 2048, "illumination"))
    changed = np.flatnonzero(mixed != source)
    assert changed.tolist() == attribute_indices(PAPER_LAYOUT, 2048, "illumination").tolist()
    np.testing.assert_array_equal(mixed[changed], reference[changed])
    assert source[400] != mixed[400]  # the input is not modified in place
    pose_only = swap_attributes(source, reference, swap_indices(PAPER_LAYOUT, 2048, "pose"))
    assert np.flatnonzero(pose_only != source).tolist() == attribute_indices(PAPER_LAYOUT, 2048, "pose").tolist()


def test_bad_layouts_are_rejected():
    with pytest.raises(ValueError, match="do not divide"):
        attribute_indices({**PAPER_LAYOUT, "chunks": 3}, 2048, "pose")
    with pytest.raises(ValueError, match="does not fit"):
        attribute_indices({**PAPER_LAYOUT, "pose": [256, 600]}, 2048, "pose")
    with pytest.raises(ValueError, match="unknown swap"):
        swap_indices(PAPER_LAYOUT, 2048, "colour")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return make_export(tmp_path_factory.mktemp("export"))


def _people(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(n)]


def test_translator_matches_numpy(export):
    sources, references = _people(2, 1), _people(3, 2)
    with Translator(export, backend="onnxruntime", device="cpu") as translator:
        assert "generator: onnxruntime" in translator.describe()
        got = translator.translate(sources, "rgb", references, "ir", "illumination")
    src = reference_embedder(np.stack([s[..., ::-1] for s in sources]), "rgb")
    ref = reference_embedder(np.stack([r[..., ::-1] for r in references]), "ir")
    illumination = attribute_indices(LAYOUT, ATTR, "illumination")
    assert got.shape == (2, 3, HEIGHT, WIDTH, 3) and got.dtype == np.uint8
    for s in range(2):
        for r in range(3):
            attribute = src["attribute"][s].copy()
            attribute[illumination] = ref["attribute"][r][illumination]
            image = reference_generator(src["prototype"][s:s + 1], attribute[None])[0]
            want = np.clip(np.rint(image), 0, 255).astype(np.uint8).transpose(1, 2, 0)[..., ::-1]
            assert np.abs(got[s, r].astype(int) - want).max() <= 1
    assert not np.array_equal(got[0, 0], got[0, 1])  # different references give different renders


def _write(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:02d}.png"), image)
    return folder


def test_cli_single_and_grid(export, tmp_path):
    runner = CliRunner()
    src, ref = _write(tmp_path / "src", _people(2, 3)), _write(tmp_path / "ref", _people(3, 4))
    out = tmp_path / "out" / "x.png"
    result = runner.invoke(app, ["translate", "--model", str(export.root), "--src", str(src / "00.png"),
                                 "--ref", str(ref / "01.png"), "--swap", "pose", "--ref-modality", "ir",
                                 "--backend", "onnxruntime", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "onnxruntime" in result.output
    single = cv2.imread(str(out))
    with Translator(export, device="cpu") as translator:
        want = translator.translate([cv2.imread(str(src / "00.png"))], "rgb", [cv2.imread(str(ref / "01.png"))],
                                    "ir", "pose")[0, 0]
    np.testing.assert_array_equal(single, want)

    grid_path = tmp_path / "grid.png"
    result = runner.invoke(app, ["translate", "--model", str(export.root), "--src-dir", str(src), "--ref-dir",
                                 str(ref), "--swap", "both", "--device", "cpu", "--out", str(grid_path)])
    assert result.exit_code == 0, result.output
    grid = cv2.imread(str(grid_path))
    gap = 4
    assert grid.shape == (gap + 3 * (HEIGHT + gap), gap + 4 * (WIDTH + gap), 3)
    first_source = grid[gap + HEIGHT + gap:gap + 2 * HEIGHT + gap, gap:gap + WIDTH]
    np.testing.assert_array_equal(first_source, cv2.imread(str(src / "00.png")))  # originals in column 0
    np.testing.assert_array_equal(grid[:gap], 255)


@pytest.mark.parametrize("args, message", [
    (["--src", "nope.png", "--ref", "{ref}"], "--src nope.png not found"),
    (["--src", "{ref}"], "give either --src and --ref"),
    (["--src-dir", "{tmp}/empty", "--ref-dir", "{tmp}/empty"], "holds no images"),
    (["--src", "{ref}", "--ref", "{tmp}/broken.png"], "not an image OpenCV can read"),
])
def test_cli_bad_input_is_a_user_error(export, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.png").write_bytes(b"not a png")
    ref = _write(tmp_path / "ref", _people(1, 5)) / "00.png"
    args = [a.format(ref=ref, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(app, ["translate", "--model", str(export.root), "--out", str(tmp_path / "o.png"),
                                      *args])
    assert isinstance(result.exception, HicmdError), result.output
    assert message in str(result.exception)


def test_cli_bad_model_folder_is_a_user_error(tmp_path):
    image = _write(tmp_path / "img", _people(1, 6)) / "00.png"
    result = CliRunner().invoke(app, ["translate", "--model", str(tmp_path), "--src", str(image), "--ref",
                                      str(image), "--out", str(tmp_path / "o.png")])
    assert isinstance(result.exception, HicmdError) and "manifest.json not found" in str(result.exception)
