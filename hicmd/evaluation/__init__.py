"""Evaluation: re-identification metrics, the RegDB / SYSU-MM01 / LLCM protocols, feature extraction, reports.

Importing this package is light (numpy only); torch is imported when features are extracted.
"""

from hicmd.evaluation.metrics import Metrics, eval_llcm, eval_regdb, eval_sysu, evaluate_ranking, mean_metrics
from hicmd.evaluation.runner import evaluate

__all__ = ["Metrics", "evaluate", "evaluate_ranking", "eval_regdb", "eval_sysu", "eval_llcm", "mean_metrics"]
