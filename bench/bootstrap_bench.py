"""Benchmark of the confidence intervals: what the fold tallies and the bootstrap add to a score run.

Prints ``name: value`` lines:

  score_total_s             a full score run (MobileNetV2 features.18 on the sample dataset, 1000 replicates)
  bootstrap_s               the bootstrap's share of it (timings.bootstrap_s of the results)
  bootstrap_overhead_pct    bootstrap_s / (score_total_s - bootstrap_s), in %
  fold_tally_overhead_pct   extra tally time for keeping the counts per fold and split: the same batches tallied
                            with 16 folds and the split, against one fold and no split (a lower bound on the cost
                            over a tally without folds, which also pays one fold's adds)
  intervals_overhead_pct    both together, as % of the run without them: bootstrap_s plus the run's tally_s scaled
                            by the fold tally's overhead (goal <= 10)
  fold_tally_mb             memory of the per-fold and train-split counts of that layer ((G + 2) x U x NL int64,
                            independent of the number of images)
  bootstrap_work_mb         the bootstrap's working arrays (3 x REPLICATE_CHUNK x units x categories float64, and the
                            replicates x units float64 unit IoUs)

    python bench/bootstrap_bench.py [--dataset PATH] [--workers N] [--replicates N] [--repeats N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from _common import add_dataset_argument, sample_dataset

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "mobilenet_v2.py"
LAYER = "features.18"


def _tally_seconds(dataset, acts_by_batch, thresholds, folds: int, with_split: bool) -> tuple[float, object]:
    from benchmark.bootstrap import fold_tensor
    from benchmark.tally import Tally, TallyInput

    cats = dataset.labels.category_names
    tally = Tally(thresholds.shape[0], dataset.labels.max_number + 1, cats, dataset.labels.primary_categories(cats),
                  folds=folds)
    start = time.perf_counter()
    for batch, acts in acts_by_batch:
        fold = fold_tensor(batch.ids, folds) if folds > 1 else None
        train = torch.tensor([s == "train" for s in batch.splits]) if with_split else None
        tally.add(TallyInput(acts.float(), batch.label_maps, batch.image_labels, fold, train), thresholds)
    return time.perf_counter() - start, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_argument(parser)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="tally timings per variant (best is kept)")
    args = parser.parse_args()

    from benchmark.activations import RowBatches, batch_loader
    from benchmark.activations.producers import ModelProducer
    from benchmark.bootstrap import FOLDS, REPLICATE_CHUNK
    from benchmark.models.loader import load_model
    from benchmark.scorer import Settings, score_model
    from broden.dataset import load

    with tempfile.TemporaryDirectory(prefix="bootstrap-bench-") as tmp:
        work = Path(tmp)
        path = sample_dataset(args.dataset, work)
        ds = load(path)
        model = load_model(str(MODEL))
        outcome = score_model(model, ds, work / "out", Settings(layers=[LAYER], workers=args.workers,
                                                                bootstrap=args.replicates, force=True))
        timings = outcome.results["timings"]
        total, boot = timings["total_s"], timings["bootstrap_s"]

        producer = ModelProducer(model, ds, [LAYER], "cpu")
        cats = ds.labels.category_names
        with torch.inference_mode():
            acts = [a[LAYER] for _, a in producer.batches(32, args.workers, 0, None)]
        labelled = list(batch_loader(RowBatches(ds, range(len(ds)), 32, categories=cats), args.workers))
        thresholds = torch.tensor([u["threshold"] for u in outcome.results["layers"][0]["units"]])
        pairs = list(zip(labelled, acts))
        _tally_seconds(ds, pairs, thresholds, 1, False)  # warm-up
        plain_s, folded_s = [], []
        for _ in range(args.repeats):  # interleaved, best of each: a loaded machine's noise is one-sided
            plain_s.append(_tally_seconds(ds, pairs, thresholds, 1, False)[0])
            seconds, tally = _tally_seconds(ds, pairs, thresholds, FOLDS, True)
            folded_s.append(seconds)
        plain, folded = min(plain_s), min(folded_s)
        fold_bytes = sum(getattr(tally, n).numel() * 8 for n in dir(tally)
                         if n.startswith(("fold_", "train_")) and isinstance(getattr(tally, n), torch.Tensor))
        work_bytes = (3 * REPLICATE_CHUNK * len(cats) + args.replicates) * tally.num_units * 8
        print(f"score_total_s: {total:.2f}")
        print(f"bootstrap_s: {boot:.2f}")
        print(f"bootstrap_overhead_pct: {100 * boot / (total - boot):.1f}")
        print(f"fold_tally_overhead_pct: {100 * (folded - plain) / plain:.1f}")
        fold_extra = timings["tally_s"] * max(folded - plain, 0.0) / folded
        print(f"intervals_overhead_pct: {100 * (boot + fold_extra) / (total - boot - fold_extra):.1f}")
        print(f"fold_tally_mb: {fold_bytes / 2**20:.1f}")
        print(f"bootstrap_work_mb: {work_bytes / 2**20:.1f}")


if __name__ == "__main__":
    main()
