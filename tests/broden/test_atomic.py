"""Atomic outputs (broden.utils.atomic): write-once destinations are never replaced."""

from __future__ import annotations

from pathlib import Path

import pytest

from broden.utils import atomic


def test_write_once_outputs_never_replace_what_appeared_meanwhile(tmp_path: Path) -> None:
    dest = tmp_path / "v1"
    with pytest.raises(FileExistsError), atomic.atomic_path(dest, is_dir=True, replace=False) as tmp:
        (tmp / "index.html").write_text("new")
        dest.mkdir()  # another build got there first
        (dest / "index.html").write_text("first")
    assert (dest / "index.html").read_text() == "first" and [p.name for p in tmp_path.iterdir()] == ["v1"]
