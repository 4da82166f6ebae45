"""Benchmark of `benchmark score`: cost over a bare forward pass, and peak memory against the number of images.

Prints ``name: value`` lines:

  score_over_forward_ratio   wall time of a full score run (MobileNetV2 features.18 on the sample dataset) over
                             the wall time of bare forward passes on the same images with the same data loading
                             (goal <= 1.3)
  score_s, forward_s         the two wall times
  peak_rss_mb_n500           peak resident memory of the main process of a score run on 500 images
  peak_rss_mb_n2000          the same on 2,000 images (the sample's rows repeated with distinct ids); should be
                             about equal to n500: memory must not grow with the number of images

    python bench/score_bench.py [--dataset PATH] [--workers N] [--batch-size N] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "mobilenet_v2.py"


def _sample(work: Path) -> Path:
    from broden.sample import write_sample

    return write_sample(work / "sample").path


def _repeated(sample: Path, n: int, out: Path) -> Path:
    """A dataset of ``n`` rows: the sample's rows cycled, each copy with its own id."""
    from broden.dataset import load, write_dataset

    ds = load(sample)

    def rows():
        made = 0
        while made < n:
            for row in ds.iter_rows(batch_size=64):
                if made == n:
                    return
                yield {**row, "id": f"copy{made // len(ds)}/{row['id']}"}
                made += 1

    return write_dataset(out, rows(), ds.labels, meta={"name": f"sample-x{n}"}).path


def _forward_only(dataset: Path, batch_size: int, workers: int, device: str) -> float:
    """Wall seconds of bare forward passes over the dataset with the score run's data loading."""
    import torch

    from benchmark.activations import RowBatches, batch_loader
    from benchmark.models.loader import Preprocessing, load_model
    from broden.dataset import load

    ds = load(dataset)
    model = load_model(str(MODEL)).module.eval().to(device)
    pre = Preprocessing(tuple(ds.meta["image_size"]))
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batch_loader(RowBatches(ds, range(len(ds)), batch_size, preprocess=pre), workers):
            model(batch.images.to(device))
    return time.perf_counter() - start


def _score(dataset: Path, out: Path, batch_size: int, workers: int, device: str) -> float:
    """Wall seconds of a full score run (model and dataset already loaded)."""
    from benchmark.models.loader import load_model
    from benchmark.scorer import Settings, score_model
    from broden.dataset import load

    ds = load(dataset)
    model = load_model(str(MODEL))
    start = time.perf_counter()
    score_model(model, ds, out, Settings(batch_size=batch_size, workers=workers, device=device, force=True))
    return time.perf_counter() - start


def _child(args: argparse.Namespace) -> None:
    seconds = _score(Path(args.child), Path(args.out), args.batch_size, args.workers, args.device)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_rss_mb": rss}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", help="sample dataset to use (default: write one into a temporary directory)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="500,2000", help="image counts for the peak-RSS runs (\"\" skips them)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        work = Path(tmp)
        sample = Path(args.dataset) if args.dataset else _sample(work)
        _forward_only(sample, args.batch_size, args.workers, args.device)  # warm-up: page cache, lazy imports
        forward_s = _forward_only(sample, args.batch_size, args.workers, args.device)
        score_s = _score(sample, work / "out", args.batch_size, args.workers, args.device)
        print(f"forward_s: {forward_s:.2f}")
        print(f"score_s: {score_s:.2f}")
        print(f"score_over_forward_ratio: {score_s / forward_s:.3f}")
        for n in (int(s) for s in args.sizes.split(",") if s.strip()):
            data = _repeated(sample, n, work / f"x{n}")
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(data), "--out", str(work / f"out{n}"),
                 "--batch-size", str(args.batch_size), "--workers", str(args.workers), "--device", args.device],
                capture_output=True, text=True, check=True,
            )
            report = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"score_s_n{n}: {report['seconds']:.2f}")
            print(f"peak_rss_mb_n{n}: {report['peak_rss_mb']:.0f}")


if __name__ == "__main__":
    main()
