"""Conversion benchmark: legacy Broden layout -> Hugging Face dataset, in images per second.

Generates a realistic 2,000-image legacy dataset (224 px JPEGs of ~10-20 KB; color, object, part and material maps
with tens of labels per image; multi-layer ADE parts; scene and texture cells) in a temporary directory, then runs
``convert_legacy`` with the default workers (all cores), then once more in one process to measure its CPU time
(the per-core rate, which does not depend on other load on a shared machine). Prints one ``name: value`` line per
number; the dataset generation time is reported separately and is not part of the conversion rate.

    python bench/convert_bench.py [--images 2000] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from broden.legacy import convert_legacy  # noqa: E402
from broden.utils.parallel import default_workers  # noqa: E402
from tests.helpers.legacy_fixture import write_legacy_fixture  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=None, help="default: all cores")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="broden-convert-bench-") as tmp:
        t0 = time.perf_counter()
        src = write_legacy_fixture(Path(tmp), size=224, num_images=args.images, seed=0, objects_per_image=12,
                                   workers=default_workers())
        generate_s = time.perf_counter() - t0
        jpegs = list((src / "images").glob("*/*.jpg"))
        jpeg_kb = sum(p.stat().st_size for p in jpegs) / len(jpegs) / 1024
        t0 = time.perf_counter()
        ds = convert_legacy(src, Path(tmp) / "hf", workers=args.workers)
        convert_s = time.perf_counter() - t0
        masks = sum(len(m["label"]) for m in ds.rows["masks"])
        # CPU time of a one-process conversion: the per-core rate, independent of other load on the machine
        t0 = time.process_time()
        convert_legacy(src, Path(tmp) / "hf-serial", workers=1)
        serial_cpu_s = time.process_time() - t0
    print(f"images: {len(ds)}")
    print(f"workers: {args.workers or default_workers()}")
    print(f"load_avg_1min: {os.getloadavg()[0]:.2f}")
    print(f"mean_jpeg_kb: {jpeg_kb:.1f}")
    print(f"masks_per_image: {masks / len(ds):.1f}")
    print(f"generate_s: {generate_s:.1f}")
    print(f"convert_s: {convert_s:.1f}")
    print(f"convert_images_per_s: {len(ds) / convert_s:.0f}")
    print(f"convert_serial_cpu_ms_per_image: {1000 * serial_cpu_s / len(ds):.2f}")
    print(f"convert_images_per_cpu_s: {len(ds) / serial_cpu_s:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
