"""``hf:ORG/NAME[@REVISION]`` or ``hf:/local/dir``: a transformers vision model.

The checkpoint's ``config.json`` picks the class: ``AutoModelForImageClassification`` when its architectures name an
image classifier, else ``AutoModel`` (backbones: ViT, DINO/DINOv2, Swin, ConvNeXt, ...). Hub checkpoints come from
the Hugging Face cache (downloaded once when online); a folder is read as saved by ``save_pretrained``.
Preprocessing is the checkpoint's ``AutoImageProcessor``: mean, std, resample and size (its crop size when it
centre-crops; the crop itself is not applied). Layers are dotted names as in ``named_modules()``; the default is the
last block of the model's first ``ModuleList`` (the encoder's blocks or stages). Token outputs (B, N, C) drop the
class token (and DeiT's distillation token, DINOv2's register tokens) and fold the rest into a grid; windowed
(Swin) stage outputs are token sequences without a class token; ConvNeXt stages are (B, C, H, W) already.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.models.loader import LoadedModel, Preprocessing, Request, seeded
from broden.errors import BrodenError
from broden.utils.hashing import file_digests

PREFIX = "hf"
SUFFIXES: tuple[str, ...] = ()
USAGE = "hf:ORG/NAME[@REVISION] or hf:/local/dir (a transformers vision model)"


def _is_hf(module: Any) -> bool:
    return type(module).__module__.startswith("transformers.") and hasattr(module, "config")


def _size(value: Any) -> tuple[int, int] | None:
    """(h, w) of a processor size: height/width, or a square shortest_edge."""
    if value is None:
        return None
    get = value.get if isinstance(value, dict) else lambda k: getattr(value, k, None)
    if get("height") and get("width"):
        return int(get("height")), int(get("width"))
    if get("shortest_edge"):
        return int(get("shortest_edge")), int(get("shortest_edge"))
    return None


def processor_preprocessing(processor: Any, where: str) -> Preprocessing:
    """An image processor's settings as whole-image preprocessing."""
    from benchmark.models.loader import INTERPOLATIONS

    crop = _size(getattr(processor, "crop_size", None)) if getattr(processor, "do_center_crop", False) else None
    resize = _size(getattr(processor, "size", None))
    size = crop or resize
    sources = {k: "model config" for k in ("mean", "std", "interpolation")}
    if size is not None:
        sources["size"] = "model config"
    resample = getattr(processor, "resample", None)
    names = {code: name for name, code in INTERPOLATIONS.items()}
    interpolation = names.get(int(resample), "bilinear") if resample is not None else "bilinear"
    not_applied: dict[str, Any] = {}
    if crop is not None:
        not_applied = {"resize": list(resize) if resize else None, "center_crop": list(crop)}
    if getattr(processor, "crop_pct", None):
        not_applied["crop_pct"] = processor.crop_pct
    mean = getattr(processor, "image_mean", None)
    std = getattr(processor, "image_std", None)
    if not getattr(processor, "do_normalize", True) or mean is None or std is None:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if getattr(processor, "do_rescale", True) and abs(float(getattr(processor, "rescale_factor", 1 / 255)) - 1 / 255) > 1e-9:
        raise BrodenError(f"{where}: the image processor rescales by {processor.rescale_factor}, not 1/255; "
                          "pass a preprocess= function that does the same")
    return Preprocessing(size, mean, std, interpolation, sources=sources, not_applied=not_applied,
                         declared_by=f"{type(processor).__name__} of {where}")


def _processor(repo: str, revision: str | None, local_only: bool) -> Any | None:
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(repo, revision=revision, local_files_only=local_only)
    except (OSError, ValueError, KeyError):
        return None


def inspect(module: Any) -> Preprocessing | None:
    """The preprocessing a transformers model declares: the image processor saved with its checkpoint (read from
    the folder or the local cache only), or None."""
    if not _is_hf(module):
        return None
    where = getattr(module.config, "_name_or_path", "") or ""
    if not where:
        return None
    processor = _processor(where, None, local_only=True)
    return processor_preprocessing(processor, where) if processor is not None else None


def extra_tokens(module: Any) -> int | None:
    """Tokens before the patch grid: DeiT's class and distillation tokens, DINOv2's class and register tokens."""
    if not _is_hf(module):
        return None
    config = module.config
    if config.model_type == "deit":
        return 2
    registers = getattr(config, "num_register_tokens", None)
    if isinstance(registers, int) and registers > 0:
        return 1 + registers
    return None


def default_layer(module: Any) -> str | None:
    """The last block of the model's first ModuleList in ``named_modules()`` order."""
    import torch

    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.ModuleList) and len(sub):
            return f"{name}.{len(sub) - 1}"
    return None


def _weights_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())


def load(target: str, request: Request) -> LoadedModel:
    import transformers
    from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    local = target.startswith(("/", ".", "~")) or Path(target).is_dir()
    if local:
        repo, revision = str(Path(target).expanduser()), None
    else:
        repo, _, rev = target.partition("@")
        revision = rev or None
    if local and not Path(repo).is_dir():
        raise BrodenError(f"hf:{target}: folder not found; pass hf:/path/to/a/folder saved with save_pretrained, "
                          "or hf:ORG/NAME for a Hub checkpoint")
    try:
        config = AutoConfig.from_pretrained(repo, revision=revision)
    except (OSError, ValueError) as exc:
        what = "no config.json there" if local else "not in the local Hugging Face cache and the Hub is unreachable or has no such repo"
        raise BrodenError(f"hf:{target}: cannot read the model config ({what}); "
                          + ("save the model there with save_pretrained" if local else
                             "connect to the internet once, or download the repo to a folder and pass hf:/that/folder")) from exc
    classifier = any(str(a).endswith("ForImageClassification") for a in (config.architectures or []))
    auto = AutoModelForImageClassification if classifier else AutoModel
    try:
        with seeded(request.seed):
            if request.pretrained:
                model = auto.from_pretrained(repo, revision=revision)
            else:
                model = auto.from_config(config)
    except (OSError, ValueError) as exc:
        raise BrodenError(f"hf:{target}: cannot load the weights ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                          "connect to the internet once, or pass a folder saved with save_pretrained") from exc
    processor = _processor(repo, revision, local_only=local)
    pre = processor_preprocessing(processor, target) if processor is not None else None
    identity: dict[str, Any] = {"kind": "random", "seed": request.seed}
    sha = None
    if request.pretrained:
        if local:
            folder, commit = Path(repo), None
        else:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(repo, "config.json", revision=revision)
            folder = Path(hit).parent if isinstance(hit, str) else None  # .../snapshots/<commit>/
            commit = folder.name if folder is not None else getattr(config, "_commit_hash", None)
        files = _weights_files(folder) if folder is not None else []
        digests = {p.name: file_digests(p)[0] for p in files}
        sha = next(iter(digests.values())) if len(digests) == 1 else None
        identity = {"kind": "hf", "repo": None if local else repo, "folder": repo if local else None,
                    "revision": commit, "files": digests}
    return LoadedModel(
        name=Path(repo).name if local else repo,
        source="hf",
        module=model,
        layers=[layer] if (layer := default_layer(model)) else None,
        preprocess=pre,
        extra_tokens=extra_tokens(model),
        weights_sha256=sha,
        weights=identity,
        metadata={"architecture": type(model).__name__, "model_type": config.model_type, "training_data": None,
                  "paper": None, "transformers_version": transformers.__version__,
                  **({} if processor is not None else {"preprocessing": "no image processor saved: defaults used"})},
    )
