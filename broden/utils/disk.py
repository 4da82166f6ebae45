"""Disk space and writes: how much is free, refusing work that cannot fit, sizes the way users read them, and
starting a file's write-back early."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from broden.errors import BrodenError


def human_bytes(n: float) -> str:
    """Sizes the way users read them: 1.2 GB, 350.0 MB, 512 B."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def free_bytes(path: Path) -> int:
    """Free space on the file system that holds ``path`` (or would hold it: the nearest existing ancestor)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_free_space(path: Path, needed: int, what: str) -> None:
    """Refuse to start work that cannot fit, instead of failing with a full disk half-way."""
    free = free_bytes(path)
    if needed > free:
        raise BrodenError(
            f"not enough disk space for {what}: needs about {human_bytes(needed)}, only {human_bytes(free)} free "
            f"in {Path(path).absolute()}; free some space or choose another destination"
        )


#: ``sync_file_range`` flag (``<fcntl.h>``): start writing the range's dirty pages, do not wait for them.
SYNC_FILE_RANGE_WRITE = 2


def start_writeback(fd: int, offset: int, nbytes: int) -> bool:
    """Start writing bytes ``offset .. offset + nbytes`` of the open file ``fd`` to disk, without waiting for them
    (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; the pages stay cached): a later ``fsync`` then waits only
    for what was written since, instead of for every page since the last one (the activation cache: at the end of
    pass 1 over 2,000 images, 258 MB took 0.11-0.14 s to ``fsync``, against none with each batch's write-back
    started as it was written). Whether the kernel took the range: durability is still ``fsync``'s, and where the
    call is missing (off Linux) or refused (a pipe, a bad range) nothing happens."""
    call = _sync_file_range()
    return call is not None and nbytes > 0 and call(fd, offset, nbytes, SYNC_FILE_RANGE_WRITE) == 0


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        call = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes, call.restype = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint], ctypes.c_int
    return call
