"""Benchmark of `benchmark score`: cost over a bare forward pass, the allocator's effect, and peak memory.

Prints ``name: value`` lines (every timed run in its own fresh process, with the scorer's thread budget):

  forward_over_tuned_forward     CPU seconds (user + system) of bare forward passes over the sample's images with
                                 the scorer's process set-up, over the same in a process whose glibc allocator is
                                 tuned from outside (MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_): 1.0 when the
                                 scorer's own tuning works (goal <= 1.1); ``forward_untuned_over_tuned`` shows the
                                 tax it avoids; ``..._wall`` the same in wall time (noisy on a shared machine)
  score_over_forward_ratio       wall time of a full score run (MobileNetV2 features.18 on the 240-image sample)
                                 over bare forward passes on the same images with the same data loading (<= 1.3)
  score_over_forward_ratio_n2000 the same on 2,000 images (the sample's rows repeated with distinct ids; <= 1.15);
                                 both are medians of ``--rounds`` alternating pairs of runs (``..._range``: their
                                 spread); ``score_over_forward_cpu_ratio*``: the same in CPU seconds
  peak_rss_mb_n500, _n2000       peak resident memory of the main process of a score run on 500 / 2,000 images;
                                 about equal: memory must not grow with the number of images

    python bench/score_bench.py [--dataset PATH] [--workers N] [--batch-size N] [--device cpu] [--sizes 500,2000]
                                [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import add_dataset_argument, peak_rss_mb, sample_dataset

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "mobilenet_v2.py"
#: glibc tunables with the effect of benchmark.runtime.tune_allocator, set from outside the process
TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}


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


def _forward_only(dataset: Path, batch_size: int, workers: int | None, device: str, scorer_setup: bool) -> float:
    """Wall seconds of bare forward passes over the dataset with the score run's data loading and threads."""
    import torch

    from benchmark.activations import RowBatches, batch_loader
    from benchmark.models.loader import Preprocessing, load_model
    from benchmark.runtime import plan_threads, tune_allocator
    from broden.dataset import load

    if scorer_setup:
        tune_allocator()
    budget = plan_threads(None, workers, device)
    ds = load(dataset)
    model = load_model(str(MODEL)).module.eval().to(device)
    pre = Preprocessing(tuple(ds.meta["image_size"]))
    with budget.applied(), torch.inference_mode():
        start = time.perf_counter()
        for batch in batch_loader(RowBatches(ds, range(len(ds)), batch_size, preprocess=pre), budget.workers):
            model(batch.images.to(device))
        return time.perf_counter() - start


def _score(dataset: Path, out: Path, batch_size: int, workers: int | None, device: str) -> float:
    """Wall seconds of a full score run (model and dataset already loaded)."""
    from benchmark.models.loader import load_model
    from benchmark.runtime import tune_allocator
    from benchmark.scorer import Settings, score_model
    from broden.dataset import load

    tune_allocator()  # as `benchmark score` does first
    ds = load(dataset)
    model = load_model(str(MODEL))
    start = time.perf_counter()
    score_model(model, ds, out, Settings(batch_size=batch_size, workers=workers, device=device, force=True))
    return time.perf_counter() - start


def _child(args: argparse.Namespace) -> None:
    if args.child == "score":
        seconds = _score(Path(args.data), Path(args.out), args.batch_size, args.workers, args.device)
    else:
        seconds = _forward_only(Path(args.data), args.batch_size, args.workers, args.device, args.child == "forward")
    usage, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime + workers.ru_utime + workers.ru_stime  # start-up included
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb(), "sys_s": usage.ru_stime,
                      "cpu_s": cpu}))


def _run_child(kind: str, data: Path, out: Path, args: argparse.Namespace, env: dict[str, str] | None = None) -> dict:
    """Run one timed measurement in a fresh process: ``forward`` (scorer set-up), ``plain-forward`` or ``score``."""
    cmd = [sys.executable, __file__, "--child", kind, "--data", str(data), "--out", str(out),
           "--batch-size", str(args.batch_size), "--device", args.device]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    child = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, **(env or {})})
    return json.loads(child.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_argument(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="default: the scorer's thread budget")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", default="500,2000", help="image counts for the peak-RSS runs (\"\" skips them); "
                        "at 2000 the score/forward ratio is measured too")
    parser.add_argument("--rounds", type=int, default=3, help="alternating forward/score pairs per ratio")
    parser.add_argument("--child", choices=("score", "forward", "plain-forward"), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)

    with tempfile.TemporaryDirectory(prefix="score-bench-") as tmp:
        work = Path(tmp)
        sample = sample_dataset(args.dataset, work)
        _run_child("forward", sample, work / "warm", args)  # warm-up: page cache
        # side by side, in one order per round, so that other load on the machine hits all three alike
        scorer = _run_child("forward", sample, work / "f", args)
        tuned = _run_child("plain-forward", sample, work / "f", args, TUNED_ENV)
        untuned = _run_child("plain-forward", sample, work / "f", args)
        print(f"scorer_forward_s: {scorer['seconds']:.2f}")
        print(f"scorer_forward_sys_s: {scorer['sys_s']:.2f}")
        print(f"tuned_forward_s: {tuned['seconds']:.2f}")
        print(f"untuned_forward_s: {untuned['seconds']:.2f}")
        print(f"untuned_forward_sys_s: {untuned['sys_s']:.2f}")
        # CPU seconds (user + system, the process and its workers): the allocator's tax is system time, and CPU
        # time does not depend on what else the machine runs; the wall-time ratios follow
        print(f"forward_over_tuned_forward: {scorer['cpu_s'] / tuned['cpu_s']:.3f}")
        print(f"forward_untuned_over_tuned: {untuned['cpu_s'] / tuned['cpu_s']:.3f}")
        print(f"forward_over_tuned_forward_wall: {scorer['seconds'] / tuned['seconds']:.3f}")
        _ratio("", sample, work, args)
        for n in (int(s) for s in args.sizes.split(",") if s.strip()):
            data = _repeated(sample, n, work / f"x{n}")
            if n == 2000:
                score = _ratio(f"_n{n}", data, work, args)
            else:
                score = _run_child("score", data, work / f"out{n}", args)
                print(f"score_s_n{n}: {score['seconds']:.2f}")
            print(f"peak_rss_mb_n{n}: {score['peak_rss_mb']:.0f}")


def _ratio(suffix: str, data: Path, work: Path, args: argparse.Namespace) -> dict:
    """``score_over_forward_ratio{suffix}``: a score run over a bare forward pass on ``data``, in ``--rounds``
    alternating pairs of fresh processes; the median of the pairs' ratios (the speed of a shared machine drifts
    between runs minutes apart), with their range. Returns the last score run's measurement."""
    pairs = []
    for _ in range(args.rounds):
        forward = _run_child("forward", data, work / "f", args)
        score = _run_child("score", data, work / f"out{suffix}", args)
        pairs.append((forward, score))
    wall = sorted(s["seconds"] / f["seconds"] for f, s in pairs)
    cpu = sorted(s["cpu_s"] / f["cpu_s"] for f, s in pairs)
    print(f"forward_s{suffix}: {statistics.median(f['seconds'] for f, _ in pairs):.2f}")
    print(f"score_s{suffix}: {statistics.median(s['seconds'] for _, s in pairs):.2f}")
    print(f"score_over_forward_ratio{suffix}: {statistics.median(wall):.3f}")
    print(f"score_over_forward_ratio{suffix}_range: {wall[0]:.3f}-{wall[-1]:.3f}")
    print(f"score_over_forward_cpu_ratio{suffix}: {statistics.median(cpu):.3f}")
    return pairs[-1][1]

if __name__ == "__main__":
    main()
