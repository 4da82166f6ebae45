"""Load the model to dissect from a spec, with its own preprocessing and the identity of its weights.

A spec names a model. One loader per kind lives in :mod:`benchmark.models.loaders` (adding a kind is adding one
file there, found by :func:`loaders`):

``FILE.py``                      a model file defining ``build_model()`` (see examples/README.md)
``torchvision:NAME[:WEIGHTS]``   a torchvision classification model; WEIGHTS is an enum name (``IMAGENET1K_V1``,
                                 default ``DEFAULT``) or ``none`` (random initialisation from ``seed``)
``timm:NAME[:none]``             a timm model, pretrained through timm's hub cache, or random with ``:none``
``hf:ORG/NAME[@REV]``            a transformers vision model from the Hub cache, or ``hf:/local/dir`` from a folder
``FILE.pt2``                     a ``torch.export`` program
``FILE.onnx``                    an ONNX model (converted with onnx2torch)
``FILE.pt`` / ``.pth`` / ``.ts``  TorchScript or a bare state dict: a one-line error saying what works instead

``weights_file`` loads a state dict into any spec (it replaces the spec's own weights; its sha256 is recorded).

Preprocessing. Network Dissection compares activations with segmentation masks pixel for pixel, so every image is
resized whole to the model's input size, never cropped (a config's centre crop is recorded as not applied), scaled
to [0, 1] and normalised with the model's own mean and std. Each value records where it came from (``model config``:
the weights enum, timm's data config, the image processor; ``model file``: the model file or the exported program;
``default``: ImageNet statistics at the dataset's image size; ``caller``: given to :func:`benchmark.score`). When a
model declares statistics that differ from the ones used, a warning is printed and recorded.
"""

from __future__ import annotations

import difflib
import importlib
import math
import pkgutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from broden.errors import BrodenError
from broden.utils.hashing import file_digests

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: PIL resampling filters by name (the codes PIL, torchvision and transformers use).
INTERPOLATIONS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5}
SOURCES = ("model config", "model file", "default", "caller")
PREPROCESS_FIELDS = ("size", "interpolation", "mean", "std")
#: Statistics closer than this are the same (configs round them differently).
STATS_TOLERANCE = 1e-3


class Preprocessing:
    """PIL RGB image -> (3, H, W) float tensor: the whole image resized to ``size`` (never cropped) with
    ``interpolation``, scaled to [0, 1], normalised with ``mean`` and ``std``.

    ``size`` None: the dataset's image size, filled in by :meth:`with_size`. An image already at ``size`` is not
    resampled. ``sources`` says where each of ``size``, ``interpolation``, ``mean``, ``std`` came from (one of
    :data:`SOURCES`; unnamed ones are ``default``); ``not_applied`` records what the model's config asks for that is
    deliberately not done (a centre crop, a larger resize before it); ``declared_by`` names the config.
    """

    def __init__(self, size: tuple[int, int] | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 interpolation: str = "bilinear", *, sources: dict[str, str] | None = None,
                 not_applied: dict[str, Any] | None = None, declared_by: str | None = None) -> None:
        if interpolation not in INTERPOLATIONS:
            raise BrodenError(f"interpolation {interpolation!r}: choose one of {', '.join(INTERPOLATIONS)}")
        if len(tuple(mean)) != 3 or len(tuple(std)) != 3 or not all(float(s) > 0 for s in std):
            raise BrodenError(f"mean {tuple(mean)} / std {tuple(std)}: give three values each, std > 0")
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.interpolation = interpolation
        unknown = {v for v in (sources or {}).values() if v not in SOURCES}
        if unknown:
            raise BrodenError(f"preprocessing source {min(unknown)!r}: use one of {', '.join(SOURCES)}")
        self.sources = {k: (sources or {}).get(k, "default") for k in PREPROCESS_FIELDS}
        self.not_applied = dict(not_applied or {})
        self.declared_by = declared_by
        self.warnings: list[str] = []

    def with_size(self, size: tuple[int, int]) -> Preprocessing:
        """This preprocessing at ``size`` (the dataset's image size, a ``default``) when it has none of its own."""
        if self.size is not None:
            return self
        out = Preprocessing(size, self.mean, self.std, self.interpolation, sources=self.sources,
                            not_applied=self.not_applied, declared_by=self.declared_by)
        out.sources["size"] = "default"
        return out

    def __call__(self, image):
        import torch
        from torchvision.transforms.functional import normalize, pil_to_tensor

        if self.size is None:
            raise BrodenError("preprocessing has no size; call with_size(dataset image size) first")
        if (image.height, image.width) != self.size:
            image = image.resize((self.size[1], self.size[0]), INTERPOLATIONS[self.interpolation])
        x = pil_to_tensor(image).to(torch.float32).div_(255.0)
        return normalize(x, self.mean, self.std)

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return self.mean, self.std

    def describe(self) -> dict[str, Any]:
        """The results file's ``protocol.preprocess``."""
        out: dict[str, Any] = {
            "kind": "resize-normalize",
            "size": list(self.size) if self.size else None,
            "interpolation": self.interpolation,
            "crop": None,
            "scale": "1/255",
            "mean": list(self.mean),
            "std": list(self.std),
            "sources": dict(self.sources),
        }
        if self.declared_by:
            out["declared_by"] = self.declared_by
        if self.not_applied:
            out["not_applied"] = dict(self.not_applied)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


class OpaquePreprocess:
    """A preprocess function given by the model file (``origin='model file'``) or the caller (``'caller'``).

    A model file's function is re-imported lazily in DataLoader workers that were not forked. :meth:`probe` finds
    the mean and std it normalises with when it is a plain resize-and-normalise (uniform black and white images give
    uniform channels), so they can be recorded and checked against what the model declares.
    """

    def __init__(self, fn: Callable | None, origin: str, file: str | None = None) -> None:
        self._fn, self.origin, self.file = fn, origin, file
        self.probed: dict[str, Any] | None = None
        self.warnings: list[str] = []

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.file is not None:
            state["_fn"] = None
        return state

    def __call__(self, image):
        if self._fn is None:
            from benchmark.models.loaders.file import import_file

            self._fn = import_file(Path(self.file)).preprocess
        return self._fn(image)

    def probe(self, size: tuple[int, int]) -> None:
        """Infer the per-channel mean/std from the outputs on a black and a white ``size`` image, when uniform."""
        import torch
        from PIL import Image

        try:
            black, white = (self(Image.new("RGB", (size[1], size[0]), (v, v, v))) for v in (0, 255))
        except Exception:  # noqa: BLE001 - a function that fails here fails on the dataset too, naming the image
            return
        if not (isinstance(black, torch.Tensor) and isinstance(white, torch.Tensor)) or black.dim() != 3:
            return
        b, w = black.float().flatten(1), white.float().flatten(1)
        if b.shape[0] != 3 or float((b - b[:, :1]).abs().max()) > 1e-4 or float((w - w[:, :1]).abs().max()) > 1e-4:
            return
        gap = w[:, 0] - b[:, 0]
        if bool((gap <= 0).any()):
            return
        std = (1.0 / gap).tolist()
        mean = (-b[:, 0] / gap).tolist()
        self.probed = {"size": [int(black.shape[1]), int(black.shape[2])],
                       "mean": [round(m, 4) for m in mean], "std": [round(s, 4) for s in std]}

    def stats(self) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
        if self.probed is None:
            return None
        return tuple(self.probed["mean"]), tuple(self.probed["std"])

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "model-file" if self.origin == "model file" else "callable",
                               "function": getattr(self._fn, "__name__", "preprocess"), "sources": {"all": self.origin}}
        if self.file is not None:
            out["file"] = self.file
        if self.probed is not None:
            out["measured"] = dict(self.probed)
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


@dataclass(frozen=True)
class Request:
    """What a loader is asked for: ``pretrained`` False builds the architecture only (``benchmark layers``, or
    ``--weights FILE`` replacing the weights); ``seed`` seeds a random initialisation."""

    spec: str
    pretrained: bool = True
    seed: int = 0


@dataclass
class LoadedModel:
    """A model ready to dissect, with what the results file records about it.

    ``preprocess`` None: the model's declared preprocessing (timm, transformers) or ImageNet statistics at the
    dataset's image size. ``weights`` identifies the weights: ``kind`` (``torchvision``, ``timm``, ``hf``, ``file``,
    ``model file``, ``random``, ...) and what pins them (enum name, hub revision, sha256, seed).
    """

    name: str
    source: str  # "file" | "torchvision" | "timm" | "hf" | "export" | "onnx" | "module"
    module: Any  # torch.nn.Module
    layers: list[str] | None = None
    preprocess: Preprocessing | OpaquePreprocess | None = None
    extra_tokens: int | None = None
    file: str | None = None
    file_sha256: str | None = None
    weights_sha256: str | None = None
    weights_url: str | None = None
    weights: dict[str, Any] = field(default_factory=dict)
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
            "weights": jsonable(self.weights) or None,
            "architecture": _opt_str(md.get("architecture")),
            "training_data": _opt_str(md.get("training_data")),
            "paper": _opt_str(md.get("paper")),
            "metadata": md,
        }


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def jsonable(obj: Any) -> Any:
    """``obj`` as JSON: containers kept, other values stringified (a Path, a tuple becomes a list)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, str)) or (isinstance(obj, float) and math.isfinite(obj)):
        return obj
    return str(obj)


# -- the registry ----------------------------------------------------------------------------------------------------
@cache
def loaders() -> tuple[ModuleType, ...]:
    """Every loader module in :mod:`benchmark.models.loaders`, by name.

    A loader module defines ``PREFIX`` (its spec prefix, e.g. ``"timm"``, or None), ``SUFFIXES`` (the file suffixes
    it reads, e.g. ``(".onnx",)``), ``USAGE`` (one line: the spec and what it means) and
    ``load(target: str, request: Request) -> LoadedModel`` where ``target`` is the spec without its prefix. It may
    define ``inspect(module) -> Preprocessing | None``: the preprocessing an in-memory module of its kind declares,
    and ``extra_tokens(module) -> int | None``. Heavy imports belong inside those functions.
    """
    import benchmark.models.loaders as package

    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
    return tuple(importlib.import_module(f"{package.__name__}.{name}") for name in names)


def spec_usage() -> str:
    """One line per kind of spec, for help texts and errors."""
    return "; ".join(m.USAGE for m in loaders())


def _loader_for(spec: str) -> tuple[ModuleType, str]:
    prefix, sep, rest = spec.partition(":")
    if sep:
        for m in loaders():
            if m.PREFIX == prefix:
                return m, rest
    suffix = Path(spec).suffix.lower()
    for m in loaders():
        if suffix in m.SUFFIXES:
            return m, spec
    if sep and not Path(spec).exists():
        known = [m.PREFIX for m in loaders() if m.PREFIX]
        close = difflib.get_close_matches(prefix, known, n=1)
        hint = f" (did you mean {close[0]}:?)" if close else ""
        raise BrodenError(f"{spec}: unknown model spec prefix {prefix!r}{hint}; use one of: {spec_usage()}")
    if Path(spec).is_dir():
        raise BrodenError(f"{spec}: a folder; for a transformers checkpoint saved there pass hf:{spec}")
    raise BrodenError(f"{spec}: not a model spec or model file; use one of: {spec_usage()}")


def load_model(spec: str, *, weights: bool = True, weights_file: str | Path | None = None, seed: int = 0) -> LoadedModel:
    """Load ``spec`` (see the module docstring); ``weights=False``: the architecture only, untrained.

    ``weights_file``: a state dict (``torch.save`` or ``.safetensors``) loaded into the model instead of the spec's
    own weights; its sha256 is recorded as the weights' identity. Every failure is a one-line :class:`BrodenError`
    naming the spec and what to do.
    """
    module, target = _loader_for(spec)
    request = Request(spec, pretrained=weights and weights_file is None, seed=seed)
    model = module.load(target, request)
    if weights_file is not None:
        load_weights_file(model, Path(weights_file), spec)
    return model


def load_weights_file(model: LoadedModel, path: Path, spec: str) -> None:
    """Load the state dict in ``path`` into ``model.module`` (strict), recording its sha256 as the weights."""
    import torch

    if not path.is_file():
        raise BrodenError(f"--weights {path}: file not found; give a state dict saved with torch.save or safetensors")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BrodenError(f"--weights {path}: not a readable state dict ({type(exc).__name__}: {exc}); "
                          "save one with torch.save(model.state_dict(), PATH)") from exc
    if isinstance(state, dict) and len(state) == 1 and isinstance(next(iter(state.values())), dict):
        state = next(iter(state.values()))  # a checkpoint {"state_dict": {...}} or {"model": {...}}
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BrodenError(f"--weights {path}: holds {type(state).__name__}, not a state dict of tensors; "
                          "save one with torch.save(model.state_dict(), PATH)")
    try:
        result = model.module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()[-1].strip()
        raise BrodenError(f"--weights {path}: does not fit {spec} ({first}); give the weights of that architecture") from exc
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"missing {len(result.missing_keys)} keys, e.g. {result.missing_keys[0]}")
        if result.unexpected_keys:
            parts.append(f"unexpected {len(result.unexpected_keys)} keys, e.g. {result.unexpected_keys[0]}")
        raise BrodenError(f"--weights {path}: does not fit {spec} ({'; '.join(parts)}); give the weights of that "
                          "architecture (a 'module.' prefix means it was saved from DataParallel: strip it)")
    sha = file_digests(path)[0]
    model.weights = {"kind": "file", "file": str(path), "sha256": sha}
    model.weights_sha256, model.weights_url = sha, None


# -- an in-memory module ---------------------------------------------------------------------------------------------
def from_module(module: Any, *, name: str | None = None, layers: list[str] | None = None) -> LoadedModel:
    """Wrap a ``torch.nn.Module`` held in memory (the Python API); its preprocessing is what it declares (a timm
    model's ``pretrained_cfg``, a transformers model's image processor when cached locally), else the default."""
    import torch

    if not isinstance(module, torch.nn.Module):
        raise BrodenError(f"model is a {type(module).__name__}; pass a torch.nn.Module or a model spec string")
    extra = next((e for m in loaders() if hasattr(m, "extra_tokens") for e in [m.extra_tokens(module)]
                  if e is not None), None)
    from benchmark.checkpoint import module_digest

    identity = {"kind": "module", "class": type(module).__qualname__, "parameters_sha256": module_digest(module)}
    return LoadedModel(name=name or type(module).__name__, source="module", module=module, layers=layers,
                       extra_tokens=extra, weights=identity,
                       metadata={"architecture": type(module).__qualname__})


def declared_preprocessing(module: Any) -> Preprocessing | None:
    """The preprocessing ``module`` declares through a loader's ``inspect`` hook, or None."""
    for m in loaders():
        if hasattr(m, "inspect"):
            found = m.inspect(module)
            if found is not None:
                return found
    return None


def resolve_preprocess(model: LoadedModel, image_size: tuple[int, int] | None) -> Preprocessing | OpaquePreprocess:
    """The preprocessing a run uses: the model's own, else what its module declares, else the default, at the
    dataset's ``image_size`` when it has no size of its own; warns (stderr and recorded) when the statistics used
    differ from those the model declares."""
    declared = declared_preprocessing(model.module)
    pre = model.preprocess if model.preprocess is not None else declared or Preprocessing()
    if not isinstance(pre, (Preprocessing, OpaquePreprocess)):
        if not callable(pre):
            raise BrodenError(f"{model.name}: preprocess is a {type(pre).__name__}, not a callable")
        pre = OpaquePreprocess(pre, "caller")
    if isinstance(pre, Preprocessing) and pre.size is None:
        if image_size is None:
            raise BrodenError(f"{model.name}: the dataset's images have mixed sizes and the model declares no input "
                              "size; give a preprocess that resizes them (a model file's preprocess, or preprocess=)")
        pre = pre.with_size(image_size)
    if isinstance(pre, OpaquePreprocess) and image_size is not None:
        pre.probe(image_size)
    used = pre.stats()
    if declared is not None and used is not None and not _same_stats(used, declared.stats()):
        message = (f"{model.name}: the model declares mean {list(declared.mean)} std {list(declared.std)} "
                   f"({declared.declared_by}) but the preprocessing normalises with mean {_rounded(used[0])} std "
                   f"{_rounded(used[1])}; the activations are not what the model was trained on: drop the custom "
                   "preprocess to use the model's own statistics")
        pre.warnings.append(message)
        warn(message)
    return pre


def _same_stats(a: tuple[tuple[float, ...], tuple[float, ...]], b: tuple[tuple[float, ...], tuple[float, ...]]) -> bool:
    return all(abs(x - y) <= STATS_TOLERANCE for u, v in zip(a, b) for x, y in zip(u, v))


def _rounded(values: tuple[float, ...]) -> list[float]:
    return [round(v, 4) for v in values]


def warn(message: str) -> None:
    """A warning the user must see: one ``warning:`` line on stderr, even with ``--quiet``."""
    print(f"warning: {message}", file=sys.stderr)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generator with ``seed`` inside the block and restore it afterwards: a random
    initialisation (``:none`` specs) is reproducible without disturbing the caller's random state."""
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)
