"""The authors' five released per-unit CSVs must reproduce their published counts under both conventions."""

from __future__ import annotations

import csv
import json

import pytest

from benchmark.cli import main as benchmark_main
from benchmark.netdissect_csv import KNOWN_RELEASES, import_netdissect_csv
from tests.helpers.paths import REFERENCE

CATS = ("object", "part", "scene", "material", "texture", "color")

# Top-label convention, recomputed from the released CSVs (reference/netdissect-cvpr2017/README.md and docs/algorithm.md §6.5).
TOP_LABEL = {
    "resnet-152-torch-places365": (278, 61, 14, 159, 4, 39, 1),
    "resnet-152-torch-imagenet": (197, 63, 16, 68, 5, 43, 2),
    "caffe_reference_places365": (72, 32, 6, 6, 2, 25, 1),
    "caffe_reference_places205": (60, 30, 6, 3, 1, 19, 1),
    "caffe_reference_imagenet": (50, 17, 8, 1, 1, 21, 2),
}


def _published() -> dict[str, dict[str, str]]:
    with open(REFERENCE / "summary.csv", newline="") as f:
        return {row["network"]: row for row in csv.DictReader(f)}


@pytest.mark.parametrize("stem", sorted(KNOWN_RELEASES))
def test_per_category_rule_reproduces_summary_csv(stem: str) -> None:
    results = import_netdissect_csv(REFERENCE / f"{stem}.csv")
    row = _published()[results["name"]]
    layer = results["layers"][0]
    s = layer["summary"]
    assert layer["name"] == row["layer"]
    assert s["units"] == int(row["units"]) == layer["num_units"]
    for c in ("all", *CATS):
        assert s["detectors"][c] == int(row[f"detectors_{c}"]), c
        assert s["unique_per_category"][c] == int(row[f"unique_{c}"]), c


@pytest.mark.parametrize("stem", sorted(KNOWN_RELEASES))
def test_top_label_rule_reproduces_stated_counts(stem: str) -> None:
    results = import_netdissect_csv(REFERENCE / f"{stem}.csv")
    s = results["layers"][0]["summary"]
    expected = dict(zip(("all", *CATS), TOP_LABEL[results["name"]]))
    assert s["unique_top_label"] == expected
    assert s["detectors_top_label"]["all"] == s["detectors"]["all"]
    assert sum(s["detectors_top_label"][c] for c in CATS) == s["detectors"]["all"]


def test_known_unit_examples_survive_import() -> None:
    """Paper examples (docs/algorithm.md §6.6): AlexNet-Places365 unit 107 (1-based) is road, IoU 0.1555."""
    results = import_netdissect_csv(REFERENCE / "caffe_reference_places365.csv")
    units = {u["unit"]: u for u in results["layers"][0]["units"]}
    road = units[106]
    assert (road["category"], road["label"]) == ("object", "road")
    assert road["iou"] == pytest.approx(0.15546507972764645)
    best = road["categories"]["object"]
    assert best["intersection"] / (best["activation"] + best["truth"] - best["intersection"]) == pytest.approx(
        best["iou"], rel=1e-9
    )


def test_cli_import_and_summary_csv(tmp_path, capsys) -> None:
    out = tmp_path / "r.json"
    assert benchmark_main(["import-netdissect", str(REFERENCE / "ResNet-152-model_places365.csv"), "--out", str(out)]) == 0
    capsys.readouterr()
    assert benchmark_main(["summary", str(out), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [
        "layer,rule,all,object,part,scene,material,texture,color",
        "caffe.Eltwise_510,detectors,1452,774,308,1045,19,300,2",
        "caffe.Eltwise_510,unique_per_category,347,84,26,188,5,42,2",
        "caffe.Eltwise_510,unique_top_label,278,61,14,159,4,39,1",
    ]
    assert benchmark_main(["summary", str(out), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["caffe.Eltwise_510"]["unique_per_category"]["all"] == 347
    assert benchmark_main(["units", str(out), "--format", "csv"]) == 0
    units = capsys.readouterr().out.strip().splitlines()
    assert units[0] == "layer,unit,category,label,iou" and len(units) == 2049
    assert units[1].startswith("caffe.Eltwise_510,0,")
