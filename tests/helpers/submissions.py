"""Hand-made leaderboard submissions (tiny valid entries, hostile and malformed ones) for the leaderboard tests."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

from benchmark.summary import summarize_layer
from leaderboard import protocol
from leaderboard.cli import main
from leaderboard.validate import validate_submission
from tests.helpers.paths import REPO

SUBMISSIONS = REPO / "leaderboard" / "submissions"
CATS = list(protocol.CATEGORIES)


def unit(n: int, label: str, category: str, inter: int, act: int, truth: int) -> dict[str, Any]:
    """A unit whose best entry in every category is the given counts (other categories: a weak label)."""
    best = {c: {"label": f"weak-{c}", "iou": 1 / 101, "intersection": 1, "activation": 1, "truth": 101} for c in CATS}
    best[category] = {"label": label, "iou": inter / (act + truth - inter), "intersection": inter,
                      "activation": act, "truth": truth}
    return {"unit": n, "label": label, "category": category, "iou": best[category]["iou"], "categories": best}


def tiny(kind: str = "imported") -> dict[str, Any]:
    """A small valid submission on the leaderboard protocol (imported from the 227 release)."""
    dead = {"unit": 3, "label": "", "category": "", "iou": 0.0, "categories": {
        c: {"label": "", "label_id": None, "iou": 0.0, "intersection": 0, "activation": 7, "truth": 0} for c in CATS}}
    units = [unit(0, "dog", "object", 50, 100, 100), unit(1, "grass", "material", 10, 100, 300),
             unit(2, "sky", "object", 40, 60, 80), dead]
    return {
        "schema": "broden-results/1",
        "name": "Tiny net",
        "model": {"name": "tiny", "source": "netdissect-csv", "training_data": "ImageNet"},
        "dataset": {"name": "broden1_227", "fingerprint": None},
        "protocol": {"quantile": 0.005, "iou_threshold": 0.04, "categories": CATS, "compat": "netdissect"},
        "provenance": {"kind": kind},
        "created": "2026-01-01T00:00:00+00:00",
        "layers": [{"name": "conv5", "num_units": 4, "units": units, "summary": summarize_layer(units, CATS, 0.04)}],
    }


def write(tmp_path: Path, obj: Any, name: str = "entry.json") -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def errors_of(tmp_path: Path, obj: Any) -> list[str]:
    verdict = validate_submission(write(tmp_path, obj))
    assert not verdict.ok and verdict.results is None and verdict.protocol is None
    return verdict.errors


SEED = ["alexnet-places365__conv5__7b1bddd40e.json", "vgg-16-places365__conv5-3__27cd9299d6.json",
        "alexnet-random-weights__conv5__9c7a2b9fc9.json"]
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
HOSTILE = "script-alert-1-script"  # the site's page (models/HOSTILE/) of the entry named XSS[0]
SAMPLE = next(d.fingerprint for d in protocol.KNOWN_FINGERPRINTS if d.name == "broden-sample")


def hostile_entry() -> dict[str, Any]:
    """Valid, but every free-text field carries markup that must render as text."""
    r = tiny()
    r["name"] = XSS[0]
    r["model"].update(name=XSS[1], architecture=XSS[0], training_data=XSS[1], paper="javascript:alert(1)")
    r["provenance"].update(citation=XSS[0], source=XSS[1])
    r["layers"][0]["name"] = XSS[1]
    for u in r["layers"][0]["units"][:3]:  # the fourth unit detects nothing
        u["label"] = u["categories"][u["category"]]["label"] = XSS[0] + str(u["unit"])
    r["layers"][0]["summary"] = summarize_layer(r["layers"][0]["units"], CATS, 0.04)
    return r


def two_layer_measured() -> dict[str, Any]:
    """A measured entry on the sample dataset (recognised, not ranked) with two layers."""
    r = tiny("measured")
    r.update(name="Two-layer net")
    r["model"].update(weights_url="https://example.org/weights.pth", weights_sha256="a" * 64)
    r["dataset"] = {"name": "broden-sample", "fingerprint": SAMPLE}
    units = [unit(i, f"label{i}", CATS[i % 6], 30 + i, 100, 100) for i in range(8)]
    r["layers"].insert(0, {"name": "layer3", "num_units": 8, "units": units,
                           "summary": summarize_layer(units, CATS, 0.04)})
    return r


def rejected_files() -> dict[str, tuple[str, str]]:
    """File name -> (content, the reason the build must report)."""
    negative = tiny()
    negative["layers"][0]["summary"]["detectors"]["part"] = -3
    disagree = tiny()
    disagree["layers"][0]["summary"]["detectors"].update(all=3, object=1)
    text = json.dumps(tiny())
    return {
        "nan.json": (text.replace('"quantile": 0.005', '"quantile": NaN'), "$.protocol.quantile: NaN is not allowed"),
        "negative.json": (json.dumps(negative), "$.layers[0].summary.detectors.part: -3 is less than the minimum of 0"),
        "disagree.json": (json.dumps(disagree),
                          "$.layers[0].summary.detectors.object: stored 1, recomputed from the units 2"),
        "not-json.json": ("this is not JSON", "$: not valid JSON"),
        "duplicate.json": (text.replace('"schema":', '"name": "x", "schema":', 1), "$: duplicate key 'name'"),
        XSS[1] + ".json": ("[]", "$: the top level is a list"),
    }


def write_submissions(directory: Path) -> dict[str, int]:
    """Seed files, valid hostile entries and rejected files; returns the expected valid entry count by kind."""
    directory.mkdir()
    for name in SEED:
        shutil.copy(SUBMISSIONS / name, directory / name)
    (directory / "hostile.json").write_text(json.dumps(hostile_entry()))
    (directory / "two-layer.json").write_text(json.dumps(two_layer_measured()))
    off = tiny()
    off["provenance"]["kind"] = "measured"
    off["name"] = "Unknown data net"
    off["dataset"]["fingerprint"] = "sha256:" + "ab" * 32
    (directory / "wrong-fingerprint.json").write_text(json.dumps(off))
    for name, (content, _) in rejected_files().items():
        (directory / name).write_text(content)
    with open(directory / "huge.json", "wb") as f:
        f.truncate(50 * 1024 * 1024)
    return {"valid": 6, "ranked": 4}


def build(directory: Path, out: Path) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["build", str(directory), "--out", str(out)])
    return code, stdout.getvalue(), stderr.getvalue()
