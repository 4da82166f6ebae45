"""Legacy Broden layout: the fixture is in the original format, convert is lossless, export round-trips exactly,
bad input is a one-line error that leaves nothing behind."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from broden.cli import main
from broden.dataset import load
from broden.errors import BrodenError
from broden.legacy import convert_legacy, export_legacy
from broden.masks import label_map_from_rgb
from broden.utils.parallel import choose_workers, default_workers
from tests.helpers.legacy_fixture import write_legacy_fixture


@pytest.fixture(scope="module")
def legacy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_legacy_fixture(tmp_path_factory.mktemp("legacy"))


@pytest.fixture(scope="module")
def converted(legacy: Path, tmp_path_factory: pytest.TempPathFactory):
    return convert_legacy(legacy, tmp_path_factory.mktemp("hf") / "broden", workers=1)


def _index(src: Path) -> list[dict[str, str]]:
    with open(src / "index.csv", newline="") as f:
        return list(csv.DictReader(f))


def _png(path: Path) -> np.ndarray:
    return label_map_from_rgb(np.asarray(Image.open(path)))


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_fixture_has_the_original_format(legacy: Path) -> None:
    assert legacy.name == "broden1_224"
    for name in ("README.txt", "syns.txt", "label.csv", "category.csv", *(f"c_{c}.csv" for c in
                 ("color", "object", "part", "material", "scene", "texture"))):
        assert (legacy / name).is_file(), name
    rows = _index(legacy)
    assert list(rows[0]) == ["image", "split", "ih", "iw", "sh", "sw", "color", "object", "part", "material",
                             "scene", "texture"]
    assert {r["image"].split("/")[0] for r in rows} == {"ade20k", "pascal", "opensurfaces", "dtd"}
    parts = [r["part"].split(";") for r in rows if r["image"].startswith("ade20k/") and r["part"]]
    assert any(len(p) == 2 and p[0].endswith("_part_1.png") and p[1].endswith("_part_2.png") for p in parts)
    assert any(r["part"].endswith("_part.png") for r in rows if r["image"].startswith("pascal/"))
    scenes = [r["scene"] for r in rows if r["image"].startswith("ade20k/")]
    assert "0" in scenes and "" in scenes and any(s not in ("", "0") for s in scenes)
    assert any(";" in r["texture"] for r in rows)
    assert all(r["material"] == "" for r in rows if not r["image"].startswith("opensurfaces/"))
    labels = {int(r["number"]): r for r in csv.DictReader(open(legacy / "label.csv"))}
    wall = next(r for r in labels.values() if r["name"] == "wall")
    assert {c.split("(")[0] for c in wall["category"].split(";")} == {"object", "part"}
    assert any(r["syns"] for r in labels.values())
    big = [_png(legacy / "images" / r["object"]).max() for r in rows if r["object"]]
    assert max(big) >= 256  # the PNG's G channel carries labels above 255
    assert (legacy / "images" / rows[0]["image"]).read_bytes()[:2] == b"\xff\xd8"


def test_convert_is_lossless(legacy: Path, converted) -> None:
    ds = converted
    rows = _index(legacy)
    assert ds.ids == [r["image"] for r in rows]
    assert ds.pixel_categories == ["color", "object", "part", "material"]
    assert ds.image_categories == ["scene", "texture"]
    for i, r in enumerate(rows):
        s = ds[i]
        assert s.image_bytes == (legacy / "images" / r["image"]).read_bytes()
        assert (s.split, s.height, s.width, s.seg_height, s.seg_width) == (
            r["split"], int(r["ih"]), int(r["iw"]), int(r["sh"]), int(r["sw"]))
        for cat in ds.pixel_categories:
            paths = [p for p in r[cat].split(";") if p]
            assert s.pixel[cat].shape == (len(paths), 112, 112)
            for k, p in enumerate(paths):
                np.testing.assert_array_equal(s.pixel[cat][k], _png(legacy / "images" / p))
        for cat in ds.image_categories:
            assert s.image_labels[cat] == [int(x) for x in r[cat].split(";") if x]
    labels = list(csv.DictReader(open(legacy / "label.csv")))
    assert [lab.number for lab in ds.labels.labels] == [int(r["number"]) for r in labels]
    for r in labels:
        lab = ds.labels[int(r["number"])]
        assert (lab.name, lab.frequency, lab.category_field(), ";".join(lab.syns)) == (
            r["name"], int(r["frequency"]), r["category"], r["syns"])
    for r in csv.DictReader(open(legacy / "c_part.csv")):
        m = ds.labels[int(r["number"])].categories["part"]
        assert (m.code, m.frequency, m.coverage) == (int(r["code"]), int(r["frequency"]), float(r["coverage"]))
    assert "legacy_readme" in ds.meta and ds.meta["name"] == "broden1_224"


def test_export_round_trip(legacy: Path, converted, tmp_path: Path) -> None:
    out = export_legacy(converted.path, tmp_path / "legacy" / "broden1_224", workers=1)
    for name in ("index.csv", "label.csv", "category.csv", "c_color.csv", "c_object.csv", "c_part.csv",
                 "c_material.csv", "c_scene.csv", "c_texture.csv", "README.txt"):
        assert (out / name).read_text() == (legacy / name).read_text(), name
    for r in _index(legacy):
        assert (out / "images" / r["image"]).read_bytes() == (legacy / "images" / r["image"]).read_bytes()
        for cat in ("color", "object", "part", "material"):
            for p in filter(None, r[cat].split(";")):
                np.testing.assert_array_equal(_png(out / "images" / p), _png(legacy / "images" / p))
    again = convert_legacy(out, tmp_path / "hf2", workers=1)
    assert again.fingerprint == converted.fingerprint == again.compute_fingerprint()
    assert again.labels.to_json() == converted.labels.to_json()


def test_parallel_convert_matches_serial(tmp_path: Path) -> None:
    src = write_legacy_fixture(tmp_path / "src", size=64, num_images=70, seed=3)
    serial = convert_legacy(src, tmp_path / "serial", workers=1)
    parallel = convert_legacy(src, tmp_path / "parallel", workers=2)
    assert parallel.fingerprint == serial.fingerprint
    exported = export_legacy(parallel, tmp_path / "exported", workers=2)
    assert convert_legacy(exported, tmp_path / "again", workers=1).fingerprint == serial.fingerprint
    # an error inside a worker reaches the caller as the same one-line error, and nothing is left behind
    expected = _break_truncated_png(exported)
    with pytest.raises(BrodenError, match=expected):
        convert_legacy(exported, tmp_path / "broken", workers=2)
    assert not (tmp_path / "broken").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial or scratch dirs


def test_choose_workers() -> None:
    assert choose_workers(3, 1, min_items=500) == 3
    assert choose_workers(0, 10**6, min_items=500) == 1
    assert choose_workers(None, 10, min_items=500) == 1
    assert choose_workers(None, 10**6, min_items=500) == default_workers() >= 1


def test_columns_are_read_by_name(legacy: Path, converted, tmp_path: Path) -> None:
    src = _copy(legacy, tmp_path / "broden1_224")
    rows = _index(legacy)
    order = ["texture", "image", "sw", "part", "split", "scene", "ih", "color", "sh", "material", "iw", "object"]
    with open(src / "index.csv", "w", newline="") as f:
        w = csv.DictWriter(f, order, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    with open(src / "c_scene.csv") as f:
        c_rows = list(csv.DictReader(f))
    with open(src / "c_scene.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["name", "coverage", "number", "frequency", "code"], lineterminator="\n")
        w.writeheader()
        w.writerows(c_rows)
    assert convert_legacy(src, tmp_path / "hf", workers=1).fingerprint == converted.fingerprint


def _break_missing_index(src: Path) -> str:
    (src / "index.csv").unlink()
    return "no index.csv"


def _break_missing_png(src: Path) -> str:
    row = next(r for r in _index(src) if r["object"])
    (src / "images" / row["object"]).unlink()
    return f"{row['object']} is missing"


def _break_truncated_png(src: Path) -> str:
    row = next(r for r in _index(src) if r["object"])
    path = src / "images" / row["object"]
    path.write_bytes(path.read_bytes()[:60])
    return "does not decode"


def _break_columns(src: Path) -> str:
    lines = (src / "index.csv").read_text().splitlines()
    lines[3] += ",extra"
    (src / "index.csv").write_text("\n".join(lines) + "\n")
    return "index.csv line 4: 13 fields, the header has 12"


def _break_unknown_label_png(src: Path) -> str:
    row = next(r for r in _index(src) if r["object"])
    path = src / "images" / row["object"]
    rgb = np.asarray(Image.open(path)).copy()
    rgb[0, 0] = (4, 3, 0)  # label 4 + 256*3 = 772
    Image.fromarray(rgb).save(path)
    return "holds label 772, which label.csv lacks"


def _break_unknown_label_cell(src: Path) -> str:
    text = (src / "index.csv").read_text()
    rows = text.splitlines()
    i = next(i for i, line in enumerate(rows) if line.startswith("dtd/"))
    rows[i] = rows[i].rsplit(",", 1)[0] + ",999"
    (src / "index.csv").write_text("\n".join(rows) + "\n")
    return f"index.csv line {i + 1}"


def _break_mixed_kinds(src: Path) -> str:
    rows = _index(src)
    rows[-1]["object"] = "17"
    with open(src / "index.csv", "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return "column 'object' holds numbers"


@pytest.mark.parametrize("breaker", [_break_missing_index, _break_missing_png, _break_truncated_png,
                                     _break_columns, _break_unknown_label_png, _break_unknown_label_cell,
                                     _break_mixed_kinds])
def test_convert_rejects_bad_input(legacy: Path, tmp_path: Path, breaker) -> None:
    src = _copy(legacy, tmp_path / "broden1_224")
    expected = breaker(src)
    out = tmp_path / "out" / "broden"
    with pytest.raises(BrodenError) as err:
        convert_legacy(src, out, workers=1)
    message = str(err.value)
    assert expected in message and "\n" not in message
    assert not out.exists()
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []  # no partial output or scratch directory either


def test_cli_convert_and_export(legacy: Path, converted, tmp_path: Path, capsys) -> None:
    assert main(["convert", str(legacy), str(tmp_path / "hf"), "--workers", "1"]) == 0
    assert converted.fingerprint in capsys.readouterr().out
    assert main(["export-legacy", str(tmp_path / "hf"), str(tmp_path / "legacy"), "--workers", "1"]) == 0
    assert (tmp_path / "legacy" / "index.csv").read_text() == (legacy / "index.csv").read_text()
    assert main(["convert", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "index.csv" in err and len(err.strip().splitlines()) == 1
    assert main(["export-legacy", str(tmp_path / "nowhere"), str(tmp_path / "y")]) == 2
    assert "not a Broden dataset" in capsys.readouterr().err
    assert load(tmp_path / "hf").fingerprint == converted.fingerprint
