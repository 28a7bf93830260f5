"""`hicmd bench` output: a rich table on screen, and bench.json, bench.md and bench.png in the output folder.

All four are derived from one BenchResult (hicmd.bench.rows), so they always agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hicmd.bench.rows import BenchResult, EmbedderRow, StreamRow, Target, TrainRow
from hicmd.runtime.atomic import write_atomically, write_figure

__all__ = ["EMBEDDER_COLUMNS", "embedder_table", "write_json", "write_markdown", "write_plot", "print_report"]

# (header, row key, format)
EMBEDDER_COLUMNS = (
    ("config", "config", "{}"), ("backend", "backend", "{}"), ("precision", "precision", "{}"),
    ("variant", "variant", "{}"), ("device", "device", "{}"), ("batch", "batch", "{}"), ("runs", "runs", "{}"),
    ("p50 ms", "p50_ms", "{:.2f}"), ("p90 ms", "p90_ms", "{:.2f}"), ("p99 ms", "p99_ms", "{:.2f}"),
    ("images/s", "images_per_s", "{:.1f}"), ("x eager", "speedup_vs_eager", "{:.2f}"),
    ("GFLOP/s", "gflops", "{:.1f}"), ("% peak", "peak_fraction", "{:.0%}"), ("parity cos", "parity_cosine", "{:.6f}"),
)

STREAM_HEADERS = ["config", "steps", "processed FPS", "embedder-bound FPS", "ratio", "stage p50 ms"]
TRAIN_HEADERS = ["config", "device", "threads", "runs", "s / iteration", "iterations/s", "images/s"]
TARGET_HEADERS = ["target", "value", "threshold", "result"]


def _cell(row: Any, key: str, fmt: str) -> str:
    value = getattr(row, key)
    return "-" if value is None else fmt.format(value)


def embedder_table(rows: list[EmbedderRow]) -> list[list[str]]:
    """Rows as strings in EMBEDDER_COLUMNS order; skipped/failed rows carry their reason in the last column."""
    out = []
    for r in rows:
        cells = [_cell(r, key, fmt) for _, key, fmt in EMBEDDER_COLUMNS]
        if not r.ok:
            cells[6:] = [r.status] + [""] * (len(EMBEDDER_COLUMNS) - 7)
        out.append(cells)
    return out


def write_json(result: BenchResult, path: Path) -> Path:
    return write_atomically(path, json.dumps(result.as_dict(), indent=2, default=str) + "\n")


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]


def _stage_text(stages: dict[str, Any] | None) -> str:
    if not stages:
        return "-"
    return ", ".join(f"{k} {v['p50']:.1f}" if isinstance(v, dict) else f"{k} {v:.2f}" for k, v in stages.items())


def _stream_cells(s: StreamRow) -> list[str]:
    return [s.config, str(s.steps), f"{s.processed_fps:.1f}", _cell(s, "embedder_bound_fps", "{:.1f}"),
            _cell(s, "ratio", "{:.0%}"), _stage_text(s.stages)]


def _train_cells(t: TrainRow) -> list[str]:
    return [str(t.threads), str(t.runs), f"{t.p50_s:.2f}", f"{t.iters_per_s:.3f}", f"{t.images_per_s:.2f}"]


def _target_text(t: Target) -> str:
    return t.note or "not measured" if t.met is None else ("met" if t.met else "NOT met")


def write_markdown(result: BenchResult, path: Path) -> Path:
    m, peak = result.machine, result.peak
    lines = [
        "# hicmd bench", "",
        f"- machine: {m['cpu']}, {m['physical_cores']} cores ({m['logical_cores']} logical), GPU: {m['gpu'] or 'none'}",
        f"- versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
        f"- load average when measured: {m['load_average']}",
        f"- CPU flags (low precision): {', '.join(m.get('cpu_flags') or []) or 'none found'}",
        f"- threads: {result.threads}; sgemm peak: {peak.gflops:.1f} GFLOP/s ({peak.method})",
        *[f"- {kind} peak: {p.gflops:.1f} {'GOP/s' if kind == 'int8' else 'GFLOP/s'} ({p.method})"
          for kind, p in result.peaks.items() if kind != "fp32" and p],
        "- % peak: INT8 and BF16 CPU rows against their own peak, the others against the sgemm peak",
        f"- timing: {result.policy}",
        f"- weights: {result.weights}", "",
        "## Embedder latency", "",
    ]
    headers = [h for h, _, _ in EMBEDDER_COLUMNS]
    lines += _md_table(headers, embedder_table(result.embedder))
    staged = [r for r in result.embedder if r.stages_ms]
    if staged:
        lines += ["", "GPU stage split (ms, median):", ""]
        lines += [f"- {r.config} {r.backend} {r.precision} batch {r.batch}: {_stage_text(r.stages_ms)}"
                  for r in staged]
    if result.stream:
        lines += ["", "## Stream", ""]
        lines += _md_table(STREAM_HEADERS,
                           [_stream_cells(s) for s in result.stream])
    if result.train:
        lines += ["", "## Training step", ""]
        lines += _md_table(TRAIN_HEADERS,
                           [[t.config, t.device, *_train_cells(t)] for t in result.train])
    lines += ["", "## Targets", ""]
    lines += _md_table(TARGET_HEADERS,
                       [[t.target, _cell(t, "value", "{:.3f}"), f"{t.threshold:g}", _target_text(t)]
                        for t in result.targets])
    return write_atomically(path, "\n".join(lines) + "\n")


def write_plot(result: BenchResult, path: Path) -> Path | None:
    """p50 latency per image vs batch, one line per backend/precision/variant, one panel per config."""
    rows = [r for r in result.embedder if r.ok]
    if not rows:
        return None
    try:
        import matplotlib
    except ImportError:  # the edge install has no matplotlib: the tables say it all
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = sorted({r.config for r in rows})
    fig, axes = plt.subplots(1, len(configs), figsize=(6 * len(configs), 4.2), squeeze=False)
    for ax, config in zip(axes[0], configs):
        lines: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r.config == config:
                label = f"{r.backend} {r.precision} {r.variant} ({r.device})"
                lines.setdefault(label, []).append((r.batch, r.p50_ms))
        for label, points in sorted(lines.items()):
            points.sort()
            ax.plot([b for b, _ in points], [ms for _, ms in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        batches = sorted({b for points in lines.values() for b, _ in points})
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("batch")
        ax.set_ylabel("p50 latency per batch (ms)")
        ax.set_title(f"{config} embedder")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"hicmd bench: {result.machine['cpu']}, {result.threads} threads", fontsize=10)
    fig.tight_layout()
    write_figure(path, fig, dpi=110)
    plt.close(fig)
    return path


def print_report(result: BenchResult, console: Any) -> None:
    """The rich tables: embedder matrix, stream, training, targets."""
    from rich.table import Table

    table = Table(title=f"embedder latency ({result.threads} threads, sgemm peak {result.peak.gflops:.1f} GFLOP/s, "
                        f"weights: {result.weights})")
    for header, _, _ in EMBEDDER_COLUMNS:
        table.add_column(header, justify="left" if header in ("config", "backend", "variant") else "right")
    for cells in embedder_table(result.embedder):
        table.add_row(*cells)
    console.print(table)
    if result.stream:
        _print_table(console, "stream (files as fast as possible)", STREAM_HEADERS,
                     [_stream_cells(s) for s in result.stream])
    if result.train:
        _print_table(console, "training step (D + G update, random in-memory batch)", TRAIN_HEADERS,
                     [[t.config, t.device, *_train_cells(t)] for t in result.train])
    styles = {True: "green", False: "red", None: "yellow"}
    _print_table(console, "targets", TARGET_HEADERS,
                 [[tg.target, _cell(tg, "value", "{:.3f}"), f"{tg.threshold:g}",
                   f"[{styles[tg.met]}]{_target_text(tg)}[/{styles[tg.met]}]"] for tg in result.targets])


def _print_table(console: Any, title: str, headers: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    for header in headers:
        table.add_column(header)
    for row in rows:
        table.add_row(*row)
    console.print(table)
