"""runtime/atomic.py: a written file is the previous one or the complete new one, never half of one; a folder (a
rendered clip) appears whole or not at all; and every file the package writes goes through them."""

import os
import re
import stat
from pathlib import Path

import pytest

from hicmd.runtime.atomic import staged_folder, write_atomically

ROOT = Path(__file__).resolve().parents[1]


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    target = write_atomically(tmp_path / "out" / "score.json", '{"old": 1}\n')  # the folder is created
    assert target.read_text() == '{"old": 1}\n'

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("hicmd.runtime.atomic.os.fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_atomically(target, '{"new": 2}\n')
    assert target.read_text() == '{"old": 1}\n' and [p.name for p in target.parent.iterdir()] == ["score.json"]
    monkeypatch.undo()
    write_atomically(target, b"\x00binary")
    assert target.read_bytes() == b"\x00binary" and len(list(target.parent.iterdir())) == 1


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_the_mode_is_what_open_would_give_and_private_files_stay_private(tmp_path, umask):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
        target = write_atomically(tmp_path / "manifest.json", "{}")
        crop = tmp_path / "crop.png"
        crop.write_bytes(b"old")
        os.chmod(crop, 0o644)  # a file once readable by others: the private rewrite must not keep that
        write_atomically(crop, b"png", private=True)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(crop.stat().st_mode) == 0o600


def test_a_rewritten_file_keeps_its_mode(tmp_path):
    kept = write_atomically(tmp_path / "calibration.json", "{}")
    os.chmod(kept, 0o600)  # the user made it private: a rewrite must not open it up again
    write_atomically(kept, '{"new": 1}')
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_text() == '{"new": 1}'
    os.chmod(kept, 0o640)
    write_atomically(kept, "{}")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640


def test_a_staged_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "videos" / "clip01"
    (target.parent / ".clip01.partial").mkdir(parents=True)  # left by a render that was killed
    with pytest.raises(RuntimeError):
        with staged_folder(target) as stage:
            (stage / "rgb.mp4").write_bytes(b"half a video")
            raise RuntimeError("killed mid-render")
    assert list(target.parent.iterdir()) == []  # no clip, and no half one hidden beside it

    with staged_folder(target) as stage:
        (stage / "rgb.mp4").write_bytes(b"first")
        (stage / "old-only.txt").write_text("x")
    with pytest.raises(RuntimeError):
        with staged_folder(target) as stage:
            (stage / "rgb.mp4").write_bytes(b"second, cut short")
            raise RuntimeError
    assert (target / "rgb.mp4").read_bytes() == b"first"  # a failed re-render keeps the previous clip
    with staged_folder(target) as stage:
        (stage / "rgb.mp4").write_bytes(b"second")
    assert sorted(p.name for p in target.iterdir()) == ["rgb.mp4"] and (target / "rgb.mp4").read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["clip01"]


def test_a_clip_render_that_fails_leaves_no_clip(tmp_path, monkeypatch):
    import hicmd.data.synthvi_video as video

    def disk_full(path, rows, with_conf):
        if path.name == "det_ir.txt":  # the very last file before clip.json
            raise OSError(28, "No space left on device")
        return real(path, rows, with_conf)

    real = video._write_mot
    monkeypatch.setattr(video, "_write_mot", disk_full)
    with pytest.raises(OSError):
        video.write_clip(tmp_path / "clip01", [1, 2, 3], seed=1, index=0, frames=10, size=(64, 96))
    assert list(tmp_path.iterdir()) == []


# Writers that may write in place, and why that is safe there. Every other file the package writes goes through
# write_atomically or staged_folder; a new in-place writer fails this test until it does too (or is listed here).
IN_PLACE_OK = {
    "hicmd/data/synthvi_video.py": "writes inside the clip's staged folder (write_clip)",
    "hicmd/data/synthvi_write.py": "dataset images; the lists and synthvi.json, which name them, come last, atomically",
    "hicmd/train/logs.py": "log.csv is appended row by row; a resumed run truncates it to its checkpoint",
    "export/fp16.py": "into the export's staging folder (export/staging.py), moved into place whole",
    "export/graphs.py": "into the export's staging folder",
    "export/int8.py": "into the export's staging folder",
    "export/triton.py": "into a staging folder renamed into place whole",
    "runtime/annotate.py": "a .partial video renamed when complete",
    "runtime/trackfiles.py": "track files are appended line by line while the stream runs",
    "runtime/atomic.py": "the writer itself",
    "benchmarks/ort_int8_fusion.py": "scratch graphs in a temporary folder",
    "hicmd/data/footage.py": "crops into the caller's folder, which names them in its index afterwards "
                             "(add_footage: a .partial folder renamed when complete)",
}
WRITES = re.compile(r"\.write_(text|bytes)\(|\.savefig\(|cv2\.imwrite\(|VideoWriter\(|onnx\.save\(|torch\.save\("
                    r"|\bopen\([^)]*[\"'][wax]b?\+?[\"']|\.open\([\"'][wax]")


def test_every_file_the_package_writes_is_written_atomically():
    sources = [p for folder in ("hicmd", "export", "runtime", "benchmarks") for p in (ROOT / folder).rglob("*.py")]
    found = {str(p.relative_to(ROOT)) for p in sources
             if any(WRITES.search(line) for line in p.read_text().splitlines()
                    if not line.lstrip().startswith("#") and "write_atomically(" not in line)}
    assert found - IN_PLACE_OK.keys() == set(), "write these with runtime/atomic.py (or say why not in IN_PLACE_OK)"
    assert IN_PLACE_OK.keys() - found == set(), "listed but no longer writing in place: drop them from IN_PLACE_OK"
