"""runtime/atomic.py: a result file is the previous one or the complete new one, never half of one."""

import pytest

from hicmd.runtime.atomic import write_atomically


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
