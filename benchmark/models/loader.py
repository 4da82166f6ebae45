"""Load the model to dissect: a Python model file (``build_model()``) or ``torchvision:NAME`` with its DEFAULT weights.

The model-file contract (documented in examples/README.md and ``benchmark score --help``):

``build_model()``  required; returns a ``torch.nn.Module`` (we put it in eval mode and move it to the device).
``LAYERS``         optional list of dotted module names to dissect (``--layers`` overrides it).
``preprocess``     optional callable: PIL RGB image -> float tensor (3, H, W). Default: resize to the dataset's
                   image size if needed, to tensor, ImageNet mean/std.
``NAME``           optional display name (default: the file's stem).
``METADATA``       optional dict: architecture, training_data, paper, weights_url, weights_sha256, anything else.
``EXTRA_TOKENS``   optional int: leading class/register tokens to drop from transformer outputs (B, N, C)
                   before folding the rest into a square grid (default: 1 when N-1 is a square, 0 when N is).
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broden.errors import BrodenError
from broden.utils.hashing import file_digests

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_PREFIX = "torchvision:"

#: Default layer per torchvision family (the last convolutional stage, as in the paper and NetDissect-Lite).
TORCHVISION_DEFAULT_LAYERS = {
    "alexnet": "features.10",
    "resnet": "layer4",
    "resnext": "layer4",
    "wide_resnet": "layer4",
    "vgg": "features.29",
    "densenet": "features",
    "mobilenet_v2": "features.18",
    "mobilenet_v3": "features.16",
    "googlenet": "inception5b",
    "inception_v3": "Mixed_7c",
    "vit_b_16": "encoder.layers.encoder_layer_10",
    "vit_b_32": "encoder.layers.encoder_layer_10",
    "vit_l_16": "encoder.layers.encoder_layer_22",
    "vit_l_32": "encoder.layers.encoder_layer_22",
    "efficientnet": "features.8",
    "convnext": "features.7",
    "regnet": "trunk_output",
    "shufflenet": "conv5",
    "squeezenet": "features.12",
}


class DefaultPreprocess:
    """PIL RGB -> (3, H, W) float tensor: resize to ``size`` if needed, scale to [0, 1], ImageNet mean/std."""

    def __init__(self, size: tuple[int, int], mean=IMAGENET_MEAN, std=IMAGENET_STD) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.mean, self.std = tuple(mean), tuple(std)

    def __call__(self, image):
        import torch
        from torchvision.transforms.functional import normalize, pil_to_tensor

        if (image.height, image.width) != self.size:
            from PIL import Image

            image = image.resize((self.size[1], self.size[0]), Image.BILINEAR)
        x = pil_to_tensor(image).to(torch.float32).div_(255.0)
        return normalize(x, self.mean, self.std)

    def describe(self) -> dict[str, Any]:
        return {"kind": "default", "size": list(self.size), "scale": "1/255", "mean": list(self.mean), "std": list(self.std)}


class ModelFilePreprocess:
    """The model file's ``preprocess``; re-imported lazily in DataLoader workers that were not forked."""

    def __init__(self, path: str, fn: Callable | None = None) -> None:
        self.path, self._fn = path, fn

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_fn": None}

    def __call__(self, image):
        if self._fn is None:
            self._fn = _import_file(Path(self.path)).preprocess
        return self._fn(image)

    def describe(self) -> dict[str, Any]:
        return {"kind": "model-file", "function": "preprocess", "file": self.path}


@dataclass
class LoadedModel:
    """A model ready to dissect, with what the results file records about it."""

    name: str
    source: str  # "file" | "torchvision"
    module: Any  # torch.nn.Module
    layers: list[str] | None = None
    preprocess: Callable | None = None  # None: DefaultPreprocess at the dataset's image size
    extra_tokens: int | None = None
    file: str | None = None
    file_sha256: str | None = None
    weights_sha256: str | None = None
    weights_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The results file's ``model`` object."""
        md = self.metadata
        return {
            "name": self.name,
            "source": self.source,
            "file": self.file,
            "file_sha256": self.file_sha256,
            "weights_sha256": self.weights_sha256,
            "weights_url": self.weights_url,
            "architecture": _opt_str(md.get("architecture")),
            "training_data": _opt_str(md.get("training_data")),
            "paper": _opt_str(md.get("paper")),
            "metadata": md,
        }


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def load_model(spec: str, *, weights: bool = True) -> LoadedModel:
    """Load ``spec``: a path to a model file, or ``torchvision:NAME`` (``weights=False``: architecture only)."""
    if spec.startswith(TORCHVISION_PREFIX):
        return _load_torchvision(spec[len(TORCHVISION_PREFIX) :], weights)
    return _load_file(Path(spec))


def _import_file(path: Path):
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    mod_name = f"broden_model_{digest}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise BrodenError(f"{path}: not a Python file; pass a .py model file or torchvision:NAME")
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


def _load_file(path: Path) -> LoadedModel:
    import torch

    if not path.is_file():
        raise BrodenError(f"{path}: model file not found; pass a .py file defining build_model(), or torchvision:NAME")
    module = _import_file(path)
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
    pre = getattr(module, "preprocess", None)
    if pre is not None and not callable(pre):
        raise BrodenError(f"{path}: preprocess must be a callable (PIL RGB image -> float tensor (3, H, W))")
    weights_sha = metadata.get("weights_sha256")
    return LoadedModel(
        name=str(getattr(module, "NAME", None) or path.stem),
        source="file",
        module=model,
        layers=list(layers) if layers else None,
        preprocess=ModelFilePreprocess(str(path.resolve()), pre) if pre is not None else None,
        extra_tokens=extra,
        file=str(path),
        file_sha256=file_digests(Path(path))[0],
        weights_sha256=str(weights_sha).lower() if weights_sha else None,
        weights_url=_opt_str(metadata.get("weights_url")),
        metadata=_jsonable(metadata),
    )


def _jsonable(obj: Any) -> Any:
    """METADATA as JSON: containers kept, other values stringified (a Path, a tuple)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def torchvision_default_layer(name: str) -> str | None:
    """The default layer of a torchvision architecture, by longest matching family prefix."""
    hits = [k for k in TORCHVISION_DEFAULT_LAYERS if name.startswith(k)]
    return TORCHVISION_DEFAULT_LAYERS[max(hits, key=len)] if hits else None


def torchvision_state_dict(weights) -> dict:
    """The state dict of a torchvision weights enum (e.g. ``ResNet18_Weights.IMAGENET1K_V1``), downloaded once into
    torch's hub cache; failing (offline, proxy, bad hash) is a one-line error naming the file and what to do."""
    import torch

    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:
        fname = Path(weights.url).name
        raise BrodenError(
            f"cannot get weights {weights} from {weights.url} ({type(exc).__name__}); connect to the internet once, "
            f"or put {fname} in {hub_dir}, or use a model file with local weights"
        ) from exc


def _load_torchvision(name: str, weights_too: bool = True) -> LoadedModel:
    import torch
    from torchvision import models

    available = models.list_models(module=models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise BrodenError(f"torchvision:{name}: no such torchvision classification model{hint}")
    weights = models.get_model_weights(name).DEFAULT
    model = models.get_model(name, weights=None)
    if weights_too:
        model.load_state_dict(torchvision_state_dict(weights))
    local = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    layer = torchvision_default_layer(name)
    return LoadedModel(
        name=name,
        source="torchvision",
        module=model,
        layers=[layer] if layer else None,
        weights_sha256=file_digests(Path(local))[0] if local.is_file() else None,
        weights_url=weights.url,
        metadata={
            "architecture": name,
            "training_data": "ImageNet-1k" if "IMAGENET1K" in str(weights) else str(weights),
            "paper": None,
            "weights": str(weights),
        },
    )
