"""Atomic outputs: a finished path either holds complete data or does not exist.

Everything is written next to its destination under a temporary name and renamed into place only after it is
complete, so an interrupted run never leaves a half-written file where a finished one is expected.

Temporary names carry the writer's pid: ``.<name>.<pid>.<random>.<kind>`` (kind ``partial``, ``old`` or
``scratch``), so a later run can tell the leftovers of a killed process (:func:`remove_stale`) from the work of a
live one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: ``.<name>.<pid>.<random>.<kind>``: every temporary this module (and :func:`temp_dir`) creates
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[A-Za-z0-9_]+\.(?:partial|old|scratch)$")


def _prefix(dest: Path) -> str:
    return f".{dest.name}.{os.getpid()}."


def temp_dir(dest: str | os.PathLike[str], kind: str = "scratch") -> tempfile.TemporaryDirectory[str]:
    """A pid-tagged scratch directory beside ``dest``, removed when the ``with`` block ends."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=_prefix(dest), suffix=f".{kind}", dir=dest.parent)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_stale(directory: str | os.PathLike[str], name: str | None = None) -> list[Path]:
    """Remove the temporaries in ``directory`` (for destination ``name``, or any) whose writer process is dead.

    Only names this module creates are considered; a temporary of a live process is kept. Returns what was removed.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in Path(directory).iterdir():
            m = _TEMP.match(entry.name)
            if m and (name is None or m["name"] == name) and not _alive(int(m["pid"])):
                _remove(entry)
                removed.append(entry)
    return removed


def remove_stale_inside(directory: str | os.PathLike[str]) -> list[Path]:
    """:func:`remove_stale` in ``directory`` and every directory below it."""
    removed = []
    for root, dirs, _files in os.walk(directory):
        removed += remove_stale(root)
        dirs[:] = [d for d in dirs if Path(root, d) not in removed]
    return removed


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
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(dest), suffix=".partial", dir=dest.parent))
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
            old = dest.with_name(f"{_prefix(dest)}{secrets.token_hex(4)}.old")
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
