"""Expensive fixtures (a trained model, an export) built once and kept in pytest's cache folder, under a key of the
settings and source files that shape them: a change to either rebuilds, nothing else does."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

__all__ = ["REPO", "source_key", "cached_build"]

REPO = Path(__file__).resolve().parents[2]


def source_key(settings: Any, sources: list[str]) -> str:
    """16 hex digits of the JSON of `settings` and every .py file under `sources` (paths relative to the repo)."""
    digest = hashlib.sha1(json.dumps(settings).encode())
    for entry in sources:
        path = REPO / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(REPO).as_posix().encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def cached_build(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, name: str,
                 build: Callable[[Path], None]) -> Path:
    """The folder `build` filled, from the cache when a finished build of this `name` (which carries its key) is
    there; under -p no:cacheprovider a temp folder, built every session."""
    from filelock import FileLock

    cache = getattr(request.config, "cache", None)
    root = Path(cache.mkdir(name)) if cache is not None else tmp_path_factory.mktemp(name)
    # `make test` runs two pytest-xdist workers: the second to need the build waits for the first, then reads it
    with FileLock(root.parent / f"{root.name}.lock"):
        if not (root / "done").is_file():
            shutil.rmtree(root, ignore_errors=True)
            # the other worker's cache.mkdir above (outside the lock) may have made it again meanwhile: that is fine
            root.mkdir(parents=True, exist_ok=True)
            build(root)
            (root / "done").write_text("ok\n")
    return root
