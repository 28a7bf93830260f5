"""SynthVI stills: determinism, speed, the RegDB reader on its output, and no colour/background shortcut."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from hicmd.data import load_split, load_train
from hicmd.data.io import read_image
from hicmd.data.synthvi import render
from hicmd.data.synthvi_body import sample_identity
from hicmd.data.synthvi_write import split_ids, write_regdb


@pytest.fixture(scope="module")
def synth100(tmp_path_factory):
    """100 identities -> a 50-identity test split, as the shortcut check asks."""
    root = tmp_path_factory.mktemp("synthvi100")
    write_regdb(root, 100, images_per_modality=10, seed=3)
    return root


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes(tmp_path):
    write_regdb(tmp_path / "a", 4, images_per_modality=2, seed=11, trials=2)
    write_regdb(tmp_path / "b", 4, images_per_modality=2, seed=11, trials=2)
    write_regdb(tmp_path / "c", 4, images_per_modality=2, seed=12, trials=2)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 4 * 2 * 2 + 8 + 1 and a == b
    images = [k for k in a if k.suffix == ".png"]
    assert sum(a[k] != c.get(k) for k in images) >= len(images) - 1  # another seed, other pictures


def test_a_render_stopped_over_an_older_one_leaves_no_lists_to_read(tmp_path):
    """The lists and synthvi.json come last: a render stopped halfway over an earlier one must not leave the old
    lists (all its trials) naming a mix of old and new images, but a folder the reader refuses."""
    from hicmd.data import DataError

    write_regdb(tmp_path, 4, images_per_modality=2, seed=11, trials=3)
    assert load_train("regdb", tmp_path, 3)[0]

    def stop(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_regdb(tmp_path, 4, images_per_modality=2, seed=12, progress=stop)
    assert not (tmp_path / "synthvi.json").exists() and not list((tmp_path / "idx").iterdir())
    with pytest.raises(DataError, match="does not exist"):
        load_train("regdb", tmp_path, 1)


def test_regdb_reader_reads_synthvi(synth100):
    train, original = load_train("regdb", synth100, 1)
    query, gallery = load_split("regdb", synth100, "query"), load_split("regdb", synth100, "gallery")
    assert len(train) == 50 * 20 and sorted({r.pid for r in train}) == list(range(50))
    assert len(query) == len(gallery) == 500
    assert set(original) == set(split_ids(100, 3, 1)[0])
    assert not set(original) & {r.pid for r in query}  # disjoint identities
    img = read_image(query[0].path, 128, 64)
    assert img.shape == (128, 64, 3)
    assert query[0].path.name.split("_")[0] in ("male", "female") and "_v_" in query[0].path.name
    assert "_t_" in gallery[0].path.name


def test_render_throughput():
    idents = [sample_identity(pid, 0) for pid in range(1, 21)]
    render(idents[0], "rgb", np.random.default_rng(0))  # warm the scene caches
    render(idents[0], "ir", np.random.default_rng(0))
    n, wall, cpu = 0, time.perf_counter(), time.process_time()
    for ident in idents:
        for i in range(8):
            render(ident, "rgb" if i % 2 else "ir", np.random.default_rng([ident.pid, i]), 128, 64)
            n += 1
    wall, cpu = n / (time.perf_counter() - wall), n / (time.process_time() - cpu)
    print(f"SynthVI render at 128x64: {cpu:.0f} images per CPU-second ({wall:.0f} images/s wall)")
    assert cpu >= 200  # CPU time, so a busy shared machine does not fail it


def _pixels(records):
    feats = []
    for r in records:
        gray = cv2.cvtColor(read_image(r.path, 128, 64), cv2.COLOR_RGB2GRAY)
        feats.append(cv2.resize(gray, (16, 32), interpolation=cv2.INTER_AREA).ravel().astype(np.float32))
    x = np.stack(feats)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _rank1(q, qp, g, gp, exclude_self=False):
    sim = q @ g.T
    if exclude_self:
        np.fill_diagonal(sim, -np.inf)
    return float((gp[sim.argmax(1)] == qp).mean())


def test_no_raw_pixel_shortcut(synth100):
    query, gallery = load_split("regdb", synth100, "query"), load_split("regdb", synth100, "gallery")
    q, g = _pixels(query), _pixels(gallery)
    qp, gp = np.array([r.pid for r in query]), np.array([r.pid for r in gallery])
    chance = 1 / len(set(qp))
    cross = _rank1(q, qp, g, gp)
    within_rgb = _rank1(q, qp, q, qp, exclude_self=True)
    within_ir = _rank1(g, gp, g, gp, exclude_self=True)
    print(f"raw-pixel NN rank-1: V->T {cross:.3f}, V->V {within_rgb:.3f}, T->T {within_ir:.3f}, chance {chance:.3f}")
    assert cross < 3 * chance
    # the same features do find identity inside a modality, so the check above has power
    assert max(within_rgb, within_ir) > 5 * chance


def test_colour_does_not_predict_emissivity():
    idents = [sample_identity(pid, 5) for pid in range(1, 601)]
    brightness = [np.mean(i.top.colour) for i in idents] + [np.mean(i.bottom.colour) for i in idents]
    emissivity = [i.top.emissivity for i in idents] + [i.bottom.emissivity for i in idents]
    assert abs(np.corrcoef(brightness, emissivity)[0, 1]) < 0.1
    # and the identity cues that must transfer to IR do vary
    assert len({(i.top.pattern, i.top.length, i.bottom.length, i.accessory) for i in idents}) > 100
