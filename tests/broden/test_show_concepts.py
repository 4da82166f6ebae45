"""`broden show` draws a row with its labels colour-coded and named; `broden concepts` writes TCAV concept folders."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import broden
from broden.cli import main
from broden.concepts import export_concepts
from broden.masks import decode_binary
from broden.show import label_color, render


@pytest.fixture(scope="module")
def ds(sample_dataset: Path) -> broden.Broden:
    return broden.load(sample_dataset)


def test_show_draws_every_layer_with_its_labels_colours(ds: broden.Broden, tmp_path: Path) -> None:
    index = next(i for i, r in enumerate(ds.iter_rows()) if r["layers"]["part"] == 2)
    example = ds[index]
    picture = np.asarray(Image.open(io.BytesIO(render(ds, example))).convert("RGB"))
    layers = sum(int(example.pixel[c].shape[0]) for c in ds.pixel_categories)
    assert picture.shape[1] == (1 + layers) * (224 + 6) + 6  # the photo, then one panel per layer
    colours = {tuple(int(v) for v in px) for px in picture.reshape(-1, 3)[::7]}
    for number in np.unique(example.pixel["object"]):
        if number:  # every object label drawn shows up in its own colour (its legend swatch at least)
            assert label_color(int(number)) in colours, ds.labels.name(int(number))
    out = tmp_path / "row.png"
    assert main(["show", str(ds.path), example.id, "--out", str(out)]) == 0
    assert Image.open(out).size == (picture.shape[1], picture.shape[0])


def test_show_names_a_missing_id(ds: broden.Broden, tmp_path: Path, capsys) -> None:
    assert main(["show", str(ds.path), "scenes/nothing.jpg", "--out", str(tmp_path / "x.png")]) == 2
    assert "no such image id" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_concept_folders_hold_the_images_showing_each_concept(ds: broden.Broden, tmp_path: Path) -> None:
    out = tmp_path / "concepts"
    assert main(["concepts", str(ds.path), "car", "striped", "--out", str(out), "--min-coverage", "0.02",
                 "--negatives", "6"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["fingerprint"] == ds.fingerprint and manifest["split"] == "train"
    car_number = next(lab.number for lab in ds.labels.labels if lab.name == "car")
    striped = next(lab.number for lab in ds.labels.labels if lab.name == "striped")
    rows = {r["id"]: r for r in ds.iter_rows()}
    expected_car = []
    for rid, r in rows.items():  # an independent count: the car masks' union, as a share of the mask's pixels
        rles = [x for x, lab in zip(r["masks"]["rle"], r["masks"]["label"]) if lab == car_number]
        cover = decode_binary(rles, r["seg_height"], r["seg_width"]).any(0).mean() if rles else 0.0
        if r["split"] == "train" and cover >= 0.02:
            expected_car.append(rid)
    car, stripes = manifest["concepts"]
    assert sorted(i["id"] for i in car["images"]) == sorted(expected_car) and expected_car
    assert sorted(i["id"] for i in stripes["images"]) == sorted(
        rid for rid, r in rows.items() if r["split"] == "train" and striped in r["texture"])
    for item in car["images"]:
        assert (out / item["file"]).read_bytes() == rows[item["id"]]["image"]["bytes"]  # JPEG bytes unchanged
    negatives = manifest["negatives"]["images"]
    assert len(negatives) == 6 and sorted(p.name for p in (out / "random").iterdir()) == sorted(
        Path(n["file"]).name for n in negatives)
    chosen = {i["id"] for c in manifest["concepts"] for i in c["images"]}
    assert not chosen & {n["id"] for n in negatives}


def test_cropped_concepts_keep_only_the_region(ds: broden.Broden, tmp_path: Path) -> None:
    manifest = export_concepts(ds, ["sky"], tmp_path / "sky", crop=True, min_coverage=0.1)
    first = manifest["concepts"][0]["images"][0]
    crop = np.asarray(Image.open(tmp_path / "sky" / first["file"]).convert("RGB"), np.int32)
    full = ds[ds.ids.index(first["id"])].image()
    assert crop.shape[0] <= full.height and crop.shape[1] <= full.width
    grey = (np.abs(crop - 128) <= 6).all(axis=2).mean()  # JPEG-coded grey outside the sky
    assert 0.0 <= grey < 1.0 - 0.5 * first["coverage"]


def test_unknown_concepts_and_bad_options_are_one_line_errors(ds: broden.Broden, tmp_path: Path, capsys) -> None:
    assert main(["concepts", str(ds.path), "carr", "--out", str(tmp_path / "c")]) == 2
    assert "did you mean car" in capsys.readouterr().err
    assert main(["concepts", str(ds.path), "car", "--out", str(tmp_path / "c"), "--min-coverage", "2"]) == 2
    assert "--min-coverage" in capsys.readouterr().err and not (tmp_path / "c").exists()
