"""Import the per-unit CSVs of the original NetDissect / NetDissect-Lite into the results schema.

Those files (``<layer>-result.csv`` of NetDissect, ``tally.csv`` of Lite, and the authors' released
``plot/*.csv``) have the columns ``unit`` (1-based), ``category``, ``label``, ``score`` and, per category C,
``C-label``, ``C-truth``, ``C-activation``, ``C-intersect``, ``C-iou``; the category order varies, so columns are
read by name. Importing them lets old results be summarised under both unique-detector conventions, compared with
new ones, and submitted to the leaderboard as "imported".
"""

from __future__ import annotations

import csv
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmark.protocol import DEFAULT_COMPAT, IOU_THRESHOLD, QUANTILE, ordered_categories
from benchmark.results import SUMMARY_SCHEMA_VERSION, validate_results
from benchmark.summary import summarize_layer
from broden.errors import BrodenError

CITATION = (
    "Bau, Zhou, Khosla, Oliva, Torralba. Network Dissection: Quantifying Interpretability of Deep Visual "
    "Representations. CVPR 2017."
)
_FIELDS = ("label", "truth", "activation", "intersect", "iou")

#: The authors' released files (CSAILVision/NetDissect plot/*.csv): network and layer as named in summary.csv.
KNOWN_RELEASES: dict[str, dict[str, str]] = {
    "caffe_reference_imagenet": {"network": "caffe_reference_imagenet", "layer": "conv5", "architecture": "AlexNet",
                                 "training_data": "ImageNet", "dataset": "broden1_227"},
    "caffe_reference_places205": {"network": "caffe_reference_places205", "layer": "conv5",
                                  "architecture": "AlexNet", "training_data": "Places205", "dataset": "broden1_227"},
    "caffe_reference_places365": {"network": "caffe_reference_places365", "layer": "conv5",
                                  "architecture": "AlexNet", "training_data": "Places365", "dataset": "broden1_227"},
    "ResNet-152-model_imagenet": {"network": "resnet-152-torch-imagenet", "layer": "caffe.Eltwise_510",
                                  "architecture": "ResNet-152", "training_data": "ImageNet", "dataset": "broden1_224"},
    "ResNet-152-model_places365": {"network": "resnet-152-torch-places365", "layer": "caffe.Eltwise_510",
                                   "architecture": "ResNet-152", "training_data": "Places365",
                                   "dataset": "broden1_224"},
}


def _count(value: str, where: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise BrodenError(f"{where}: {value!r} is not a number") from None
    if number < 0 or number != int(number):
        raise BrodenError(f"{where}: {value!r} is not a non-negative whole count")
    return int(number)


def _iou(value: str, where: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BrodenError(f"{where}: {value!r} is not a number") from None
    if not 0.0 <= number <= 1.0:
        raise BrodenError(f"{where}: IoU {value!r} is outside [0, 1]")
    return number


def read_units(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    """Categories (display order) and schema ``unit`` objects (0-based, sorted by unit) from a NetDissect CSV."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BrodenError(f"{path}: cannot read the CSV ({exc}); pass an original NetDissect result CSV") from exc
    missing = [c for c in ("unit", "category", "label", "score") if c not in header]
    if missing:
        raise BrodenError(f"{path}: missing column {missing[0]!r}; expected a NetDissect result CSV (unit,category,...)")
    categories = [m.group(1) for h in header if (m := re.fullmatch(r"(.+)-label", h))]
    for c in categories:
        for f in _FIELDS:
            if f"{c}-{f}" not in header:
                raise BrodenError(f"{path}: column {c}-{f!r} is missing for category {c!r}")
    if not categories or not rows:
        raise BrodenError(f"{path}: no categories or no units found; expected a NetDissect result CSV")
    units = []
    for line, row in enumerate(rows, start=2):
        where = f"{path}:{line}"
        try:
            unit = int(row["unit"]) - 1
        except (TypeError, ValueError):
            raise BrodenError(f"{where}: unit {row['unit']!r} is not an integer") from None
        if unit < 0:
            raise BrodenError(f"{where}: unit numbers are 1-based in NetDissect CSVs; got {row['unit']!r}")
        best = {
            c: {
                "label": row[f"{c}-label"],
                "label_id": None,
                "iou": _iou(row[f"{c}-iou"], f"{where} {c}-iou"),
                "intersection": _count(row[f"{c}-intersect"], f"{where} {c}-intersect"),
                "activation": _count(row[f"{c}-activation"], f"{where} {c}-activation"),
                "truth": _count(row[f"{c}-truth"], f"{where} {c}-truth"),
            }
            for c in ordered_categories(categories)
        }
        if row["category"] not in best:
            raise BrodenError(f"{where}: category {row['category']!r} has no columns in this file")
        units.append(
            {
                "unit": unit,
                "label": row["label"],
                "category": row["category"],
                "iou": _iou(row["score"], f"{where} score"),
                "categories": best,
            }
        )
    units.sort(key=lambda u: u["unit"])
    seen = [u["unit"] for u in units]
    if len(set(seen)) != len(seen):
        raise BrodenError(f"{path}: a unit number appears twice")
    return ordered_categories(categories), units


def import_netdissect_csv(
    path: str | os.PathLike[str],
    *,
    network: str | None = None,
    layer: str | None = None,
    iou_threshold: float = IOU_THRESHOLD,
    quantile: float = QUANTILE,
) -> dict[str, Any]:
    """A validated results object (provenance "imported") for one NetDissect CSV (one layer)."""
    path = Path(path)
    known = KNOWN_RELEASES.get(path.stem, {})
    network = network or known.get("network") or path.stem
    layer = layer or known.get("layer")
    if not layer:
        raise BrodenError(f"{path}: which layer is this? pass --layer NAME (e.g. conv5, layer4)")
    categories, units = read_units(path)
    num_units = max(u["unit"] for u in units) + 1
    results = {
        "schema": SUMMARY_SCHEMA_VERSION,
        "name": network,
        "model": {
            "name": network,
            "source": "netdissect-csv",
            "file": path.name,
            "architecture": known.get("architecture"),
            "training_data": known.get("training_data"),
            "paper": CITATION if known else None,
        },
        "dataset": {"name": known.get("dataset", "broden1"), "fingerprint": None},
        "protocol": {
            "quantile": quantile,
            "iou_threshold": iou_threshold,
            "categories": categories,
            "compat": DEFAULT_COMPAT,
            "threshold_method": "as recorded by the original tool",
        },
        "provenance": {
            "kind": "imported",
            "citation": CITATION if known else None,
            "source": f"{path.name} (CSAILVision/NetDissect plot/)" if known else path.name,
        },
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "layers": [
            {
                "name": layer,
                "num_units": num_units,
                "units": units,
                "summary": summarize_layer(units, categories, iou_threshold),
            }
        ],
    }
    validate_results(results, str(path))
    return results
