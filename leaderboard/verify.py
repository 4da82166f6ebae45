"""Re-score a measured submission and compare it with what was submitted, unit by unit.

The re-score uses the submission's own recorded protocol (layers, quantile, IoU threshold, categories, category
gate, upsampling, batch size, mixed precision, top-k) through the same scorer as ``benchmark score`` (``benchmark.scorer``), on a
dataset whose fingerprint must equal the recorded one. The model comes from the maintainer (``--model``): the
submitted numbers are trusted only if that model gives them. Compared:

- the recorded preprocessing with the one the model file gives, as far as it determines the pixels (a different
  resize, crop or normalisation is a different measurement; where a setting came from is not);
- the layers (names and unit counts);
- per unit: the overall label and category, and per category the label, its number, and the intersection,
  activation and truth counts *exactly*; the IoUs and the threshold within :data:`TOLERANCE` (relative and absolute)
  so that another BLAS or device does not fail an honest submission.

Every difference is one readable line naming the layer, the unit and the field, with both values.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.models.loader import load_model
from benchmark.scorer import Settings, score_model
from broden.dataset import Broden
from broden.dataset import load as load_dataset
from broden.errors import BrodenError
from leaderboard.validate import validate_submission

#: Relative and absolute tolerance for IoUs and thresholds.
TOLERANCE = 1e-6
COUNTS = ("intersection", "activation", "truth")
#: What a preprocessing recorded as kind "default" (harness 0.1.0, before the loader registry) did: resize with
#: bilinear interpolation, no crop, then scale and normalise; today's "resize-normalize" with those settings.
LEGACY_DEFAULT = {"kind": "resize-normalize", "interpolation": "bilinear", "crop": None}
#: Fields of a preprocessing description that say where a setting came from, not what it is.
BOOKKEEPING = ("sources", "declared_by")


def pixels(preprocess: Any) -> Any:
    """The parts of a recorded preprocessing that determine the pixels the model sees (comparable across versions)."""
    if not isinstance(preprocess, dict):
        return preprocess
    out = {k: v for k, v in preprocess.items() if k not in BOOKKEEPING}
    return {**out, **LEGACY_DEFAULT} if out.get("kind") == "default" else out


@dataclass
class Verification:
    """The outcome: ``differences`` is empty exactly when the re-score matches the submission."""

    submitted: dict[str, Any]
    rescored: dict[str, Any]
    differences: list[str] = field(default_factory=list)
    units_compared: int = 0

    @property
    def ok(self) -> bool:
        return not self.differences


def settings_for(submitted: dict[str, Any], device: str, workers: int | None = None) -> Settings:
    """The scorer settings that reproduce the submission's recorded protocol."""
    proto = submitted["protocol"]
    top_k = max((len(u.get("top_images", [])) for layer in submitted["layers"] for u in layer["units"]), default=0)
    settings = Settings(
        layers=[layer["name"] for layer in submitted["layers"]], quantile=proto["quantile"],
        iou_threshold=proto["iou_threshold"], categories=list(proto["categories"]), compat=proto["compat"],
        upsample=proto.get("upsample", "bilinear"), top_k=top_k or 10, batch_size=proto.get("batch_size", 32),
        amp=bool(proto.get("amp", False)), device=device,
    )
    if workers is not None:
        settings.workers = workers
    return settings


def _close(a: Any, b: Any) -> bool:
    return (isinstance(a, (int, float)) and isinstance(b, (int, float))
            and math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=TOLERANCE))


def _value(value: Any) -> str:
    return repr(value) if isinstance(value, str) or value is None else str(value)


def compare(submitted: dict[str, Any], rescored: dict[str, Any]) -> tuple[list[str], int]:
    """Differences between two results objects (see the module docstring) and the number of units compared."""
    out: list[str] = []

    def differ(where: str, name: str, a: Any, b: Any) -> None:
        out.append(f"{where}: {name} submitted {_value(a)}, re-scored {_value(b)}")

    mine, theirs_preprocess = (pixels(r["protocol"].get("preprocess")) for r in (submitted, rescored))
    if mine != theirs_preprocess:
        differ("protocol", "preprocess", mine, theirs_preprocess)
    theirs = {layer["name"]: layer for layer in rescored["layers"]}
    compared = 0
    for layer in submitted["layers"]:
        name = layer["name"]
        other = theirs.get(name)
        if other is None:
            out.append(f"layer {name}: not in the re-scored results")
            continue
        if layer["num_units"] != other["num_units"]:
            differ(f"layer {name}", "num_units", layer["num_units"], other["num_units"])
            continue
        by_unit = {u["unit"]: u for u in other["units"]}
        for unit in layer["units"]:
            where, mine, rescore = f"{name} unit {unit['unit']}", unit, by_unit[unit["unit"]]
            compared += 1
            for key in ("label", "category"):
                if mine[key] != rescore[key]:
                    differ(where, key, mine[key], rescore[key])
            for key in ("iou", "threshold"):
                if key in mine and not _close(mine[key], rescore.get(key)):
                    differ(where, key, mine[key], rescore.get(key))
            for category in sorted(set(mine["categories"]) | set(rescore["categories"])):
                a, b = mine["categories"].get(category), rescore["categories"].get(category)
                if a is None or b is None:
                    out.append(f"{where}: category {category} only in the {'re-score' if a is None else 'submission'}")
                    continue
                for key in ("label", "label_id", *COUNTS):
                    if key in a and a[key] != b.get(key):
                        differ(where, f"{category}.{key}", a[key], b.get(key))
                if not _close(a["iou"], b["iou"]):
                    differ(where, f"{category}.iou", a["iou"], b["iou"])
    return out, compared


def _dataset(submitted: dict[str, Any], dataset: str | os.PathLike[str] | None) -> Broden:
    path = Path(dataset) if dataset is not None else Path(submitted["dataset"].get("path") or "")
    if dataset is None and not (submitted["dataset"].get("path") and path.exists()):
        raise BrodenError(f"the submission's dataset {submitted['dataset']['name']!r} is not at its recorded path "
                          f"{str(path) or '(none)'}; pass --dataset PATH")
    if not path.exists():
        raise BrodenError(f"{path}: dataset not found; pass --dataset PATH (the data the submission was scored on)")
    data = load_dataset(path)
    if data.fingerprint != submitted["dataset"]["fingerprint"]:
        raise BrodenError(f"{path}: fingerprint {data.fingerprint}, but the submission was scored on "
                          f"{submitted['dataset']['fingerprint']} ({submitted['dataset']['name']}); pass that dataset")
    return data


def verify(submission: str | os.PathLike[str], model: str, out: str | os.PathLike[str], *,
           dataset: str | os.PathLike[str] | None = None, device: str = "cpu",
           workers: int | None = None) -> Verification:
    """Re-score ``model`` as ``submission`` records into ``out`` (a finished identical run there is reused)."""
    verdict = validate_submission(submission)
    if not verdict.ok or verdict.results is None:
        raise BrodenError(f"{submission}: {verdict.errors[0]} (fix it first: leaderboard validate {submission})")
    submitted = verdict.results
    if submitted["provenance"]["kind"] != "measured":
        raise BrodenError(f"{submission}: a {submitted['provenance']['kind']} entry has no recorded measurement to "
                          "re-score; only measured entries can be verified")
    data = _dataset(submitted, dataset)
    outcome = score_model(load_model(model), data, out, settings_for(submitted, device, workers))
    differences, compared = compare(submitted, outcome.results)
    return Verification(submitted, outcome.results, differences, compared)
