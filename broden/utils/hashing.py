"""File digests in one pass with a progress bar: datasets, archives, model weights and activation files."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from rich.progress import Progress

from broden.utils.progress import make_progress

CHUNK = 1 << 20


def file_digests(path: Path, *, md5: bool = False, progress: Progress | None = None) -> tuple[str, str | None]:
    """sha256 (and optionally md5) of a file in one pass, with a progress bar (on ``progress`` if one is live)."""
    sha = hashlib.sha256()
    mdh = hashlib.md5(usedforsecurity=False) if md5 else None
    total = path.stat().st_size
    own = progress is None
    with make_progress(transient=True, in_bytes=True) if own else contextlib.nullcontext(progress) as bars:
        task = bars.add_task(f"verifying {path.name}", total=total)
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                sha.update(chunk)
                if mdh is not None:
                    mdh.update(chunk)
                bars.advance(task, len(chunk))
        bars.remove_task(task)
    return sha.hexdigest(), (mdh.hexdigest() if mdh is not None else None)
