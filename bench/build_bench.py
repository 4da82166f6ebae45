"""Benchmark ``broden build``: the fixture sources scaled to about 2,000 images, built end to end.

Prints ``build_images_per_s: N`` (images per second of wall time for the whole build: reading, statistics,
resizing, unification, writing and the final validation, with every available core). Photos have realistic sizes
(ADE20K 384 x 512, Pascal 375 x 500, OpenSurfaces 480 x 640, DTD 300 x 300); writing the fixtures is not timed.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("BRODEN_PROGRESS", "0")

TARGET_IMAGES = 2000


def main() -> int:
    from tests.helpers import source_fixtures as sf

    from broden.build.pipeline import BuildOptions, build

    per_repeat = len(sf.ADE_IMAGES) + len(sf.PASCAL_IMAGES) + len(sf.OS_IMAGES) + len(sf.DTD_IMAGES)
    repeat = round(TARGET_IMAGES / per_repeat)
    with tempfile.TemporaryDirectory(prefix="broden-build-bench-") as tmp:
        root = Path(tmp) / "sources"
        sf.write_ade20k(root, repeat, photo=(384, 512))
        sf.write_pascal(root, repeat, photo=(375, 500))
        sf.write_opensurfaces(root, repeat, photo=(480, 640))
        sf.write_dtd(root, repeat, photo=(300, 300))
        start = time.perf_counter()
        images = len(build(BuildOptions(sources_dir=root, out=Path(tmp) / "out", size=224)))
        seconds = time.perf_counter() - start
    print(f"build_images: {images}")
    print(f"build_seconds: {seconds:.1f}")
    print(f"build_images_per_s: {images / seconds:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
