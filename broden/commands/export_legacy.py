"""Write a Broden dataset back in the original release layout (broden1_224/: index.csv, label PNGs, CSVs).

For tools that read the legacy layout directly (NetDissect, NetDissect-Lite). JPEG bytes are written unchanged and
each category layer becomes one RGB label PNG (label = R + 256*G): <stem>_<cat>.png for one layer,
<stem>_<cat>_<k>.png (k from 1) for several. 'broden convert' on the result gives back a dataset with the same
fingerprint. The output directory appears only when complete.

example:
  broden export-legacy broden1_224-hf legacy/broden1_224
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broden.utils.outputs import claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", metavar="DATASET", help="a Broden dataset directory or hf://ORG/NAME")
    parser.add_argument("out", type=Path, metavar="OUT",
                        help="output directory in the legacy layout (replaced when complete)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes writing the PNGs (default: all CPU cores)")
    parser.add_argument("--force", action="store_true", help="replace OUT even when it holds files another command wrote")


def run(args: argparse.Namespace) -> int:
    from broden.dataset import load
    from broden.legacy import export_legacy

    dataset = load(args.dataset)
    with claim(args.out, "broden export-legacy", force=args.force, inputs=[dataset.path]) as output:
        out = export_legacy(dataset, output.path, workers=args.workers)
        output.mark()
    print(f"wrote {out} (legacy Broden layout: index.csv, label.csv, category.csv, c_*.csv, images/)")
    return 0
