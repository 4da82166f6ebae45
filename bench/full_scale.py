"""Full-scale benchmark (opt-in: ``make bench-full``): a synthetic Broden of the real release's size, scored from
supplied 512 x 7 x 7 activations with planted detectors, at several sizes for the growth curve.

The dataset has Broden's 63,305 images and 1,197 labels (color 11, object 560, part 150, material 32, scene 397,
texture 47), images 224 px and masks 112 px: per image a color layer, an object layer of 2-7 rectangles of
objects drawn from a Zipf-like law, sparse part and material layers, and a scene or two textures. It is written
through ``broden.dataset.write_dataset`` (the one row encoder of convert, build and sample), so the score run reads
exactly what a converted release gives it. Images are a few distinct JPEGs reused (the run never decodes them:
activations are supplied). Units 0..63 are planted detectors: unit u fires on object ``PLANTED[u]`` (its mask
averaged over each 16x16 cell, plus noise); the rest are ReLU noise.

For each size (default 2000, 20000, 63305) one ``benchmark score --activations`` run in a fresh process is timed:
pass 1 (thresholds, top images) and pass 2 (mask decoding in workers + tally) wall seconds, images per second,
CPU seconds (the process and its workers: on a shared machine the wall time says more about the other load), and
the peak resident memory of its main process; and how many planted detectors the run found. Prints ``name: value`` lines, ending with ``full_tally_s``
(pass 2 at the largest size), ``full_peak_rss_mb`` and ``rss_growth_2000_to_full`` (peak RSS at the largest size
over that at 2,000), and writes the growth curve to ``--plot`` (PNG) when given.

    python bench/full_scale.py [--sizes 2000,20000,63305] [--work DIR] [--plot bench/full_scale.png]
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import peak_rss_mb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FULL_IMAGES = 63305
COUNTS = {"color": 11, "object": 560, "part": 150, "material": 32, "scene": 397, "texture": 47}  # 1,197 labels
UNITS, FEATURE, SIZE, SEG = 512, 7, 224, 112
PLANTED_UNITS = 64
CHUNK = 1000  # images per generation task and per activation block


def _numbers() -> dict[str, np.ndarray]:
    """Each category's label numbers, numbered densely in category order from 1."""
    out, nxt = {}, 1
    for cat, count in COUNTS.items():
        out[cat] = np.arange(nxt, nxt + count)
        nxt += count
    return out


NUMBERS = _numbers()
#: the planted detectors' concepts: the most frequent objects (so every size has enough of them)
PLANTED = NUMBERS["object"][:PLANTED_UNITS]


def _zipf(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, len(labels) + 1)
    return rng.choice(labels, size=size, p=weights / weights.sum())


def _rectangles(rng: np.random.Generator, labels: np.ndarray, count: int, fill: float) -> np.ndarray:
    layer = np.zeros((SEG, SEG), np.int32)
    for label in _zipf(rng, labels, count):
        h, w = (rng.uniform(0.15, 0.6, 2) * SEG).astype(int) + 4
        y, x = rng.integers(0, SEG - h + 1), rng.integers(0, SEG - w + 1)
        layer[y : y + h, x : x + w] = label
    if fill < 1:
        layer[rng.random((SEG // 8, SEG // 8)).repeat(8, 0).repeat(8, 1) > fill] = 0
    return layer


def _image(i: int, seed: int) -> tuple[dict, np.ndarray]:
    """Row ``i``'s labels and its (UNITS, 7, 7) float16 activations."""
    rng = np.random.default_rng([seed, i])
    color = _zipf(rng, NUMBERS["color"], (SEG // 16, SEG // 16)).repeat(16, 0).repeat(16, 1).astype(np.int32)
    objects = _rectangles(rng, NUMBERS["object"], int(rng.integers(2, 8)), 1.0)
    maps = {"color": [color], "object": [objects], "part": [_rectangles(rng, NUMBERS["part"], 2, 0.5)],
            "material": [_rectangles(rng, NUMBERS["material"], 1, 0.4)]}
    scene = rng.random() < 0.6
    image_labels = {"scene": [int(_zipf(rng, NUMBERS["scene"], 1)[0])] if scene else [],
                    "texture": [] if scene else [int(t) for t in rng.choice(NUMBERS["texture"], 2, replace=False)]}
    acts = np.maximum(rng.standard_normal((UNITS, FEATURE, FEATURE)), 0) * rng.lognormal(0, 0.25, (UNITS, 1, 1))
    cells = SEG // FEATURE
    for u, label in enumerate(PLANTED):
        share = (objects == label).reshape(FEATURE, cells, FEATURE, cells).mean(axis=(1, 3))
        acts[u] = acts[u] * 0.2 + share * 6.0
    return {"maps": maps, "image_labels": image_labels}, acts.astype(np.float16)


def _chunk(job: tuple[int, int, int]) -> tuple[list[dict], np.ndarray]:
    """Rows ``start:end``: encoded dataset rows (with a placeholder image) and their activations."""
    from broden.dataset import encode_row
    from broden.split import assign_split

    start, end, seed = job
    rows, acts = [], np.empty((end - start, UNITS, FEATURE, FEATURE), np.float16)
    for i in range(start, end):
        labels, acts[i - start] = _image(i, seed)
        rid = f"synthetic/{i:06d}.jpg"
        rows.append(encode_row(id=rid, image=b"", split=assign_split(rid), source="synthetic", size=(SIZE, SIZE),
                               seg_size=(SEG, SEG), label_maps=labels["maps"], image_labels=labels["image_labels"]))
    return rows, acts


def _jpegs(count: int = 8) -> list[bytes]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        buf = io.BytesIO()
        pixels = (rng.random((SIZE // 8, SIZE // 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
        Image.fromarray(pixels).save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


def _label_table():
    from broden.labels import BRODEN_CATEGORIES, Category, assign_codes

    categories = [Category(name, kind) for name, kind in BRODEN_CATEGORIES]
    stats = [(int(n), f"{cat}-{int(n)}", 0.01, (), {cat: (100, 0.01)}) for cat, numbers in NUMBERS.items()
             for n in numbers]
    return assign_codes(categories, stats)


def write_synthetic(out: Path, images: int, seed: int = 0) -> tuple[Path, Path]:
    """The dataset (``out/dataset``) and its activations npz (``out/acts.npz``, uncompressed, memory-mapped)."""
    from broden.dataset import write_dataset
    from broden.utils.parallel import default_workers, ordered_map

    out.mkdir(parents=True, exist_ok=True)
    jpegs = _jpegs()
    jobs = [(s, min(s + CHUNK, images), seed) for s in range(0, images, CHUNK)]
    acts_path = out / "acts.f16"
    acts_file = np.lib.format.open_memmap(acts_path, mode="w+", dtype=np.float16,
                                          shape=(images, UNITS, FEATURE, FEATURE))

    def rows():
        for (start, end, _), (chunk_rows, chunk_acts) in zip(jobs, ordered_map(_chunk, jobs, workers=default_workers())):
            acts_file[start:end] = chunk_acts
            for j, row in enumerate(chunk_rows):
                yield {**row, "image": jpegs[(start + j) % len(jpegs)]}

    ds = write_dataset(out / "dataset", rows(), _label_table(), meta={"name": f"synthetic-{images}"})
    acts_file.flush()
    npz = out / "acts.npz"
    _write_npz(npz, acts_path, ds.ids)
    acts_path.unlink()
    return ds.path, npz


def _write_npz(path: Path, acts_npy: Path, ids: list[str]) -> None:
    """An uncompressed npz holding ``activations`` (copied from an .npy in blocks), ``image`` and ``layer``."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        with open(acts_npy, "rb") as src, zf.open("activations.npy", "w", force_zip64=True) as dst:
            while block := src.read(1 << 24):
                dst.write(block)
        for name, array in (("image", np.asarray(ids)), ("layer", np.asarray("layer4"))):
            buf = io.BytesIO()
            np.save(buf, array)
            zf.writestr(f"{name}.npy", buf.getvalue())


def _child(dataset: str, acts: str, out: str) -> None:
    from benchmark.activations import SuppliedActivations
    from benchmark.runtime import tune_allocator
    from benchmark.scorer import Settings, score_activations
    from broden.dataset import load

    tune_allocator()  # as `benchmark score` does first
    ds = load(dataset)
    start = time.perf_counter()
    outcome = score_activations(SuppliedActivations(acts, ds), ds, out, Settings(force=True))
    wall = time.perf_counter() - start
    layer = outcome.results["layers"][0]
    planted = sum(1 for u in layer["units"][:PLANTED_UNITS]
                  if u["iou"] > 0.04 and u["label"] == f"object-{int(PLANTED[u['unit']])}")
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "timings": outcome.results["timings"], "planted_found": planted,
                      "peak_rss_mb": peak_rss_mb(),
                      "environment": outcome.results["environment"]}))


def _plot(points: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [p["images"] for p in points]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(n, [p["tally_s"] for p in points], "o-", label="pass 2: masks + tally")
    left.plot(n, [p["threshold_s"] for p in points], "s-", label="pass 1: thresholds, top images")
    left.set(xlabel="images", ylabel="wall seconds", title="time per pass (supplied 512x7x7 activations)")
    left.legend()
    right.plot(n, [p["peak_rss_mb"] for p in points], "o-")
    right.set(xlabel="images", ylabel="MB", title="peak RSS of the score process", ylim=(0, None))
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=f"2000,20000,{FULL_IMAGES}")
    parser.add_argument("--work", help="directory for the datasets (default: a temporary one, removed after)")
    parser.add_argument("--plot", help="write the growth curve to this PNG")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    with tempfile.TemporaryDirectory(prefix="broden-full-", dir=args.work) as tmp:
        points = []
        for n in sizes:
            t0 = time.perf_counter()
            dataset, acts = write_synthetic(Path(tmp) / f"n{n}", n)
            generate_s = time.perf_counter() - t0
            child = subprocess.run([sys.executable, __file__, "--child", str(dataset), str(acts), str(Path(tmp) / f"out{n}")],
                                   capture_output=True, text=True, check=False)
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            r = json.loads(child.stdout.strip().splitlines()[-1])
            t = r["timings"]
            point = {"images": n, "tally_s": t["tally_s"], "threshold_s": t["forward_s"] + t["threshold_s"],
                     "peak_rss_mb": r["peak_rss_mb"]}
            points.append(point)
            print(f"generate_s_n{n}: {generate_s:.1f}")
            print(f"pass1_s_n{n}: {point['threshold_s']:.1f}")
            print(f"pass2_s_n{n}: {t['tally_s']:.1f}")
            print(f"score_s_n{n}: {r['wall_s']:.1f}")
            print(f"images_per_s_n{n}: {n / r['wall_s']:.0f}")
            print(f"cpu_s_n{n}: {r['cpu_s']:.1f}")  # the process and its workers, start-up included
            print(f"peak_rss_mb_n{n}: {r['peak_rss_mb']:.0f}")
            print(f"planted_found_n{n}: {r['planted_found']}/{PLANTED_UNITS}")
            print(f"budget_n{n}: threads {r['environment']['tally_threads']}, workers {r['environment']['tally_workers']}",
                  flush=True)
            shutil.rmtree(Path(tmp) / f"n{n}")  # the next size needs the disk
        largest = points[-1]
        base = next((p for p in points if p["images"] == 2000), points[0])
        print(f"full_images: {largest['images']}")
        print(f"full_tally_s: {largest['tally_s']:.1f}")
        print(f"full_peak_rss_mb: {largest['peak_rss_mb']:.0f}")
        print(f"rss_growth_2000_to_full: {largest['peak_rss_mb'] / base['peak_rss_mb']:.3f}")
        if args.plot:
            _plot(points, Path(args.plot))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
