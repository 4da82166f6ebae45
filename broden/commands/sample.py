"""Write the embedded sample dataset: about 240 images with all six Broden categories and exact masks, offline.

The images are composites of real photographs and textures shipped with scikit-image: scenes (sky/ground or
wall/floor backgrounds with houses, cars, trees, horses, a cat, a cup, a person, ... and their parts in two levels,
plus a scene label), OpenSurfaces-like material regions, and DTD-like textures with one to three texture labels.
Colors are named per pixel with the w2color table, as in Broden. The same arguments always give the same dataset
(same fingerprint). Use it to try the whole pipeline in seconds, or as a test fixture.

example:
  broden sample data/broden-sample
  benchmark score my_model.py --dataset data/broden-sample
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from broden.utils.outputs import claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, metavar="OUT", help="output dataset directory")
    parser.add_argument("--images", type=int, default=240, metavar="N", help="number of images, 1..5000 (default 240)")
    parser.add_argument("--size", type=int, default=224, metavar="S",
                        help="image size S x S, 32..512; masks are S//2 (default 224, as Broden)")
    parser.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    parser.add_argument("--force", action="store_true", help="replace OUT even when it holds files another command wrote")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    from broden.sample import write_sample

    with claim(out, "broden sample", force=args.force) as output:
        ds = write_sample(output.path, num_images=args.images, size=args.size, seed=args.seed)
        output.mark()
    splits = ds.meta.get("splits", {})
    sources = Counter(ds.rows["source"])
    per_cat = ", ".join(f"{r['name']} {r['count']}" for r in ds.labels.category_rows())
    print(out)
    print(f"  {len(ds)} images ({splits.get('train', 0)} train, {splits.get('val', 0)} val; "
          + ", ".join(f"{s} {n}" for s, n in sorted(sources.items())) + ")")
    print(f"  {len(ds.labels)} labels ({per_cat})")
    print(f"  fingerprint {ds.fingerprint}")
    return 0
