"""Disk helpers: starting a file's write-back early (the activation cache's, before each checkpoint's fsync)."""

from __future__ import annotations

import os
import sys

import pytest

from broden.utils import disk


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sync_file_range is Linux's")
def test_write_back_starts_for_a_written_range_and_the_data_stays(tmp_path) -> None:
    path = tmp_path / "cache.bin"
    data = os.urandom(1 << 20)
    with open(path, "w+b") as f:
        f.write(data)
        f.flush()
        assert disk.start_writeback(f.fileno(), 0, len(data))
        assert disk.start_writeback(f.fileno(), 4096, 8192)
        assert not disk.start_writeback(f.fileno(), 0, 0)  # nothing to write
        assert not disk.start_writeback(f.fileno(), -1, 10)  # refused: a bad range
    assert path.read_bytes() == data
    read, write = os.pipe()
    try:
        assert not disk.start_writeback(write, 0, 1)  # refused: not a file
    finally:
        os.close(read)
        os.close(write)


def test_write_back_is_a_no_op_off_linux(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    disk._sync_file_range.cache_clear()
    try:
        with open(tmp_path / "f", "wb") as f:
            f.write(b"x")
            f.flush()
            assert not disk.start_writeback(f.fileno(), 0, 1)
    finally:
        monkeypatch.undo()
        disk._sync_file_range.cache_clear()
