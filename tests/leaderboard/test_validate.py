"""Leaderboard validation and submission: the seed files, hostile files, and the submit command."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from benchmark.netdissect_csv import CITATION
from benchmark.summary import summarize_layer
from leaderboard import protocol
from leaderboard.cli import main
from leaderboard.submit import canonical_name
from leaderboard.validate import MAX_BYTES, validate_submission
from tests.helpers.paths import REFERENCE
from tests.helpers.submissions import CATS, SUBMISSIONS, errors_of, tiny, write


def test_tiny_entry_is_on_the_leaderboard_protocol(tmp_path: Path) -> None:
    verdict = validate_submission(write(tmp_path, tiny()))
    assert verdict.ok, verdict.errors
    assert (verdict.protocol, verdict.warnings) == ("leaderboard", [])
    assert verdict.results["name"] == "Tiny net"


HOSTILE = {
    "negative count": (lambda r: r["layers"][0]["summary"]["detectors"].update(object=-1),
                       "$.layers[0].summary.detectors.object: -1 is less than the minimum of 0"),
    "summary disagrees with units": (lambda r: r["layers"][0]["summary"]["unique_per_category"].update(object=1, all=2),
                                     "$.layers[0].summary.unique_per_category.object: stored 1, recomputed from the units 2"),
    "iou not from counts": (lambda r: r["layers"][0]["units"][1]["categories"]["material"].update(iou=0.5),
                            "$.layers[0].units[1].categories.material.iou: 0.5 is not intersection"),
    "unit label not its best": (lambda r: r["layers"][0]["units"][0].update(label="cat"),
                                "$.layers[0].units[0].label: the unit's overall label and IoU differ"),
    "dead unit with a label": (lambda r: r["layers"][0]["units"][3].update(label="cat"),
                               "$.layers[0].units[3].category: empty, but the unit has label 'cat'"),
    "duplicate unit": (lambda r: r["layers"][0]["units"][2].update(unit=0), "$.layers[0].units[2].unit: unit 0 appears twice"),
    "unit out of range": (lambda r: r["layers"][0]["units"][2].update(unit=7),
                          "$.layers[0].units[2].unit: 7 is not below num_units 4"),
    "fraction off": (lambda r: r["layers"][0]["summary"].update(detector_fraction=0.75),
                     "$.layers[0].summary.detector_fraction: 0.75 is not detectors.all / units"),
    "fingerprint on imported": (lambda r: r["dataset"].update(fingerprint="sha256:" + "0" * 64),
                                "$.dataset.fingerprint: imported entries come from an original release"),
    "measured without fingerprint": (lambda r: r["provenance"].update(kind="measured"),
                                     "$.dataset.fingerprint: a measured entry must record the fingerprint"),
    "reported with units": (lambda r: r["provenance"].update(kind="reported"),
                            "$.layers[0].units: reported entries carry no per-unit data"),
    "script weights url": (lambda r: r["model"].update(weights_url="javascript:alert(1)"),
                           "$.model.weights_url: must be an http(s) URL"),
    "schema: long name": (lambda r: r.update(name="x" * 201), "$.name: "),
    "schema: unknown field": (lambda r: r.update(extra=1), "$: Additional properties are not allowed"),
    "too many layers": (lambda r: r.update(layers=r["layers"] * 65),
                        "$.layers: 65 layers, the leaderboard accepts at most 64"),
    "too many units": (lambda r: r["layers"][0].update(units=r["layers"][0]["units"] * 4097),
                       "$.layers[0].units: 16388 units, at most 16384 per layer"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_content_is_rejected_naming_the_field(tmp_path: Path, case: str) -> None:
    change, expected = HOSTILE[case]
    obj = tiny()
    change(obj)
    errors = errors_of(tmp_path, obj)
    assert any(e.startswith(expected) for e in errors), errors


RAW = {
    "nan": (json.dumps(tiny()).replace('"iou_threshold": 0.04', '"iou_threshold": NaN'),
            "$.protocol.iou_threshold: NaN is not allowed"),
    "infinity": (json.dumps(tiny()).replace('"quantile": 0.005', '"quantile": -Infinity'),
                 "$.protocol.quantile: -Infinity is not allowed"),
    "overflow": (json.dumps(tiny()).replace('"quantile": 0.005', '"quantile": 1e999'),
                 "$.protocol.quantile: 1e999 overflows to infinity"),
    "duplicate key": (json.dumps(tiny()).replace('"name": "tiny",', '"name": "tiny", "name": "other",'),
                      "$.model: duplicate key 'name'"),
    "not json": ("<html>not a results file</html>", "$: not valid JSON (Expecting value at line 1 column 1)"),
    "top-level array": ("[1, 2]", "$: the top level is a list, a results file is a JSON object"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "$: nested too deeply to be a results file"),
}


@pytest.mark.parametrize("case", sorted(RAW))
def test_malformed_json_is_rejected_naming_the_field(tmp_path: Path, case: str) -> None:
    text, expected = RAW[case]
    [error] = errors_of(tmp_path, text)
    assert error.startswith(expected), error


def test_not_utf8_and_oversized_files_are_rejected_before_parsing(tmp_path: Path) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe{}")
    assert validate_submission(binary).errors == ["$: not UTF-8 text (byte 0); a results file is a JSON file"]
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(50 * 1024 * 1024)  # sparse: 50 MB of zeros, never read
    limit = f"$: {50 * 1024 * 1024:,} bytes is over the leaderboard's {MAX_BYTES:,}-byte limit"
    assert validate_submission(big).errors == [limit]
    assert validate_submission(tmp_path / "missing.json").errors[0].startswith("$: cannot read the file")


def test_off_protocol_entries_are_valid_but_other_protocol(tmp_path: Path) -> None:
    cases = {
        "quantile": lambda r: r["protocol"].update(quantile=0.01),
        "iou_threshold": lambda r: r["protocol"].update(iou_threshold=0.05),
        "categories": lambda r: r["protocol"].update(categories=CATS[:5]),
        "compat": lambda r: r["protocol"].update(compat="netdissect-lite"),
        "dataset.name": lambda r: r["dataset"].update(name="my_broden"),
        "dataset.fingerprint": lambda r: (r["provenance"].update(kind="measured"),
                                          r["dataset"].update(fingerprint="sha256:" + "ab" * 32)),
    }
    for field, change in cases.items():
        obj = tiny()
        change(obj)
        if field == "categories":  # drop the colour entries so the units match the protocol
            for u in obj["layers"][0]["units"]:
                del u["categories"]["color"]
            obj["layers"][0]["summary"] = summarize_layer(obj["layers"][0]["units"], CATS[:5], 0.04)
        verdict = validate_submission(write(tmp_path, obj))
        assert verdict.ok, (field, verdict.errors)
        assert verdict.protocol == "other protocol"
        assert any(field in w for w in verdict.warnings), (field, verdict.warnings)


def test_sample_dataset_fingerprint_is_known_but_not_ranked(sample_dataset: Path) -> None:
    from broden.dataset import load

    known = [d for d in protocol.KNOWN_FINGERPRINTS if d.fingerprint == load(sample_dataset).fingerprint]
    assert [(d.name, d.ranked) for d in known] == [("broden-sample", False)]


# --- the seed submissions -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_verdicts() -> dict[str, Any]:
    return {p.name: validate_submission(p) for p in sorted(SUBMISSIONS.glob("*.json"))}


def _published_verdicts(seed_verdicts: dict[str, Any]) -> dict[str, Any]:
    return {n: v for n, v in seed_verdicts.items() if v.results["provenance"]["kind"] != "measured"}


def test_every_seed_file_is_valid_and_ranked(seed_verdicts: dict[str, Any]) -> None:
    assert len(seed_verdicts) == 28
    for name, verdict in seed_verdicts.items():
        assert verdict.ok, (name, verdict.errors)
        assert canonical_name(verdict.results) == name
    kinds = sorted(v.results["provenance"]["kind"] for v in seed_verdicts.values())
    assert kinds == ["imported"] * 5 + ["measured"] + ["reported"] * 22
    for name, verdict in _published_verdicts(seed_verdicts).items():
        assert verdict.protocol == "leaderboard", (name, verdict.warnings)
    # the demo's MobileNetV2 was scored on the embedded sample: listed, but not ranked against full Broden
    (measured,) = [v for v in seed_verdicts.values() if v.results["provenance"]["kind"] == "measured"]
    assert measured.protocol == "other protocol" and measured.results["model"]["architecture"].startswith("MobileNetV2")


def test_seed_counts_equal_the_published_summary(seed_verdicts: dict[str, Any]) -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is not beside the checkout")
    with open(REFERENCE / "summary.csv", newline="") as f:
        published = {row["network"]: row for row in csv.DictReader(f)}
    seen = set()
    for verdict in _published_verdicts(seed_verdicts).values():
        network = verdict.results["model"]["name"]
        row, layer = published[network], verdict.results["layers"][0]
        summary = layer["summary"]
        assert layer["name"] == row["layer"] and summary["units"] == int(row["units"])
        for key, prefix in (("detectors", "detectors"), ("unique_per_category", "unique")):
            assert summary[key] == {c: int(row[f"{prefix}_{c}"]) for c in ["all", *CATS]}, network
        seen.add(network)
    assert seen == set(published)


def test_seed_script_reproduces_the_committed_files(tmp_path: Path) -> None:
    if not REFERENCE.is_dir():
        pytest.skip(f"{REFERENCE} is not beside the checkout")
    from tools.seed_leaderboard import main as seed

    out = tmp_path / "subs"
    out.mkdir()
    (out / "stale.json").write_text(json.dumps({"provenance": {"kind": "reported", "citation": CITATION}}))
    (out / "other.json").write_text("{}")
    measured = tiny("measured")
    measured["dataset"]["fingerprint"] = "sha256:" + "ab" * 32
    args = ["--reference", str(REFERENCE), "--dir", str(out), "--measured"]
    assert seed(args + [str(write(tmp_path, tiny()))]) == 2  # not measured: refused before anything is written
    assert sorted(p.name for p in out.iterdir()) == ["other.json", "stale.json"]
    assert seed(args + [str(write(tmp_path, measured))]) == 0
    regenerated = {p.name: p.read_bytes() for p in out.glob("*.json")}
    committed = {
        p.name: p.read_bytes()
        for p in SUBMISSIONS.glob("*.json")
        if json.loads(p.read_bytes())["provenance"]["kind"] != "measured"
    }
    assert regenerated.pop("other.json") == b"{}"  # not generated by seed: kept
    assert json.loads(regenerated.pop(canonical_name(measured))) == measured
    assert regenerated == committed  # stale seed output removed, the rest byte-identical


# --- leaderboard validate / submit ----------------------------------------------------------------------------------


def test_validate_command_exit_status_and_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, tiny(), "good.json")
    other = tiny()
    other["protocol"]["quantile"] = 0.01
    off = write(tmp_path, other, "off.json")
    assert main(["validate", str(good), str(off)]) == 0
    out = capsys.readouterr().out
    assert f"{good}: valid, protocol: leaderboard" in out
    assert f"{off}: valid, protocol: other protocol" in out and "protocol.quantile is 0.01" in out
    bad = write(tmp_path, "{", "bad.json")
    assert main(["validate", str(good), str(bad)]) == 1
    assert f"error: {bad}: $: not valid JSON" in capsys.readouterr().err


def test_submit_stores_under_canonical_name_and_guards_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "subs"
    first = write(tmp_path, tiny(), "first.json")
    assert main(["submit", str(first), "--dir", str(store)]) == 2
    assert "no such directory; run this from the root of your clone" in capsys.readouterr().err
    store.mkdir()
    assert main(["submit", str(first), "--dir", str(store)]) == 0
    out = capsys.readouterr().out
    [stored] = list(store.iterdir())
    assert stored.name.startswith("tiny-net__conv5__") and f"stored: {stored}" in out
    assert "git add" in out and "pull_request_template.md" in out and "sha256" in out
    assert json.loads(stored.read_text()) == tiny()

    assert main(["submit", str(first), "--dir", str(store)]) == 0  # identical: nothing to do
    assert "already stored, unchanged" in capsys.readouterr().out

    rescored = tiny()
    rescored["created"] = "2026-02-02T00:00:00+00:00"  # same numbers, other metadata: same name
    second = write(tmp_path, rescored, "second.json")
    assert main(["submit", str(second), "--dir", str(store)]) == 1
    assert "pass --force" in capsys.readouterr().err
    assert json.loads(stored.read_text())["created"] == tiny()["created"]
    assert main(["submit", str(second), "--dir", str(store), "--force"]) == 0
    assert json.loads(stored.read_text())["created"] == rescored["created"]

    changed = copy.deepcopy(tiny())
    changed["layers"][0]["units"][0]["categories"]["object"]["label"] = "cat"
    changed["layers"][0]["units"][0]["label"] = "cat"
    third = write(tmp_path, changed, "third.json")
    assert main(["submit", str(third), "--dir", str(store)]) == 0
    assert f"note: {stored.name} is an earlier scoring" in capsys.readouterr().out
    assert len(list(store.iterdir())) == 2


def test_submit_refuses_invalid_files_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tiny()
    bad["layers"][0]["summary"]["unique_per_category"]["all"] = 99
    path = write(tmp_path, bad)
    assert main(["submit", str(path), "--dir", str(tmp_path / "subs")]) == 1
    assert f"error: {path}: $.layers[0].summary.unique_per_category.all: 99 exceeds" in capsys.readouterr().err
    assert not (tmp_path / "subs").exists()
