"""The trained-model fixture shared by the stream tests: the `tiny` Hi-CMD trained on person crops cut from
SynthVI clips, exported to ONNX. Built once per fresh clone and cached in pytest's cache folder under a key of the
sources and settings that shape it (tests/conftest.py `trained`)."""

from __future__ import annotations

from pathlib import Path

from testkit.cache import source_key

# The INT8 export's protocol gate (largest R1 / mAP drop, points) on the fixture's split (tests/conftest.py
# `int8_model`). The default, 1.0, is meant for a full test split (RegDB: 2,060 queries a direction, 0.05 points
# each); a tenth of this one has 258 visible and 154 thermal queries, 0.4 and 0.65 points each, so 1.0 lets one or
# two queries flip: OpenVINO's INT8 that flipped three thermal ones (1.95 points) on a fixture model trained with
# one torch thread was refused, and the tests that need it failed. 3.0 allows four to seven; a broken quantisation
# drops far more, and the parity gates (cosine, rank-1 agreement) still hold.
INT8_MAX_DROP = 3.0
PIDS = list(range(1, 9))  # the SynthVI people walking through all clips, 3-4 per clip
TRAIN_CLIPS, TEST_CLIPS = 16, 8
WARMUP, ID_PIG = 600, 10  # shared HFL warm-up iterations (~4.4 it/s on 2 cores), then full iterations
# The test people are the training people, so no intensity remapping: it is there to generalise to new people.
SETTINGS = [f"train.iters={WARMUP + ID_PIG}", f"train.warmup_id={WARMUP}", f"train.step_size={WARMUP * 4 // 5}",
            "train.pos_ids=4", "train.neg_ids=4", "train.remap_p=0", "train.save_every=100000",
            "train.sample_every=100000"]
SHAPING_SOURCES = ["hicmd/config.py", "hicmd/presets.py", "hicmd/checkpoint.py", "hicmd/model", "hicmd/train",
                   "hicmd/data", "hicmd/losses.py", "export", "tests/testkit/stream_model.py"]


def cache_key() -> str:
    return source_key([PIDS, TRAIN_CLIPS, TEST_CLIPS, SETTINGS], SHAPING_SOURCES)


def crops_to_regdb(clips: list[Path], out: Path, min_height: int = 40) -> None:
    """The gt boxes of `clips`, every frame, cut out as a re-id training set in the RegDB layout; every other
    frame's box jittered as much as the clips' det.txt boxes are (5 % of the box per side)."""
    from hicmd.data.footage import write_crops
    from hicmd.data.synthvi_write import REGDB_NAMES
    from hicmd.runtime.atomic import write_atomically

    lines = write_crops(clips, out, {pid: k for k, pid in enumerate(PIDS)}, min_height=min_height)
    (out / "idx").mkdir(parents=True, exist_ok=True)
    for cam, (_, _, name) in REGDB_NAMES.items():
        for stage in ("train", "test"):  # the reader wants both; only train is used
            write_atomically(out / "idx" / f"{stage}_{name}_1.txt", "\n".join(lines[cam]) + "\n")


def build(root: Path) -> None:
    """root/clips (the first TRAIN_CLIPS trained on, the rest streamed), root/crops (their person crops in the RegDB
    layout), root/run (the training run) and root/model (ONNX + manifest.json)."""
    from hicmd.config import load_config
    from hicmd.data.synthvi_video import write_videos
    from hicmd.export.pipeline import ExportOptions, run_export
    from hicmd.train.loop import train

    import torch

    clips = write_videos(root / "clips", PIDS, seed=0, clips=TRAIN_CLIPS + TEST_CLIPS)
    crops_to_regdb(clips[:TRAIN_CLIPS], root / "crops")
    # one intra-op thread: `make test` runs it beside the other worker on 2 cores, where two threads contend
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        summary = train(load_config("tiny", SETTINGS), f"regdb:{root / 'crops'}", root / "run", show_progress=False)
        assert summary.skipped == 0, summary
        result = run_export(root / "run" / "last.pt", root / "model", ExportOptions(crops=16))
    finally:
        torch.set_num_threads(threads)
    assert result.ok, result  # crops/ and run/ stay: the INT8 tests calibrate on the crops and export last.pt
