"""Training's results.png: drawn from log.csv, panels only for the columns a run logged, atomic."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from hicmd.train.curves import plot_results  # noqa: E402


def test_results_png_from_log_csv(tmp_path):
    log = tmp_path / "log.csv"
    rows = ["iteration,time,TOTAL,CE,TRIP,G_adv,ID_lr,alpha"]
    rows += [f"{i},{i / 10},{10 - i / 10},{5 - i / 20},nan,nan,0.01,{0.5 + i / 1000}" for i in range(10, 210, 10)]
    log.write_text("\n".join(rows) + "\n")
    out = plot_results(log, tmp_path / "results.png")
    assert out == tmp_path / "results.png" and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))
    import cv2

    image = cv2.imread(str(out))
    assert image.shape[1] > image.shape[0] > 100  # 4 panels in one row: total, HFL identity, learning rates, alpha


def test_no_rows_no_picture(tmp_path):
    (tmp_path / "log.csv").write_text("iteration,TOTAL\n")
    assert plot_results(tmp_path / "log.csv", tmp_path / "results.png") is None
    assert plot_results(tmp_path / "missing.csv", tmp_path / "results.png") is None
    assert not (tmp_path / "results.png").exists()
