"""Resumable runs: the state of an unfinished dissection, saved atomically and reused only for the same run.

Layout under a run's cache directory: ``manifest.json`` (the run key, the number of processes and, with several,
the batch size that cuts the rows into their shards) and the state
``checkpoint.pt`` of a single process, or ``rank-<r>/checkpoint.pt`` per rank of a distributed run (each rank
saves its own, whenever it likes; its activation cache lives beside it). A directory left by another run, or by
the same run split into other shards, is cleared before use.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from broden.utils import atomic

CHECKPOINT_FILE = "checkpoint.pt"
MANIFEST_FILE = "manifest.json"


def run_key(parts: dict[str, Any]) -> str:
    """A digest of everything that determines a run's results (model, weights, layers, settings, dataset)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return "sha256:" + hashlib.sha256(blob).hexdigest()


def module_digest(module: torch.nn.Module) -> str:
    """sha256 over a model's parameters and buffers: a changed weight changes the run key."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def single_process_key(root: Path) -> str | None:
    """The run key of a single process's state under ``root`` (its activation cache then holds every row of the
    run), or None: no state, an unreadable manifest, or the shards of a distributed run."""
    try:
        found = json.loads((Path(root) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return found.get("key") if isinstance(found, dict) and found.get("world_size") == 1 else None


class Checkpoint:
    """The checkpoint of rank ``rank`` of a ``world_size``-process run ``key`` under ``root``; ``batch_size`` (with
    several processes) is what cuts the rows into the ranks' shards.

    :meth:`prepare` (once per run, by rank 0, before any rank loads) clears what belongs to another run; then every
    rank :meth:`load`\\ s and :meth:`save`\\ s its own state in :attr:`dir`.
    """

    def __init__(self, root: Path, key: str, *, rank: int = 0, world_size: int = 1,
                 batch_size: int | None = None) -> None:
        self.root = Path(root)
        self.key = key
        self.world_size = world_size
        self.manifest = {"key": key, "world_size": world_size, "batch_size": batch_size if world_size > 1 else None}
        self.dir = self.root if world_size == 1 else self.root / f"rank-{rank}"
        self.path = self.dir / CHECKPOINT_FILE

    def prepare(self) -> str | None:
        """Clear the root when it holds another run's state, or this run's split into other shards (another number
        of processes or batch size), and write the manifest. Returns a note to show the user when checkpoints of
        this run were discarded for their shards (they cannot be resumed by this launch), else None."""
        manifest = self.root / MANIFEST_FILE
        try:
            found = json.loads(manifest.read_text())
        except (OSError, ValueError):
            found = {}
        note = None
        if self.root.exists() and found != self.manifest:
            if found.get("key") == self.key:
                note = (f"{self.root}: the checkpoints are of a run with {_shards(found)} and this run has "
                        f"{_shards(self.manifest)}, so it starts over (relaunch with those to resume them instead)")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        if not manifest.is_file():
            atomic.write_json(manifest, self.manifest)
        return note

    def open(self) -> dict[str, Any] | None:
        """:meth:`prepare` then :meth:`load`, for a job of one process (there is no other rank to wait for)."""
        self.prepare()
        return self.load()

    def load(self, *, fresh: bool = False) -> dict[str, Any] | None:
        """This rank's saved state, or None when it starts over (``fresh``: discard it first)."""
        if fresh and self.dir == self.root:
            self.path.unlink(missing_ok=True)
        elif fresh:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception:  # a damaged checkpoint only costs the work since the start
            return None
        return state if isinstance(state, dict) and state.get("key") == self.key else None

    def save(self, state: dict[str, Any]) -> None:
        with atomic.atomic_path(self.path) as tmp:
            torch.save({**state, "key": self.key}, tmp)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _shards(manifest: dict[str, Any]) -> str:
    batch = manifest.get("batch_size")
    return f"{manifest.get('world_size')} process(es)" + (f" and batches of {batch} rows" if batch else "")
