"""Files written so that a crash, kill or full disk leaves the previous file or the complete new one, never half of
one: a temporary file in the same folder, flushed to disk, then renamed over the target. Torch-free.

The file gets the mode a plain `open(path, "w")` leaves it with: an existing file keeps its own (one a user made
private stays private), a new one gets 0666 less the umask, so a model folder's manifest can be read by whoever may
read the graphs beside it. Biometric files ask for 0600 (`private=True`), whatever the umask or the old file's mode.
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

__all__ = ["write_atomically", "write_image", "write_figure", "staged_folder", "clashing_outputs"]


def write_atomically(path: str | Path, data: str | bytes | Callable[[BinaryIO], object],
                     private: bool = False) -> Path:
    """Write `data` to `path`, creating its folder: text (as UTF-8), bytes, or a function that writes into the
    binary file it is given (a checkpoint's `torch.save`, a figure's `savefig`, without holding the file in memory
    first). `private`: mode 0600 whatever the umask (crops and galleries are biometric data)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _new_temporary(path, 0o600 if private else 0o666)
    except OSError as exc:  # said of the file asked for, not of its hidden temporary
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        if not private and path.exists():
            os.fchmod(fd, stat.S_IMODE(path.stat().st_mode))
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno is None:  # raised by `data` with a message of its own
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_image(path: str | Path, image: object, private: bool = False) -> Path:
    """`write_atomically` of an OpenCV image (BGR or grey) in the format `path`'s suffix names. ValueError when
    OpenCV cannot encode it as that format."""
    import cv2
    import numpy as np

    suffix = Path(path).suffix or ".png"
    ok, data = cv2.imencode(suffix, np.asarray(image))
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as {suffix}")
    return write_atomically(path, data.tobytes(), private)


def write_figure(path: str | Path, figure: object, dpi: float | None = None) -> Path:
    """`write_atomically` of a matplotlib figure in the format `path`'s suffix names (png without one)."""
    fmt = Path(path).suffix[1:] or "png"
    return write_atomically(path, lambda fh: figure.savefig(fh, format=fmt, dpi=dpi))  # type: ignore[attr-defined]


@contextmanager
def staged_folder(target: str | Path) -> Iterator[Path]:
    """A folder that appears at `target` complete or not at all (a rendered clip: videos, gt and clip.json). Write
    into the hidden sibling this yields; when the block ends it takes `target`'s place (an old `target` is removed
    once the new one is in), and when it raises it is removed. One left by a killed process goes at the next try."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging, old = target.with_name(f".{target.name}.partial"), target.with_name(f".{target.name}.old")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if target.exists():  # moved aside before the new one moves in: a kill between the two renames leaves it there
        shutil.rmtree(old, ignore_errors=True)
        os.rename(target, old)
    os.rename(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def clashing_outputs(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None]) -> str | None:
    """What is wrong, in one line, when an output (option -> path) would be written over an input that exists or
    over another output; None when nothing clashes. A typo like `--save rgb.mp4` for `--rgb rgb.mp4` would otherwise
    replace a recording that may exist nowhere else. Inputs that are not files or folders (camera URLs) never clash."""
    given = {name: Path(path).absolute() for name, path in outputs.items() if path}
    names: dict[Path, str] = {}
    for name, path in given.items():
        if path in names:
            return f"{name} and {names[path]} are both {path}: give each output its own path"
        names[path] = name
    for source, value in inputs.items():
        if not value or not Path(value).exists():
            continue
        for name, path in given.items():
            if path.exists() and os.path.samefile(path, value):
                return f"{name} {outputs[name]} is the {source} input: writing it would destroy it; choose another path"
    return None


def _new_temporary(path: Path, mode: int) -> tuple[Path, int]:
    """A new hidden file beside `path`, created (O_EXCL) with `mode` less the umask, as `open` would create it;
    tempfile.mkstemp would always make it 0600."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:  # another writer's temporary by chance: draw another name
            continue
