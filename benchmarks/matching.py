"""Cross-camera matching of people the model has never seen: the three cue settings, per camera rig, set by set.

    python benchmarks/matching.py --model hicmd-demo/model --out bench-matching
    python benchmarks/matching.py --model M --out O --separate 1246,1357 --bispectrum 1470 --cues geometry --jobs 2

Renders fresh SynthVI sets of clips (`hicmd synth --videos --rig ...`, one set of `--clips` clips per universe seed;
the seeds' people are in no training set) unless OUT/clips/RIG/SEED/videos holds them all, streams each clip with
its det files under each cue setting (`hicmd stream --cues appearance|time|geometry`), scores every run against the
clip's ground truth (`hicmd score`) and prints, per rig and setting, each set's verdict on the issue's targets and the
pooled figures: match precision, match recall, cross-camera IDF1 and HOTA, and for geometry the self-calibration's
median foot-point error against the clip's true homography and how many clips got within 5 px by 20 s. Everything
goes through the CLI verbs, so the numbers are what a user gets. The tables and every run's score card are written
to OUT/matching.json.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hicmd.runtime.atomic import write_atomically

RIGS = {"bispectrum": 4242, "separate": 4343}  # default universe seeds: none of these people is in any training set
SETTINGS = ("appearance", "time", "geometry")
# the targets, met or missed set by set: match precision, match recall, mean cross-camera IDF1 of its clips
TARGETS = {"precision": 0.95, "recall": 0.90, "idf1": 0.80}
CALIBRATED_BY_S = 20.0  # the self-calibration target: within 5 px of the true homography by 20 s


def hicmd(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "hicmd", *args], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"hicmd {' '.join(args)} failed:\n{proc.stderr[-2000:]}")


def pooled(cards: list[dict]) -> dict:
    """Pool runs: match counts add up; IDF1 / HOTA / calibration are averaged over clips."""
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
    wrong = [w for card in cards for w in card.get("match_wrong", [])]
    both = sum(c.get("people_both") or 0 for c in cards)  # recall per person, from the gt alone (scorecard.py)
    people_found = sum(c.get("people_found") or 0 for c in cards)
    cal = [c["calibration_px"] for c in cards if c.get("calibration_px") is not None]
    after = [c["calibrated_after_s"] for c in cards if c.get("calibrated_after_s") is not None]
    return {"clips": len(cards), "matches": matches, "correct": correct,
            "precision": correct / matches if matches else math.nan,
            # the scorer's recall counts same-person track pairs (a person whose track broke counts twice)
            "pairs": positives, "pairs_found": found,
            "recall": found / positives if positives else math.nan, "idf1": mean("idf1"), "hota": mean("hota"),
            "people_both": both, "people_found": people_found,
            "people_recall": people_found / both if both else math.nan,
            "by_cue": dict(sorted(by_cue.items())),
            # where the wrong matches come from: a fit in its first second (often two walkers paired the wrong way
            # round), no fit in use (the time cues), or a fit that had held longer
            "wrong_within_1s_of_a_fit": sum(w["after_fit_s"] is not None and w["after_fit_s"] <= 1.0 for w in wrong),
            "wrong_without_a_fit": sum(w["after_fit_s"] is None for w in wrong),
            "calibrated_clips": len(cal), "calibration_px_median": sorted(cal)[len(cal) // 2] if cal else None,
            "calibrated_within_5px_s_max": max(after) if after else None, "calibrated_within_5px_clips": len(after),
            "calibrated_within_5px_by_20s": sum(a <= CALIBRATED_BY_S for a in after)}


def verdict(row: dict, calibrating: bool) -> dict:
    """Which of the issue's targets a set (its pooled row) misses; a set with no match event misses precision. With
    geometry (`calibrating`) the fourth: every clip self-calibrated within 5 px by 20 s. Recall is the scorer's
    per track pair (a person whose track broke must be matched twice); `meets_per_person` judges it per person,
    as the issue words it, where the clips' frame rates are known."""
    missed = [name for name, floor in TARGETS.items() if not row[name] >= floor]  # NaN misses too
    if calibrating and row["calibrated_within_5px_by_20s"] < row["clips"]:
        missed.append("calibration")
    per_person = [m for m in missed if m != "recall"]
    if not row["people_recall"] >= TARGETS["recall"]:  # NaN (frame rates unknown) misses too
        per_person.append("recall")
    return {"meets": not missed, "missed": missed, "meets_per_person": not per_person}


def summary(sets: list[dict]) -> dict:
    """How many sets meet every target, and how many miss each one."""
    return {"sets": len(sets), "meeting_all": sum(s["meets"] for s in sets),
            "meeting_all_per_person": sum(s["meets_per_person"] for s in sets),
            "missing": {name: sum(name in s["missed"] for s in sets) for name in (*TARGETS, "calibration")}}


def stream_and_score(clip: Path, run: Path, model: str, setting: str, embed_every: str) -> dict:
    hicmd("stream", "--rgb", str(clip / "rgb.mp4"), "--ir", str(clip / "ir.mp4"), "--model", model,
          "--backend", "onnxruntime", "--detections-rgb", str(clip / "det_rgb.txt"),
          "--detections-ir", str(clip / "det_ir.txt"), "--embed-every", embed_every, "--cues", setting,
          "--events", str(run / "events.jsonl"), "--overwrite", "--save-tracks", str(run / "tracks"))
    hicmd("score", "--run", str(run), "--gt", str(clip), "--out", str(run / "score.json"))
    return json.loads((run / "score.json").read_text())


def render(data: Path, rig: str, seed: int, clips: int, frames: int) -> list[Path]:
    """The set's clips, rendered unless all of them already are (a clip folder exists only once it is complete:
    a benchmark killed while rendering renders that set again)."""
    def rendered() -> list[Path]:
        return sorted(p.parent for p in (data / "videos").glob("clip*/clip.json"))

    if len(rendered()) < clips:
        hicmd("synth", "--out", str(data), "--ids", "60", "--per-id", "1", "--seed", str(seed), "--videos",
              "--clips", str(clips), "--frames", str(frames), "--rig", rig)
    return rendered()


def _px(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def seed_list(text: str, flag: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{flag} takes universe seeds separated by commas, e.g. 1246,1357; got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="export folder (hicmd export ... --data: measured gates)")
    parser.add_argument("--out", default="bench-matching")
    parser.add_argument("--clips", type=int, default=4, help="clips per set (one set per seed)")
    parser.add_argument("--frames", type=int, default=300, help="RGB frames per clip (10 fps)")
    parser.add_argument("--embed-every", default="2")
    parser.add_argument("--seeds", default=f"{RIGS['bispectrum']},{RIGS['separate']}",
                        help="one universe seed per rig, bispectrum then separate (a second pair checks that what was "
                             "tuned on the first holds)")
    parser.add_argument("--bispectrum", help="the bispectrum rig's seeds instead, one set each: 1470,2581,...")
    parser.add_argument("--separate", help="the separate rig's seeds instead, one set each: 1246,1357,...")
    parser.add_argument("--rigs", default=",".join(RIGS), help="which rigs to run: bispectrum,separate")
    parser.add_argument("--cues", default=",".join(SETTINGS), help="cue settings to run: appearance,time,geometry")
    parser.add_argument("--jobs", type=int, default=1, help="clips streamed side by side")
    args = parser.parse_args()
    pair = seed_list(args.seeds, "--seeds")
    if len(pair) != 2:
        raise SystemExit(f"--seeds takes two seeds, bispectrum then separate; got {args.seeds!r}")
    seeds = {rig: seed_list(getattr(args, rig), f"--{rig}") if getattr(args, rig) else [default]
             for rig, default in zip(RIGS, pair)}
    rigs, settings = args.rigs.split(","), args.cues.split(",")
    if not set(rigs) <= set(RIGS) or not set(settings) <= set(SETTINGS) or args.jobs < 1:
        raise SystemExit(f"--rigs takes {','.join(RIGS)}, --cues {','.join(SETTINGS)} and --jobs at least 1")
    out = Path(args.out)
    table: dict = {}
    with ThreadPoolExecutor(args.jobs) as pool:
        for rig in rigs:
            clips = {seed: render(out / "clips" / rig / str(seed), rig, seed, args.clips, args.frames)
                     for seed in seeds[rig]}
            for setting in settings:
                jobs = {(seed, clip.name): pool.submit(stream_and_score, clip, out / "runs" / rig / str(seed) / setting
                                                       / clip.name, args.model, setting, args.embed_every)
                        for seed, paths in clips.items() for clip in paths}
                cards = {key: job.result() for key, job in jobs.items()}
                sets = []
                for seed, paths in clips.items():
                    row = pooled([cards[seed, clip.name] for clip in paths])
                    sets.append({"seed": seed, **verdict(row, setting == "geometry"), **{k: row[k] for k in (
                        "matches", "correct", "precision", "pairs", "pairs_found", "recall", "people_recall", "idf1",
                        "calibrated_within_5px_by_20s")}})
                    print(f"  {rig:10s} {setting:10s} set {seed}: precision {row['precision']:.3f} "
                          f"({row['correct']}/{row['matches']}) recall {row['recall']:.3f} ({row['pairs_found']}/"
                          f"{row['pairs']}) IDF1 {row['idf1']:.3f} "
                          + ("meets every target" if sets[-1]["meets"] else f"misses {', '.join(sets[-1]['missed'])}"),
                          flush=True)
                row = {**pooled(list(cards.values())), "per_set": sets, **summary(sets), "runs": list(cards.values())}
                table[f"{rig}/{setting}"] = row
                print(f"{rig:10s} {setting:10s} precision {row['precision']:.3f} ({row['correct']}/{row['matches']}) "
                      f"recall {row['recall']:.3f} ({row['pairs_found']}/{row['pairs']}; per person "
                      f"{row['people_recall']:.3f}, {row['people_found']}/{row['people_both']}) IDF1 {row['idf1']:.3f} "
                      f"HOTA {row['hota']:.3f} calibration {_px(row['calibration_px_median'])} px in "
                      f"{row['calibrated_clips']}/{row['clips']} clips, within 5 px by 20 s in "
                      f"{row['calibrated_within_5px_by_20s']}/{row['clips']}; sets meeting every target "
                      f"{row['meeting_all']}/{row['sets']} ({row['meeting_all_per_person']} with recall per person; "
                      "missing precision / recall / IDF1 / calibration: "
                      + " / ".join(str(v) for v in row["missing"].values()) + "); correct by cue: "
                      + ", ".join(f"{cue} {v['correct']}/{v['matches']}" for cue, v in row["by_cue"].items())
                      + f"; wrong within 1 s of a fit {row['wrong_within_1s_of_a_fit']}, without a fit "
                      f"{row['wrong_without_a_fit']}", flush=True)
    write_atomically(out / "matching.json", json.dumps(table, indent=1) + "\n")  # killed: the previous table stays


if __name__ == "__main__":
    main()
