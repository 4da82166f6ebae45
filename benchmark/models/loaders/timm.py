"""``timm:NAME[:none]``: a timm model (``timm.create_model``), pretrained through timm's own hub cache, or randomly
initialised from the seed with ``:none``. NAME may carry a pretrained tag (``resnet50.a1_in1k``).

Preprocessing is timm's ``resolve_model_data_config``: mean, std, interpolation and input size; its crop
(``crop_pct``, ``crop_mode``) is recorded as not applied. The default layer is the last of ``model.feature_info``;
ViT-style models drop their ``num_prefix_tokens`` class/register tokens.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from benchmark.models.loader import LoadedModel, Preprocessing, Request, seeded
from broden.errors import BrodenError
from broden.utils.hashing import file_digests

PREFIX = "timm"
SUFFIXES: tuple[str, ...] = ()
USAGE = "timm:NAME[:none] (a timm model; none: random weights)"


def _is_timm(module: Any) -> bool:
    return isinstance(getattr(module, "pretrained_cfg", None), dict) and type(module).__module__.startswith("timm.")


def inspect(module: Any) -> Preprocessing | None:
    """The preprocessing a timm model declares (its ``pretrained_cfg`` through ``resolve_model_data_config``)."""
    if not _is_timm(module):
        return None
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(module)
    config = {k: "model config" for k in ("size", "interpolation", "mean", "std")}
    interpolation = cfg.get("interpolation") or "bilinear"
    tag = module.pretrained_cfg.get("architecture", type(module).__name__)
    if module.pretrained_cfg.get("tag"):
        tag += "." + module.pretrained_cfg["tag"]
    return Preprocessing(tuple(cfg["input_size"][1:]), cfg["mean"], cfg["std"],
                         interpolation if interpolation != "random" else "bilinear", sources=config,
                         not_applied={"crop_pct": cfg.get("crop_pct"), "crop_mode": cfg.get("crop_mode")},
                         declared_by=f"timm data config of {tag}")


def extra_tokens(module: Any) -> int | None:
    """Leading class/register tokens of a timm ViT-style model's blocks."""
    if not _is_timm(module):
        return None
    n = getattr(module, "num_prefix_tokens", None)
    return int(n) if isinstance(n, int) else None


def _cached_weights(cfg: dict[str, Any]) -> tuple[str | None, Path | None]:
    """The hub revision and local file of a timm model's pretrained weights, when they are in the HF cache."""
    hub_id = cfg.get("hf_hub_id")
    if not hub_id:
        return None, None
    from huggingface_hub import try_to_load_from_cache

    for fname in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        hit = try_to_load_from_cache(hub_id, fname)
        if isinstance(hit, str):
            path = Path(hit)
            return path.parent.name, path  # .../snapshots/<revision>/<file>
    return None, None


def load(target: str, request: Request) -> LoadedModel:
    import timm

    name, _, flag = target.partition(":")
    if flag not in ("", "none"):
        raise BrodenError(f"{request.spec}: unknown option {flag!r}; use timm:{name} (pretrained) or timm:{name}:none (random)")
    if not name or not timm.is_model(name):
        close = difflib.get_close_matches(name.split(".")[0], timm.list_models(), n=5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise BrodenError(f"{request.spec}: no such timm model{hint}")
    pretrained = request.pretrained and flag != "none"
    try:
        with seeded(request.seed):
            model = timm.create_model(name, pretrained=pretrained)
    except Exception as exc:
        if not pretrained:
            raise BrodenError(f"{request.spec}: timm cannot build it ({type(exc).__name__}: {exc})") from exc
        raise BrodenError(f"{request.spec}: cannot get the pretrained weights ({type(exc).__name__}); connect to the "
                          "internet once so timm caches them in the Hugging Face cache, or pass a local state dict "
                          f"with --weights FILE, or use timm:{name}:none for random weights") from exc
    cfg = model.pretrained_cfg
    arch = cfg.get("architecture") or name
    full = f"{arch}.{cfg['tag']}" if cfg.get("tag") else arch
    identity: dict[str, Any] = {"kind": "random", "seed": request.seed}
    sha = None
    if pretrained:
        revision, path = _cached_weights(cfg)
        sha = file_digests(path)[0] if path is not None else None
        identity = {"kind": "timm", "name": full, "hf_hub_id": cfg.get("hf_hub_id"), "revision": revision,
                    "url": cfg.get("url") or None, "sha256": sha}
    info = getattr(model, "feature_info", None)
    layers = None
    if info:
        last = info[-1] if isinstance(info, list) else info.get_dicts()[-1]
        layers = [last["module"]] if last.get("module") else None
    return LoadedModel(
        name=full if flag != "none" else f"{name}:none",
        source="timm",
        module=model,
        layers=layers,
        preprocess=inspect(model),
        extra_tokens=extra_tokens(model),
        weights_sha256=sha,
        weights_url=cfg.get("url") or None,
        weights=identity,
        metadata={"architecture": arch, "training_data": None, "paper": cfg.get("paper_ids"),
                  "timm_version": timm.__version__, "pretrained_tag": cfg.get("tag")},
    )
