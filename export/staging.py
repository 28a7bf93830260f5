"""Write an export into a temporary sibling folder and move it into place only when it is complete.

A failed export (a gate that fails, an error, Ctrl-C, a kill) must never damage the working model it was meant to
replace, nor leave a half-written folder behind: every file is written into `.<name>.staging-<pid>` beside the
target on the same filesystem; `commit` then renames the whole folder into place (a new target) or moves the new
files over the old ones with manifest.json last (an existing target, which may hold other files of the user's).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["Staging"]

MANIFEST_NAME = "manifest.json"


class Staging:
    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.target.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.target.parent.glob(f".{self.target.name}.staging-*"):  # left by a killed export
            if not _alive(stale.name.rsplit("-", 1)[-1]):
                shutil.rmtree(stale, ignore_errors=True)
        self.path = self.target.parent / f".{self.target.name}.staging-{os.getpid()}"
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir()

    def carry(self, name: str) -> None:
        """Start the staging folder with a copy of the target's file `name`, if it has one (a cache the new export
        should build on rather than start over)."""
        if (self.target / name).is_file():
            shutil.copyfile(self.target / name, self.path / name)

    def final(self, path: Path) -> Path:
        """Where a file written into the staging folder will be once committed."""
        return self.target / Path(path).relative_to(self.path)

    def commit(self) -> None:
        if not self.target.exists():
            os.rename(self.path, self.target)
            return
        if not self.target.is_dir():
            raise NotADirectoryError(f"--out {self.target} exists and is not a folder")
        names = sorted(p.name for p in self.path.iterdir())
        for name in [n for n in names if n != MANIFEST_NAME] + [n for n in names if n == MANIFEST_NAME]:
            os.replace(self.path / name, self.target / name)  # the manifest last: it names the new files
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return pid != str(os.getpid())  # our own leftover from an earlier run in this process is stale too
