"""End to end: ``broden build`` on the fixture sources validates, and its labels, split and masks are as predicted."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from broden.build.pipeline import BuildOptions, build
from broden.cli import main
from broden.dataset import load
from broden.errors import BrodenError
from broden.masks import reduce_nearest
from tests.helpers import source_fixtures as sf
from tests.helpers.http_fixture import Reply

OPTS = dict(size=224, min_frequency=2, min_coverage=0.05, workers=1)

#: What the rules predict for the fixtures (frequency >= 2, coverage >= 0.05): name -> label.csv category cell.
EXPECTED = {
    "wall": "object(5);part(1)",  # ADE 4 + Pascal-Context 1 objects; one ADE part
    "person": "object(4)",  # ADE "person, individual, ..." + Pascal-Context "person"
    "car": "object(2)",
    "sky": "object(2)",  # ADE class 300 + Pascal-Context "sky"
    "door": "object(1);part(1)",  # a part of a part (ADE level 2) merged with the object
    # ADE part head (2 images) + Pascal-Part person-head (2) + horse-head (1): one raw label per (class, part), as
    # NetDissect's builder, merged by name with their frequencies summed (image 2008_000007 has both: counts twice)
    "head": "part(5)",
    "bathroom-s": "scene(2)",
    "wood": "material(2)",
    "banded": "texture(3)",
    "striped": "texture(2)",
}
#: Below the thresholds: unicorn, airplane, accordion, airport-s, carpet, ear, arm, lined, zigzagged, ...


def split_of(relpath: str) -> str:
    """The documented rule, written out independently: md5 -> first 8 bytes big-endian / 2**64 <= 0.7 is train."""
    return "train" if int(hashlib.md5(relpath.encode()).hexdigest()[:16], 16) / 2**64 <= 0.7 else "val"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = sf.write_all(tmp_path_factory.mktemp("sources"))
    out = tmp_path_factory.mktemp("out") / "broden"
    build(BuildOptions(sources_dir=root, out=out, **OPTS))
    return root, out


def test_label_table_matches_the_rules(built):
    ds = load(built[1])
    labels = {lab.name: lab for lab in ds.labels.labels}
    colors = {n for n in labels if n.endswith("-c")}
    assert {n: labels[n].category_field() for n in labels if n not in colors} == EXPECTED
    assert colors and all(list(labels[n].categories) == ["color"] for n in colors)
    assert labels["person"].syns[:2] == ("individual", "someone")
    numbers = sorted(labels.values(), key=lambda lab: lab.number)
    assert [lab.number for lab in numbers] == list(range(1, len(numbers) + 1))
    keys = [(-lab.frequency, -lab.coverage) for lab in numbers]
    assert keys == sorted(keys)  # numbered by frequency, then coverage
    build_meta = dict(ds.meta["build"])
    aliases = build_meta.pop("aliases")
    assert build_meta == {"sources": ["ade20k", "pascal", "opensurfaces", "dtd"], "size": 224,
                          "min_frequency": 2, "min_coverage": 0.05}
    assert aliases["person"] == ["ade20k/object#3", "pascal/object#284"]
    assert aliases["head"] == ["ade20k/part#4", "pascal/part#24", "pascal/part#17"]  # person-head, horse-head
    assert aliases["wall"][:2] == ["ade20k/object#2", "ade20k/part#2"]
    assert not Path(f"{built[1]}.partial").exists()


def test_rows_split_sizes_and_image_labels(built):
    ds = load(built[1])
    rows = {r["id"]: r for r in ds.iter_rows()}
    assert len(rows) == 4 + 3 + 3 + 4
    assert all(r["split"] == split_of(i) for i, r in rows.items())
    assert {(r["height"], r["width"], r["seg_height"], r["seg_width"]) for r in rows.values()} == {(224, 224, 112, 112)}
    number = {lab.name: lab.number for lab in ds.labels.labels}
    assert rows["ade20k/ADE_train_00000001.jpg"]["scene"] == [0]  # airport-s was filtered out: written as 0
    assert rows["ade20k/ADE_train_00000002.jpg"]["scene"] == [number["bathroom-s"]]
    assert rows["ade20k/ADE_val_00000002.jpg"]["scene"] == []  # ~not labeled
    assert rows["dtd/striped_0001.jpg"]["texture"] == [number["striped"], number["banded"], 0]  # lined filtered
    assert rows["ade20k/ADE_train_00000001.jpg"]["layers"] == {"color": 1, "object": 1, "part": 2, "material": 0}
    assert rows["pascal/2008_000002.jpg"]["layers"] == {"color": 1, "object": 1, "part": 1, "material": 0}
    assert rows["opensurfaces/10935.jpg"]["layers"]["material"] == 1
    material = ds.pixel_categories.index("material")  # the masks' category is a ClassLabel of the pixel categories
    assert material not in rows["opensurfaces/10935.jpg"]["masks"]["category"]  # unlabeled photo, kept
    assert material in rows["opensurfaces/10933.jpg"]["masks"]["category"]


def test_masks_follow_nearest_selection_of_translated_labels(built):
    ds = load(built[1])
    number = {lab.name: lab.number for lab in ds.labels.labels}
    index = ds.ids.index("ade20k/ADE_train_00000001.jpg")
    sample = ds[index]
    obj = sample.pixel["object"][0]
    assert obj.shape == (112, 112)
    assert obj[0, 0] == 0  # the corner pixel is the filtered-out unicorn
    assert obj[111, 111] == number["sky"] and obj[0, 111] == number["wall"] and obj[111, 0] == number["person"]
    # predicted map: the source classes translated, then scipy's corner-aligned nearest choice
    seg = np.zeros((40, 60), np.int32)
    for value, y0, y1, x0, x1 in sf.ADE_IMAGES[0][3]:
        seg[y0:y1, x0:x1] = {2: number["wall"], 3: number["person"], 300: number["sky"]}.get(value, 0)
    rows = np.rint(np.arange(112) * 39 / 111).astype(int)
    cols = np.rint(np.arange(112) * 59 / 111).astype(int)
    assert (obj == seg[np.ix_(rows, cols)]).all()
    assert (sample.pixel["part"][1] == number["door"]).sum() > 0
    assert sample.image().size == (224, 224)


def test_reduce_nearest_uses_scipy_corner_aligned_pixels():
    row = np.arange(10, dtype=np.int32)[None, :].repeat(10, 0)
    assert reduce_nearest(row, 4)[0].tolist() == [0, 3, 6, 9]  # PIL NEAREST would pick 1, 3, 6, 8


def test_resume_only_and_nothing_half_written(tmp_path, monkeypatch):
    root = tmp_path / "src"
    sf.write_ade20k(root)
    sf.write_dtd(root)
    out = tmp_path / "out"
    (root / "dtd" / "dtd-r1.0.1" / "images" / "striped" / "striped_0001.jpg").write_bytes(b"\xff\xd8 broken")
    with pytest.raises(BrodenError, match=r"^dtd: .*striped_0001.jpg: photo does not decode"):
        build(BuildOptions(sources_dir=root, out=out, only=("ade20k", "dtd"), **OPTS))
    assert not out.exists()
    marker = tmp_path / "out.partial" / "work" / "ade20k" / "complete.json"
    assert json.loads(marker.read_text())["names"] == [[n for n, *_ in sf.ADE_IMAGES]]
    reused = []
    monkeypatch.setattr("broden.build.pipeline._finish_source", lambda *a: reused.append(a))  # a recomputed source would call it
    ds = build(BuildOptions(sources_dir=root, out=out, only=("ade20k",), **OPTS))
    assert reused == [] and {r.split("/")[0] for r in ds.ids} == {"ade20k"} and not Path(f"{out}.partial").exists()
    with pytest.raises(BrodenError, match=r"^pascal: missing .*labels.txt; .*build the others with --only ade20k,dtd"):
        build(BuildOptions(sources_dir=root, out=tmp_path / "all", **OPTS))


def test_cli_help_and_dtd_only_build_with_legacy(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["build", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    assert "DIR/ade20k/ADE20K_2016_07_26/" in help_text and "example:" in help_text
    sf.write_dtd(tmp_path / "src")
    code = main(["build", "--sources", str(tmp_path / "src"), "--out", str(tmp_path / "dtd"), "--only", "dtd",
                 "--min-frequency", "2", "--size", "227", "--workers", "2", "--legacy"])  # the process pool
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "4 images" in out.out
    assert load(tmp_path / "dtd").meta["image_size"] == [227, 227]
    assert (tmp_path / "dtd-legacy" / "index.csv").is_file()
    assert main(["build", "--sources", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "error: --sources" in capsys.readouterr().err


def _dtd_archive(tmp_path: Path) -> bytes:
    """A dtd-r1.0.1.tar.gz like the real one: a top-level dtd/ folder (NetDissect renames it dtd-r1.0.1/)."""
    import io
    import tarfile

    sf.write_dtd(tmp_path / "made")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(tmp_path / "made" / "dtd" / "dtd-r1.0.1", arcname="dtd")
    return buf.getvalue()


def test_download_resumes_verifies_and_lands_in_the_netdissect_layout(tmp_path, http_server, monkeypatch):
    import broden.build.sources.dtd as dtd

    data = _dtd_archive(tmp_path)
    url = http_server.serve("/dtd-r1.0.1.tar.gz", data, replies=[Reply(drop_after=len(data) // 2)])
    monkeypatch.setattr(dtd, "URLS", (url,))
    monkeypatch.setattr(dtd, "MD5", hashlib.md5(data).hexdigest())
    monkeypatch.setattr(dtd, "SHA256", hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(dtd, "SIZE", len(data))
    root = tmp_path / "dataset"
    ds = build(BuildOptions(sources_dir=root, out=tmp_path / "out", only=("dtd",), download=True, **OPTS))
    assert len(ds) == 4 and (root / "dtd" / "dtd-r1.0.1" / "labels" / "labels_joint_anno.txt").is_file()
    assert len(http_server.requests_for("/dtd-r1.0.1.tar.gz")) == 2  # the dropped transfer was resumed

    monkeypatch.setattr(dtd, "URLS", (http_server.serve("/other.tar.gz", data + b"x"),))
    monkeypatch.setattr(dtd, "SIZE", None)
    with pytest.raises(BrodenError, match="other.tar.gz"):
        build(BuildOptions(sources_dir=tmp_path / "fresh", out=tmp_path / "out2", only=("dtd",), download=True, **OPTS))
    assert not (tmp_path / "fresh" / "dtd" / "dtd-r1.0.1").exists() and not (tmp_path / "out2").exists()
