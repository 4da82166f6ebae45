"""Results files: strict parsing, schema errors that name the field, atomic writes, importer input errors."""

from __future__ import annotations

import copy
import csv
import json

import pytest

from benchmark.cli import main as benchmark_main
from benchmark.netdissect_csv import import_netdissect_csv
from benchmark.results import load_results, validate_results, write_results
from benchmark.summary import summarize_layer
from broden.errors import BrodenError
from tests.helpers.paths import REFERENCE


@pytest.fixture(scope="module")
def alexnet() -> dict:
    return import_netdissect_csv(REFERENCE / "caffe_reference_imagenet.csv")


def test_write_then_load_round_trip(tmp_path, alexnet) -> None:
    path = write_results(tmp_path / "r.json", alexnet)
    assert load_results(path) == alexnet


def test_schema_error_names_the_field(alexnet) -> None:
    bad = copy.deepcopy(alexnet)
    bad["layers"][0]["units"][3]["categories"]["object"]["truth"] = -5
    with pytest.raises(BrodenError, match=r"\$\.layers\[0\]\.units\[3\]\.categories\.object\.truth"):
        validate_results(bad)


def test_invalid_object_never_reaches_disk(tmp_path, alexnet) -> None:
    bad = copy.deepcopy(alexnet)
    bad["schema"] = "something-else"
    with pytest.raises(BrodenError, match=r"\$\.schema"):
        write_results(tmp_path / "r.json", bad)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"a": NaN}', r"\$\.a: NaN is not allowed"),
        ('{"a": {"b": [1, 1e999]}}', r"\$\.a\.b\[1\]: 1e999 overflows to infinity"),
        ('{"a": 1, "a": 2}', r"\$: duplicate key 'a'"),
        ("not json at all", r"\$: not valid JSON"),
        ("[1, 2]", r"\$: the top level is a list"),
    ],
)
def test_strict_parsing(tmp_path, text, reason) -> None:
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(BrodenError, match=reason):
        load_results(path)


def test_oversized_file_refused_before_parsing(tmp_path) -> None:
    path = tmp_path / "big.json"
    path.write_bytes(b" " * 2048)
    with pytest.raises(BrodenError, match="over the 1024-byte limit"):
        load_results(path, max_bytes=1024)


def test_summarize_layer_counts_both_conventions() -> None:
    def unit(n, top, cats):
        return {
            "unit": n,
            "label": top[1],
            "category": top[0],
            "iou": max(i for _, i in cats.values()),
            "categories": {c: {"label": lab, "iou": i} for c, (lab, i) in cats.items()},
        }

    units = [
        unit(0, ("object", "car"), {"object": ("car", 0.2), "color": ("red-c", 0.05)}),
        unit(1, ("object", "car"), {"object": ("car", 0.1), "color": ("blue-c", 0.06)}),
        unit(2, ("color", "red-c"), {"object": ("dog", 0.03), "color": ("red-c", 0.04)}),  # 0.04 is not > 0.04
        unit(3, ("color", "blue-c"), {"object": ("dog", 0.01), "color": ("blue-c", 0.3)}),
    ]
    s = summarize_layer(units, ["object", "color"], 0.04)
    assert s["detectors"] == {"all": 3, "object": 2, "color": 3}
    assert s["unique_per_category"] == {"all": 3, "object": 1, "color": 2}
    assert s["unique_top_label"] == {"all": 2, "object": 1, "color": 1}
    assert s["detectors_top_label"] == {"all": 3, "object": 2, "color": 1}
    assert s["detector_fraction"] == 0.75


def test_import_errors_are_one_line(tmp_path, capsys) -> None:
    with open(REFERENCE / "caffe_reference_imagenet.csv", newline="") as f:
        reader = csv.DictReader(f)
        row = next(reader)
        header = reader.fieldnames
    row["score"] = "abc"
    broken = tmp_path / "mine.csv"
    with open(broken, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerow(row)
    with pytest.raises(BrodenError, match="which layer"):
        import_netdissect_csv(broken)
    with pytest.raises(BrodenError, match=r"mine.csv:2 score: 'abc' is not a number"):
        import_netdissect_csv(broken, layer="conv5")
    no_cols = tmp_path / "x.csv"
    no_cols.write_text("unit,label\n1,car\n")
    out = tmp_path / "out.json"
    rc = benchmark_main(["import-netdissect", str(no_cols), "--layer", "conv5", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "missing column 'category'" in err
    assert not out.exists()


def test_units_of_reported_entry_is_a_clear_error(tmp_path, alexnet, capsys) -> None:
    reported = copy.deepcopy(alexnet)
    reported["provenance"]["kind"] = "reported"
    del reported["layers"][0]["units"]
    path = write_results(tmp_path / "rep.json", reported)
    assert benchmark_main(["units", str(path)]) == 2
    assert "no per-unit data" in capsys.readouterr().err
    assert json.loads(path.read_text())["layers"][0]["summary"]["detectors"]["all"] == 97
