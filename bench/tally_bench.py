"""Vectorised tally vs the plain per-image/unit/label reference, on identical realistic random inputs.

    python bench/tally_bench.py [--images 200] [--units 512] [--seed 0] [--threads N]

Prints ``name: value`` lines, ending with ``tally_speedup_vs_naive``. Both runs are checked to give identical counts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmark.quantile import TopQuantile  # noqa: E402
from benchmark.tally import Tally, TallyInput  # noqa: E402
from tests.helpers.naive_tally import naive_tally  # noqa: E402

CATEGORIES = ["color", "object", "part", "material", "scene", "texture"]
# Label numbers: color 1-11, object 12-111, part 112-161, material 162-181, scene 182-281, texture 282-301.
RANGES = {"color": (1, 12), "object": (12, 112), "part": (112, 162), "material": (162, 182),
          "scene": (182, 282), "texture": (282, 302)}
NUM_LABELS = 302


def blocky(rng: np.random.Generator, images: int, choices: list[np.ndarray], seg: int, empty: float) -> np.ndarray:
    """Label maps made of 8x8-pixel blocks of each image's labels (plus unlabeled blocks)."""
    coarse = np.stack([rng.choice(c, (seg // 8, seg // 8)) for c in choices])
    coarse[rng.random(coarse.shape) < empty] = 0
    return coarse.repeat(8, axis=1).repeat(8, axis=2)


def make_inputs(images: int, units: int, seed: int, size: int = 7, seg: int = 112, batch: int = 16):
    rng = np.random.default_rng(seed)
    # Post-ReLU maps with a mild per-(image, unit) gain: about 21% of (image, unit) maps reach the threshold, the
    # share NetDissect-Lite's tally saw on its 512-unit 7x7 test data (docs/algorithm.md §9.2).
    gain = rng.lognormal(0.0, 0.25, (images, units, 1, 1))
    acts = (np.maximum(rng.standard_normal((images, units, size, size)), 0) * gain).astype(np.float32)
    maps = np.zeros((images, 4, seg, seg), dtype=np.int64)
    for layer, (cat, empty) in enumerate([("color", 0.0), ("object", 0.1), ("part", 0.7), ("material", 0.8)]):
        lo, hi = RANGES[cat]
        per_image = [rng.choice(np.arange(lo, hi), min(hi - lo, 8), replace=False) for _ in range(images)]
        maps[:, layer] = blocky(rng, images, per_image, seg, empty)
    image_labels = [
        [int(rng.integers(*RANGES["scene"]))] if rng.random() < 0.6 else
        [int(lab) for lab in rng.choice(np.arange(*RANGES["texture"]), 2, replace=False)]
        for _ in range(images)
    ]
    batches = [(acts[i : i + batch], maps[i : i + batch], image_labels[i : i + batch])
               for i in range(0, images, batch)]
    primary = {n: cat for cat, (lo, hi) in RANGES.items() for n in range(lo, hi)}
    return batches, primary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--units", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches, primary = make_inputs(args.images, args.units, args.seed)

    quantile = TopQuantile(args.units)
    for acts, _, _ in batches:
        quantile.add(torch.from_numpy(acts))
    thresholds = quantile.thresholds()

    start = time.perf_counter()
    tally = Tally(args.units, NUM_LABELS, CATEGORIES, primary)
    for acts, maps, image_labels in batches:
        tally.add(TallyInput(torch.from_numpy(acts), torch.from_numpy(maps), image_labels), thresholds)
    vectorised_s = time.perf_counter() - start

    start = time.perf_counter()
    naive = naive_tally(batches, thresholds.numpy(), NUM_LABELS, CATEGORIES, primary)
    naive_s = time.perf_counter() - start

    for key in ("intersection", "truth", "activation_by_category", "active"):
        if not np.array_equal(getattr(tally, key).numpy(), naive[key]):
            raise SystemExit(f"error: vectorised and naive tallies differ in {key}")
    live = sum(int((torch.from_numpy(a).amax(dim=(2, 3)) > thresholds).sum()) for a, _, _ in batches)
    print(f"images: {args.images}")
    print(f"units: {args.units}")
    print(f"torch_threads: {torch.get_num_threads()}")
    print(f"live_pair_fraction: {live / (args.images * args.units):.3f}")
    print(f"tally_vectorised_s: {vectorised_s:.3f}")
    print(f"tally_naive_s: {naive_s:.3f}")
    print(f"tally_images_per_s: {args.images / vectorised_s:.1f}")
    print(f"tally_speedup_vs_naive: {naive_s / vectorised_s:.1f}")


if __name__ == "__main__":
    main()
