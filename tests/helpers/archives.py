"""Zip archives built in memory for the download, extraction and provenance tests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path


def make_zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip holding ``members`` (archive name -> bytes), in the given order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def zip_folder(root: Path, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """``root`` and everything below it, zipped under its own name (``broden1_224/...``), as a release is."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for path in sorted(root.rglob("*")):
            z.write(path, path.relative_to(root.parent).as_posix())
    return buf.getvalue()
