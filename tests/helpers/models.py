"""A tiny two-convolution model, as a module and as a ``benchmark score`` model file, for fast scorer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MODEL_FILE = '''
from collections import OrderedDict
import torch
from torch import nn

NAME = {name!r}
LAYERS = ["head"]
METADATA = {metadata!r}

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU()),
        head=nn.Sequential(nn.Conv2d(8, 6, 3, stride=2, padding=1), nn.ReLU()),
    ))
'''


def write_tiny_model(path: Path, name: str, metadata: dict[str, Any] | None = None) -> Path:
    """Write the model file (``NAME``, ``LAYERS = ["head"]``, ``METADATA``, ``build_model()``) to ``path``."""
    path.write_text(MODEL_FILE.format(name=name, metadata=metadata or {}))
    return path
