"""benchmarks/matching.py's verdicts: which of issue 11's targets a set of clips meets, from `hicmd score` cards."""

import importlib.util
import math
from pathlib import Path

BENCH = Path(__file__).parents[1] / "benchmarks" / "matching.py"
spec = importlib.util.spec_from_file_location("bench_matching", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def card(matches, correct, positives, found, idf1, calibrated_after_s=None, wrong_after_fit_s=(), people=None):
    both, people_found = people if people is not None else (positives, found)  # per person (gt) as per track pair
    return {"match_matches": matches, "match_correct": correct, "match_positives": positives, "match_found": found,
            "people_both": both, "people_found": people_found, "idf1": idf1, "hota": 0.5,
            "calibration_px": 2.0 if calibrated_after_s else None,
            "calibrated_after_s": calibrated_after_s,
            "match_by_cue": {"geometry": {"matches": matches, "correct": correct}},
            "match_wrong": [{"after_fit_s": after} for after in wrong_after_fit_s]}


def test_a_set_is_judged_on_its_pooled_counts_and_every_clip_calibrating_by_20_s():
    good = [card(4, 4, 4, 4, 0.85, 8.0), card(5, 5, 4, 4, 0.83, 12.5)]
    row = bench.pooled(good)
    assert (row["correct"], row["matches"], row["pairs_found"], row["pairs"]) == (9, 9, 8, 8)
    assert bench.verdict(row, calibrating=True) == {"meets": True, "missed": [], "meets_per_person": True}
    one_wrong = bench.pooled(good + [card(10, 9, 6, 6, 0.9, 5.0, wrong_after_fit_s=[0.3])])  # 18/19 = 0.947: misses
    assert (one_wrong["wrong_within_1s_of_a_fit"], one_wrong["wrong_without_a_fit"]) == (1, 0)
    assert bench.verdict(one_wrong, calibrating=True)["missed"] == ["precision"]
    late = bench.pooled(good + [card(3, 3, 3, 3, 0.9, 20.5)])  # within 5 px only after 20 s
    assert bench.verdict(late, calibrating=True)["missed"] == ["calibration"]
    assert bench.verdict(late, calibrating=False)["meets"]  # appearance / time settings have no calibration target
    silent = bench.pooled([card(0, 0, 3, 0, 0.4)])  # no match event: precision is NaN, and that misses
    assert math.isnan(silent["precision"])
    assert bench.verdict(silent, calibrating=True)["missed"] == ["precision", "recall", "idf1", "calibration"]
    # a person whose track broke in two: 7 of 8 track pairs matched (0.875 misses) but all 7 people (per person)
    broken = bench.pooled([card(7, 7, 8, 7, 0.85, 6.0, people=(7, 7))])
    assert math.isclose(broken["people_recall"], 1.0) and math.isclose(broken["recall"], 0.875)
    assert bench.verdict(broken, calibrating=True) == {"meets": False, "missed": ["recall"], "meets_per_person": True}
    sets = [bench.verdict(r, True) for r in (row, one_wrong, late, silent, broken)]
    assert bench.summary(sets) == {"sets": 5, "meeting_all": 1, "meeting_all_per_person": 2,
                                   "missing": {"precision": 2, "recall": 2, "idf1": 1, "calibration": 2}}


def test_wrong_matches_are_pooled_by_how_long_the_fit_in_use_had_held():
    row = bench.pooled([card(6, 3, 3, 3, 0.8, 5.0, wrong_after_fit_s=[0.2, 1.0, 4.5]), card(2, 1, 2, 1, 0.7,
                                                                                          wrong_after_fit_s=[None])])
    assert (row["wrong_within_1s_of_a_fit"], row["wrong_without_a_fit"]) == (2, 1)  # 4.5 s: in neither
