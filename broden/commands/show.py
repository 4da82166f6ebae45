"""Draw one image of a Broden dataset with its labels: the photo, one panel per label-map layer of each pixel
category (color, object, part levels, material) with every label colour-coded and named in a legend (with its
share of the image), and the image-level labels (scene, texture) in the title. A label keeps its colour across
panels and images.

ID is an image id as 'broden info' and results list them (e.g. ade20k/ADE_train_00000001.jpg) or a row number.
DATASET is a folder or a Hub dataset (hf://ORG/NAME).

example:
  broden show data/broden-sample scenes/street_00002.jpg --out street.png
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="a Broden dataset folder or hf://ORG/NAME")
    parser.add_argument("id", metavar="ID", help="image id or row number")
    parser.add_argument("--out", type=Path, required=True, metavar="PNG", help="output PNG file")


def run(args: argparse.Namespace) -> int:
    from broden.dataset import load
    from broden.show import show

    print(show(load(args.dataset), args.id, args.out))
    return 0
