"""ResNet-18 layer4 on one GPU over the full-scale synthetic Broden (bench/full_scale.py's dataset): images per
second per pass and the share of pass 1 that data loading alone takes. Random weights: only the time matters.

    python bench/gpu_timing.py [--images 63305] [--device cuda] [--batch-size 128] [--work DIR]

Prints ``name: value`` lines: ``gpu_pass1_images_per_s``, ``gpu_pass2_images_per_s``, ``gpu_score_s``,
``gpu_loading_share`` (bare decoding + preprocessing with the run's workers over pass 1's wall time: near 1 means
the GPU waits for the CPUs), and the device's name.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=63305)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--work", help="directory for the dataset (default: a temporary one)")
    args = parser.parse_args()

    import torch
    from torchvision.models import resnet18

    from bench.full_scale import write_synthetic
    from benchmark.activations import RowBatches, batch_loader
    from benchmark.models.loader import LoadedModel, Preprocessing
    from benchmark.runtime import plan_threads, tune_allocator
    from benchmark.scorer import Settings, score_model

    tune_allocator()
    with tempfile.TemporaryDirectory(prefix="broden-gpu-", dir=args.work) as tmp:
        t0 = time.perf_counter()
        dataset_path, _ = write_synthetic(Path(tmp) / "data", args.images)
        print(f"generate_s: {time.perf_counter() - t0:.1f}", flush=True)
        from broden.dataset import load

        ds = load(dataset_path)
        budget = plan_threads(None, None, args.device)
        pre = Preprocessing((224, 224))
        t0 = time.perf_counter()
        for _ in batch_loader(RowBatches(ds, range(len(ds)), args.batch_size, preprocess=pre), budget.workers):
            pass
        loading_s = time.perf_counter() - t0
        model = LoadedModel(name="resnet18-random", source="file", module=resnet18(), layers=["layer4"])
        t0 = time.perf_counter()
        outcome = score_model(model, ds, Path(tmp) / "out",
                              Settings(device=args.device, batch_size=args.batch_size, force=True))
        score_s = time.perf_counter() - t0
        t = outcome.results["timings"]
        pass1 = t["forward_s"] + t["threshold_s"]
        print(f"device_name: {torch.cuda.get_device_name(0) if args.device.startswith('cuda') else args.device}")
        print(f"images: {len(ds)}")
        print(f"workers: {budget.workers}")
        print(f"gpu_pass1_s: {pass1:.1f}")
        print(f"gpu_pass2_s: {t['tally_s']:.1f}")
        print(f"gpu_pass1_images_per_s: {len(ds) / pass1:.0f}")
        print(f"gpu_pass2_images_per_s: {len(ds) / t['tally_s']:.0f}")
        print(f"gpu_loading_s: {loading_s:.1f}")
        print(f"gpu_loading_share: {loading_s / pass1:.2f}")
        print(f"gpu_score_s: {score_s:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
