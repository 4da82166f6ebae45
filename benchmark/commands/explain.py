"""Explain each unit by a logical formula of concepts (Mu & Andreas, "Compositional Explanations of Neurons",
NeurIPS 2020): the formula of up to --max-length concepts joined by OR, AND and AND NOT, e.g.
"(water OR river) AND NOT blue", whose mask best matches the unit's active pixels (IoU over all pixels of all
images; image-level labels cover the whole image), found by beam search; beside it the best single concept.

Uses the run's thresholds and dataset (checked by fingerprint). Activations come from the scorer's cache when
'score --keep-cache' left it beside the results, else from the recorded --activations file or model file (or the
--activations / --model given here), checked against the recorded top images. One pass over the data per formula
length, for all units at once. Writes OUT/explanations.json (schema broden-explanations/1), by default beside the
results; 'benchmark report' then shows each unit's formula, 'benchmark summary --explanations' the IoU gains.
Interrupted runs resume where they stopped (checkpoints under OUT/explain-cache/).

examples:
  benchmark explain results/mobilenet_v2/results.json
  benchmark explain results/resnet18/results.json --units 0-99 --max-length 3 --beam 5 --device cuda
  benchmark explain results/acts/results.json --categories object,part,color --out explained
"""

from __future__ import annotations

import argparse

from broden.utils.cli import split_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS.json", help="results written by 'benchmark score'")
    parser.add_argument("--layers", help="comma-separated layers to explain (default: every layer of the results)")
    parser.add_argument("--units", metavar="RANGES", help="units to explain, e.g. 0-99,120 (default: all)")
    parser.add_argument("--max-length", type=int, default=3, help="most concepts in a formula (default: 3)")
    parser.add_argument("--beam", type=int, default=5, help="beam width (default: 5)")
    parser.add_argument("--complexity-penalty", type=float, default=0.0, metavar="P",
                        help="rank formulas by IoU * (1 - P) ** (terms - 1), NOT counting as a term (default: 0)")
    parser.add_argument("--categories", help="comma-separated concept categories (default: the run's)")
    parser.add_argument("--out", metavar="DIR", help="output directory (default: beside the results)")
    parser.add_argument("--dataset", metavar="PATH", help="the dataset scored on (default: the path in the results)")
    parser.add_argument("--model", metavar="MODEL", help="model file or torchvision:NAME (default: the recorded one)")
    parser.add_argument("--activations", metavar="NPZ", help="activations npz (default: the recorded one)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, auto (default: cpu)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default: 32)")
    parser.add_argument("--checkpoint-every", type=float, default=60.0, metavar="SECONDS",
                        help="save resumable state this often, and after every pass (default: 60)")
    parser.add_argument("--workers", type=int, default=None,
                        help="DataLoader worker processes decoding images and masks (default: min(4, CPUs))")


def run(args: argparse.Namespace) -> int:
    from benchmark.explain import ExplainSettings, explain, parse_units
    from benchmark.summary import explanation_summary

    settings = ExplainSettings(
        layers=split_list(args.layers), units=parse_units(args.units) if args.units else None,
        max_length=args.max_length, beam=args.beam, complexity_penalty=args.complexity_penalty,
        categories=split_list(args.categories), device=args.device, batch_size=args.batch_size,
        checkpoint_every_s=args.checkpoint_every,
    )
    if args.workers is not None:
        settings.workers = args.workers
    outcome = explain(args.results, settings, out=args.out, dataset=args.dataset, model=args.model,
                      activations=args.activations)
    for row in explanation_summary(outcome.explanations):
        print(f"{row['layer']}: length {row['length']}: mean IoU {row['mean_iou']:.4f} "
              f"(+{row['mean_gain']:.4f} over single concepts, {row['units']} units)")
    print(f"wrote {outcome.path}")
    return 0
