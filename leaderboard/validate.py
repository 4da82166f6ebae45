"""Validate one leaderboard submission: parse it strictly, check the schema, the arithmetic and the protocol.

A submission is a results file (schema ``broden-results/2``, or 1) written by ``benchmark score`` or imported from an
original NetDissect CSV. Everything in it is untrusted: the checks run in an order where each one can rely on the
previous (size before parsing, structure before arithmetic), every rejection names the JSON path of the field and
the reason, and the verdict never raises for bad content. A valid entry off the leaderboard protocol is kept and
shown as "other protocol" rather than rejected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.results import parse_json_strict, validate_results
from benchmark.summary import summarize_layer
from broden.errors import BrodenError
from leaderboard import protocol

MAX_BYTES = 20 * 1024 * 1024
MAX_LAYERS = 64
MAX_UNITS = 16_384
#: Absolute tolerance for stored IoUs and fractions against the counts they are computed from.
TOLERANCE = 1e-6
#: Errors reported per submission; a hostile file could otherwise produce one per unit.
MAX_ERRORS = 20
COUNT_KEYS = ("detectors", "detectors_top_label", "unique_per_category", "unique_top_label")


@dataclass
class Verdict:
    """The outcome for one file; ``protocol`` is None when the file is invalid."""

    ok: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    protocol: str | None = None
    results: dict[str, Any] | None = None


class _Invalid(Exception):
    """Stops validation at a problem later checks cannot get past."""


def parse(data: bytes) -> dict[str, Any]:
    """The shared strict parser (every rejection names a JSON path), as a validation stop."""
    try:
        return parse_json_strict(data, "submission")
    except BrodenError as exc:
        raise _Invalid(str(exc).removeprefix("submission: ")) from None


def _check_sizes(obj: dict[str, Any]) -> None:
    """The leaderboard's size limits, checked before the (slower) schema validation."""
    layers = obj.get("layers")
    if isinstance(layers, list):
        if len(layers) > MAX_LAYERS:
            raise _Invalid(f"$.layers: {len(layers)} layers, the leaderboard accepts at most {MAX_LAYERS}")
        for i, layer in enumerate(layers):
            units = layer.get("units") if isinstance(layer, dict) else None
            if isinstance(units, list) and len(units) > MAX_UNITS:
                raise _Invalid(f"$.layers[{i}].units: {len(units)} units, at most {MAX_UNITS} per layer")
            claimed = layer.get("num_units") if isinstance(layer, dict) else None
            if isinstance(claimed, (int, float)) and not isinstance(claimed, bool) and claimed > MAX_UNITS:
                raise _Invalid(f"$.layers[{i}].num_units: {claimed:g} units, at most {MAX_UNITS} per layer")


def _check_schema(obj: dict[str, Any]) -> None:
    try:
        validate_results(obj, where="submission")
    except BrodenError as exc:
        raise _Invalid(str(exc).removeprefix("submission: ")) from None


def _check_provenance(obj: dict[str, Any], errors: list[str]) -> None:
    kind = obj["provenance"]["kind"]
    fingerprint = obj["dataset"]["fingerprint"]
    if kind == "measured" and fingerprint is None:
        errors.append("$.dataset.fingerprint: a measured entry must record the fingerprint of the data it was scored on")
    if kind != "measured" and fingerprint is not None:
        errors.append(
            f"$.dataset.fingerprint: {kind} entries come from an original release, which has no fingerprint; "
            "set it to null and name the release in dataset.name"
        )
    weights = obj["model"].get("weights_url")
    if weights is not None and not weights.startswith(("https://", "http://")):
        errors.append("$.model.weights_url: must be an http(s) URL")
    for i, layer in enumerate(obj["layers"]):
        if kind == "reported" and "units" in layer:
            errors.append(f"$.layers[{i}].units: reported entries carry no per-unit data; use kind 'imported'")
        if kind != "reported" and "units" not in layer:
            errors.append(f"$.layers[{i}].units: missing; only 'reported' entries may omit per-unit data")


def _check_counts(p: str, summary: dict[str, Any], categories: list[str], errors: list[str]) -> None:
    """Arithmetic every summary must satisfy, with or without per-unit data."""
    units = summary["units"]
    for key in COUNT_KEYS:
        counts = summary.get(key)
        if counts is None:
            continue
        for name in sorted(set(counts) - {"all", *categories}):
            errors.append(f"{p}.summary.{key}.{name}: not a category of this entry's protocol")
        for name in categories:
            if name not in counts:
                errors.append(f"{p}.summary.{key}: no count for category {name!r}")
        for name, value in counts.items():
            if value > units:
                errors.append(f"{p}.summary.{key}.{name}: {value} exceeds the layer's {units} units")
    detectors = summary["detectors"]
    for key in ("unique_per_category", "unique_top_label"):
        if key in summary:
            total = sum(summary[key].get(c, 0) for c in categories)
            if summary[key]["all"] != total:
                errors.append(f"{p}.summary.{key}.all: {summary[key]['all']} is not the sum of its categories ({total})")
    for name in categories:
        if detectors.get(name, 0) > detectors["all"]:
            errors.append(f"{p}.summary.detectors.{name}: {detectors[name]} exceeds detectors.all {detectors['all']}")
        if summary["unique_per_category"].get(name, 0) > detectors.get(name, 0):
            errors.append(f"{p}.summary.unique_per_category.{name}: more unique labels than detectors")
    fraction = detectors["all"] / units
    if abs(summary["detector_fraction"] - fraction) > TOLERANCE:
        errors.append(
            f"{p}.summary.detector_fraction: {summary['detector_fraction']} is not detectors.all / units ({fraction:.6f})"
        )


def _check_unit(p: str, unit: dict[str, Any], categories: list[str], errors: list[str]) -> None:
    best = unit["categories"]
    for name in sorted(set(best) - set(categories)):
        errors.append(f"{p}.categories.{name}: not a category of this entry's protocol")
    # Intersection <= truth always holds; intersection <= activation does not in the authors' own release (ResNet-152
    # texture entries with an empty label have activation 0 but a positive intersection), so it is not required.
    for name, b in best.items():
        union = b["activation"] + b["truth"] - b["intersection"]
        if b["intersection"] > b["truth"]:
            errors.append(f"{p}.categories.{name}.intersection: larger than the label's truth count")
        elif abs(b["iou"] - (b["intersection"] / union if union else 0.0)) > TOLERANCE:
            errors.append(
                f"{p}.categories.{name}.iou: {b['iou']} is not intersection / (activation + truth - intersection)"
            )
    if unit["category"] == "":  # a unit that overlaps no label at all (benchmark score writes it this way)
        if unit["label"] != "" or unit["iou"] > TOLERANCE:
            errors.append(f"{p}.category: empty, but the unit has label {unit['label']!r} and IoU {unit['iou']}")
        return
    top = best.get(unit["category"])
    if top is None:
        errors.append(f"{p}.category: {unit['category']!r} has no entry in the unit's categories")
        return
    if top["label"] != unit["label"] or abs(top["iou"] - unit["iou"]) > TOLERANCE:
        errors.append(f"{p}.label: the unit's overall label and IoU differ from its best {unit['category']!r} entry")
    if best and unit["iou"] < max(b["iou"] for b in best.values()) - TOLERANCE:
        errors.append(f"{p}.iou: {unit['iou']} is below the unit's best IoU in some category")


def _differences(path: str, stored: Any, computed: Any) -> list[str]:
    if isinstance(computed, dict):
        if not isinstance(stored, dict):
            return [f"{path}: missing; recomputed from the units it is {computed}"]
        out = []
        for key in sorted(set(stored) | set(computed)):
            if key not in computed:
                out.append(f"{path}.{key}: not derivable from the units")
            else:
                out += _differences(f"{path}.{key}", stored.get(key), computed[key])
        return out
    if isinstance(computed, float):
        if stored is not None and abs(stored - computed) <= TOLERANCE:
            return []
        return [f"{path}: stored {stored}, recomputed from the units {computed:.6f}"]
    return [] if stored == computed else [f"{path}: stored {stored}, recomputed from the units {computed}"]


def _check_layer(i: int, layer: dict[str, Any], obj: dict[str, Any], errors: list[str]) -> None:
    p = f"$.layers[{i}]"
    categories = list(obj["protocol"]["categories"])
    summary = layer["summary"]
    if summary["units"] != layer["num_units"]:
        errors.append(f"{p}.summary.units: {summary['units']} differs from num_units {layer['num_units']}")
    _check_counts(p, summary, categories, errors)
    units = layer.get("units")
    if units is None:
        return
    if len(units) != layer["num_units"]:
        errors.append(f"{p}.units: {len(units)} units listed, num_units is {layer['num_units']}")
    for j, unit in enumerate(units):  # indices in range and distinct: checked with the schema
        _check_unit(f"{p}.units[{j}]", unit, categories, errors)
        if len(errors) > MAX_ERRORS:
            return
    recomputed = summarize_layer(units, categories, obj["protocol"]["iou_threshold"])
    recomputed["units"] = layer["num_units"]
    errors += _differences(f"{p}.summary", summary, recomputed)


def check(obj: dict[str, Any]) -> list[str]:
    """Errors of a parsed, schema-valid results object beyond what the schema can express."""
    errors: list[str] = []
    _check_provenance(obj, errors)
    for i, layer in enumerate(obj["layers"]):
        _check_layer(i, layer, obj, errors)
        if len(errors) > MAX_ERRORS:
            break
    if len(errors) > MAX_ERRORS:
        errors[MAX_ERRORS:] = ["... and more errors; fix the ones above first"]
    return errors


def validate_submission(path: str | os.PathLike[str]) -> Verdict:
    """Judge one submission file; never raises for bad content."""
    path = Path(path)
    try:
        try:
            size = path.stat().st_size
            if not path.is_file():
                raise _Invalid("$: not a regular file")
            if size > MAX_BYTES:
                raise _Invalid(f"$: {size:,} bytes is over the leaderboard's {MAX_BYTES:,}-byte limit")
            data = path.read_bytes()
        except OSError as exc:
            raise _Invalid(f"$: cannot read the file ({exc.strerror or exc})") from None
        obj = parse(data)
        _check_sizes(obj)
        _check_schema(obj)
    except _Invalid as exc:
        return Verdict(ok=False, errors=[str(exc)])
    errors = check(obj)
    if errors:
        return Verdict(ok=False, errors=errors)
    warnings = protocol.protocol_deviations(obj)
    return Verdict(
        ok=True,
        warnings=warnings,
        protocol=protocol.OTHER_PROTOCOL if warnings else protocol.LEADERBOARD,
        results=obj,
    )
