"""Detectors and unique detectors per category of a results file, under both conventions.

Rules: `detectors` (per category: units whose best IoU in that category is above the threshold; all: units whose
best IoU overall is), `unique_per_category` (the authors' release rule, reproduces the paper's summary.csv) and
`unique_top_label` (one best label per unit).

With --explanations: the compositional explanations of 'benchmark explain' (explanations.json beside the
results, or that file itself): per layer and formula length, the mean IoU of each unit's best formula of up to that
many concepts and its mean gain over the best single concept.

Example:
  benchmark summary results/mobilenet_v2/results.json --format csv
  benchmark summary results/mobilenet_v2/results.json --explanations
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmark.results import (
    EXPLANATIONS_FILE,
    EXPLANATIONS_SCHEMA_VERSION,
    load_explanations,
    load_results,
    parse_json_strict,
)
from benchmark.summary import explanation_summary
from benchmark.tables import print_summary_table, summary_columns, summary_json, summary_rows, to_csv
from broden.errors import BrodenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", help="results JSON written by 'benchmark score' or 'benchmark import-netdissect'")
    parser.add_argument("--format", choices=("table", "csv", "json"), default="table", help="output format")
    parser.add_argument("--explanations", action="store_true",
                        help="summarise the formulas of 'benchmark explain' (mean IoU and gain per formula length)")


EXPLANATION_COLUMNS = ("layer", "length", "units", "mean_iou", "mean_gain")


def _explanations(path: Path) -> dict:
    try:
        own = parse_json_strict(path.read_bytes(), str(path)).get("schema") == EXPLANATIONS_SCHEMA_VERSION
    except OSError as exc:
        raise BrodenError(f"{path}: cannot read ({exc.strerror or exc}); check the path") from exc
    target = path if own else path.parent / EXPLANATIONS_FILE
    if not target.is_file():
        raise BrodenError(f"{path}: no {EXPLANATIONS_FILE} beside it; run 'benchmark explain {path}' first")
    return load_explanations(target)


def run(args: argparse.Namespace) -> int:
    if args.explanations:
        rows = explanation_summary(_explanations(Path(args.results)))
        if args.format == "csv":
            sys.stdout.write(to_csv(rows, EXPLANATION_COLUMNS))
        elif args.format == "json":
            print(json.dumps(rows, indent=1))
        else:
            print(f"{'layer':<20} {'length':>6} {'units':>6} {'mean IoU':>9} {'gain':>9}")
            for r in rows:
                print(f"{r['layer']:<20} {r['length']:>6} {r['units']:>6} {r['mean_iou']:>9.4f} {r['mean_gain']:>+9.4f}")
        return 0
    results = load_results(args.results)
    if args.format == "csv":
        sys.stdout.write(to_csv(summary_rows(results), ["layer", "rule", *summary_columns(results)]))
    elif args.format == "json":
        print(summary_json(results))
    else:
        print_summary_table(results)
    return 0
