"""Write concept image folders for TCAV (captum's Concept/TCAV, the tcav package) from Broden's labels.

One folder per concept (a label name, e.g. 'car', 'striped', 'street-s', or a label number) holding the images of
the split in which the label covers at least --min-coverage of the image (a scene or texture label covers the
whole image); with --crop, the bounding box of the label's region with everything else grey; with --negatives N,
a 'random' folder of N images showing none of the concepts. OUT/manifest.json lists every file with its image id
and coverage, the options and the dataset's fingerprint. OUT is replaced only when complete.

examples:
  broden concepts data/broden-sample striped dotted zigzagged --out concepts --negatives 20
  broden concepts broden1_224-hf car wheel --out car-concepts --min-coverage 0.05 --crop
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="a Broden dataset folder or hf://ORG/NAME")
    parser.add_argument("labels", nargs="+", metavar="LABEL", help="concept label names (or numbers)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--split", choices=("train", "val", "all"), default="train",
                        help="images of this split (default: %(default)s)")
    parser.add_argument("--min-coverage", type=float, default=0.0, metavar="F",
                        help="least share of the image the label must cover, 0..1 (default: any pixel)")
    parser.add_argument("--crop", action="store_true", help="write the label's region cropped, the rest grey")
    parser.add_argument("--negatives", type=int, default=0, metavar="N",
                        help="also write N random images without any of the concepts to OUT/random")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random negatives (default: 0)")


def run(args: argparse.Namespace) -> int:
    from broden.concepts import export_concepts
    from broden.dataset import load

    manifest = export_concepts(
        load(args.dataset), args.labels, args.out, split=None if args.split == "all" else args.split,
        min_coverage=args.min_coverage, crop=args.crop, negatives=args.negatives, seed=args.seed,
    )
    for c in manifest["concepts"]:
        print(f"{args.out / c['folder']}: {len(c['images'])} images of {c['name']}")
    if args.negatives:
        print(f"{args.out / manifest['negatives']['folder']}: {len(manifest['negatives']['images'])} random images")
    return 0
