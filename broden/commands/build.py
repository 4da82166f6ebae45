"""Assemble Broden from its six original sources: ADE20K (2016), Pascal-Context, Pascal-Part, OpenSurfaces, DTD
and the color names computed on every photo.

--sources DIR uses NetDissect's dataset/ layout, so an existing NetDissect dataset/ folder works as it is:

  DIR/ade20k/ADE20K_2016_07_26/         index_ade20k.mat, images/...
  DIR/pascal/VOC2010/JPEGImages/        VOC2010 photos
  DIR/pascal/context/                   labels.txt, trainval/<id>.mat
  DIR/pascal/part/                      part2ind.m, Annotations_Part/<id>.mat
  DIR/opensurfaces/                     photos.csv, label-substance-colors.csv, photos/, photos-labels/
  DIR/dtd/dtd-r1.0.1/                   images/, labels/labels_joint_anno.txt

With --download, missing sources are fetched (resumable, checksums verified where published) and unpacked into
that same layout; an archive you obtained yourself (ADE20K needs a request nowadays) is verified and unpacked when
placed where the error message says.

Labels are merged by name across sources (synonym tables as in the original), kept when they occur in at least
--min-frequency images and cover at least --min-coverage whole images, and numbered by frequency. Photos are resized
bilinearly to SIZE x SIZE, masks with nearest selection to SIZE/2; the split is 70/30 by the md5 of the image path.
Work is cached in OUT.partial/ per source and per chunk of images: rerun the same command to resume. The dataset
appears at OUT only when complete, and is validated.

example:
  broden build --sources ~/netdissect/dataset --size 224 --out broden1_224
  broden build --sources data --size 227 --out broden-dtd --only dtd --download
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from broden.build.sources import SOURCE_NAMES
from broden.build.unify import MIN_COVERAGE, MIN_FREQUENCY
from broden.dataset import IMAGE_SIZES
from broden.utils.outputs import claim


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sources", required=True, type=Path, metavar="DIR", help="folder with the sources (layout above)"
    )
    parser.add_argument("--size", type=int, default=224, choices=IMAGE_SIZES, help="image size (default 224)")
    parser.add_argument("--out", required=True, type=Path, help="output dataset directory")
    parser.add_argument(
        "--only", metavar="LIST", help=f"comma-separated subset of {','.join(SOURCE_NAMES)} (default: all)"
    )
    parser.add_argument("--min-frequency", type=int, default=MIN_FREQUENCY, metavar="N",
                        help=f"keep labels in at least N images (default {MIN_FREQUENCY})")
    parser.add_argument("--min-coverage", type=float, default=MIN_COVERAGE, metavar="F",
                        help=f"keep labels covering at least F whole images in total (default {MIN_COVERAGE})")
    parser.add_argument("--download", action="store_true", help="fetch missing sources whose download URLs are known")
    parser.add_argument("--legacy", nargs="?", const=True, default=None, metavar="DIR",
                        help="also write the original Broden layout (index.csv, PNGs) to DIR (default OUT-legacy)")
    parser.add_argument("--workers", type=int, default=0, metavar="N", help="worker processes (default: all cores)")
    parser.add_argument("--force", action="store_true",
                        help="replace OUT (and the legacy directory) even when they hold files another command wrote")


def run(args: argparse.Namespace) -> int:
    from broden.build.pipeline import BuildOptions, build

    only = tuple(s.strip() for s in args.only.split(",") if s.strip()) if args.only else None
    legacy = None
    if args.legacy is not None:
        legacy = args.out.with_name(args.out.name + "-legacy") if args.legacy is True else Path(args.legacy)
    with contextlib.ExitStack() as stack:
        outputs = [stack.enter_context(claim(path, "broden build", force=args.force, inputs=[args.sources]))
                   for path in [args.out] + ([legacy] if legacy else [])]
        dataset = build(
            BuildOptions(
                sources_dir=args.sources,
                out=outputs[0].path,
                size=args.size,
                only=only,
                min_frequency=args.min_frequency,
                min_coverage=args.min_coverage,
                workers=args.workers,
                download=args.download,
                legacy=outputs[1].path if legacy else None,
            )
        )
        for output in outputs:
            output.mark()
    splits = dataset.meta.get("splits", {})
    print(f"{args.out}: {len(dataset)} images ({splits.get('train', 0)} train, {splits.get('val', 0)} val), "
          f"{len(dataset.labels)} labels; validated" + (f"; legacy layout in {legacy}" if legacy else ""))
    return 0
