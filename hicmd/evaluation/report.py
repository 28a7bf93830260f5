"""Presenting results: a rich table on the terminal, metrics.json and a CMC-curve PNG.

All three read the dict returned by `hicmd.evaluation.evaluate` (values in percent):
{"dataset", "protocol", ..., "settings": {name: {"label", "trials", "r1", ..., "mAP", "mINP", "cmc",
"per_trial": [...]}}}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hicmd.runtime.atomic import write_atomically, write_figure

__all__ = ["results_table", "print_results", "write_json", "plot_cmc"]

COLUMNS = ("r1", "r5", "r10", "r20", "mAP", "mINP")
HEADERS = ("R1", "R5", "R10", "R20", "mAP", "mINP")


def results_table(results: dict[str, Any], per_trial: bool = False):
    """rich Table: one row per setting, the mean over its trials in percent (± the std over trials when there are
    several), the valid queries; with `per_trial`, one row per trial under each setting."""
    from rich.table import Table

    table = Table(title=f"{results['dataset']} - {results['protocol']}", title_justify="left")
    table.add_column("setting", no_wrap=True)
    table.add_column("trials", justify="right")
    for header in HEADERS:
        table.add_column(header, justify="right")
    table.add_column("valid queries", justify="right")
    for row in results["settings"].values():
        spread = row.get("std") if len(row["trials"]) > 1 else None
        cells = (f"{row[k]:.2f}" + (f" ± {spread[k]:.2f}" if spread else "") for k in COLUMNS)
        table.add_row(row["label"], str(len(row["trials"])), *cells, f"{row.get('num_valid')}/{row.get('num_query')}")
        for trial in row.get("per_trial", []) if per_trial else []:
            table.add_row(f"  trial {trial['trial']}", "", *(f"{trial[k]:.2f}" for k in COLUMNS),
                          f"{trial.get('num_valid')}/{trial.get('num_query')}", style="dim")
    return table


def print_results(results: dict[str, Any], console=None, per_trial: bool = False) -> None:
    from rich.console import Console

    (console or Console()).print(results_table(results, per_trial))


def write_json(results: dict[str, Any], path: str | Path) -> Path:
    return write_atomically(path, json.dumps(results, indent=2) + "\n")


def plot_cmc(results: dict[str, Any], path: str | Path) -> Path:
    """CMC curves (rank 1..20) of every setting, mean over trials, in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    for row in results["settings"].values():
        ranks = range(1, len(row["cmc"]) + 1)
        ax.plot(ranks, row["cmc"], marker="o", markersize=3,
                label=f"{row['label']} (R1 {row['r1']:.1f}, mAP {row['mAP']:.1f})")
    ax.set(xlabel="rank", ylabel="matching rate (%)", ylim=(0, 100), xlim=(1, 20),
           title=f"CMC - {results['dataset']} ({results['protocol']})")
    ax.set_xticks([1, 5, 10, 15, 20])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
    return path
