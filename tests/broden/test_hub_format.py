"""The dataset folder is a Hugging Face Hub dataset repository: load_dataset (normal and streaming) reads it with
typed, named features; the fingerprint is the content's (the leaderboard's sample fingerprint holds); old
save_to_disk folders migrate; push and pull go through huggingface_hub (against a local stand-in)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, DatasetDict, IterableDatasetDict, load_dataset

import broden
from broden.cli import main
from broden.dataset import SPLITS, Fingerprinter, stream_rows, write_dataset
from broden.legacy import convert_legacy
from broden.split import assign_split
from tests.helpers.hub_fixture import local_hub  # noqa: F401 - a fixture
from tests.helpers.legacy_fixture import write_legacy_fixture
from tests.helpers.paths import REPO

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def legacy_hf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = write_legacy_fixture(tmp_path_factory.mktemp("legacy"), size=64, num_images=12)
    return convert_legacy(src, tmp_path_factory.mktemp("hf") / "broden1_64", workers=1).path


@pytest.fixture(params=["sample", "legacy"])
def dataset(request, sample_dataset: Path, legacy_hf: Path) -> Path:
    return sample_dataset if request.param == "sample" else legacy_hf


def test_the_folder_is_a_hub_repository(dataset: Path) -> None:
    files = sorted(p.relative_to(dataset).as_posix() for p in dataset.rglob("*") if p.is_file())
    assert files == ["README.md", "broden.json", "data/train-00000-of-00001.parquet",
                     "data/val-00000-of-00001.parquet", "labels/labels.parquet"]
    card = (dataset / "README.md").read_text()
    header = card.split("---\n")[1]
    for needle in ("configs:", "config_name: default", "path: data/train-*.parquet", "config_name: labels",
                   "dataset_info:", "class_label:", "num_examples:", "license: other"):
        assert needle in header, needle
    assert "@inproceedings{bau2017network" in card


def test_load_dataset_reads_both_splits_with_named_labels(dataset: Path) -> None:
    ds = broden.load(dataset)
    dd = load_dataset(str(dataset))
    assert isinstance(dd, DatasetDict) and set(dd) == {"train", "val"}
    assert {s: len(d) for s, d in dd.items()} == ds.meta["splits"]
    features = dd["train"].features
    names = features["masks"]["label"].feature.names
    assert isinstance(features["masks"]["label"].feature, ClassLabel)
    assert features["masks"]["category"].feature.names == ds.pixel_categories
    for lab in ds.labels.labels:  # ClassLabel index == label number
        assert names[lab.number] == lab.name
    assert features["scene"].feature.names == names
    row = dd["val"][0]
    assert row["image"].size == (row["width"], row["height"])  # a PIL image through the Image feature
    assert assign_split(row["id"]) == "val" or dataset.name != "broden-sample"
    table = load_dataset(str(dataset), "labels")["train"]
    assert table["number"] == sorted(lab.number for lab in ds.labels.labels)
    assert table["name"] == [ds.labels[n].name for n in table["number"]]


def test_streaming_gives_the_same_rows_in_the_canonical_order(dataset: Path) -> None:
    ds = broden.load(dataset)
    streamed = load_dataset(str(dataset), streaming=True)
    assert isinstance(streamed, IterableDatasetDict)
    assert [r["id"] for r in streamed["val"]] == [r["id"] for r in ds.iter_rows() if r["split"] == "val"]
    rows = list(stream_rows(dataset))
    assert [r["index"] for r in rows] == list(range(len(ds)))
    assert [r["id"] for r in rows] == ds.ids
    fp = Fingerprinter(ds.labels)
    for r in rows:
        fp.add(r)
    assert fp.hexdigest() == ds.fingerprint == ds.compute_fingerprint()
    lazy = broden.load(dataset, streaming=True)  # rows straight from the shards' row groups
    assert lazy.rows is None and lazy.ids == ds.ids and lazy.compute_fingerprint() == ds.fingerprint
    for i in (0, len(ds) // 2, len(ds) - 1):
        a, b = ds[i], lazy[i]
        assert (a.id, a.split, a.image_bytes) == (b.id, b.split, b.image_bytes)
        assert all(np.array_equal(a.pixel[c], b.pixel[c]) for c in ds.pixel_categories)


def test_ids_are_looked_up_in_arrow_like_a_python_map(sample_dataset: Path, tmp_path: Path) -> None:
    """``positions`` and ``ids_at`` (what the scorer uses instead of a map of every id) agree with a plain Python
    map of ``ids``, for rows stored out of the canonical order (the splits interleaved) and for the streaming
    reader."""
    small = broden.load(sample_dataset)
    rows = [{**row, "split": SPLITS[i % 3 == 0]} for i, row in enumerate(small.iter_rows(indices=range(24)))]
    path = write_dataset(tmp_path / "mixed", rows, small.labels).path
    ds, lazy = broden.load(path), broden.load(path, streaming=True)
    ids = ds.ids
    assert ds.splits["val"]["index"][:2] == [0, 3]  # stored train first, then val: not the canonical order
    order = np.random.default_rng(0).permutation(len(ids))
    asked = [ids[i] for i in order] + ["not/an/id.jpg"]
    for d in (ds, lazy):
        assert d.positions(asked).tolist() == [*order.tolist(), -1]
        assert d.positions(np.asarray(asked[:3], dtype="S")).tolist() == order[:3].tolist()  # bytes ids too
        assert d.ids_at(order) == [ids[i] for i in order] and d.ids_at([]) == []
        assert d.positions(np.asarray(ids)).tolist() == list(range(len(ids)))  # the dataset's own order
        swapped = [ids[1], ids[0], *ids[2:]]
        assert d.positions(swapped).tolist() == [1, 0, *range(2, len(ids))]
        with pytest.raises(broden.BrodenError, match="not UTF-8 text"):
            d.positions(np.asarray([b"\xff\xfe"]))


def test_the_sample_keeps_the_fingerprint_the_leaderboard_recorded(sample_dataset: Path) -> None:
    [entry] = (REPO / "leaderboard" / "submissions").glob("mobilenetv2-imagenet__features-18__*.json")
    recorded = json.loads(entry.read_text())["dataset"]["fingerprint"]
    ds = broden.load(sample_dataset)
    assert ds.fingerprint == recorded == ds.compute_fingerprint()
    order = np.asarray(ds.rows["index"])
    assert (order == np.arange(len(ds))).all() and len(set(ds.rows["split"])) == 2  # the splits interleave


def _old_format(ds: broden.Broden, out: Path) -> Path:
    """``ds`` written as the first broden format did: save_to_disk rows with a split column, mask categories as
    names, labels.json and broden.json of format broden-hf/1."""
    from datasets import Dataset, Features, Image, List, Value

    cols = {"id": Value("string"), "image": Image(), "split": Value("string"), "source": Value("string"),
            **{k: Value("int32") for k in ("height", "width", "seg_height", "seg_width")},
            **{c: List(Value("int32")) for c in ds.image_categories},
            "layers": {c: Value("int8") for c in ds.pixel_categories},
            "masks": {"category": List(Value("string")), "layer": List(Value("int8")),
                      "label": List(Value("int32")), "rle": List(Value("string"))}}
    rows = []
    for r in ds.iter_rows():
        r = {k: v for k, v in r.items() if k != "index"}
        r["masks"] = {**r["masks"], "category": [ds.pixel_categories[c] for c in r["masks"]["category"]]}
        rows.append(r)
    Dataset.from_list(rows, features=Features(cols)).save_to_disk(str(out))
    (out / "labels.json").write_text(json.dumps(ds.labels.to_json()))
    (out / "broden.json").write_text(json.dumps({**ds.meta, "format": "broden-hf/1"}))
    return out


def test_an_old_save_to_disk_folder_is_refused_with_a_hint_and_migrates_with_its_fingerprint(
        legacy_hf: Path, tmp_path: Path, capsys) -> None:
    ds = broden.load(legacy_hf)
    old = _old_format(ds, tmp_path / "old")
    with pytest.raises(broden.BrodenError, match="broden migrate"):
        broden.load(old)
    assert main(["info", str(old)]) == 2 and "broden migrate" in capsys.readouterr().err
    assert main(["migrate", str(old), str(tmp_path / "new")]) == 0
    assert "note:" not in capsys.readouterr().out
    new = broden.load(tmp_path / "new")
    assert new.fingerprint == ds.fingerprint and new.ids == ds.ids
    assert new.meta["migrated_from"]["format"] == "broden-hf/1"
    assert new.meta["label_statistics"] == ds.meta["label_statistics"]  # provenance carried over
    assert main(["migrate", str(tmp_path / "new"), str(tmp_path / "again")]) == 2
    assert "nothing to migrate" in capsys.readouterr().err


def test_push_then_load_and_download_from_the_hub(local_hub, sample_dataset: Path, tmp_path: Path,  # noqa: F811
                                                   capsys) -> None:
    assert main(["push", str(sample_dataset), "my-org/broden-sample", "--private"]) == 0
    assert local_hub.repos == {"my-org/broden-sample": {"private": True}}
    [commit] = local_hub.commits
    assert "README.md" in commit["files"] and "labels/labels.parquet" in commit["files"]
    assert "sha256:" in commit["message"] and commit["oid"] in capsys.readouterr().out

    ds = broden.load("hf://my-org/broden-sample")  # the real snapshot_download, from the cache
    assert ds.fingerprint == broden.load(sample_dataset).fingerprint
    assert ds.meta["hub"] == {"repo_id": "my-org/broden-sample", "revision": commit["oid"]}
    assert broden.load(f"hf://datasets/my-org/broden-sample@{commit['oid']}").path == ds.path
    assert broden.load("my-org/broden-sample").path == ds.path  # a bare repo id, no such local folder
    assert len(load_dataset(str(ds.path))["train"]) == ds.meta["splits"]["train"]

    dest = tmp_path / "data"
    assert main(["download", "--hub", "my-org/broden-sample", "--dest", str(dest)]) == 0
    pulled = broden.load(dest / "broden-sample")
    assert pulled.meta["hub"] == {"repo_id": "my-org/broden-sample", "revision": commit["oid"],
                                  "requested_revision": "main"}
    assert pulled.fingerprint == ds.fingerprint and not (dest / "broden-sample").is_symlink()
    assert all(not p.is_symlink() for p in (dest / "broden-sample").rglob("*"))
    capsys.readouterr()
    assert main(["download", "--hub", "my-org/broden-sample", "--dest", str(dest)]) == 0
    assert "already holds" in capsys.readouterr().err + capsys.readouterr().out


def test_hub_errors_are_one_line(local_hub, tmp_path: Path, capsys) -> None:  # noqa: F811
    with pytest.raises(broden.BrodenError, match="hf://nobody/nothing: cannot fetch"):
        broden.load("hf://nobody/nothing")
    assert main(["download", "--hub", "nobody/nothing", "--dest", str(tmp_path)]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "nobody/nothing" in errors[0]
    with pytest.raises(broden.BrodenError, match="not a Hub dataset address"):
        broden.load("hf://no slash")
    assert not list(tmp_path.iterdir())
