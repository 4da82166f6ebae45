"""``FILE.py``: a Python model file.

The model-file contract (documented in examples/README.md and ``benchmark score --help``):

``build_model()``  required; returns a ``torch.nn.Module`` (we put it in eval mode and move it to the device).
``LAYERS``         optional list of dotted module names to dissect (``--layers`` overrides it).
``preprocess``     optional callable: PIL RGB image -> float tensor (3, H, W). Default: what the model declares (a
                   timm model's data config, a transformers model's image processor), else ImageNet mean/std; the
                   whole image resized to the model's input size (default: the dataset's image size), never cropped.
``NAME``           optional display name (default: the file's stem).
``METADATA``       optional dict: architecture, training_data, paper, weights_url, weights_sha256, anything else.
``EXTRA_TOKENS``   optional int: leading class/register tokens to drop from transformer outputs (B, N, C)
                   before folding the rest into a square grid (default: what the model declares, else 1 when N-1 is
                   a square, 0 when N is).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from benchmark.models.loader import (
    LoadedModel,
    OpaquePreprocess,
    Request,
    jsonable,
    loaders,
)
from broden.errors import BrodenError
from broden.utils.hashing import file_digests

PREFIX = None
SUFFIXES = (".py",)
USAGE = "FILE.py (a model file defining build_model())"


def import_file(path: Path):
    """Import the model file once per process (a stable module name derived from its absolute path)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    mod_name = f"broden_model_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise BrodenError(f"{path}: not a Python file; pass a .py model file or a model spec")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except BrodenError:
        del sys.modules[mod_name]
        raise
    except BaseException as exc:  # any error in user code is reported as one line
        del sys.modules[mod_name]
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise BrodenError(
            f"{path}: the model file does not import ({type(exc).__name__}: {exc}); run 'python {path}' to see the traceback"
        ) from exc
    return module


def load(target: str, request: Request) -> LoadedModel:
    import torch

    path = Path(target)
    if not path.is_file():
        raise BrodenError(f"{path}: model file not found; pass a .py file defining build_model(), or a model spec "
                          "such as torchvision:NAME, timm:NAME, hf:ORG/NAME")
    module = import_file(path)
    build = getattr(module, "build_model", None)
    if not callable(build):
        raise BrodenError(f"{path}: defines no build_model(); add a function returning a torch.nn.Module (see examples/README.md)")
    try:
        model = build()
    except BrodenError:
        raise
    except Exception as exc:
        raise BrodenError(f"{path}: build_model() raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(model, torch.nn.Module):
        raise BrodenError(f"{path}: build_model() returned {type(model).__name__}, not a torch.nn.Module")
    layers = getattr(module, "LAYERS", None)
    if layers is not None and (not isinstance(layers, (list, tuple)) or not all(isinstance(x, str) for x in layers)):
        raise BrodenError(f"{path}: LAYERS must be a list of dotted layer names, e.g. ['layer4']")
    metadata = getattr(module, "METADATA", None) or {}
    if not isinstance(metadata, dict):
        raise BrodenError(f"{path}: METADATA must be a dict (architecture, training_data, paper, weights_url, ...)")
    extra = getattr(module, "EXTRA_TOKENS", None)
    if extra is not None and (not isinstance(extra, int) or extra < 0):
        raise BrodenError(f"{path}: EXTRA_TOKENS must be a non-negative int")
    if extra is None:
        extra = next((e for m in loaders() if hasattr(m, "extra_tokens") for e in [m.extra_tokens(model)]
                      if e is not None), None)
    pre = getattr(module, "preprocess", None)
    if pre is not None and not callable(pre):
        raise BrodenError(f"{path}: preprocess must be a callable (PIL RGB image -> float tensor (3, H, W))")
    weights_sha = metadata.get("weights_sha256")
    file_sha = file_digests(path)[0]
    return LoadedModel(
        name=str(getattr(module, "NAME", None) or path.stem),
        source="file",
        module=model,
        layers=list(layers) if layers else None,
        preprocess=OpaquePreprocess(pre, "model file", str(path.resolve())) if pre is not None else None,
        extra_tokens=extra,
        file=str(path),
        file_sha256=file_sha,
        weights_sha256=str(weights_sha).lower() if weights_sha else None,
        weights_url=None if metadata.get("weights_url") is None else str(metadata["weights_url"]),
        weights={"kind": "model file", "file_sha256": file_sha,
                 **({"sha256": str(weights_sha).lower()} if weights_sha else {})},
        metadata=jsonable(metadata),
    )
