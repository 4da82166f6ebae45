"""The embedded sample dataset (broden.sample, `broden sample`): deterministic, complete, and labelled exactly."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
from scipy import ndimage

import broden
from broden.cli import main
from broden.colors import COLOR_NAMES, color_label_name
from broden.labels import BRODEN_CATEGORIES
from broden.masks import rle_area
from broden.sample import finish, write_sample
from broden.sample.assets import flat
from broden.sample.scenes import Canvas
from broden.split import assign_split, split_hash


@pytest.fixture(scope="module")
def ds(sample_dataset):
    return broden.load(sample_dataset)


@pytest.fixture(scope="module")
def rows(ds):
    return list(ds.iter_rows())


def test_two_builds_have_the_same_fingerprint(tmp_path):
    a = write_sample(tmp_path / "a", num_images=10, seed=3)
    b = write_sample(tmp_path / "b", num_images=10, seed=3)
    c = write_sample(tmp_path / "c", num_images=10, seed=4)
    assert a.fingerprint == b.fingerprint == a.compute_fingerprint()
    assert c.fingerprint != a.fingerprint
    assert a.meta["generator"] == {"num_images": 10, "size": 224, "seed": 3, "min_frequency": 3, "jpeg_quality": 90}
    assert a.meta["name"] == "broden-sample" and a.meta["source"] == "sample"


def test_odd_sizes_like_broden_227_halve_by_floor(tmp_path):
    ds = write_sample(tmp_path / "s227", num_images=4, size=227, min_frequency=1)
    assert ds.meta["image_size"] == [227, 227] and ds.meta["seg_size"] == [113, 113]
    s = ds[0]
    assert s.image().size == (227, 227) and s.pixel["color"].shape == (1, 113, 113)


def test_the_sample_passes_every_dataset_check(sample_dataset):
    from broden.validate import validate_dataset

    assert [str(v) for v in validate_dataset(sample_dataset, workers=1)] == []


def test_default_sample_has_all_six_categories_with_the_right_kinds(ds):
    assert [(c.name, c.kind) for c in ds.labels.categories] == list(BRODEN_CATEGORIES)
    counts = {r["name"]: r["count"] for r in ds.labels.category_rows()}
    assert counts["color"] == 11
    assert counts["object"] >= 10 and counts["part"] >= 10 and counts["material"] >= 6
    assert counts["scene"] >= 3 and counts["texture"] >= 8
    assert 200 <= len(ds) <= 300
    assert ds.meta["image_size"] == [224, 224] and ds.meta["seg_size"] == [112, 112]
    assert {"scenes", "surfaces", "textures"} == set(ds.rows["source"])
    for lab in ds.labels.in_category("scene"):
        assert lab.name.endswith("-s")
    assert {lab.name for lab in ds.labels.in_category("color")} == {color_label_name(i) for i in range(11)}


def test_label_statistics_equal_counts_recomputed_from_rows(ds, rows):
    freq: dict[tuple[str, int], int] = defaultdict(int)
    cover: dict[tuple[str, int], float] = defaultdict(float)
    for row in rows:
        area = row["seg_height"] * row["seg_width"]
        m = row["masks"]
        per_image: dict[tuple[str, int], int] = defaultdict(int)
        for code, label, rle in zip(m["category"], m["label"], m["rle"]):
            cat = ds.pixel_categories[code]  # the masks' category is a ClassLabel of the pixel categories
            per_image[(cat, label)] += int(rle_area([rle], row["seg_height"], row["seg_width"])[0])
        for key, pixels in per_image.items():
            freq[key] += 1
            cover[key] += pixels / area  # labels never repeat across layers here, so areas add up
        for cat in ds.image_categories:
            for label in row[cat]:
                freq[(cat, label)] += 1
                cover[(cat, label)] += 1.0
    table = {(c, lab.number): m for lab in ds.labels.labels for c, m in lab.categories.items()}
    assert set(table) == set(freq)
    for key, m in table.items():
        assert m.frequency == freq[key], key
        assert m.frequency >= 3, key  # every label kept has support
        assert m.coverage == pytest.approx(cover[key], rel=1e-6), key
    numbers = [lab.number for lab in sorted(ds.labels.labels, key=lambda lab: (-lab.frequency, -lab.coverage))]
    assert numbers == list(range(1, len(ds.labels) + 1))  # numbered by frequency, then coverage


def test_rows_follow_broden_ids_splits_and_order(ds, rows):
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, key=lambda i: (split_hash(i), i))
    for r in rows:
        assert r["split"] == assign_split(r["id"])
        assert r["id"].startswith(r["source"] + "/") and r["id"].endswith(".jpg")
        cats = {ds.pixel_categories[c] for c in r["masks"]["category"]}
        assert "color" in cats and r["layers"]["color"] == 1
        if r["source"] == "scenes":
            assert len(r["scene"]) == 1 and not r["texture"] and "material" not in cats
        elif r["source"] == "surfaces":
            assert cats == {"color", "material"} and not r["scene"] and not r["texture"]
        else:
            assert cats == {"color"} and 1 <= len(r["texture"]) <= 3
    assert any(len(r["texture"]) >= 2 for r in rows)  # textures are multi-label


def test_parts_of_parts_lie_in_a_second_layer_inside_their_part(ds, rows):
    name = ds.labels.name
    two_layer = [r for r in rows if r["layers"]["part"] == 2]
    assert len(two_layer) >= 10
    seen = set()
    for r in two_layer[:20]:
        s = ds.decode(r)
        parts = s.pixel["part"]
        assert parts.shape == (2, 112, 112)
        inner = parts[1] > 0
        assert inner.any()
        assert (parts[0][inner] > 0).all()  # a pane lies in a window, a rim in a wheel, an eye in a head
        assert (s.pixel["object"][0][parts[0] > 0] > 0).all()  # every part lies in an object
        seen |= {name(int(n)) for n in np.unique(parts[1]) if n}
    assert seen & {"pane", "knob", "rim", "eye", "mouth", "hair"}


def test_a_label_can_belong_to_two_categories(ds):
    by_name = {lab.name: lab for lab in ds.labels.labels}
    assert set(by_name["wall"].categories) == {"object", "part"}
    assert set(by_name["foliage"].categories) == {"part", "material"}
    assert by_name["wall"].frequency == sum(m.frequency for m in by_name["wall"].categories.values())


def test_colors_are_named_on_full_resolution_pixels_and_reduced_like_scipy_zoom():
    canvas = Canvas(300, 401)
    rng = np.random.default_rng(0)
    left = np.zeros((300, 401), bool)
    left[:, :150] = True
    canvas.fill(left, flat((255, 0, 0), noise=0), rng, object="wall")
    canvas.fill(~left, flat((0, 0, 255), noise=0), rng)
    canvas.rgb[:] = np.rint(canvas.rgb / np.maximum(canvas.rgb.max(axis=(0, 1)), 1)) * 255  # undo brightness jitter
    jpeg, maps, names = finish(canvas, 224)
    color = np.vectorize(lambda i: names[i])(maps["color"][0])
    cols = np.rint(np.arange(112) * 400 / 111).astype(int)  # scipy's corner-aligned nearest choice
    red, blue = (color_label_name(COLOR_NAMES.index(c)) for c in ("red", "blue"))
    expect = np.where(cols < 150, red, blue)
    assert (color == expect[None, :]).all()
    wall = maps["object"][0] == names.index("wall")
    assert (wall == (cols < 150)[None, :]).all()
    assert (wall == ndimage.zoom(left, (112 / 300, 112 / 401), order=0)).all()
    img = broden.dataset.open_image(jpeg)
    assert img.size == (224, 224)
    r, g, b = np.asarray(img)[112, 20]
    assert r > 200 and g < 40 and b < 40


def test_cli_writes_prints_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sample", str(out), "--images", "8", "--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == str(out)
    assert "8 images" in printed and "fingerprint sha256:" in printed
    assert main(["sample", str(out), "--images", "9"]) == 0  # its own finished output is replaced
    assert len(broden.load(out)) == 9
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    assert main(["sample", str(foreign), "--images", "8"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--force" in err and len(err.strip().splitlines()) == 1
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]  # untouched
    assert main(["sample", str(foreign), "--images", "8", "--force"]) == 0
    assert len(broden.load(foreign)) == 8
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep me")
    assert main(["sample", str(a_file), "--force"]) == 2
    assert a_file.read_text() == "keep me"


@pytest.mark.parametrize("args", [["--size", "31"], ["--size", "1000"], ["--images", "0"], ["--images", "5001"]])
def test_cli_rejects_bad_arguments_with_one_line(tmp_path, capsys, args):
    out = tmp_path / "bad"
    assert main(["sample", str(out), *args]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_card_names_the_finished_folder_not_the_temporary_one(sample_dataset) -> None:
    card = (sample_dataset / "README.md").read_text()
    assert f'broden.load("{sample_dataset.name}")' in card
    assert ".partial" not in card
