"""Write a self-contained HTML dissection report of a results file: open OUT/index.html in any browser, offline.

The index lists the layers with the model's metadata and protocol. Each layer page has the summary (detectors and
unique detectors per category under both conventions, per-category and top-label, with % of units), one histogram
per category of how many units detect each concept, and a gallery of every unit sorted by IoU (sortable by IoU, unit
or label, filterable by category): label, category, IoU (greyed at or below the threshold) and the unit's top images
with its active region kept bright and the concept's mask outlined.

Images need top_maps.npz beside the results (written by 'benchmark score') and the dataset they were scored on: by
default the path recorded in the results, checked by fingerprint. Without them the report still has the summary
and charts.

Example:
  benchmark report results/resnet18/results.json --dataset data/broden1_224 --out resnet18-report
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.html.report import DEFAULT_TOP_IMAGES, build_report
from broden.utils.outputs import claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results JSON written by 'benchmark score' (or imported/reported results)")
    parser.add_argument(
        "--dataset", metavar="PATH", help="Broden dataset the results were scored on (default: the path in the results)"
    )
    parser.add_argument("--out", metavar="DIR", help="report directory (default: report/ beside the results)")
    parser.add_argument(
        "--top-images",
        type=int,
        default=DEFAULT_TOP_IMAGES,
        metavar="N",
        help=f"top activating images shown per unit (default {DEFAULT_TOP_IMAGES}; at most what the score run kept)",
    )
    parser.add_argument("--force", action="store_true",
                        help="replace OUT even when it holds files another command wrote")


def run(args: argparse.Namespace) -> int:
    results = Path(args.results)
    inputs = [results] + ([Path(args.dataset)] if args.dataset else [])
    with claim(args.out or results.parent / "report", "benchmark report", force=args.force, inputs=inputs) as output:
        out, images_note = build_report(results, dataset=args.dataset, out=output.path, top_images=args.top_images)
        output.mark()
    if images_note:
        print(f"note: no unit images: {images_note}", file=sys.stderr)
    print(f"report written to {out / 'index.html'}")
    return 0
