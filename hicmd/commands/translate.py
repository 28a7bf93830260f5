"""`hicmd translate`: render people with another image's pose and/or illumination through the exported generator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hicmd.choices import Backend, Device, ModalityChoice, Precision, Swap
from hicmd.commands._options import (PRECISION_HELP, BackendOption, DeviceOption, ThreadsOption, model_option,
                                     out_option)
from hicmd.errors import UserError

NAME = "translate"
EXAMPLES = ("hicmd translate -m model/ --src rgb.png --ref ir.png --ref-modality ir --swap illumination -o x.png",
            "hicmd translate -m model/ --src-dir people/ --ref-dir poses/ --swap pose -o grid.png")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def command(
    model: Annotated[Path, model_option()],
    out: Annotated[Path, out_option("Output PNG (the translated image, or the grid).")],
    src: Annotated[Optional[Path], typer.Option("--src", help="Source person image.")] = None,
    ref: Annotated[Optional[Path], typer.Option("--ref", help="Reference image giving pose/illumination.")] = None,
    src_dir: Annotated[Optional[Path], typer.Option("--src-dir", help="Grid mode: folder of source images.")] = None,
    ref_dir: Annotated[Optional[Path], typer.Option("--ref-dir", help="Grid mode: folder of reference images.")] = None,
    swap: Annotated[Swap, typer.Option("--swap", help="Attributes taken from the reference.")] = Swap.both,
    src_modality: Annotated[ModalityChoice, typer.Option("--src-modality", help="Camera of the source images.")]
    = ModalityChoice.rgb,
    ref_modality: Annotated[ModalityChoice, typer.Option("--ref-modality", help="Camera of the reference images.")]
    = ModalityChoice.rgb,
    limit: Annotated[int, typer.Option("--limit", help="Grid mode: at most this many images per folder.")] = 8,
    backend: BackendOption = Backend.auto,
    device: DeviceOption = Device.auto,
    precision: Annotated[Precision, typer.Option("--precision", help=f"{PRECISION_HELP} INT8 / BF16 apply to the "
                                                 "embedders; the generator stays FP32/FP16.")] = Precision.auto,
    threads: ThreadsOption = None,
) -> None:
    """Render a person with another image's ID-excluded attributes (pose, illumination).

    The source keeps its identity (prototype and ID-discriminative attributes); --swap picks which of the
    reference's codes replace the source's. One image: --src and --ref; a grid: --src-dir and --ref-dir (rows =
    sources, columns = references, originals first).
    """
    from hicmd.runtime.atomic import write_image
    from hicmd.runtime.translate import Translator, compose_grid

    single, grid = (src is not None or ref is not None), (src_dir is not None or ref_dir is not None)
    if single == grid or (single and (src is None or ref is None)) or (grid and (src_dir is None or ref_dir is None)):
        raise UserError("give either --src and --ref (one image) or --src-dir and --ref-dir (a grid)")
    if limit < 1:
        raise UserError(f"--limit must be >= 1 (got {limit})")
    if backend.value == "triton":  # the generator is not served: export --triton writes the embedders only
        raise UserError("translate runs the generator here: use --backend auto, onnxruntime, openvino, tensorrt or "
                        "torch (--backend triton is for hicmd stream)")
    if out.suffix.lower() not in _IMAGE_SUFFIXES:
        raise UserError(f"--out {out} is not an image file name; use a .png (or .jpg) path")
    if single:
        sources, references = [_read(src, "--src")], [_read(ref, "--ref")]
    else:
        sources = [_read(p, "--src-dir") for p in _listing(src_dir, "--src-dir", limit)]
        references = [_read(p, "--ref-dir") for p in _listing(ref_dir, "--ref-dir", limit)]

    with Translator(model, modalities=(src_modality.value, ref_modality.value), backend=backend.value,
                    device=device.value, precision=precision.value, threads=threads) as translator:
        typer.echo(translator.describe())
        results = translator.translate(sources, src_modality.value, references, ref_modality.value, swap.value)
    picture = results[0, 0] if single else compose_grid(sources, references, results)
    try:
        write_image(out, picture)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write {out} ({getattr(exc, 'strerror', None) or exc}); use a .png (or .jpg) "
                        "path in a writable folder") from None
    typer.echo(f"wrote {out} ({len(sources)} source(s) x {len(references)} reference(s), swap {swap.value})")


def _listing(folder: Path, flag: str, limit: int) -> list[Path]:
    if not folder.is_dir():
        raise UserError(f"{flag} {folder} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"{flag} {folder} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
    return files[:limit]


def _read(path: Path, flag: str):
    import cv2

    if not path.is_file():
        raise UserError(f"{flag} {path} {'is a folder: give an image file' if path.is_dir() else 'not found'}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{flag} {path} is not an image OpenCV can read")
    return image
