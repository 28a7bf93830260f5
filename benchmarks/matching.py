"""Cross-camera matching of people the model has never seen: the three cue settings, per camera rig.

    python benchmarks/matching.py --model hicmd-demo/model --out bench-matching

Renders fresh SynthVI clips (`hicmd synth --videos --rig ...`) of identities from universe seeds the demo never
trains on, streams each clip with its det files under each cue setting (`hicmd stream --cues appearance|time|
geometry`), scores every run against the clip's ground truth (`hicmd score`) and prints, per rig and setting: match
precision, match recall, cross-camera IDF1 and HOTA, and for geometry the self-calibration's median foot-point error
against the clip's true homography and when it first got within 5 px. Everything goes through the CLI verbs, so the
numbers are what a user gets. The table and every run's score card are written to OUT/matching.json.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

RIGS = {"bispectrum": 4242, "separate": 4343}  # universe seeds: none of these people is in any training set
SETTINGS = ("appearance", "time", "geometry")


def hicmd(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "hicmd", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"hicmd {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def pooled(cards: list[dict]) -> dict:
    """Pool the runs of a rig: match counts add up; IDF1 / HOTA / calibration are averaged over clips."""
    matches, correct = sum(c["match_matches"] for c in cards), sum(c["match_correct"] for c in cards)
    positives, found = sum(c["match_positives"] for c in cards), sum(c["match_found"] for c in cards)
    mean = lambda key: (sum(c[key] for c in cards if c.get(key) is not None) /  # noqa: E731
                        max(1, sum(c.get(key) is not None for c in cards)))
    by_cue: dict[str, dict[str, int]] = {}
    for card in cards:
        for cue, tally in card.get("match_by_cue", {}).items():
            pool = by_cue.setdefault(cue, {"matches": 0, "correct": 0})
            for key in pool:
                pool[key] += tally[key]
    cal = [c["calibration_px"] for c in cards if c.get("calibration_px") is not None]
    after = [c["calibrated_after_s"] for c in cards if c.get("calibrated_after_s") is not None]
    return {"clips": len(cards), "matches": matches, "correct": correct,
            "precision": correct / matches if matches else math.nan, "people": positives, "found": found,
            "recall": found / positives if positives else math.nan, "idf1": mean("idf1"), "hota": mean("hota"),
            "by_cue": dict(sorted(by_cue.items())),
            "calibrated_clips": len(cal), "calibration_px_median": sorted(cal)[len(cal) // 2] if cal else None,
            "calibrated_within_5px_s_max": max(after) if after else None, "calibrated_within_5px_clips": len(after)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="export folder (hicmd export ... --data: measured gates)")
    parser.add_argument("--out", default="bench-matching")
    parser.add_argument("--clips", type=int, default=4, help="clips per rig")
    parser.add_argument("--frames", type=int, default=300, help="RGB frames per clip (10 fps)")
    parser.add_argument("--embed-every", default="2")
    parser.add_argument("--seeds", default=f"{RIGS['bispectrum']},{RIGS['separate']}",
                        help="universe seeds of the bispectrum and separate clips (a second pair checks that what was "
                             "tuned on the first holds)")
    args = parser.parse_args()
    out = Path(args.out)
    table: dict = {}
    seeds = [int(v) for v in args.seeds.split(",")]
    for rig, seed in zip(RIGS, seeds):
        data = out / "clips" / rig
        if not (data / "videos").is_dir():
            hicmd("synth", "--out", str(data), "--ids", "60", "--per-id", "1", "--seed", str(seed), "--videos",
                  "--clips", str(args.clips), "--frames", str(args.frames), "--rig", rig)
        clips = sorted((data / "videos").iterdir())
        for setting in SETTINGS:
            cards = []
            for clip in clips:
                run = out / "runs" / rig / setting / clip.name
                hicmd("stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model", args.model,
                      "--backend", "onnxruntime", "--detections-rgb", str(clip / "det_rgb.txt"),
                      "--detections-ir", str(clip / "det_ir.txt"), "--embed-every", args.embed_every, "--cues",
                      setting, "--events", str(run / "events.jsonl"), "--overwrite", "--save-tracks",
                      str(run / "tracks"))
                hicmd("score", "--run", str(run), "--gt", str(clip), "--out", str(run / "score.json"))
                cards.append(json.loads((run / "score.json").read_text()))
            table[f"{rig}/{setting}"] = {**pooled(cards), "runs": cards}
            row = table[f"{rig}/{setting}"]
            print(f"{rig:10s} {setting:10s} precision {row['precision']:.3f} ({row['correct']}/{row['matches']}) "
                  f"recall {row['recall']:.3f} ({row['found']}/{row['people']}) IDF1 {row['idf1']:.3f} "
                  f"HOTA {row['hota']:.3f} calibration {row['calibration_px_median']} px in "
                  f"{row['calibrated_within_5px_clips']}/{row['clips']} clips, <= 5 px by "
                  f"{row['calibrated_within_5px_s_max']} s; correct by cue: "
                  + ", ".join(f"{cue} {v['correct']}/{v['matches']}" for cue, v in row["by_cue"].items()), flush=True)
    (out / "matching.json").write_text(json.dumps(table, indent=1) + "\n")


if __name__ == "__main__":
    main()
