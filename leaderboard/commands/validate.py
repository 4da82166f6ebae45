"""Check results files against the schema, their own arithmetic and the leaderboard protocol.

Each file is parsed strictly (no NaN, no duplicate keys, at most 20 MB), checked against the results schema, and
recomputed: the summary must follow from the per-unit counts, every IoU from its intersection and union. A valid
file scored another way than the leaderboard protocol is accepted as "other protocol" (shown, not ranked).
Exit status: 0 when every file is valid, 1 when any is not; each problem is printed with its JSON path.

Example:
  leaderboard validate results.json
  leaderboard validate leaderboard/submissions/*.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from broden.utils.text import clean
from leaderboard.validate import validate_submission


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="RESULTS.json", help="results files to check")


def run(args: argparse.Namespace) -> int:
    invalid = 0
    for path in args.files:
        verdict = validate_submission(path)
        if not verdict.ok:
            invalid += 1
            for error in verdict.errors:
                print(clean(f"error: {path}: {error}"), file=sys.stderr)
            continue
        print(f"{path}: valid, protocol: {verdict.protocol}")
        for warning in verdict.warnings:
            print(clean(f"  not on the leaderboard protocol: {warning}"))
    return 1 if invalid else 0
