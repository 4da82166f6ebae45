"""Atomic outputs: a finished path either holds complete data or does not exist.

Everything is written next to its destination under a temporary name and renamed into place only after it is
complete, so an interrupted run never leaves a half-written file where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike[str], *, is_dir: bool = False, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling path; on success move it onto ``dest``, on error remove it.

    An existing ``dest`` is replaced only when the new content is complete; with ``replace=False`` it is never
    replaced: FileExistsError is raised instead and the new content discarded (write-once outputs).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent))
    target = tmp if is_dir else tmp / dest.name
    try:
        yield target
        if is_dir:  # mkdtemp makes 0700 directories; a finished output gets the usual permissions
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(target, 0o777 & ~umask)
        if not replace and (dest.exists() or dest.is_symlink()):
            raise FileExistsError(errno.EEXIST, "exists and is not replaced", str(dest))
        if dest.is_dir() and not dest.is_symlink():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(target, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, dest)
        _fsync_dir(dest.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_bytes(dest: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(dest) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def write_text(dest: str | os.PathLike[str], text: str) -> None:
    write_bytes(dest, text.encode("utf-8"))


def write_json(dest: str | os.PathLike[str], obj: Any, *, indent: int | None = 1) -> None:
    write_text(dest, json.dumps(obj, indent=indent, sort_keys=False, allow_nan=False) + "\n")
