"""`hicmd calibrate`."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.commands._options import model_option, out_option
from hicmd.errors import UserError

NAME = "calibrate"
EXAMPLES = ("hicmd calibrate --points pairs.csv --rgb-size 1920x1080 --ir-size 640x512 -o calibration.json",
            "hicmd calibrate --rgb rgb.mp4 --ir ir.mp4 -m model/ -o calibration.json")


def _size(text: str | None, flag: str) -> tuple[int, int]:
    if text is None:
        raise UserError(f"--points needs {flag} WIDTHxHEIGHT too: the image size the points were measured in")
    width, sep, height = text.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or min(int(width), int(height)) < 1:
        raise UserError(f"{flag} {text!r} must be WIDTHxHEIGHT in pixels, e.g. 640x480")
    return int(width), int(height)


def _read_points(path: Path):  # noqa: ANN202 - (rgb (N, 2), ir (N, 2))
    import numpy as np

    rows = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a spreadsheet's byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --points {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        cells = [c for c in re.split(r"[,;\s]+", line) if c]  # comma, semicolon or space separated
        if not cells or line.lstrip().startswith("#"):
            continue
        try:
            rows.append([float(c) for c in cells])
        except ValueError:
            if rows or number > 1:  # a header line is fine, words elsewhere are not
                raise UserError(f"--points {path} line {number}: expected rgb_x,rgb_y,ir_x,ir_y numbers, got "
                                f"{line.strip()!r}") from None
            continue
        if len(rows[-1]) != 4:
            raise UserError(f"--points {path} line {number}: expected 4 numbers (rgb_x,rgb_y,ir_x,ir_y), got "
                            f"{len(rows[-1])}")
    data = np.asarray(rows, np.float64).reshape(-1, 4)
    return data[:, :2], data[:, 2:]


def _inside(points, size: tuple[int, int], camera: str) -> None:  # noqa: ANN001 - (N, 2) array
    """A clicked or measured point lies in its image: one outside was typed in the wrong column or image size."""
    import numpy as np

    outside = np.flatnonzero((points < 0).any(1) | (points[:, 0] > size[0]) | (points[:, 1] > size[1]))
    if len(outside):
        x, y = points[outside[0]]
        raise UserError(f"--points pair {outside[0] + 1}: its {camera.upper()} point ({x:g}, {y:g}) lies outside "
                        f"the --{camera}-size {size[0]}x{size[1]} image (columns are rgb_x,rgb_y,ir_x,ir_y)")


def command(
    out: Annotated[Path, out_option("Where to write calibration.json.")] = Path("calibration.json"),
    points: Optional[Path] = typer.Option(None, "--points", help="CSV of point pairs measured or clicked on the "
                                          "ground: rgb_x,rgb_y,ir_x,ir_y per line (4 or more, not on one line)."),
    rgb_size: Optional[str] = typer.Option(None, "--rgb-size", help="RGB image WIDTHxHEIGHT (with --points)."),
    ir_size: Optional[str] = typer.Option(None, "--ir-size", help="IR image WIDTHxHEIGHT (with --points)."),
    rgb: Optional[str] = typer.Option(None, "--rgb",
                                      help="RGB recording (or camera) to calibrate from, automatically."),
    ir: Optional[str] = typer.Option(None, "--ir", help="IR recording (or camera), with --rgb."),
    model: Annotated[Optional[Path], model_option("Its embedder pairs people across the cameras (with "
                                                  "--rgb/--ir).")] = None,
    detections_rgb: Optional[Path] = typer.Option(None, help="Precomputed RGB detections (MOTChallenge text)."),
    detections_ir: Optional[Path] = typer.Option(None, help="Precomputed IR detections (MOTChallenge text)."),
    embed_every: int = typer.Option(2, help="Re-embed each track every N frames."),
    max_frames: Optional[int] = typer.Option(None, help="Stop after N steps of the recording."),
) -> None:
    """Fit the RGB->IR ground-plane homography that `hicmd stream --calibration` uses.

    From point pairs on the ground, or automatically from a recording of people walking: the stream's own
    assignments give foot-point pairs, fitted robustly (RANSAC), wrong pairs rejected.
    """
    from hicmd.runtime.atomic import clashing_outputs
    from hicmd.runtime.geometry import fit_calibration

    if (points is None) == (rgb is None and ir is None):
        raise UserError("give either --points pairs.csv (with --rgb-size/--ir-size) or --rgb, --ir and --model")
    problem = clashing_outputs({"--out": out}, {"--points": points, "--rgb": rgb, "--ir": ir,
                                                "--detections-rgb": detections_rgb, "--detections-ir": detections_ir})
    if problem:
        raise UserError(problem)
    if points is not None:
        sizes = _size(rgb_size, "--rgb-size"), _size(ir_size, "--ir-size")
        pairs = _read_points(points)
        for side, size, camera in zip(pairs, sizes, ("rgb", "ir")):
            _inside(side, size, camera)
        cal = fit_calibration(*pairs, *sizes)
    else:
        if not (rgb and ir and model):
            raise UserError("automatic calibration needs --rgb, --ir and --model together")
        cal = _from_recording(rgb, ir, model, detections_rgb, detections_ir, embed_every, max_frames)
    out.parent.mkdir(parents=True, exist_ok=True)
    cal.save(out)
    typer.echo(f"calibration: median error {cal.reprojection_px:.2f} px over {cal.inliers} of {cal.pairs} pairs "
               f"(RGB {cal.rgb_size[0]}x{cal.rgb_size[1]} -> IR {cal.ir_size[0]}x{cal.ir_size[1]}); wrote {out}")


def _from_recording(rgb: str, ir: str, model: Path, det_rgb: Path | None, det_ir: Path | None, embed_every: int,
                    max_frames: int | None):  # noqa: ANN202 - Calibration
    import io

    import numpy as np

    from hicmd.runtime.embedder import Embedder
    from hicmd.runtime.geometry import Calibration
    from hicmd.runtime.sources import quiet_video_logs
    from hicmd.runtime.stream import StreamOptions, run_stream

    quiet_video_logs()
    opts = StreamOptions(rgb=rgb, ir=ir, detections_rgb=str(det_rgb) if det_rgb else None,
                         detections_ir=str(det_ir) if det_ir else None, embed_every=embed_every,
                         events=io.StringIO(), cues="geometry", max_frames=max_frames)
    summary = run_stream(opts, Embedder(model, backend="onnxruntime", device="cpu"))
    fit = summary.extra.get("calibration")
    if not fit:
        raise UserError("no homography could be fitted from this recording: it needs people walking across the "
                        "ground seen by both cameras (try a longer recording, or --points)")
    rgb_size, ir_size = tuple(summary.extra["sizes"]["rgb"]), tuple(summary.extra["sizes"]["ir"])
    return Calibration(np.array(fit["homography"]), rgb_size, ir_size, fit["reprojection_px"], fit["inliers"],
                       fit["pairs"])
