"""Dissect a model's layers on a Broden dataset and write OUT/results.json (Network Dissection, Bau et al. 2017).

MODEL is a Python file defining build_model() (see examples/README.md), or torchvision:NAME for a torchvision
classification model with its DEFAULT weights (downloaded once by torchvision; offline that is an error saying
what to do). A model file may also define:
  LAYERS         dotted layer names to dissect, e.g. ["layer4"] or ["features.18"] (--layers overrides)
  preprocess     PIL RGB image -> float tensor (3, H, W); default: resize to the dataset's image size,
                 to tensor, ImageNet mean/std (recorded in the results either way)
  NAME           display name; METADATA: dict with architecture, training_data, paper, weights_url,
                 weights_sha256; EXTRA_TOKENS: class/register tokens to drop from transformer outputs

Layers: any dotted module name (list them with 'benchmark layers MODEL'); several layers are dissected in one
forward pass. (B, C, H, W) outputs are used as is, transformer tokens (B, N, C) are folded into a square grid
(N = extra + s*s), a tuple output gives its first tensor; (B, C) vectors cannot be dissected.

The run makes one forward pass (pass 1: thresholds, top images, float16 activation cache in OUT/cache/ while
it fits --cache-budget) and one tally pass over the masks (pass 2). It checkpoints into OUT/cache/ as it goes:
run the same command again after an interruption to resume; a finished run is not redone unless --force.
Outputs: OUT/results.json (schema broden-results/1) and OUT/top_maps.npz (each unit's top images' maps).

Bring your own activations: --activations acts.npz holding 'activations' (N, units, h, w) and 'image'
(the N dataset ids); optional 'layer' (name). Only those rows are scored.

examples:
  benchmark score examples/mobilenet_v2.py --dataset broden-sample
  benchmark score torchvision:resnet18 --layers layer3,layer4 --dataset broden1_224 --device cuda
  benchmark score my_model.py --dataset broden1_224 --categories object,part --out results/mine
  benchmark score --activations acts.npz --dataset broden1_224 --out results/acts
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark import protocol
from broden.download.releases import DEFAULT_DEST, ReleasePaths, get_release
from broden.errors import BrodenError
from broden.utils.filenames import safe_name

# the dataset `broden download` writes by default, so the two commands work together without flags
DEFAULT_DATASET = str(ReleasePaths(DEFAULT_DEST, get_release(224)).dataset)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL", help="model file (.py with build_model()) or torchvision:NAME")
    parser.add_argument("--layers", help="comma-separated dotted layer names (default: the model's LAYERS)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, metavar="PATH",
                        help=f"Broden dataset directory (default: {DEFAULT_DATASET})")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: results/<model name>)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--quantile", type=float, default=protocol.QUANTILE,
                        help=f"top fraction of each unit's activations kept as its active region "
                             f"(default: {protocol.QUANTILE})")
    parser.add_argument("--iou-threshold", type=float, default=protocol.IOU_THRESHOLD,
                        help=f"a unit is a detector when its IoU is above this (default: {protocol.IOU_THRESHOLD})")
    parser.add_argument("--categories", help="comma-separated categories (default: all of the dataset's)")
    parser.add_argument("--compat", choices=protocol.COMPAT_MODES, default=protocol.DEFAULT_COMPAT,
                        help="netdissect: the paper's category gate (default); netdissect-lite: Lite's narrower gate")
    parser.add_argument("--top-k", type=int, default=10, help="top images kept per unit (default: 10)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes decoding images and masks (default: min(4, CPUs))")
    parser.add_argument("--cache-budget", type=float, default=8.0, metavar="GB",
                        help="disk for the float16 activation cache; above it pass 2 recomputes the forward (default: 8)")
    parser.add_argument("--activations", metavar="NPZ", help="score precomputed activations instead of a model")
    parser.add_argument("--name", help="display name (default: the model's NAME or file name)")
    parser.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                        help="save resumable state this often (default: 60)")
    parser.add_argument("--keep-cache", action="store_true", help="keep OUT/cache/ after a successful run")
    parser.add_argument("--force", action="store_true", help="redo a finished run, replacing OUT/results.json when done")


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def run(args: argparse.Namespace) -> int:
    from benchmark.scorer import Settings, score_activations, score_model
    from broden.dataset import load

    if (args.model is None) == (args.activations is None):
        raise BrodenError("give either MODEL (a model file or torchvision:NAME) or --activations NPZ")
    settings = Settings(
        layers=_split(args.layers), quantile=args.quantile, iou_threshold=args.iou_threshold,
        categories=_split(args.categories), compat=args.compat, top_k=args.top_k, batch_size=args.batch_size,
        device=args.device, cache_budget_bytes=int(args.cache_budget * 1e9), keep_cache=args.keep_cache,
        force=args.force, checkpoint_every_s=args.checkpoint_every,
    )
    if args.workers is not None:
        settings.workers = args.workers
    settings.check()
    if not Path(args.dataset).exists():
        raise BrodenError(f"{args.dataset}: dataset not found; pass --dataset PATH (make one with 'broden sample' "
                          "or 'broden download')")
    dataset = load(args.dataset)
    if args.activations:
        from benchmark.activations import SuppliedActivations

        if settings.layers:
            raise BrodenError("--layers does not apply to --activations (the npz holds one layer)")
        supplied = SuppliedActivations(args.activations, dataset)
        name = args.name or Path(args.activations).stem
        out = Path(args.out or Path("results") / safe_name(name, "model"))
        outcome = score_activations(supplied, dataset, out, settings, name=name)
    else:
        from benchmark.models.loader import load_model

        model = load_model(args.model)
        if args.name:
            model.name = args.name
        out = Path(args.out or Path("results") / safe_name(model.name, "model"))
        outcome = score_model(model, dataset, out, settings)
    if outcome.skipped:
        print(f"already scored: {outcome.path} (same model, layers, settings and dataset); pass --force to redo it")
        return 0
    for layer in outcome.results["layers"]:
        s = layer["summary"]
        print(f"{layer['name']}: {s['detectors']['all']}/{s['units']} detectors, "
              f"{s['unique_per_category']['all']} unique concepts (per-category rule)")
    print(f"wrote {outcome.path}")
    return 0
