"""`benchmark report`: overlays, report contents, images from top_maps.npz, and one-line errors on bad input.

The builders (a tiny Broden dataset, hand-made results and top maps) live in ``tests/helpers/results_data.py``.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main as benchmark_main
from benchmark.html import charts, overlay
from benchmark.html.report import build_report, histogram
from broden.dataset import Broden
from broden.errors import BrodenError
from broden.utils.filenames import distinct_names
from tests.helpers.results_data import (
    CATEGORIES,
    GREY,
    IMAGE,
    make_dataset,
    quarter_map,
    results_doc,
    unit_doc,
    write_scored,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Broden:
    return make_dataset(tmp_path_factory.mktemp("ds") / "fake-broden")


@pytest.fixture(scope="module")
def report(tmp_path_factory, dataset) -> tuple[Path, dict]:
    results_path = write_scored(tmp_path_factory.mktemp("run"), dataset)
    return build_report(results_path, top_images=2)[0], json.loads(results_path.read_text())


class _Collect(HTMLParser):
    """Elements with their attributes, and the text of table cells, of one page."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, {k: v or "" for k, v in attrs}))
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None


def parse(path: Path) -> _Collect:
    p = _Collect()
    p.feed(path.read_text())
    return p


# -- overlay ---------------------------------------------------------------------------------------------------------
def test_overlay_region_matches_threshold_on_hand_made_map() -> None:
    # [[0, 1], [2, 3]] upsampled to 4x4 is 2y + x at y, x in {0, .25, .75, 1}: above 1.5 exactly where drawn here
    maps = np.array([[[0, 1], [2, 3]], [[0, 0], [0, 0]]], np.float32)
    region, empty, wide = overlay.active_regions(maps[[0, 1, 0]], 1.5, [(4, 4), (4, 4), (2, 8)])
    assert not empty.any() and (wide == np.array([[0] * 8, [1] * 8], bool)).all()  # images of another size
    expected = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1], [1, 1, 1, 1]], bool)
    assert (region == expected).all()
    image = Image.fromarray(np.full((4, 4, 3), 100, np.uint8))
    out = np.asarray(overlay.overlay(image, region))
    assert (out[region] == 100).all()
    assert (out[~region] == round(100 * overlay.DIM)).all()


def test_concept_outline_is_the_mask_border() -> None:
    pixel = {"object": np.zeros((1, 8, 8), np.int32), "part": np.zeros((0, 8, 8), np.int32)}
    pixel["object"][0, 2:6, 2:6] = 9
    mask = overlay.label_mask(pixel, 9, (16, 16))
    assert mask.sum() == 64 and mask[4:12, 4:12].all()
    assert overlay.label_mask(pixel, 5, (16, 16)) is None
    image = Image.fromarray(np.full((16, 16, 3), 100, np.uint8))
    out = np.asarray(overlay.overlay(image, np.ones((16, 16), bool), mask))
    drawn = (out == overlay.OUTLINE_RGB).all(axis=2)
    assert drawn[4, 4:12].all() and drawn[4:12, 11].all()  # border of the 8x8 square
    assert not drawn[6:10, 6:10].any() and not drawn[:4].any()  # not its inside, not outside it


def test_charts_are_deterministic_svg_with_literal_text() -> None:
    title = "<b>$x_1$ & 50% of {units}"
    svgs = [
        charts.category_bar_chart(["dog", "$wheel"], [3, 1], title=title),
        charts.grouped_bar_chart(["object", "scene"], {"a": [1, None], "$b": [2, 3]}, title=title, ylabel="n"),
        charts.stacked_category_chart(["conv4", "conv5"], {"object": [1, 2], "scene": [0, 4]}, title=title, ylabel="n"),
        charts.stacked_category_chart(["m1", "m2"], {"texture": [3, 1]}, title=title, ylabel="n", horizontal=True),
        charts.line_chart(["e1", "e2", "e3"], {"object": [1, None, 3]}, title=title, xlabel="x", ylabel="n"),
    ]
    for svg in svgs:
        assert svg.startswith("<?xml") and "<dc:date>" not in svg
        assert "&lt;b&gt;$x_1$ &amp; 50% of {units}" in svg  # not mathtext, escaped XML
    assert svgs[0] == charts.category_bar_chart(["dog", "$wheel"], [3, 1], title=title)
    with pytest.raises(ValueError, match="2 values for 3 points"):
        charts.line_chart(["a", "b", "c"], {"s": [1, 2]}, title="t", xlabel="x", ylabel="y")


def test_histogram_counts_per_category_rule() -> None:
    units = [
        unit_doc(0, {"object": ("dog", 0.2), "part": ("wheel", 0.05)}),
        unit_doc(1, {"object": ("dog", 0.1)}),
        unit_doc(2, {"object": ("sky", 0.05)}),
        unit_doc(3, {"object": ("car", 0.04)}),  # not above the threshold
    ]
    assert histogram(units, "object", 0.04) == [("dog", 2), ("sky", 1)]
    assert histogram(units, "part", 0.04) == [("wheel", 1)]


def test_layer_slugs_are_safe_and_distinct() -> None:
    assert distinct_names(["layer4.2.conv3", "fc<6>/a", "fc<6>:a", "..", "A", "a"], "layer") == {
        "layer4.2.conv3": "layer4.2.conv3",
        "fc<6>/a": "fc_6_a",
        "fc<6>:a": "fc_6_a-2",
        "..": "layer",
        "A": "A",
        "a": "a-2",
    }


# -- report contents -----------------------------------------------------------------------------------------------
def test_index_links_every_layer_with_metadata(report) -> None:
    out, results = report
    page = parse(out / "index.html")
    hrefs = [a["href"] for tag, a in page.elements if tag == "a"]
    assert hrefs == ["layer-conv5.html", "layer-fc_6_a.html"]
    text = (out / "index.html").read_text()
    assert "tinynet" in text and results["dataset"]["fingerprint"] in text and "netdissect" in text
    layer_rows = {r[0]: r for r in page.rows if r and r[0] in ("conv5", "fc<6>/a")}
    s = results["layers"][0]["summary"]
    assert layer_rows["conv5"][1:] == [
        "4", str(s["detectors"]["all"]), "75.0%", str(s["unique_per_category"]["all"]),
        str(s["unique_top_label"]["all"]),
    ]
    srcs = [a["src"] for tag, a in page.elements if tag == "img"]
    assert srcs == ["unique-per-category.svg", "unique-top-label.svg"]
    assert all((out / src).read_text().startswith("<?xml") for src in srcs)


def test_layer_summary_numbers_match_the_json(report) -> None:
    out, results = report
    s = results["layers"][0]["summary"]
    rows = {r[0]: r[1:] for r in parse(out / "layer-conv5.html").rows if r}
    for c in ["all", *CATEGORIES]:
        det, top = s["detectors"][c], s["detectors_top_label"][c]
        assert rows[c] == [
            str(det), f"{100 * det / 4:.1f}%", str(s["unique_per_category"][c]),
            str(top), f"{100 * top / 4:.1f}%", str(s["unique_top_label"][c]),
        ]
    assert rows["object"][:3] == ["2", "50.0%", "1"]  # units 0 and 1 detect dog
    assert rows["part"][:3] == ["1", "25.0%", "1"]  # unit 1 is also a wheel detector (per-category rule)
    assert rows["part"][3] == "0"  # but not under top-label


def test_histogram_titles_in_paper_style(report) -> None:
    out, _ = report
    svg = (out / "layers" / "conv5" / "histogram-object.svg").read_text()
    assert "object detectors: 2/4 units, 1 unique" in svg and ">dog<" in svg
    html = (out / "layer-conv5.html").read_text()
    assert "layers/conv5/histogram-object.svg" in html
    assert "No material, texture, color detectors (0/4 units)." in html  # said in words, no empty chart
    assert not (out / "layers" / "conv5" / "histogram-material.svg").exists()


def test_gallery_has_every_unit_sorted_by_iou_with_greyed_non_detectors(report) -> None:
    out, results = report
    page = parse(out / "layer-conv5.html")
    cards = [a for tag, a in page.elements if tag == "div" and "data-unit" in a]
    assert [int(c["data-unit"]) for c in cards] == [1, 0, 2, 3]  # IoU 0.2, 0.1, 0.08, 0.01
    assert [c["class"] for c in cards] == ["unit detector"] * 3 + ["unit below"]
    assert [c["data-label"] for c in cards] == ["dog", "dog", "street-s", "red-c"]
    assert "also: wheel (part, IoU 0.050)" in (out / "layer-conv5.html").read_text()
    units2 = [a for tag, a in parse(out / "layer-fc_6_a.html").elements if tag == "div" and "data-unit" in a]
    assert len(units2) == 2


def test_unit_images_exist_are_referenced_and_show_the_region(report) -> None:
    out, _ = report
    page = parse(out / "layer-conv5.html")
    srcs = [a["src"] for tag, a in page.elements if tag == "img" and "strip" in a.get("class", "")]
    assert srcs == [f"layers/conv5/unit-000{u}.jpg" for u in (1, 0, 2, 3)]
    for src in srcs:
        with Image.open(out / src) as im:
            assert im.size == (2 * IMAGE + overlay.TILE_GAP, IMAGE)  # --top-images 2 of the 3 kept
    rgb = np.asarray(Image.open(out / "layers/conv5/unit-0000.jpg"), np.float32)[:, :IMAGE]
    # the map's hot quarter upsampled and thresholded at 0.5 is about the top-left 16x16: kept bright, rest dimmed
    assert rgb[2:12, 2:12].mean() == pytest.approx(GREY, abs=6)
    assert rgb[20:, 20:].mean() == pytest.approx(GREY * overlay.DIM, abs=6)
    # the dog's mask (top-left 16x16 of the image) is outlined in yellow along its inner border
    border = rgb[2:12, 14:16]
    assert border[..., 0].mean() > 220 and border[..., 2].mean() < 90
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpg"))
    # fc<6>/a unit 1 has no threshold recorded: no region can be drawn, so no picture
    assert files == [f"layers/conv5/unit-000{u}.jpg" for u in range(4)] + ["layers/fc_6_a/unit-0000.jpg"]


def test_report_without_top_maps_still_has_summary_and_charts(tmp_path, dataset) -> None:
    results_path = write_scored(tmp_path / "run", dataset)
    (tmp_path / "run" / "top_maps.npz").unlink()
    out, note = build_report(results_path, out=tmp_path / "rep")
    assert note == f"top_maps.npz (the units' activation maps) is missing beside {results_path.name}"
    html = (out / "layer-conv5.html").read_text()
    assert "Images unavailable: top_maps.npz (the units&#39; activation maps) is missing" in html
    assert not list(out.rglob("*.jpg")) and (out / "layers" / "conv5" / "histogram-object.svg").is_file()
    assert len(re.findall(r'class="unit (?:detector|below)"', html)) == 4


def test_reported_results_without_units(tmp_path, capsys) -> None:
    doc = results_doc("paper", {"conv5": [unit_doc(0, {"object": ("dog", 0.2)})]})
    doc["provenance"]["kind"] = "reported"
    del doc["layers"][0]["units"]
    del doc["layers"][0]["summary"]["unique_top_label"]
    (tmp_path / "r.json").write_text(json.dumps(doc))
    assert benchmark_main(["report", str(tmp_path / "r.json")]) == 0
    assert capsys.readouterr().err.startswith("note: no unit images: these results carry no activation maps")
    out = tmp_path / "report"
    html = (out / "layer-conv5.html").read_text()
    assert "Per-unit results were not published" in html and "no activation maps" in html
    assert (out / "unique-per-category.svg").is_file() and not (out / "unique-top-label.svg").exists()


def test_hostile_names_are_escaped(tmp_path) -> None:
    hostile = "<script>alert(1)</script>"
    doc = results_doc(hostile, {hostile: [unit_doc(0, {"object": (hostile, 0.2)})]})
    (tmp_path / "r.json").write_text(json.dumps(doc))
    out, _ = build_report(tmp_path / "r.json")
    for page in out.glob("*.html"):
        text = page.read_text()
        assert hostile not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_fingerprint_mismatch_is_a_clear_error(tmp_path, dataset) -> None:
    results_path = write_scored(tmp_path / "run", dataset)
    doc = json.loads(results_path.read_text())
    doc["dataset"]["fingerprint"] = "sha256:" + "0" * 64
    results_path.write_text(json.dumps(doc))
    with pytest.raises(BrodenError) as err:
        build_report(results_path, dataset=dataset.path)
    assert dataset.fingerprint in str(err.value) and "sha256:" + "0" * 64 in str(err.value)
    assert not (tmp_path / "run" / "report").exists()


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"schema": "broden-results/1"})])
def test_missing_or_invalid_results_is_a_one_line_error(tmp_path, capsys, content) -> None:
    path = tmp_path / "results.json"
    if content is not None:
        path.write_text(content)
    assert benchmark_main(["report", str(path), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(path) in err and err.count("\n") == 1
    assert not (tmp_path / "rep").exists() and not list(tmp_path.glob(".rep*"))


def test_cli_writes_report_and_help_has_an_example(tmp_path, dataset, capsys) -> None:
    results_path = write_scored(tmp_path / "run", dataset)
    assert benchmark_main(["report", str(results_path), "--out", str(tmp_path / "r"), "--top-images", "1"]) == 0
    assert str(tmp_path / "r" / "index.html") in capsys.readouterr().out
    with Image.open(tmp_path / "r" / "layers" / "conv5" / "unit-0000.jpg") as im:
        assert im.size == (IMAGE, IMAGE)
    with pytest.raises(SystemExit):
        benchmark_main(["report", "--help"])
    help_text = capsys.readouterr().out
    assert "Example:" in help_text and "--top-images N" in help_text and "--dataset PATH" in help_text


def test_report_of_a_real_score_run(tmp_path, dataset) -> None:
    """The contract with 'benchmark score': its top_maps.npz layout, unit order, thresholds and dataset record."""
    acts = np.zeros((6, 2, 4, 4), np.float32)
    acts[:3, 0] = quarter_map()  # unit 0 fires on the dog quarter of images 0-2
    acts[3, 1, 2:, :] = 1.0  # unit 1 fires on the wood (bottom half) of image 3
    np.savez(tmp_path / "acts.npz", activations=acts, image=np.array(dataset.ids), layer="conv")
    score = ["score", "--activations", str(tmp_path / "acts.npz"), "--dataset", str(dataset.path)]
    assert benchmark_main([*score, "--out", str(tmp_path / "run"), "--top-k", "3", "--quantile", "0.2"]) == 0
    assert benchmark_main(["report", str(tmp_path / "run" / "results.json")]) == 0
    out = tmp_path / "run" / "report"
    html = (out / "layer-conv.html").read_text()
    assert 'data-label="dog"' in html and 'data-label="wood"' in html
    rgb = np.asarray(Image.open(out / "layers" / "conv" / "unit-0000.jpg"), np.float32)
    assert rgb.shape == (IMAGE, 3 * IMAGE + 2 * overlay.TILE_GAP, 3)
    assert rgb[2:12, 2:12].mean() == pytest.approx(GREY, abs=6)  # the dog quarter is active
    assert rgb[20:, 20:IMAGE].mean() == pytest.approx(GREY * overlay.DIM, abs=6)
    wood = np.asarray(Image.open(out / "layers" / "conv" / "unit-0001.jpg"), np.float32)[:, :IMAGE]
    assert wood[20:28, 4:28].mean() == pytest.approx(GREY, abs=6) and wood[:10].mean() < GREY * 0.3
    assert wood[14:18, 4:28, 2].mean() < 120  # the wood outline along its top edge (yellow: low blue)


def test_report_without_the_recorded_dataset_says_so(tmp_path, dataset) -> None:
    results_path = write_scored(tmp_path / "run", dataset)
    doc = json.loads(results_path.read_text())
    doc["dataset"]["path"] = str(tmp_path / "moved-away")
    results_path.write_text(json.dumps(doc))
    html = (build_report(results_path)[0] / "index.html").read_text()
    assert f"dataset not found at {tmp_path / 'moved-away'}; pass --dataset PATH to include images" in html
    out, note = build_report(results_path, dataset=dataset.path, out=tmp_path / "r2")
    assert note is None
    assert (out / "layers" / "conv5" / "unit-0000.jpg").is_file()


def test_parallel_gallery_writes_the_same_report(tmp_path, dataset, monkeypatch) -> None:
    """Units drawn by a pool of workers (one task per unit) give the same pages and the same JPEG bytes."""
    import benchmark.html.report as report_module

    results_path = write_scored(tmp_path / "run", dataset)
    inline = build_report(results_path, out=tmp_path / "inline")[0]
    monkeypatch.setattr(report_module, "PARALLEL_MIN_UNITS", 1)
    monkeypatch.setattr(report_module, "UNITS_PER_TASK", 1)
    monkeypatch.setattr("broden.utils.parallel.default_workers", lambda: 2)
    pooled = build_report(results_path, out=tmp_path / "pooled")[0]
    files = sorted(p.relative_to(inline) for p in inline.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(pooled) for p in pooled.rglob("*") if p.is_file())
    assert any(f.suffix == ".jpg" for f in files)
    for f in files:
        assert (inline / f).read_bytes() == (pooled / f).read_bytes(), f
