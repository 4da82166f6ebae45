"""`benchmark compare`: fine-tuning unit changes, checkpoint series, models side by side, CSV columns, errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from benchmark.cli import main as benchmark_main
from benchmark.html.compare import COUNT_COLUMNS, UNIT_COLUMNS, build_compare, choose_mode, load_entries
from broden.errors import BrodenError
from tests.helpers.results_data import AFTER, BEFORE, results_doc, unit_doc, write


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


@pytest.fixture
def pair(tmp_path) -> list[Path]:
    return [
        write(tmp_path / "places365" / "results.json", results_doc("alexnet", {"conv5": BEFORE})),
        write(tmp_path / "finetuned" / "results.json", results_doc("alexnet", {"conv5": AFTER})),
    ]


def test_fine_tuning_pair_lines_counts_and_csv(tmp_path, pair) -> None:
    out, mode, _ = build_compare(pair, out=tmp_path / "cmp", names=["before", "after"])
    assert mode == "units"
    html = (out / "index.html").read_text()
    assert "unit 1: sky (object, IoU 0.100) → wood (material, IoU 0.060)" in html
    assert "unit 3: red-c (color, IoU 0.010) → striped (texture, IoU 0.050)" in html
    rows = read_csv(out / "compare.csv")
    assert list(rows[0]) == list(UNIT_COLUMNS)
    assert [(r["unit"], r["status"]) for r in rows] == [("1", "changed"), ("3", "gained"), ("2", "lost"),
                                                       ("0", "kept"), ("4", "none")]
    assert rows[0] == {
        "layer": "conv5", "unit": "1", "status": "changed", "label_a": "sky", "category_a": "object", "iou_a": "0.1",
        "label_b": "wood", "category_b": "material", "iou_b": "0.06", "iou_change": "-0.04",
    }
    counts = read_csv(out / "counts.csv")
    assert list(counts[0]) == list(COUNT_COLUMNS)
    shown = [(r["name"], r["category"], r["unique_per_category"]) for r in counts if r["category"] in ("all", "object")]
    assert shown == [("before", "all", "3"), ("before", "object", "2"), ("after", "all", "3"), ("after", "object", "1")]
    # the kept/changed/gained/lost/none table
    assert "<tr><td>conv5</td><td class=\"num\">1</td><td class=\"num\">1</td><td class=\"num\">1</td>" \
           "<td class=\"num\">1</td><td class=\"num\">1</td></tr>" in html


def test_checkpoint_series_has_line_charts_for_both_conventions(tmp_path) -> None:
    middle = [unit_doc(u["unit"], {u["category"]: (u["label"], u["iou"])}) for u in AFTER[:3]] + BEFORE[3:]
    paths = [
        write(tmp_path / f"epoch{i}.json", results_doc("resnet", {"layer4": units}))
        for i, units in enumerate([BEFORE, middle, AFTER])
    ]
    out, mode, _ = build_compare(paths, out=tmp_path / "series")
    assert mode == "checkpoints"
    html = (out / "index.html").read_text()
    for convention in ("per-category", "top-label"):
        src = f"series-layer4-{convention}.svg"
        assert f'class="{convention}" src="{src}"' in html
        svg = (out / src).read_text()
        assert f"layer4: unique detectors per category ({convention})" in svg
        assert all(f">{name}<" in svg for name in ("epoch0", "epoch1", "epoch2"))  # x axis: checkpoint names
    assert "Units: epoch0 → epoch2" in html
    assert [r["status"] for r in read_csv(out / "compare.csv")] == ["changed", "gained", "lost", "kept", "none"]


def test_different_models_get_grouped_bars(tmp_path) -> None:
    reported = results_doc("paper-net", {"conv5": BEFORE})
    reported["provenance"]["kind"] = "reported"
    del reported["layers"][0]["units"]
    del reported["layers"][0]["summary"]["unique_top_label"]
    paths = [
        write(tmp_path / "a.json", results_doc("alexnet", {"conv4": AFTER, "conv5": BEFORE})),
        write(tmp_path / "b.json", results_doc("resnet", {"layer4": AFTER[:3]})),
        write(tmp_path / "c.json", reported),
    ]
    out, mode, _ = build_compare(paths, out=tmp_path / "models")
    assert mode == "models"
    svg = (out / "models-per-category.svg").read_text()
    assert "alexnet (conv5)" in svg and "resnet (layer4)" in svg and "paper-net (conv5)" in svg
    assert svg.count("<g id=\"patch_") > 3 * 6  # background patches plus one bar per model and category
    assert (out / "models-top-label.svg").is_file()
    rows = read_csv(out / "compare.csv")
    assert list(rows[0]) == list(COUNT_COLUMNS) and len(rows) == 4 * 7
    assert {r["unique_top_label"] for r in rows if r["name"] == "paper-net"} == {""}
    assert not (out / "counts.csv").exists()


def test_explicit_modes_the_files_cannot_support_are_errors(tmp_path, pair) -> None:
    other = write(tmp_path / "other.json", results_doc("resnet", {"layer4": BEFORE[:2]}))
    with pytest.raises(BrodenError, match=r"have different layers.*use --mode models"):
        choose_mode(load_entries([pair[0], other]), "units")
    with pytest.raises(BrodenError, match="--mode units compares two files, got 3"):
        choose_mode(load_entries([*pair, pair[0]]), "units")
    assert choose_mode(load_entries(pair), "models") == "models"
    assert choose_mode(load_entries(pair), "checkpoints") == "checkpoints"


def test_default_names_fall_back_to_file_names(pair) -> None:
    assert [e.name for e in load_entries(pair)] == ["places365/results", "finetuned/results"]


def test_hostile_names_are_text(tmp_path, pair) -> None:
    hostile = "<script>alert(1)</script>"
    out = build_compare(pair, out=tmp_path / "cmp", names=[hostile, "b"]).path
    html = (out / "index.html").read_text()
    assert hostile not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_protocol_differences_are_flagged(tmp_path, pair) -> None:
    doc = json.loads(pair[1].read_text())
    doc["protocol"]["iou_threshold"] = 0.05
    write(pair[1], doc)
    out = build_compare(pair, out=tmp_path / "cmp", names=["a", "b"]).path
    assert "iou_threshold differs (a: 0.04; b: 0.05)" in (out / "index.html").read_text()


@pytest.mark.parametrize("case", ["names", "missing", "invalid"])
def test_cli_errors_leave_no_output(tmp_path, capsys, pair, case) -> None:
    files, extra = [str(p) for p in pair], []
    if case == "names":
        extra, message = ["--names", "a,b,c"], "--names gives 3 names for 2 results files"
    elif case == "missing":
        files[1] = str(tmp_path / "nope.json")
        message = f"{files[1]}: cannot read results"
    else:
        pair[1].write_text('{"schema": "broden-results/1"}')
        message = f"{pair[1]}: $: 'name' is a required property"
    assert benchmark_main(["compare", *files, *extra, "--out", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "cmp").exists() and not list(tmp_path.glob(".cmp*"))


def test_cli_writes_comparison(tmp_path, capsys, pair) -> None:
    assert benchmark_main(["compare", *map(str, pair), "--out", str(tmp_path / "cmp"), "--names", "x,y"]) == 0
    assert f"units comparison written to {tmp_path / 'cmp' / 'index.html'}" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        benchmark_main(["compare", "--help"])
    assert "label_a, category_a, iou_a" in capsys.readouterr().out
