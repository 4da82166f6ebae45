"""``FILE.pt`` / ``.pth`` / ``.ts`` / ``.jit``: TorchScript or ``torch.save`` files, which cannot be dissected as they are.

A TorchScript module takes no forward hooks (``register_forward_hook is not supported on ScriptModules``), and
``torch.jit`` is deprecated, so its layers cannot be tapped: the error says what works instead (a ``torch.export``
``.pt2`` file, an ONNX export, a model file). A bare state dict needs its architecture: the error says to pass it as
``--weights FILE`` beside a spec.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from benchmark.models.loader import LoadedModel, Request
from broden.errors import BrodenError

PREFIX = None
SUFFIXES = (".pt", ".pth", ".ts", ".jit")
USAGE = "FILE.pt/.pth (a state dict: give it as --weights FILE with a spec)"
INSTEAD = ("export the Python model with torch.export.save(torch.export.export(model, (x,), dynamic_shapes="
           "({0: torch.export.Dim('batch')},)), 'model.pt2') and pass model.pt2, or pass an ONNX export or a .py "
           "model file (see examples/export_model.py)")


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives hold ``code/`` and ``constants.pkl``; ``torch.save`` archives do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.split("/", 1)[-1].startswith("code/") or n.endswith("/constants.pkl") for n in zf.namelist())


def load(target: str, request: Request) -> LoadedModel:
    import torch

    path = Path(target)
    if not path.is_file():
        raise BrodenError(f"{path}: file not found")
    if _is_torchscript(path):
        raise BrodenError(f"{path}: a TorchScript module, whose layers cannot be tapped (ScriptModules take no "
                          f"forward hooks); {INSTEAD}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BrodenError(f"{path}: not a state dict (a pickled module or another object cannot be loaded safely); "
                          f"{INSTEAD}") from exc
    raise BrodenError(f"{path}: holds {'a state dict' if isinstance(obj, dict) else type(obj).__name__}, not a "
                      f"model; give the architecture as a spec and this file as its weights, e.g. "
                      f"benchmark score torchvision:resnet18:none --weights {path}")
