"""Summarise a Broden dataset: images per source and split, labels and images per category, most frequent labels.

Reads only the label table and the small columns, so it answers in seconds even for the full Broden.
'images with data' counts rows that have a label map for a pixel category, or a non-zero label for an image-level
category (scene, texture). --format json prints the same numbers as one JSON object.

examples:
  broden info broden1_224-hf
  broden info broden1_224-hf --top 50 --format json > info.json
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", metavar="PATH", help="a Broden dataset directory or hf://ORG/NAME")
    parser.add_argument("--top", type=int, default=20, metavar="N", help="list the N most frequent labels (default 20)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default table)")


def run(args: argparse.Namespace) -> int:
    from broden.dataset import load
    from broden.info import dataset_info, render

    info = dataset_info(load(args.path), top=max(0, args.top))
    if args.format == "json":
        print(json.dumps(info, indent=1))
    else:
        render(info)
    return 0
