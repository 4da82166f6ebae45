"""`broden validate`: clean data passes; each planted corruption is reported with its check and row id."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from broden.cli import main
from broden.dataset import LABELS_FILE, META_FILE, SPLITS, Broden, row_features, write_table
from broden.labels import LabelTable, label_features
from broden.legacy import convert_legacy
from broden.validate import validate, validate_dataset
from tests.helpers.legacy_fixture import write_legacy_fixture


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = write_legacy_fixture(tmp_path_factory.mktemp("legacy"))
    return convert_legacy(src, tmp_path_factory.mktemp("hf") / "broden", workers=1).path


def corrupt(
    src: Path,
    dst: Path,
    rows: Callable[[list[dict]], None] | None = None,
    files: Callable[[dict, dict], None] | None = None,
) -> Path:
    """A copy of ``src`` with its rows and/or (broden.json, the label table as JSON) edited, bypassing the writer's
    checks: edited rows (mask categories as names, in canonical order) are written to the parquet shards as they
    are, without the features' encoding (which would reject an out-of-range label)."""
    shutil.copytree(src, dst)
    if rows is not None:
        from datasets.arrow_writer import ParquetWriter

        ds = Broden(src)
        names = ds.pixel_categories
        data = [dict(r) for r in ds.iter_rows()]
        for r in data:
            r["masks"] = {**r["masks"], "category": [names[c] for c in r["masks"]["category"]]}
        rows(data)
        features = row_features(ds.labels)
        for shard in (dst / "data").glob("*.parquet"):
            shard.unlink()
        for split in SPLITS:
            with ParquetWriter(features=features, path=str(dst / "data" / f"{split}-00000-of-00001.parquet")) as w:
                for r in data:
                    if r["split"] == split:
                        codes = [names.index(c) if c in names else len(names) for c in r["masks"]["category"]]
                        w.write({**{k: r[k] for k in features}, "masks": {**r["masks"], "category": codes}})
                w.finalize()
    if files is not None:
        meta = json.loads((dst / META_FILE).read_text())
        labels = Broden(dst).labels.to_json()
        files(meta, labels)
        (dst / META_FILE).write_text(json.dumps(meta))
        write_table(dst / LABELS_FILE, label_features(), LabelTable.from_json(labels).records())
    return dst


def test_clean_dataset_passes(clean: Path, capsys) -> None:
    report = validate(clean, workers=1)
    assert report.violations == []
    assert report.num_images == 12 and report.fingerprint == Broden(clean).fingerprint
    assert sum(report.notes.values()) >= 1  # the fixture's scene "0": a note, not a violation
    assert main(["validate", str(clean), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ") and len(out.strip().splitlines()) == 1 and "label 0" in out


def test_clean_dataset_passes_exact_statistics(clean: Path, tmp_path: Path) -> None:
    # statistics computed from the rows themselves must match exactly, multi-layer parts included
    exact = corrupt(clean, tmp_path / "exact", files=lambda meta, labels: meta.pop("label_statistics"))
    assert validate_dataset(exact, workers=1) == []


def _mask_index(row: dict, category: str) -> int:
    return row["masks"]["category"].index(category)


def _truncate_jpeg(rows):
    rows[0]["image"]["bytes"] = rows[0]["image"]["bytes"][:2000]
    return rows[0]["id"]


def _wrong_mask_size(rows):
    rows[1]["seg_height"] = 100
    return rows[1]["id"]


def _unknown_label(rows):
    row = next(r for r in rows if r["masks"]["label"])
    row["masks"]["label"][0] = 512  # within the ClassLabel (0..513), but a gap of the fixture's numbering
    return row["id"]


def _wrong_category(rows):
    row = next(r for r in rows if "object" in r["masks"]["category"])
    i = _mask_index(row, "color")
    row["masks"]["label"][i] = 513  # "painting": an object label, not a color
    return row["id"]


def _wrong_category_image_level(rows):
    row = next(r for r in rows if r["texture"])
    row["scene"] = [row["texture"][0]]
    return row["id"]


def _duplicate_id(rows):
    rows[3]["id"] = rows[4]["id"]
    return rows[4]["id"]


def _bad_index(rows):
    rows[5]["index"] = rows[6]["index"]


def _overlap(rows):
    row = next(r for r in rows if "object" in r["masks"]["category"])
    m = row["masks"]
    i = _mask_index(row, "object")
    free = next(n for n in (12, 13, 14, 15, 16, 17, 18, 19, 20) if n not in m["label"])
    for key, value in (("category", "object"), ("layer", m["layer"][i]), ("label", free), ("rle", m["rle"][i])):
        m[key].append(value)
    return row["id"]


def _layer_out_of_range(rows):
    row = next(r for r in rows if "object" in r["masks"]["category"])
    row["masks"]["layer"][_mask_index(row, "object")] = 3
    return row["id"]


def _zero_in_mask(rows):
    row = next(r for r in rows if r["masks"]["label"])
    row["masks"]["label"][-1] = 0
    return row["id"]


def _malformed_rle(rows):
    rows[2]["masks"]["rle"][0] = "not an RLE!"
    return rows[2]["id"]


@pytest.mark.parametrize("edit, check", [
    (_truncate_jpeg, "image"),
    (_wrong_mask_size, "mask-size"),
    (_unknown_label, "label-unknown"),
    (_wrong_category, "label-category"),
    (_wrong_category_image_level, "label-category"),
    (_duplicate_id, "duplicate-id"),
    (_overlap, "overlap"),
    (_layer_out_of_range, "layer"),
    (_zero_in_mask, "label-zero"),
    (_malformed_rle, "masks"),
])
def test_row_corruption_is_reported(clean: Path, tmp_path: Path, edit, check: str) -> None:
    planted = {}
    bad = corrupt(clean, tmp_path / "bad", rows=lambda rows: planted.setdefault("id", edit(rows)))
    found = {(v.row_id, v.check) for v in validate_dataset(bad, workers=1)}
    assert (planted["id"], check) in found, found
    assert (None, "fingerprint") in found  # the edited rows no longer hash to broden.json's fingerprint


def test_an_index_that_does_not_number_the_rows_is_reported(clean: Path, tmp_path: Path) -> None:
    bad = corrupt(clean, tmp_path / "bad", rows=_bad_index)
    found = validate_dataset(bad, workers=1)
    assert [v.check for v in found] == ["files"] and "index column" in found[0].message


def _stale_fingerprint(meta, labels):
    meta["fingerprint"] = "sha256:" + "0" * 64


def _image_level_frequency(meta, labels):
    lab = next(d for d in labels["labels"] if "texture" in d["categories"])
    lab["categories"]["texture"]["frequency"] += 1
    lab["frequency"] += 1


def _pixel_frequency_too_low(meta, labels):
    lab = next(d for d in labels["labels"] if "object" in d["categories"])
    lab["categories"]["object"]["frequency"] -= 1
    lab["frequency"] -= 1


def _pixel_frequency_exact(meta, labels):
    meta.pop("label_statistics")
    lab = next(d for d in labels["labels"] if "part" in d["categories"])
    lab["categories"]["part"]["frequency"] += 1
    lab["frequency"] += 1


def _coverage(meta, labels):
    lab = next(d for d in labels["labels"] if "object" in d["categories"])
    lab["categories"]["object"]["coverage"] += 5.0
    lab["coverage"] += 5.0


def _inconsistent_total(meta, labels):
    labels["labels"][0]["frequency"] += 7


def _num_images(meta, labels):
    meta["num_images"] += 1


@pytest.mark.parametrize("edit, check", [
    (_stale_fingerprint, "fingerprint"),
    (_image_level_frequency, "frequency"),
    (_pixel_frequency_too_low, "frequency"),
    (_pixel_frequency_exact, "frequency"),
    (_coverage, "coverage"),
    (_inconsistent_total, "labels"),
    (_num_images, "meta"),
])
def test_metadata_corruption_is_reported(clean: Path, tmp_path: Path, edit, check: str) -> None:
    bad = corrupt(clean, tmp_path / "bad", files=edit)
    assert check in {v.check for v in validate_dataset(bad, workers=1)}


def test_source_resolution_allows_labels_lost_by_downsampling(clean: Path, tmp_path: Path) -> None:
    def more_in_table(meta, labels):
        lab = next(d for d in labels["labels"] if "object" in d["categories"])
        lab["categories"]["object"]["frequency"] += 2
        lab["frequency"] += 2

    bad = corrupt(clean, tmp_path / "bad", files=more_in_table)
    assert {v.check for v in validate_dataset(bad, workers=1)} == {"fingerprint"}


@pytest.mark.parametrize("damage, check", [
    (lambda p: (p / LABELS_FILE).unlink(), "files"),
    (lambda p: (p / META_FILE).write_text("{not json"), "files"),
    (lambda p: (p / LABELS_FILE).write_text('{"format": "something else"}'), "labels"),
    (lambda p: [f.unlink() for f in p.glob("data/*.parquet")], "files"),
    (lambda p: next(p.glob("data/val-*.parquet")).write_bytes(b"PAR1 not parquet"), "files"),
    (lambda p: (p / META_FILE).write_text('{"format": "broden-hf/1"}'), "meta"),
])
def test_damaged_dataset_is_reported_not_crashed(clean: Path, tmp_path: Path, damage, check: str, capsys) -> None:
    bad = corrupt(clean, tmp_path / "bad")
    damage(bad)
    assert check in {v.check for v in validate_dataset(bad, workers=1)}
    assert main(["validate", str(bad)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("FAILED ")


def test_cli_prints_row_ids_and_exits_1(clean: Path, tmp_path: Path, capsys) -> None:
    bad = corrupt(clean, tmp_path / "bad", rows=lambda rows: (_malformed_rle(rows[3:]), _truncate_jpeg(rows)))
    ids = Broden(clean).ids
    assert main(["validate", str(bad), "--workers", "1", "--limit", "0"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith(f"{ids[0]}: [image] ") for line in lines)
    assert any(line.startswith(f"{ids[5]}: [masks] mask 0") for line in lines)
    assert lines[-1].startswith("FAILED ") and "masks 1" in lines[-1] and "image 1" in lines[-1]
    assert main(["validate", str(bad), "--workers", "1", "--limit", "1"]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[1].startswith("... ") and "--limit 0" in lines[1]


def test_a_dataset_rewritten_in_place_is_checked_afresh(clean: Path, tmp_path: Path) -> None:
    path = corrupt(clean, tmp_path / "data")
    assert validate_dataset(path, workers=1) == []
    corrupt(clean, tmp_path / "bad", rows=_malformed_rle)
    shutil.rmtree(path)
    shutil.copytree(tmp_path / "bad", path)
    assert "masks" in {v.check for v in validate_dataset(path, workers=1)}


def test_parallel_validation_matches_serial(tmp_path: Path) -> None:
    src = write_legacy_fixture(tmp_path / "src", size=64, num_images=80, seed=5)
    ds = convert_legacy(src, tmp_path / "hf", workers=1)
    bad = corrupt(ds.path, tmp_path / "bad", rows=lambda rows: _malformed_rle(rows[70:]))
    serial = validate_dataset(bad, workers=1)
    assert serial == validate_dataset(bad, workers=2)
    assert any(v.check == "masks" for v in serial)


def test_rle_totals_match_pycocotools_and_catch_malformed_strings() -> None:
    import numpy as np
    from pycocotools import mask as mask_util

    from broden.masks import rle_total, rle_totals

    rng = np.random.default_rng(0)
    for h, w in ((112, 112), (5, 7), (1, 1)):
        masks = [(rng.random((h, w)) < p).astype(np.uint8) for p in (0.0, 0.1, 0.5, 1.0)]
        rles = [r["counts"].decode() for r in mask_util.encode(np.asfortranarray(np.stack(masks, -1)))]
        assert rle_totals(rles) == [h * w] * 4
    # "5" then "O" (= -1): a negative run; "P" continues a number that never ends; "é" is not RLE at all
    assert rle_totals(["05O", "0P", "é", "11"]) == [None, None, None, 2]
    assert rle_totals(["P" * 12 + "0", "11"]) == [None, 2]  # a number of 13 characters: beyond int64's reach
    chars = [chr(48 + v) for v in range(64)]
    ends = [c for c in chars if not (ord(c) - 48) & 0x20]
    for _ in range(2000):  # both forms agree with a decoder written from the format, on well-terminated text
        rles = ["".join(rng.choice(chars, rng.integers(0, 9))) + rng.choice(ends) for _ in range(rng.integers(1, 6))]
        expected = [_rle_total_by_the_format(r) for r in rles]
        assert rle_totals(rles) == expected and [rle_total(r) for r in rles] == expected


def _rle_total_by_the_format(counts: str) -> int | None:
    """pycocotools' rleFrString, one character at a time: 5-bit groups, 0x20 continues, 0x10 on the last is the
    sign; from the fourth run on, the difference to the run two before. The sum of the runs, None for a negative
    run or a number longer than 12 characters."""
    runs, p = [], 0
    while p < len(counts):
        x, k, more = 0, 0, True
        while more:
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p, k = p + 1, k + 1
            if not more and c & 0x10:
                x -= 1 << (5 * k)
        if k > 12:
            return None
        runs.append(x + (runs[-2] if len(runs) > 2 else 0))
    return None if min(runs) < 0 else sum(runs)


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="fork is Linux's way only")
def test_start_preflight_checks_a_mid_sized_dataset_in_a_child_and_others_here(clean: Path, monkeypatch) -> None:
    """A dataset checked in one process is checked in a forked child while the caller goes on; one checked by
    worker processes is checked before start_preflight returns (a forked child starts no processes), and so is one
    too small to be worth a fork."""
    import os

    import broden.validate
    from broden.dataset import load
    from broden.errors import BrodenError

    ds = load(clean)

    def refuse(ds: Broden, *, workers: int = 1) -> None:
        raise BrodenError(f"checked in {os.getpid()} with {workers} workers")

    monkeypatch.setattr(broden.validate, "preflight", refuse)
    with pytest.raises(BrodenError, match=f"^checked in {os.getpid()} with 2 workers$"):
        broden.validate.start_preflight(ds, workers=2).result()
    monkeypatch.setattr(broden.validate, "PREFLIGHT_FORK_MIN_ROWS", 1)
    with broden.validate.start_preflight(ds, workers=2) as check, pytest.raises(BrodenError) as err:
        check.result()
    assert str(err.value) != f"checked in {os.getpid()} with 2 workers"
    monkeypatch.setattr(broden.validate, "PREFLIGHT_MIN_ROWS", 1)
    monkeypatch.setattr(broden.validate, "PREFLIGHT_SPAN", 2)
    with pytest.raises(BrodenError, match=f"^checked in {os.getpid()} with 2 workers$"):
        broden.validate.start_preflight(ds, workers=2).result()
