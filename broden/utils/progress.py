"""Progress bars with ETA for long work (rich), quiet when stderr is not a terminal unless forced; status lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

T = TypeVar("T")


def enabled() -> bool:
    """Bars are shown on a terminal, or everywhere with BRODEN_PROGRESS=1; BRODEN_PROGRESS=0 hides them."""
    flag = os.environ.get("BRODEN_PROGRESS")
    if flag is not None:
        return flag not in ("0", "", "false", "no")
    return sys.stderr.isatty()


def make_progress(*, transient: bool = False, in_bytes: bool = False, quiet: bool = False) -> Progress:
    """A rich progress display; ``in_bytes`` counts bytes (sizes in MB/GB and a transfer rate) instead of items;
    ``quiet`` hides it."""
    from rich.console import Console

    counts = (DownloadColumn(), TransferSpeedColumn()) if in_bytes else (MofNCompleteColumn(),)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *counts,
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=quiet or not enabled(),
        transient=transient,
    )


def track(items: Iterable[T], description: str, total: int | None = None, advance_by=None, *,
          quiet: bool = False) -> Iterator[T]:
    """Iterate ``items`` with a progress bar; ``advance_by(item)`` gives the step per item (default 1); ``quiet``
    hides the bar."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with make_progress(quiet=quiet) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task, advance_by(item) if advance_by else 1)


def say(message: str) -> None:
    """A status line on stderr, where it does not mix with machine-readable output."""
    print(message, file=sys.stderr, flush=True)
