"""The static HTML dissection report: an index of layers and, per layer, summary, histograms and a unit gallery.

The report is a directory that works offline and from ``file://``: plain HTML with inline CSS and JS, charts as SVG
files and each unit's top images as one JPEG strip, all inside the directory. It is built in a temporary sibling
and renamed into place when complete, so an interrupted run leaves the previous report (or nothing) behind.

Images need the score run's ``top_maps.npz`` (each unit's activation maps on its top images) and the dataset the
results were scored on (checked by fingerprint). Without them, e.g. for imported or reported results, the report
still shows the summary and charts and says why the images are missing.
"""

from __future__ import annotations

import os
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from benchmark.bootstrap import INTERVAL_RULES
from benchmark.html import charts, overlay, render, write_svg
from benchmark.protocol import ordered_categories
from benchmark.results import EXPLANATIONS_FILE, load_explanations, load_results
from broden.dataset import load
from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.filenames import distinct_names
from broden.utils.progress import track

#: Tiles taller than this are scaled down in the report (Broden images are 224 px).
MAX_TILE_HEIGHT = 224
#: A unit's strip is at most as wide as the page's content (``main``: 1400 px less 2 x 20 px padding), where the
#: browser would scale it down anyway: pixels beyond that are never shown, only downloaded.
MAX_STRIP_WIDTH = 1360
#: Units drawn per task of the parallel gallery (a task reopens nothing: each worker keeps its dataset open), and
#: the layer size from which a pool of one worker per core draws them (below it, starting one costs more).
UNITS_PER_TASK = 16
PARALLEL_MIN_UNITS = 128
DEFAULT_TOP_IMAGES = 10
#: With Huffman tables optimised: 22 KB per 10-image strip, 28 MB for 1280 units (85 unoptimised: 30 KB, 38 MB).
JPEG_QUALITY = 75
#: The two unique-detector conventions: display name and summary key.
CONVENTIONS = (("per-category", "unique_per_category"), ("top-label", "unique_top_label"))
#: Each layer's charts and unit images live in ASSETS/<layer slug>/, apart from the pages whatever the layer names.
ASSETS = "layers"


def histogram(units: Sequence[Mapping[str, Any]], category: str, iou_threshold: float) -> list[tuple[str, int]]:
    """(label, units) for the detectors of ``category`` under the per-category rule, most units first.

    These are the bars of the paper's per-layer histogram: a unit counts for the best label it has in this category
    when that label's IoU exceeds the threshold, so the bars sum to the category's detectors and their number is the
    category's unique detectors.
    """
    counts = Counter(
        best["label"]
        for u in units
        if (best := u["categories"].get(category)) is not None and best["iou"] > iou_threshold
    )
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


# -- images --------------------------------------------------------------------------------------------------------
@dataclass
class UnitPictures:
    """Each unit's top images with its active region, from a score run's top_maps.npz and the scored dataset."""

    dataset: Any  # broden.dataset.Broden
    maps: Any  # numpy NpzFile
    maps_path: Path
    count: int

    def __post_init__(self) -> None:
        self._index = {image_id: i for i, image_id in enumerate(self.dataset.ids)}
        self._label_numbers = {lab.name: lab.number for lab in self.dataset.labels.labels}
        self._sample = lru_cache(maxsize=256)(self._load_sample)  # top images recur across units
        self._tile_image = lru_cache(maxsize=256)(self._load_tile_image)

    def _load_sample(self, image_id: str):
        if image_id not in self._index:
            raise BrodenError(f"{self.maps_path}: image {image_id!r} is not in dataset {self.dataset.path}")
        return self.dataset[self._index[image_id]]

    def layer(self, name: str, num_units: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The layer's (maps (U, k, h, w), ids (U, k)), or None when the file has no maps for it."""
        keys = (f"{name}/maps", f"{name}/ids")
        if not all(k in self.maps.files for k in keys):
            return None
        try:
            maps, ids = self.maps[keys[0]], self.maps[keys[1]]
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise BrodenError(
                f"{self.maps_path}: layer {name!r} does not load ({exc}); rerun 'benchmark score'"
            ) from exc
        if maps.ndim != 4 or ids.shape != maps.shape[:2] or maps.shape[0] != num_units:
            raise BrodenError(
                f"{self.maps_path}: layer {name!r} has maps {maps.shape} and ids {ids.shape} for {num_units} units; "
                "rerun 'benchmark score'"
            )
        return maps, ids

    def label_number(self, unit: Mapping[str, Any]) -> int | None:
        best = unit["categories"].get(unit["category"]) or {}
        number = best.get("label_id")
        return number if number is not None else self._label_numbers.get(unit["label"])

    def unit_strip(self, unit: Mapping[str, Any], maps: np.ndarray, ids: np.ndarray, row: int | None = None):
        """The unit's top images side by side, region kept bright and concept outlined; None without a threshold.

        ``maps`` (rows, k, h, w) and ``ids`` (rows, k) hold the unit at ``row`` (default: its unit number).
        """
        threshold = unit.get("threshold")
        if threshold is None:
            return None, []
        row = unit["unit"] if row is None else row
        label = self.label_number(unit)
        picks = [j for j, image_id in enumerate(ids[row]) if image_id][: self.count]
        samples = [self._sample(str(ids[row, j])) for j in picks]
        if not samples:
            return None, []
        # Drawn at the size the page shows them (no pixel is computed only to be scaled away): the image scaled
        # to the tile, the unit's map upsampled and the concept's mask resized straight to it.
        full = [(s.height, s.width) for s in samples]
        height = overlay.tile_height(full, MAX_TILE_HEIGHT, MAX_STRIP_WIDTH)
        sizes = [(height, max(1, round(w * height / h))) for h, w in full]
        images = [self._tile_image(s.id, size) for s, size in zip(samples, sizes)]
        regions = overlay.active_regions(maps[row, picks].astype(np.float32), threshold, sizes)
        tiles = [
            overlay.overlay(im, region, overlay.label_mask(s.pixel, label, region.shape) if label else None)
            for s, im, region in zip(samples, images, regions)
        ]
        return overlay.strip(tiles, height), [s.id for s in samples]

    def _load_tile_image(self, image_id: str, size: tuple[int, int]):
        image = self._sample(image_id).image()
        return image if (image.height, image.width) == size else image.resize((size[1], size[0]), Image.BILINEAR)


def _resolve_dataset(results: Mapping[str, Any], results_path: Path, dataset: str | os.PathLike[str] | None):
    """The dataset to draw images from: ``--dataset`` (errors are fatal), else the recorded path (a note if gone)."""
    if dataset is not None:
        return load(dataset), None
    recorded = results["dataset"].get("path")
    if not recorded:
        return None, "the results do not record the dataset's path; pass --dataset PATH to include images"
    path = Path(recorded)
    if not path.exists() and not path.is_absolute():  # recorded relative to where 'score' ran, or to the results
        path = results_path.parent / path
    if not path.exists():
        return None, f"dataset not found at {recorded}; pass --dataset PATH to include images"
    return load(path), None


def open_top_images(
    results: Mapping[str, Any], results_path: Path, dataset: str | os.PathLike[str] | None, count: int
) -> tuple[UnitPictures | None, str | None]:
    """The image source for a report, or None and the sentence the report shows instead of images."""
    name = (results.get("artifacts") or {}).get("top_maps")
    if not name:
        return None, "these results carry no activation maps (written by 'benchmark score'), so no images are shown"
    maps_path = results_path.parent / name
    if not maps_path.is_file():
        return None, f"{maps_path.name} (the units' activation maps) is missing beside {results_path.name}"
    ds, note = _resolve_dataset(results, results_path, dataset)
    if ds is None:
        return None, note
    expected = results["dataset"].get("fingerprint")
    if expected and ds.fingerprint != expected:
        raise BrodenError(
            f"{ds.path}: dataset fingerprint {ds.fingerprint} does not match {expected} recorded in {results_path}; "
            "pass --dataset with the dataset these results were scored on"
        )
    try:
        maps = np.load(maps_path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise BrodenError(f"{maps_path}: not a readable .npz ({exc}); rerun 'benchmark score'") from exc
    return UnitPictures(ds, maps, maps_path, count), None


# -- pages ---------------------------------------------------------------------------------------------------------
def summary_table(summary: Mapping[str, Any], categories: Sequence[str],
                  intervals: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Rows 'all' then each category: detectors and unique detectors under both conventions, with % of units, and
    each count's 95% bootstrap interval (``<rule>_interval``, None without one) from the layer's ``intervals``."""
    units = summary["units"]
    intervals = intervals or {}
    top_det = summary.get("detectors_top_label") or {}
    top_uni = summary.get("unique_top_label") or {}
    rows = []
    for c in ["all", *categories]:
        det = summary["detectors"].get(c)
        rows.append(
            {
                "category": c,
                "detectors": det,
                "fraction": None if det is None else det / units,
                "unique_per_category": summary["unique_per_category"].get(c),
                "detectors_top_label": top_det.get(c),
                "fraction_top_label": None if top_det.get(c) is None else top_det[c] / units,
                "unique_top_label": top_uni.get(c),
                **{f"{rule}_interval": (intervals.get(rule) or {}).get(c) for rule in INTERVAL_RULES},
            }
        )
    return rows


def _layer_histograms(root: Path, slug: str, layer: Mapping[str, Any], categories: Sequence[str], thr: float):
    out = []
    for c in categories:
        bars = histogram(layer["units"], c, thr)
        detectors = sum(n for _, n in bars)
        title = f"{c} detectors: {detectors}/{layer['num_units']} units, {len(bars)} unique"
        src = None
        if bars:
            svg = charts.category_bar_chart(
                [b[0] for b in bars], [b[1] for b in bars], title=title, color=charts.category_color(c)
            )
            src = write_svg(root, f"{ASSETS}/{slug}/histogram-{c}.svg", svg)
        out.append({"category": c, "title": title, "src": src, "detectors": detectors, "unique": len(bars)})
    return out


def _explanations(results: Mapping[str, Any], results_path: Path) -> dict[str, dict[int, dict[str, Any]]]:
    """Layer -> unit -> its formula, from the ``explanations.json`` of 'benchmark explain' beside the results."""
    path = results_path.parent / EXPLANATIONS_FILE
    if not path.is_file():
        return {}
    doc = load_explanations(path)
    if (doc["results"]["run_key"], doc["results"]["created"]) != (
        results.get("environment", {}).get("run_key"), results["created"]
    ):
        raise BrodenError(f"{path}: explains another run than {results_path.name}; run 'benchmark explain "
                          f"{results_path}' again or remove it")
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for layer in doc["layers"]:
        out[layer["name"]] = {
            u["unit"]: {**u["formula"], "single": u["single"]["formula"], "single_iou": u["single"]["iou"]}
            for u in layer["units"] if u["formula"] is not None
        }
    return out


def _gallery(
    root: Path, slug: str, layer: Mapping[str, Any], categories: Sequence[str], thr: float, images: UnitPictures | None,
    formulas: Mapping[int, dict[str, Any]],
) -> tuple[list[dict[str, Any]], str | None]:
    from broden.utils.parallel import choose_workers, chunked, ordered_map

    layer_maps = images.layer(layer["name"], layer["num_units"]) if images else None
    note = None
    if images and layer_maps is None:
        note = f"{images.maps_path.name} has no activation maps for layer {layer['name']!r}"
    cards = []
    units = sorted(layer["units"], key=lambda u: (-u["iou"], u["unit"]))
    for u in units:
        cards.append({
            "unit": u["unit"],
            "label": u["label"],
            "category": u["category"],
            "iou": u["iou"],
            "iou_interval": u.get("iou_interval"),
            "held_out": u.get("held_out"),
            "detector": u["iou"] > thr,
            "others": [
                {"category": c, "label": b["label"], "iou": b["iou"]}
                for c in categories
                if c != u["category"] and (b := u["categories"].get(c)) is not None and b["iou"] > thr
            ],
            "src": None,
            "formula": formulas.get(u["unit"]),
        })
    if not layer_maps or images is None:
        return cards, note
    maps, ids = layer_maps
    tasks = [
        _StripTask(images.dataset.path, images.count, root, slug,
                   [(u, maps[u["unit"]], ids[u["unit"]]) for u in chunk])
        for chunk in chunked(units, UNITS_PER_TASK)
    ]
    # JPEG encoding and the overlays dominate: one worker per core (fork-free), inline for small layers
    workers = choose_workers(None, len(units), min_items=PARALLEL_MIN_UNITS)
    drawn = ordered_map(_draw_strips, tasks, workers=workers) if workers > 1 else map(_draw_strips, tasks)
    by_unit = {}
    for result in track(drawn, f"report {layer['name']}", total=len(units), advance_by=len):
        by_unit.update(result)
    for card, u in zip(cards, units):
        if card["unit"] in by_unit:
            rel, width, height, shown = by_unit[card["unit"]]
            acts = {t["id"]: t["activation"] for t in u.get("top_images") or []}
            card.update(src=rel, width=width, height=height,
                        images=[{"id": i, "activation": acts.get(i)} for i in shown])
    return cards, note


@dataclass
class _StripTask:
    """Units of one layer to draw: (unit record, its maps (k, h, w), its top image ids (k,)) each."""

    dataset_path: Path
    count: int
    root: Path
    slug: str
    units: list[tuple[Mapping[str, Any], np.ndarray, np.ndarray]]


_WORKER_PICTURES: dict[tuple[str, int], UnitPictures] = {}


def _draw_strips(task: _StripTask) -> dict[int, tuple[str, int, int, list[str]]]:
    """Draw and save each unit's strip; unit -> (path relative to the report, width, height, image ids shown)."""
    from broden.dataset import load

    key = (str(task.dataset_path), task.count)
    if key not in _WORKER_PICTURES:  # once per process: the dataset stays open, its samples cached
        import torch

        torch.set_num_threads(1)  # small upsampling calls: extra threads only wait for each other
        _WORKER_PICTURES[key] = UnitPictures(load(task.dataset_path), None, Path(), task.count)
    pictures = _WORKER_PICTURES[key]
    out = {}
    for unit, maps, ids in task.units:
        picture, shown = pictures.unit_strip(unit, maps[None], ids[None], row=0)
        if picture is not None:
            rel = f"{ASSETS}/{task.slug}/unit-{unit['unit']:04d}.jpg"
            picture.save(task.root / rel, quality=JPEG_QUALITY, optimize=True)
            out[unit["unit"]] = (rel, picture.width, picture.height, shown)
    return out


def _index_charts(root: Path, results: Mapping[str, Any], categories: Sequence[str]) -> list[dict[str, str]]:
    names = [layer["name"] for layer in results["layers"]]
    out = []
    for convention, key in CONVENTIONS:
        summaries = [layer["summary"].get(key) for layer in results["layers"]]
        if any(s is None for s in summaries):
            continue
        stacks = {c: [s.get(c, 0) for s in summaries] for c in categories}
        title = f"Unique detectors per layer ({convention})"
        svg = charts.stacked_category_chart(names, stacks, title=title, ylabel="unique detectors")
        out.append({"src": write_svg(root, f"unique-{convention}.svg", svg), "alt": title})
    return out


def build_report(
    results_path: str | os.PathLike[str],
    *,
    dataset: str | os.PathLike[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    top_images: int = DEFAULT_TOP_IMAGES,
) -> tuple[Path, str | None]:
    """Write the report directory for ``results_path`` (default ``report/`` beside it).

    Returns its path and, when the report has no images, the sentence saying why.
    """
    if top_images < 1:
        raise BrodenError(f"--top-images {top_images}: give at least 1")
    results_path = Path(results_path)
    results = load_results(results_path)
    out = Path(out) if out is not None else results_path.parent / "report"
    images, images_note = open_top_images(results, results_path, dataset, top_images)
    formulas = _explanations(results, results_path)
    protocol = results["protocol"]
    thr = protocol["iou_threshold"]
    categories = ordered_categories(protocol["categories"])
    slug = distinct_names([layer["name"] for layer in results["layers"]], "layer")
    pages = [f"layer-{slug[layer['name']]}.html" for layer in results["layers"]]

    with atomic.atomic_path(out, is_dir=True) as root:
        layers = []
        for i, layer in enumerate(results["layers"]):
            s = slug[layer["name"]]
            (root / ASSETS / s).mkdir(parents=True)
            has_units = bool(layer.get("units"))
            histograms = _layer_histograms(root, s, layer, categories, thr) if has_units else []
            cards, layer_note = (_gallery(root, s, layer, categories, thr, images, formulas.get(layer["name"], {}))
                                 if has_units else ([], None))
            html = render(
                "report_layer.html.j2",
                results=results,
                layer=layer,
                categories=categories,
                summary=summary_table(layer["summary"], categories, layer.get("intervals")),
                held_out=summary_table(layer["held_out"]["summary"], categories) if "held_out" in layer else None,
                histograms=histograms,
                cards=cards,
                has_units=has_units,
                images_note=layer_note or images_note,
                prev=pages[i - 1] if i > 0 else None,
                next=pages[i + 1] if i + 1 < len(pages) else None,
            )
            (root / pages[i]).write_text(html, encoding="utf-8")
            layers.append({"layer": layer, "href": pages[i], "summary": layer["summary"]})
        html = render(
            "report_index.html.j2",
            results=results,
            layers=layers,
            categories=categories,
            charts=_index_charts(root, results, categories),
            images_note=images_note,
        )
        (root / "index.html").write_text(html, encoding="utf-8")
    return out, images_note
