"""The paper's interpretability baselines for a model: units under random rotations, and random weights.

Scores MODEL with its layers' units rotated by a random rotation to the power alpha = 0, 0.25, 0.5, 0.75, 1
(alpha 0: the plain run; 1: a full random rotation of the unit axes) and a random-init copy of MODEL, each into
OUT/alpha-<a>/ and OUT/random-init/, then writes OUT/comparison/index.html: unique detectors per category
against alpha (random init last), under both conventions. Interpretable axes show as a fall from alpha 0 to 1
(Bau et al. 2017, section 3.2); random weights give few detectors. Costs six score runs.

Example:
  benchmark baselines examples/mobilenet_v2.py --layers features.18 --dataset broden-sample --out baselines
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands.score import DEFAULT_DATASET
from broden.errors import BrodenError
from broden.utils.cli import split_list
from broden.utils.filenames import safe_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a model spec, as for 'benchmark score' (a .py file, torchvision:NAME, ...)")
    parser.add_argument("--layers", help="comma-separated dotted layer names (default: the model's LAYERS)")
    parser.add_argument("--dataset", default=DEFAULT_DATASET, metavar="PATH", help="Broden dataset directory")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: results/<model name>-baselines)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the rotations, random weights and bootstrap")
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when available), cpu, cuda (default: auto)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader worker processes")
    parser.add_argument("--force", action="store_true", help="redo finished runs")


def run(args: argparse.Namespace) -> int:
    from benchmark.baselines import run_baselines
    from benchmark.models.loader import load_model
    from benchmark.scorer import Settings
    from broden.dataset import load

    settings = Settings(layers=split_list(args.layers), seed=args.seed, device=args.device, batch_size=args.batch_size,
                        force=args.force)
    if args.workers is not None:
        settings.workers = args.workers
    settings.check()
    if not Path(args.dataset).exists():
        raise BrodenError(f"{args.dataset}: dataset not found; pass --dataset PATH (make one with 'broden sample')")
    dataset = load(args.dataset)
    model = load_model(args.model, seed=args.seed)
    out = Path(args.out or Path("results") / f"{safe_name(model.name, 'model')}-baselines")
    report, paths = run_baselines(model, dataset, out, settings)
    for path in paths:
        print(f"wrote {path}")
    print(f"baselines comparison written to {report / 'index.html'}")
    return 0
