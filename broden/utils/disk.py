"""Disk space: how much is free, refusing work that cannot fit, and sizes the way users read them."""

from __future__ import annotations

import shutil
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
