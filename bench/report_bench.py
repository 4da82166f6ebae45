"""Benchmark of `benchmark report` on a 1,280-unit layer (MobileNetV2 features.18's width) over the sample dataset.

The results come from `benchmark score --activations` on random ReLU maps (1280 x 7 x 7 per image of the 240-image
sample): the report draws every unit's 10 top images whatever the activations mean. Prints ``report_s`` (wall
seconds of the report command: goal <= 10 on 2 cores, idle), ``report_mb`` (the report directory in 10^6 bytes:
goal <= 30) and ``report_units``.

    python bench/report_bench.py [--dataset PATH] [--units 1280]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import add_dataset_argument, sample_dataset

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("BRODEN_PROGRESS", "0")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_argument(parser)
    parser.add_argument("--units", type=int, default=1280)
    args = parser.parse_args()
    from benchmark.cli import main as benchmark

    with tempfile.TemporaryDirectory(prefix="report-bench-") as tmp:
        work = Path(tmp)
        from broden.dataset import load

        dataset = load(sample_dataset(args.dataset, work))
        rng = np.random.default_rng(0)
        acts = np.maximum(rng.standard_normal((len(dataset), args.units, 7, 7)), 0).astype(np.float16)
        np.savez(work / "acts.npz", activations=acts, image=np.array(dataset.ids), layer="features.18")
        score = ["score", "--activations", str(work / "acts.npz"), "--dataset", str(dataset.path), "--out", str(work / "run")]
        if benchmark(score) != 0:
            return 1
        start = time.perf_counter()
        if benchmark(["report", str(work / "run" / "results.json"), "--out", str(work / "report")]) != 0:
            return 1
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in (work / "report").rglob("*") if p.is_file())
    print(f"report_units: {args.units}")
    print(f"load_avg_1min: {os.getloadavg()[0]:.2f}")
    print(f"report_s: {seconds:.1f}")
    print(f"report_mb: {size / 1e6:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
