"""results.png: the training curves from log.csv (the loss groups, the learning rates and alpha), written when
training ends, as ultralytics users expect."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from hicmd.runtime.atomic import write_figure

__all__ = ["PANELS", "plot_results"]

# panel title -> log.csv columns (those a run did not log are left out; an empty panel is not drawn)
PANELS = {
    "total": ("TOTAL", "TOT_G", "TOT_D", "TOT_ID"),
    "ID-PIG reconstruction": ("G_rec_x", "G_cross_x", "G_cyc_x", "G_rec_s"),
    "adversarial": ("G_adv", "D_a", "D_b", "D_r1"),
    "HFL identity": ("CE", "TRIP", "A_CE", "A_Trip"),
    "triplet scores": ("Trip_pscore", "Trip_nscore"),
    "learning rates": ("G_lr", "D_lr", "ID_lr"),
    "alpha": ("alpha",),
}


def _read(path: Path) -> dict[str, list[float]]:
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            try:
                columns.setdefault(key, []).append(float(value))
            except (TypeError, ValueError):
                columns.setdefault(key, []).append(math.nan)
    return columns


def plot_results(log_csv: str | Path, out: str | Path) -> Path | None:
    """Draw results.png from log.csv; None when the log has no rows. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_csv, out = Path(log_csv), Path(out)
    columns = _read(log_csv) if log_csv.is_file() else {}
    steps = columns.get("iteration")
    if not steps:
        return None
    panels = {title: [c for c in names if c in columns and not all(math.isnan(v) for v in columns[c])]
              for title, names in PANELS.items()}
    panels = {title: names for title, names in panels.items() if names}
    cols = min(4, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (title, names) in zip(axes.flat, panels.items()):
        for name in names:
            ax.plot(steps, columns[name], label=name, linewidth=1)
        ax.set_title(title)
        ax.set_xlabel("iteration")
        if title == "learning rates":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    write_figure(out, fig, dpi=90)
    plt.close(fig)
    return out
