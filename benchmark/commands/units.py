"""Each unit's overall best label, category and IoU (units numbered from 0).

Example:
  benchmark units results/mobilenet_v2/results.json --format csv > units.csv
"""

from __future__ import annotations

import argparse
import sys

from benchmark.results import load_results
from benchmark.tables import UNIT_COLUMNS, print_units_table, to_csv, unit_rows
from broden.errors import BrodenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results JSON")
    parser.add_argument("--format", choices=("table", "csv"), default="table", help="output format")
    parser.add_argument("--limit", type=int, default=None, help="table only: show the N best units per layer")


def run(args: argparse.Namespace) -> int:
    results = load_results(args.results)
    rows = unit_rows(results)
    if not rows:
        raise BrodenError(f"{args.results}: has no per-unit data (a 'reported' entry); try 'benchmark summary'")
    if args.format == "csv":
        sys.stdout.write(to_csv(rows, UNIT_COLUMNS))
    else:
        print_units_table(results, args.limit)
    return 0
