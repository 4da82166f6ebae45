"""Detectors and unique detectors per category of a results file, under both conventions.

Rules: `detectors` (per category: units whose best IoU in that category is above the threshold; all: units whose
best IoU overall is), `unique_per_category` (the authors' release rule, reproduces the paper's summary.csv) and
`unique_top_label` (one best label per unit).

Example:
  benchmark summary results/mobilenet_v2/results.json --format csv
"""

from __future__ import annotations

import argparse
import sys

from benchmark.results import load_results
from benchmark.tables import print_summary_table, summary_columns, summary_json, summary_rows, to_csv


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results JSON written by 'benchmark score' or 'benchmark import-netdissect'")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")


def run(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    if args.format == "csv":
        sys.stdout.write(to_csv(summary_rows(results), ["layer", "rule", *summary_columns(results)]))
    elif args.format == "json":
        print(summary_json(results))
    else:
        print_summary_table(results)
    return 0
