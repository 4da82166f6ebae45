"""Resumable runs: the state of an unfinished dissection, saved atomically and reused only for the same run."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from broden.utils import atomic

CHECKPOINT_FILE = "checkpoint.pt"
KEY_FILE = "run-key.txt"


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


class Checkpoint:
    """``<dir>/checkpoint.pt`` for run ``key``; a directory left by another run is cleared before use."""

    def __init__(self, directory: Path, key: str) -> None:
        self.dir = Path(directory)
        self.key = key
        self.path = self.dir / CHECKPOINT_FILE

    def open(self, *, fresh: bool = False) -> dict[str, Any] | None:
        """Prepare the directory; return the saved state of this run, or None when starting over."""
        key_file = self.dir / KEY_FILE
        stale = self.dir.exists() and (fresh or not key_file.is_file() or key_file.read_text().strip() != self.key)
        if stale:
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not key_file.is_file():
            atomic.write_text(key_file, self.key + "\n")
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
        shutil.rmtree(self.dir, ignore_errors=True)
