"""Convert a legacy Broden directory (the original broden1_224/ layout) to a Broden dataset.

Reads index.csv, label.csv, category.csv, c_*.csv and images/ (JPEGs and label PNGs, label = R + 256*G) and writes a
Hugging Face `datasets` dataset, losslessly: JPEG bytes unchanged, every label map as RLE masks, image-level labels
(including the literal 0 of filtered-out labels), the label table and index.csv's row order. The output appears
only when complete; an interrupted run leaves nothing behind.

example:
  broden convert ~/data/broden1_224 broden1_224-hf --workers 4
  broden validate broden1_224-hf
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broden.utils.outputs import claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("legacy_dir", type=Path, metavar="LEGACY_DIR",
                        help="directory holding index.csv (e.g. broden1_224/)")
    parser.add_argument("out", type=Path, metavar="OUT", help="output dataset directory (replaced when complete)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes decoding PNGs and encoding masks (default: all CPU cores)")
    parser.add_argument("--force", action="store_true", help="replace OUT even when it holds files another command wrote")


def run(args: argparse.Namespace) -> int:
    from broden.legacy import convert_legacy

    with claim(args.out, "broden convert", force=args.force, inputs=[args.legacy_dir]) as output:
        ds = convert_legacy(args.legacy_dir, output.path, workers=args.workers)
        output.mark()
    print(f"wrote {ds.path}: {len(ds)} images, {len(ds.labels)} labels, fingerprint {ds.fingerprint}")
    return 0
