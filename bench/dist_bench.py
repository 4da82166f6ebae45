"""Benchmark of a distributed `benchmark score`: one process against two on the same data, on this machine.

Prints ``name: value`` lines:

  dist_single_s           wall time of `benchmark score` (MobileNetV2 features.18 on the sample dataset) as one
                          process with one thread
  dist_2proc_s            the same run as `benchmark score --nproc 2` (torch.distributed.run, gloo), one thread
                          per process
  dist_speedup_2proc      dist_single_s / dist_2proc_s (near 2 on two free cores: the run is forward-bound)
  dist_merge_overhead_s   seconds rank 0 spent in the merges (gathering and merging the pass-1 states, sending
                          the thresholds, summing the tallies), from the results' timings (merge_s)
  dist_cpu_single_s       CPU seconds (user + system) of the one-process command
  dist_cpu_2proc_s        CPU seconds of the two-process command, all its processes (launcher, ranks) together:
                          the excess over dist_cpu_single_s is what distributing costs, whatever the machine's load
  dist_identical          1 when the two runs' layers (units, thresholds, summary, top images) are byte-identical
  dist_load_avg_1m        the machine's 1-minute load average at the end: on a shared machine a speedup is only
                          meaningful when it is below the number of cores

Both runs include process start-up (import torch, load the model); decoding runs in the scoring processes
(--workers 0), so each process uses one core.

    python bench/dist_bench.py [--dataset PATH] [--batch-size N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import add_dataset_argument, sample_dataset

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "mobilenet_v2.py"


def _score(dataset: Path, out: Path, batch_size: int, nproc: int | None) -> tuple[float, float, dict]:
    """Wall seconds and CPU seconds (every process of it) of one `benchmark score` command, and its results."""
    cmd = [sys.executable, "-m", "benchmark", "score", str(MODEL), "--dataset", str(dataset), "--out", str(out),
           "--batch-size", str(batch_size), "--workers", "0", "--threads", "1", "--force"]
    if nproc is not None:
        cmd += ["--nproc", str(nproc)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "BRODEN_PROGRESS": "0"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, json.loads((out / "results.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_argument(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dist-bench-") as tmp:
        work = Path(tmp)
        sample = sample_dataset(args.dataset, work)
        single_s, single_cpu, single = _score(sample, work / "single", args.batch_size, None)
        dual_s, dual_cpu, dual = _score(sample, work / "dual", args.batch_size, 2)
        print(f"dist_single_s: {single_s:.2f}")
        print(f"dist_2proc_s: {dual_s:.2f}")
        print(f"dist_speedup_2proc: {single_s / dual_s:.3f}")
        print(f"dist_merge_overhead_s: {dual['timings']['merge_s']:.3f}")
        print(f"dist_cpu_single_s: {single_cpu:.2f}")
        print(f"dist_cpu_2proc_s: {dual_cpu:.2f}")
        print(f"dist_identical: {int(json.dumps(single['layers']) == json.dumps(dual['layers']))}")
        print(f"dist_load_avg_1m: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
