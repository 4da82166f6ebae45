"""Compare results files: the same units before and after fine-tuning, a series of checkpoints, or several models.

Two files of the same architecture (same layer names and unit counts): unit by unit, how each unit's concept changed
("unit 8: dog (object, IoU 0.200) → grass (material, IoU 0.051)"), with counts of kept, changed, gained and lost
detectors. Three or more (in training order): unique detectors per category over the checkpoints (both conventions)
and the unit table between the first and the last. Different models: unique detectors per category side by side.

Examples:
  benchmark compare places365/results.json finetuned/results.json --names before,after
  benchmark compare ckpt/epoch*/results.json --mode checkpoints --out training-series
  benchmark compare alexnet/results.json vgg16/results.json resnet152/results.json --out models
"""

from __future__ import annotations

import argparse

from benchmark.html.compare import MODES, OUTPUT_HELP, build_compare
from broden.utils.cli import split_list
from broden.utils.outputs import claim
from broden.utils.text import for_terminal

__doc__ = f"{__doc__}\n{OUTPUT_HELP}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", metavar="RESULTS.json", help="two or more results files, in order")
    parser.add_argument("--out", metavar="DIR", default="compare", help="output directory (default: ./compare)")
    parser.add_argument("--names", metavar="A,B,...", help="comma-separated display names, one per file")
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="auto",
        help="auto (default): units for two files of one architecture, checkpoints for three or more, else models",
    )
    parser.add_argument("--force", action="store_true",
                        help="replace the output directory even when it holds files another command wrote")


def run(args: argparse.Namespace) -> int:
    with claim(args.out, "benchmark compare", force=args.force, inputs=args.results) as output:
        result = build_compare(args.results, out=output.path, names=split_list(args.names), mode=args.mode)
        output.mark()
    for row in result.differences:
        if row["category"] == "all":
            print(for_terminal(
                f"{row['layer']} {row['rule']}: {row['a']} -> {row['b']} ({int(row['difference']):+d}, "
                f"95% [{row['low']}, {row['high']}]): {str(row['significant']).replace('yes', 'significant')}"))
    print(f"{result.mode} comparison written to {result.path / 'index.html'}")
    return 0
