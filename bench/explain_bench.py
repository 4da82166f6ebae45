"""Benchmark of `benchmark explain`: compositional explanations of every unit against the cost of a score run.

Prints ``name: value`` lines:

  explain_s_1280_units_len3_beam5   wall time of `explain` for all 1280 units of MobileNetV2 features.18 on the
                                    sample dataset, formulas of up to 3 concepts, beam 5, activations recomputed
                                    from the model (the score run kept no cache)
  explain_over_score_ratio          that time over the wall time of the `score` run on the same data (goal <= 3)
  score_s                           the score run
  explain_s_from_scorer_cache       the same explanations from the activations `score --keep-cache` left
  explain_pass{1,2,3}_s             the passes of the first explain run (pass 1 reads the data, 2 and 3 its record)
  mean_iou_len{1,2,3}               mean IoU of the units' best formula of up to 1, 2, 3 concepts

    python bench/explain_bench.py [--dataset PATH] [--workers N] [--batch-size N] [--device cpu]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from _common import add_dataset_argument, sample_dataset

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "mobilenet_v2.py"


def main() -> None:
    from benchmark.explain import ExplainSettings, explain
    from benchmark.models.loader import load_model
    from benchmark.scorer import CACHE_DIR, Settings, score_model
    from benchmark.summary import explanation_summary
    from broden.dataset import load

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dataset_argument(parser)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="explain-bench-") as tmp:
        work = Path(tmp)
        sample = sample_dataset(args.dataset, work)
        ds = load(sample)
        model = load_model(str(MODEL))
        start = time.perf_counter()
        score_model(model, ds, work / "run", Settings(batch_size=args.batch_size, workers=args.workers,
                                                      device=args.device, force=True, keep_cache=True))
        score_s = time.perf_counter() - start
        results = work / "run" / "results.json"
        settings = ExplainSettings(max_length=3, beam=5, batch_size=args.batch_size, workers=args.workers,
                                   device=args.device)
        start = time.perf_counter()
        cached = explain(results, settings, out=work / "from-cache")
        cached_s = time.perf_counter() - start
        shutil.rmtree(work / "run" / CACHE_DIR)  # what a plain `score` leaves: activations come from the model
        start = time.perf_counter()
        outcome = explain(results, settings, out=work / "from-model")
        explain_s = time.perf_counter() - start
        assert outcome.explanations["settings"]["activations"] == "model"
        assert outcome.explanations["layers"] == cached.explanations["layers"]
        units = len(outcome.explanations["layers"][0]["units"])
        print(f"explain_s_{units}_units_len3_beam5: {explain_s:.2f}")
        print(f"explain_over_score_ratio: {explain_s / score_s:.3f}")
        print(f"score_s: {score_s:.2f}")
        print(f"explain_s_from_scorer_cache: {cached_s:.2f}")
        for name, value in outcome.explanations["timings"].items():
            if name.startswith("pass"):
                print(f"explain_{name}: {value:.2f}")
        for row in explanation_summary(outcome.explanations):
            print(f"mean_iou_len{row['length']}: {row['mean_iou']:.4f}")


if __name__ == "__main__":
    main()
