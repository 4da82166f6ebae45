"""Check every invariant of a Broden dataset and print each violation with the row it concerns.

Checks that images decode at the recorded size; RLE masks are well-formed, of the row's seg size, in a valid layer,
not overlapping within a layer; label numbers exist and belong to the mask's (or cell's) category; ids are valid
and unique and the index column numbers the rows; per-category label frequency and coverage recomputed from the
rows match the label table; the fingerprint in broden.json matches the content; the label table, broden.json and
the parquet shards (with the features the label table implies) are well-formed. A literal 0 in a scene or texture
cell (a label the original builder filtered out) is reported as a note, not a violation.

Exit status: 0 when clean (one OK line), 1 when any violation is found, 2 on a usage error.

example:
  broden validate broden1_224-hf
"""

from __future__ import annotations

import argparse
from collections import Counter

from broden.utils.text import clean


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a Broden dataset directory or hf://ORG/NAME")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes checking rows (default: all CPU cores)")
    parser.add_argument("--limit", type=int, default=200, metavar="N",
                        help="print at most N violations (default 200; 0 prints all); all are counted")


def run(args: argparse.Namespace) -> int:
    from broden.hub import resolve
    from broden.validate import validate

    report = validate(resolve(args.path)[0], workers=args.workers)
    notes = "; ".join(f"{n} x {what}" for what, n in report.notes.items())
    if report.ok:
        print(f"OK {report.path}: {report.num_images} images, {report.num_labels} labels, fingerprint "
              f"{report.fingerprint}" + (f" (notes: {notes})" if notes else ""))
        return 0
    shown = report.violations if args.limit <= 0 else report.violations[: args.limit]
    for v in shown:
        print(clean(str(v)))  # row ids and label names come from the data
    if len(shown) < len(report.violations):
        print(f"... {len(report.violations) - len(shown)} more (use --limit 0 to print all)")
    by_check = ", ".join(f"{check} {n}" for check, n in sorted(Counter(v.check for v in report.violations).items()))
    print(f"FAILED {report.path}: {len(report.violations)} violations ({by_check})")
    return 1
