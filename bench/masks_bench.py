"""Mask decoding benchmark: rows per second turned into label maps, as the scorer's tally pass reads them.

Generates a realistic legacy Broden (224 px, tens of labels per image, multi-layer parts), converts it, then decodes
every row's masks of every category with :class:`benchmark.activations.RowBatches` (the reader of
`benchmark score`) in this process, three times, and prints the best pass as ``name: value`` lines:

  mask_decode_rows_per_s       rows decoded per wall second (best of three passes)
  mask_decode_rows_per_cpu_s   rows decoded per CPU second of this process (independent of other load)
  masks_per_image              the average number of masks a row holds

    python bench/masks_bench.py [--images 600] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmark.activations import RowBatches
from broden.legacy import convert_legacy
from broden.utils.parallel import default_workers
from tests.helpers.legacy_fixture import write_legacy_fixture


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="broden-masks-bench-") as tmp:
        src = write_legacy_fixture(Path(tmp), size=224, num_images=args.images, seed=0, objects_per_image=12,
                                   workers=default_workers())
        ds = convert_legacy(src, Path(tmp) / "hf")
        batches = RowBatches(ds, range(len(ds)), args.batch_size, categories=ds.labels.category_names)
        masks = sum(len(m["label"]) for m in ds.rows["masks"])
        best_wall = best_cpu = float("inf")
        for _ in range(3):
            w0, c0 = time.perf_counter(), time.process_time()
            for i in range(len(batches)):
                batches[i]
            best_wall = min(best_wall, time.perf_counter() - w0)
            best_cpu = min(best_cpu, time.process_time() - c0)
    print(f"images: {len(ds)}")
    print(f"masks_per_image: {masks / len(ds):.1f}")
    print(f"mask_decode_rows_per_s: {len(ds) / best_wall:.0f}")
    print(f"mask_decode_rows_per_cpu_s: {len(ds) / best_cpu:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
