"""Detectors and unique detectors per category, under both conventions found in the original artifacts.

``per-category`` is the authors' release rule (``plot/extract_csv.m``; reproduces ``summary.csv``): for each category
the detectors are the units whose best IoU *within that category* exceeds the threshold (a unit can count in several
categories), and the unique count is the number of distinct best labels among them; the total is the sum over
categories. ``top-label`` is the reading most re-implementations use: each unit contributes only its overall best
label, counted under that label's category when its IoU exceeds the threshold. "All" detectors are the units whose
best IoU over all categories exceeds the threshold, under both rules. The threshold is strict (IoU > 0.04), as in the
paper's plots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RULES = ("detectors", "unique_per_category", "unique_top_label")


def summarize_layer(units: Sequence[Mapping[str, Any]], categories: Sequence[str], iou_threshold: float) -> dict:
    """The schema's ``summary`` object for one layer's scored units."""
    cats = list(categories)
    detectors = {"all": 0, **{c: 0 for c in cats}}
    top_detectors = {"all": 0, **{c: 0 for c in cats}}
    per_cat_labels: dict[str, set[str]] = {c: set() for c in cats}
    top_labels: dict[str, set[str]] = {c: set() for c in cats}
    for unit in units:
        for c in cats:
            best = unit["categories"].get(c)
            if best is not None and best["iou"] > iou_threshold:
                detectors[c] += 1
                per_cat_labels[c].add(best["label"])
        if unit["iou"] > iou_threshold:
            detectors["all"] += 1
            top_detectors["all"] += 1
            if unit["category"] in top_labels:
                top_detectors[unit["category"]] += 1
                top_labels[unit["category"]].add(unit["label"])
    unique = {c: len(per_cat_labels[c]) for c in cats}
    unique_top = {c: len(top_labels[c]) for c in cats}
    return {
        "units": len(units),
        "detectors": detectors,
        "detectors_top_label": top_detectors,
        "unique_per_category": {"all": sum(unique.values()), **unique},
        "unique_top_label": {"all": sum(unique_top.values()), **unique_top},
        "detector_fraction": detectors["all"] / len(units) if units else 0.0,
    }


def explanation_summary(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per layer and formula length of an explanations file: the units explained (those with a single concept of
    positive IoU), the mean IoU of their best formula of up to that many concepts, and its mean gain over their best
    single concept (the paper's headline statistic: IoU grows with formula length)."""
    rows = []
    for layer in doc["layers"]:
        explained = [u for u in layer["units"] if u["single"] is not None]
        for k in range(doc["settings"]["max_length"]):
            ious = [u["steps"][k]["iou"] for u in explained]
            gains = [u["steps"][k]["iou"] - u["single"]["iou"] for u in explained]
            rows.append({
                "layer": layer["name"], "length": k + 1, "units": len(explained),
                "mean_iou": sum(ious) / len(ious) if ious else 0.0,
                "mean_gain": sum(gains) / len(gains) if gains else 0.0,
            })
    return rows
