"""Training logs: a CSV row of every loss term, learning rate and alpha each `log_every` iterations, mirrored to
TensorBoard when it is installed, and a rich progress bar with it/s and ETA."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

__all__ = ["CsvLog", "TensorBoard", "make_progress"]


class CsvLog:
    """Append-only CSV; a resumed run keeps appending under the existing header."""

    def __init__(self, path: Path):
        self.path = path
        self.fields: list[str] | None = None
        if path.is_file() and path.stat().st_size:
            with path.open(newline="") as fh:
                self.fields = next(csv.reader(fh), None)

    def write(self, row: dict[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with self.path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self.fields, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)


class TensorBoard:
    """SummaryWriter when `tensorboard` is installed; otherwise a no-op with `note` saying so."""

    def __init__(self, folder: Path):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.writer, self.note = None, "TensorBoard not installed; logging to CSV only"
        else:
            self.writer, self.note = SummaryWriter(str(folder)), f"TensorBoard logs in {folder}"

    def write(self, iteration: int, row: dict[str, Any]) -> None:
        if self.writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "iteration":
                    self.writer.add_scalar(key, value, iteration)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class SpeedColumn(ProgressColumn):
    def render(self, task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s", style="progress.data.speed")


def make_progress(disable: bool = False) -> Progress:
    return Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), SpeedColumn(), TextColumn("ETA"),
                    TimeRemainingColumn(), TextColumn("{task.fields[status]}"), disable=disable)
