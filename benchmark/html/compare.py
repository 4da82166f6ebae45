"""Comparing results files: one model's units before and after fine-tuning, a checkpoint series, or several models.

Modes (``auto`` picks from the files): ``units`` (two files of the same architecture: how each unit's concept
changed), ``checkpoints`` (three or more files of the same architecture, in training order: unique detectors per
category over the series, plus the unit table between the first and the last), ``models`` (anything else: unique
detectors per category side by side). Same architecture means the same layer names with the same unit counts.

The files written and the CSV columns (OUTPUT_HELP, also shown by 'benchmark compare --help') follow.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from benchmark.html import charts, render, write_svg
from benchmark.html.report import CONVENTIONS
from benchmark.protocol import ordered_categories
from benchmark.results import load_results
from benchmark.tables import to_csv
from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.filenames import distinct_names

MODES = ("auto", "units", "checkpoints", "models")
STATUSES = ("changed", "gained", "lost", "kept", "none")
UNIT_COLUMNS = (
    "layer", "unit", "status", "label_a", "category_a", "iou_a", "label_b", "category_b", "iou_b", "iou_change",
)
COUNT_COLUMNS = ("name", "file", "layer", "units", "category", "detectors", "unique_per_category", "unique_top_label")
PROTOCOL_KEYS = ("quantile", "iou_threshold", "compat", "categories")
DIFFERENCE_COLUMNS = ("layer", "rule", "category", "a", "b", "difference", "low", "high", "significant")
#: What two runs' bootstraps must share for their replicates to be paired.
PAIRING_KEYS = ("folds", "fold_images", "replicates", "seed", "confidence")

OUTPUT_HELP = """\
Files written into the output directory:

    index.html   the comparison page (charts as SVG files beside it)
    compare.csv  units and checkpoints modes, one row per unit of each layer, first file (a) against last (b):
                   layer, unit, status, label_a, category_a, iou_a, label_b, category_b, iou_b, iou_change
                 status: kept (a detector in both, same label), changed (a detector in both, different label),
                 gained (a detector only in b), lost (a detector only in a), none (a detector in neither);
                 iou_change = iou_b - iou_a. Rows are sorted changed, gained, lost, kept, none, then by
                 |iou_change|, largest first.
                 models mode, one row per file, layer and category (category all = the layer's totals):
                   name, file, layer, units, category, detectors, unique_per_category, unique_top_label
                 (unique_top_label is empty for reported entries that never published it).
    counts.csv   units and checkpoints modes: the models-mode table, for every file.
    difference.csv  two files scored on the same dataset with the same bootstrap (folds, images per fold,
                 replicates, seed): one row per layer, rule and category (all = the layer's total):
                   layer, rule, category, a, b, difference, low, high, significant
                 difference = b - a; [low, high] its paired 95% bootstrap interval (the same fold weights in
                 both runs); significant is "yes" when the interval leaves out 0, else "not significant".
"""
__doc__ = f"{__doc__}\n{OUTPUT_HELP}"


@dataclass(frozen=True)
class Entry:
    """One results file in the comparison, with its display name."""

    name: str
    path: Path
    results: dict[str, Any]

    @property
    def architecture(self) -> tuple[tuple[str, int], ...]:
        return tuple((layer["name"], layer["num_units"]) for layer in self.results["layers"])

    @property
    def has_units(self) -> bool:
        return all(layer.get("units") for layer in self.results["layers"])

    @property
    def threshold(self) -> float:
        return self.results["protocol"]["iou_threshold"]


@dataclass(frozen=True)
class UnitChange:
    """How one unit's best concept differs between two results of the same architecture."""

    layer: str
    unit: int
    status: str
    label_a: str
    category_a: str
    iou_a: float
    label_b: str
    category_b: str
    iou_b: float

    @property
    def iou_change(self) -> float:
        return self.iou_b - self.iou_a

    def line(self) -> str:
        """'unit 8: dog (object, IoU 0.200) → grass (material, IoU 0.051)'."""
        return (
            f"unit {self.unit}: {self.label_a or '(none)'} ({self.category_a}, IoU {self.iou_a:.3f}) → "
            f"{self.label_b or '(none)'} ({self.category_b}, IoU {self.iou_b:.3f})"
        )

    def row(self) -> dict[str, Any]:
        return {
            "layer": self.layer, "unit": self.unit, "status": self.status,
            "label_a": self.label_a, "category_a": self.category_a, "iou_a": self.iou_a,
            "label_b": self.label_b, "category_b": self.category_b, "iou_b": self.iou_b,
            "iou_change": round(self.iou_change, 6),
        }


def display_names(paths: Sequence[Path], results: Sequence[dict[str, Any]]) -> list[str]:
    """Results names when distinct, else file names, else parent/file: checkpoints of one model share a name."""
    for names in (
        [r["name"] for r in results],
        [p.stem for p in paths],
        [f"{p.parent.name}/{p.stem}" for p in paths],
    ):
        if len(set(names)) == len(names):
            return names
    return [f"{i + 1}: {r['name']}" for i, r in enumerate(results)]


def load_entries(paths: Sequence[str | os.PathLike[str]], names: Sequence[str] | None = None) -> list[Entry]:
    if len(paths) < 2:
        raise BrodenError("compare needs at least two results files")
    files = [Path(p) for p in paths]
    results = [load_results(p) for p in files]
    if names is None:
        names = display_names(files, results)
    elif len(names) != len(files):
        raise BrodenError(f"--names gives {len(names)} names for {len(files)} results files; give one per file")
    return [Entry(n, p, r) for n, p, r in zip(names, files, results)]


def _architecture_difference(a: Entry, b: Entry) -> str:
    layers_a = ", ".join(f"{n}: {u} units" for n, u in a.architecture)
    layers_b = ", ".join(f"{n}: {u} units" for n, u in b.architecture)
    return f"{a.path} ({layers_a}) and {b.path} ({layers_b}) have different layers"


def choose_mode(entries: Sequence[Entry], mode: str = "auto") -> str:
    """The comparison to make; an explicit mode the files cannot support is an error that says which to use."""
    if mode not in MODES:
        raise BrodenError(f"--mode {mode}: choose one of {', '.join(MODES)}")
    odd = next((e for e in entries[1:] if e.architecture != entries[0].architecture), None)
    no_units = next((e for e in entries if not e.has_units), None)
    if mode == "auto":
        if odd is not None or no_units is not None:
            return "models"
        return "units" if len(entries) == 2 else "checkpoints"
    if mode == "models":
        return mode
    if odd is not None:
        raise BrodenError(f"{_architecture_difference(entries[0], odd)}; --mode {mode} needs one architecture, "
                          "use --mode models")
    if no_units is not None:
        raise BrodenError(f"{no_units.path}: has no per-unit results; --mode {mode} compares units, use --mode models")
    if mode == "units" and len(entries) != 2:
        raise BrodenError(f"--mode units compares two files, got {len(entries)}; use --mode checkpoints for a series")
    return mode


def unit_changes(layer_a: dict, layer_b: dict, threshold_a: float, threshold_b: float) -> list[UnitChange]:
    """Unit-by-unit changes of one layer, most notable first (changed, gained, lost, kept, none; then |ΔIoU|)."""
    units_b = {u["unit"]: u for u in layer_b["units"]}
    units_a = {u["unit"]: u for u in layer_a["units"]}
    if units_a.keys() != units_b.keys():
        raise BrodenError(f"layer {layer_a['name']!r}: the two results list different units; rerun 'benchmark score'")
    out = []
    for unit, a in units_a.items():
        b = units_b[unit]
        det_a, det_b = a["iou"] > threshold_a, b["iou"] > threshold_b
        if det_a and det_b:
            status = "kept" if a["label"] == b["label"] else "changed"
        else:
            status = "gained" if det_b else "lost" if det_a else "none"
        out.append(
            UnitChange(
                layer_a["name"], unit, status,
                a["label"], a["category"], a["iou"], b["label"], b["category"], b["iou"],
            )
        )
    order = {s: i for i, s in enumerate(STATUSES)}
    return sorted(out, key=lambda c: (order[c.status], -abs(c.iou_change), c.unit))


def count_rows(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    """The per-category counts of every file and layer, as compare.csv rows (models mode) or counts.csv."""
    rows = []
    for e in entries:
        cats = ordered_categories(e.results["protocol"]["categories"])
        for layer in e.results["layers"]:
            s = layer["summary"]
            for c in ["all", *cats]:
                rows.append(
                    {
                        "name": e.name, "file": str(e.path), "layer": layer["name"], "units": s["units"],
                        "category": c, "detectors": s["detectors"].get(c),
                        "unique_per_category": s["unique_per_category"].get(c),
                        "unique_top_label": (s.get("unique_top_label") or {}).get(c),
                    }
                )
    return rows


def protocol_differences(entries: Sequence[Entry]) -> list[str]:
    """Sentences naming each protocol setting or dataset that differs: such numbers are not directly comparable."""
    out = []
    settings = [("dataset", [e.results["dataset"].get("fingerprint") or e.results["dataset"]["name"] for e in entries])]
    settings += [(k, [e.results["protocol"][k] for e in entries]) for k in PROTOCOL_KEYS]
    for key, values in settings:
        if any(v != values[0] for v in values[1:]):
            shown = "; ".join(
                f"{e.name}: {', '.join(v) if isinstance(v, list) else v}" for e, v in zip(entries, values)
            )
            out.append(f"{key} differs ({shown})")
    return out


def paired_differences(a: Entry, b: Entry) -> tuple[list[dict[str, Any]], str | None]:
    """Rows of ``b - a`` per layer, rule and category with paired bootstrap intervals, or why there are none.

    Pairing needs the same dataset (fingerprint) and the same bootstrap (``PAIRING_KEYS``): then replicate ``r`` of
    both runs drew the same folds, and the interval of the difference is the percentile interval of the
    replicate-wise differences (:func:`benchmark.bootstrap.paired_interval`).
    """
    from benchmark.bootstrap import PAIRED_RULES, paired_interval

    fingerprints = [e.results["dataset"].get("fingerprint") for e in (a, b)]
    if fingerprints[0] is None or fingerprints[0] != fingerprints[1]:
        return [], "the two files were not scored on the same dataset"
    boots = [e.results["protocol"].get("bootstrap") for e in (a, b)]
    if not all(boots):
        return [], "a file has no bootstrap replicates (scored before intervals, or with --bootstrap 0)"
    differs = [k for k in PAIRING_KEYS if boots[0].get(k) != boots[1].get(k)]
    if differs:
        return [], f"the bootstraps differ in {', '.join(differs)}; score both with the same --seed and --bootstrap"
    rows = []
    layers_b = {layer["name"]: layer for layer in b.results["layers"]}
    for layer_a in a.results["layers"]:
        layer_b = layers_b.get(layer_a["name"])
        if layer_b is None:
            continue
        for rule in PAIRED_RULES:
            reps_a, reps_b = layer_a["intervals"]["replicates"][rule], layer_b["intervals"]["replicates"][rule]
            for c in reps_a:
                if c not in reps_b:
                    continue
                low, high = paired_interval(reps_a[c], reps_b[c])
                va, vb = layer_a["summary"][rule][c], layer_b["summary"][rule][c]
                rows.append({"layer": layer_a["name"], "rule": rule, "category": c, "a": va, "b": vb,
                             "difference": vb - va, "low": low, "high": high,
                             "significant": "not significant" if low <= 0 <= high else "yes"})
    if not rows:
        return [], "the two files share no layer"
    return rows, None


def _all_categories(entries: Sequence[Entry]) -> list[str]:
    seen: list[str] = []
    for e in entries:
        seen += [c for c in e.results["protocol"]["categories"] if c not in seen]
    return ordered_categories(seen)


def _units_section(entries: Sequence[Entry]) -> list[dict[str, Any]]:
    first, last = entries[0], entries[-1]
    layers = []
    for la, lb in zip(first.results["layers"], last.results["layers"]):
        changes = unit_changes(la, lb, first.threshold, last.threshold)
        counts = Counter(c.status for c in changes)
        layers.append({"name": la["name"], "changes": changes, "counts": {s: counts[s] for s in STATUSES}})
    return layers


def _checkpoint_charts(root: Path, entries: Sequence[Entry], categories: Sequence[str]) -> list[dict[str, Any]]:
    names = [e.name for e in entries]
    slug = distinct_names([layer["name"] for layer in entries[0].results["layers"]], "layer")
    out = []
    for i, layer in enumerate(entries[0].results["layers"]):
        summaries = [e.results["layers"][i]["summary"] for e in entries]
        block: dict[str, Any] = {"name": layer["name"], "charts": [], "rows": []}
        for convention, key in CONVENTIONS:
            series = {c: [(s.get(key) or {}).get(c) for s in summaries] for c in categories}
            title = f"{layer['name']}: unique detectors per category ({convention})"
            svg = charts.line_chart(
                names, series, title=title, xlabel="checkpoint", ylabel="unique detectors",
                colors={c: charts.category_color(c) for c in categories},
            )
            src = write_svg(root, f"series-{slug[layer['name']]}-{convention}.svg", svg)
            block["charts"].append({"convention": convention, "src": src, "alt": title})
        for e, s in zip(entries, summaries):
            block["rows"].append({"name": e.name, "summary": s})
        out.append(block)
    return out


def _model_charts(root: Path, entries: Sequence[Entry], categories: Sequence[str]) -> list[dict[str, Any]]:
    """Grouped bars of each model's last layer: the paper's comparison of architectures and training regimes."""
    out = []
    for convention, key in CONVENTIONS:
        series = {}
        for e in entries:
            layer = e.results["layers"][-1]
            counts = layer["summary"].get(key) or {}
            series[f"{e.name} ({layer['name']})"] = [counts.get(c) for c in categories]
        title = f"Unique detectors per category, last layer ({convention})"
        svg = charts.grouped_bar_chart(categories, series, title=title, ylabel="unique detectors")
        out.append({"convention": convention, "src": write_svg(root, f"models-{convention}.svg", svg), "alt": title})
    return out


class Comparison(NamedTuple):
    """What :func:`build_compare` wrote: the directory, the mode, and the rows of ``difference.csv`` (empty when the
    two files cannot be paired)."""

    path: Path
    mode: str
    differences: list[dict[str, Any]]


def build_compare(
    paths: Sequence[str | os.PathLike[str]],
    *,
    out: str | os.PathLike[str] = "compare",
    names: Sequence[str] | None = None,
    mode: str = "auto",
) -> Comparison:
    """Write the comparison directory; return its path, the mode used and the paired differences."""
    entries = load_entries(paths, names)
    mode = choose_mode(entries, mode)
    categories = _all_categories(entries)
    counts = count_rows(entries)
    differences, no_difference = paired_differences(entries[0], entries[1]) if len(entries) == 2 else ([], None)
    out = Path(out)
    with atomic.atomic_path(out, is_dir=True) as root:
        units = _units_section(entries) if mode in ("units", "checkpoints") else []
        html = render(
            "compare.html.j2",
            mode=mode,
            entries=entries,
            categories=categories,
            warnings=protocol_differences(entries),
            units=units,
            series=_checkpoint_charts(root, entries, categories) if mode == "checkpoints" else [],
            models=_model_charts(root, entries, categories) if mode == "models" else [],
            differences=differences,
            no_difference=no_difference,
            summary_rows=[
                {"name": e.name, "layer": layer["name"], "summary": layer["summary"]}
                for e in entries
                for layer in e.results["layers"]
            ],
        )
        (root / "index.html").write_text(html, encoding="utf-8")
        if differences:
            (root / "difference.csv").write_text(to_csv(differences, DIFFERENCE_COLUMNS), encoding="utf-8")
        if units:
            rows = [c.row() for layer in units for c in layer["changes"]]
            (root / "compare.csv").write_text(to_csv(rows, UNIT_COLUMNS), encoding="utf-8")
            (root / "counts.csv").write_text(to_csv(counts, COUNT_COLUMNS), encoding="utf-8")
        else:
            (root / "compare.csv").write_text(to_csv(counts, COUNT_COLUMNS), encoding="utf-8")
    return Comparison(out, mode, differences)
