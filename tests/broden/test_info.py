"""`broden info`: counts per category, source and split, and the most frequent labels, as a table or JSON."""

from __future__ import annotations

import csv
import json

import pytest

from broden.cli import main
from broden.info import dataset_info
from broden.legacy import convert_legacy
from tests.helpers.legacy_fixture import write_legacy_fixture


@pytest.fixture(scope="module")
def legacy_and_dataset(tmp_path_factory: pytest.TempPathFactory):
    src = write_legacy_fixture(tmp_path_factory.mktemp("legacy"), num_images=16, seed=1)
    return src, convert_legacy(src, tmp_path_factory.mktemp("hf") / "broden", workers=1)


def test_counts_match_the_index(legacy_and_dataset) -> None:
    src, ds = legacy_and_dataset
    with open(src / "index.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    info = dataset_info(ds.path, top=5)
    assert info["images"] == 16 and info["fingerprint"] == ds.fingerprint
    assert info["splits"] == {s: sum(r["split"] == s for r in rows) for s in ("train", "val")}
    sources = {s["name"]: s for s in info["sources"]}
    assert {name: s["images"] for name, s in sources.items()} == {"ade20k": 4, "pascal": 4, "opensurfaces": 4, "dtd": 4}
    assert all(s["images"] == s["train"] + s["val"] for s in sources.values())
    cats = {c["name"]: c for c in info["categories"]}
    assert list(cats) == ["color", "object", "part", "material", "scene", "texture"]
    for cat in ("color", "object", "part", "material", "texture"):
        assert cats[cat]["images"] == sum(bool(r[cat]) for r in rows), cat
    # a lone scene "0" (filtered-out label) is not data
    with_scene = sum(r["scene"] not in ("", "0") for r in rows)
    assert cats["scene"]["images"] == with_scene < sum(bool(r["scene"]) for r in rows)
    assert cats["color"]["labels"] == 11 and cats["scene"]["kind"] == "image"
    top = info["top_labels"]
    assert len(top) == 5 and [t["frequency"] for t in top] == sorted((t["frequency"] for t in top), reverse=True)
    assert top[0]["frequency"] == max(lab.frequency for lab in ds.labels.labels)


def test_cli_table_and_json(legacy_and_dataset, capsys) -> None:
    _, ds = legacy_and_dataset
    assert main(["info", str(ds.path), "--top", "3"]) == 0
    out = capsys.readouterr().out
    for word in ("categories", "sources", "top 3 labels", "opensurfaces", "texture", ds.fingerprint[:20]):
        assert word in out, word
    assert main(["info", str(ds.path), "--format", "json", "--top", "2"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == dataset_info(ds, top=2)
    assert main(["info", str(ds.path.parent / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
