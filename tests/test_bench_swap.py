"""benchmarks/swap_ambiguity.py: the right and the swapped pairing of two walkers fitted on hand-made ground truth."""

import importlib.util
import json
from pathlib import Path

import numpy as np

BENCH = Path(__file__).parents[1] / "benchmarks" / "swap_ambiguity.py"
spec = importlib.util.spec_from_file_location("bench_swap", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def clip(folder: Path, paths: dict, fps_ir: int = 10) -> Path:
    """Two people's foot points (pixels, seconds -> (x, y)) written as gt boxes; the IR camera sees the RGB image
    through a fixed affine map, and at `fps_ir` frames a second (the RGB camera at 10)."""
    folder.mkdir(parents=True)
    (folder / "clip.json").write_text(json.dumps({"fps": {"rgb": 10, "ir": fps_ir}}))
    for cam, fps in (("rgb", 10), ("ir", fps_ir)):
        rows = []
        for frame in range(1, 3 * fps + 1):
            for pid, path in paths.items():
                x, y = path((frame - 1) / fps)
                x, y = (0.8 * x + 20, 0.9 * y + 10) if cam == "ir" else (x, y)
                rows.append(f"{frame},{pid},{x - 5:.3f},{y - 40:.3f},10,40,1,-1,-1,-1")
        (folder / f"gt_{cam}.txt").write_text("\n".join(rows) + "\n")
    return folder


def test_the_swapped_pairing_fits_as_well_as_the_right_one_until_the_walkers_tell_it_apart(tmp_path):
    rng = np.random.default_rng(0)
    side_by_side = clip(tmp_path / "side", {1: lambda t: (50 + 20 * t, 100), 2: lambda t: (50 + 20 * t, 150)})
    (pair,) = bench.clip_pairs(side_by_side, [1.0, 3.0], 0.0, rng)
    assert pair["people"] == [1, 2] and max(pair["1.0"] + pair["3.0"]) < 1e-3  # a mirror maps each onto the other
    walks = {1: lambda t: (50 + 30 * t, 100 + 5 * t), 2: lambda t: (120 - 10 * t, 60 + 40 * t)}  # they cross
    crossing = clip(tmp_path / "cross", walks, fps_ir=5)  # the slower camera's frames paired with the other's
    (pair,) = bench.clip_pairs(crossing, [1.0, 3.0], 0.0, rng)
    right, swapped = zip(pair["1.0"], pair["3.0"])
    assert max(right) < 1e-3
    assert 0.1 < swapped[0] < 5 < swapped[1]  # within a second a fair fit; three seconds tell them apart
