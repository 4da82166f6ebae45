"""The Broden data model: rows, RLE masks, label table rules, fingerprint, atomic writes, the CLI runner."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from broden.cli import main as broden_main
from broden.dataset import load, write_dataset
from broden.errors import BrodenError
from broden.labels import BRODEN_CATEGORIES, Category, LabelTable, assign_codes
from broden.masks import decode_label_maps, encode_label_map, label_map_from_rgb, label_map_to_rgb

CATS = [Category(n, k) for n, k in BRODEN_CATEGORIES]


def _labels() -> LabelTable:
    return assign_codes(
        CATS,
        [
            (1, "red-c", 3.0, [], {"color": (4, 3.0)}),
            (2, "wall", 1.5, ["walls"], {"object": (4, 1.0), "part": (2, 0.5)}),
            (3, "street-s", 2.0, [], {"scene": (2, 2.0)}),
            (300, "door", 0.2, [], {"part": (3, 0.2)}),
        ],
    )


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _row(i: int, part_layers: list[np.ndarray], scene: list[int]) -> dict:
    cats, layers, labels, rles = [], [], [], []
    for k, lm in enumerate(part_layers):
        for lab, rle in encode_label_map(lm):
            cats.append("part"), layers.append(k), labels.append(lab), rles.append(rle)
    return {
        "id": f"src/{i}.jpg",
        "image": _jpeg(i),
        "split": "train" if i % 2 else "val",
        "source": "src",
        "height": 8,
        "width": 8,
        "seg_height": 4,
        "seg_width": 4,
        "scene": scene,
        "texture": [],
        "layers": {"color": 0, "object": 0, "part": len(part_layers), "material": 0},
        "masks": {"category": cats, "layer": layers, "label": labels, "rle": rles},
    }


def _layers() -> list[np.ndarray]:
    a = np.zeros((4, 4), np.int32)
    a[:2] = 2
    b = np.zeros((4, 4), np.int32)
    b[1:, 2:] = 300
    b[3, 0] = 2
    return [a, b]


def test_write_load_decode_round_trip(tmp_path) -> None:
    rows = [_row(i, _layers(), [3] if i else [0]) for i in range(3)]
    ds = write_dataset(tmp_path / "d", iter(rows), _labels(), meta={"name": "t"})
    assert len(ds) == 3 and ds.ids == ["src/0.jpg", "src/1.jpg", "src/2.jpg"]
    sample = ds[1]
    np.testing.assert_array_equal(sample.pixel["part"], np.stack(_layers()))
    assert sample.pixel["object"].shape == (0, 4, 4)
    assert sample.image_labels == {"scene": [3], "texture": []}
    assert ds[0].image_labels["scene"] == [0]  # Broden's filtered-out marker survives
    assert sample.image_bytes == rows[1]["image"] and sample.image().size == (8, 8)
    assert ds.meta["num_images"] == 3 and ds.meta["seg_size"] == [4, 4]
    assert ds.compute_fingerprint() == ds.fingerprint
    assert ds.images_with_label(300) == ["src/0.jpg", "src/1.jpg", "src/2.jpg"]
    assert "fingerprint" in (tmp_path / "d" / "README.md").read_text()


def test_fingerprint_changes_with_any_pixel(tmp_path) -> None:
    a = write_dataset(tmp_path / "a", [_row(0, _layers(), [3])], _labels())
    changed = _layers()
    changed[1][0, 0] = 300
    b = write_dataset(tmp_path / "b", [_row(0, changed, [3])], _labels())
    c = write_dataset(tmp_path / "c", [_row(0, _layers(), [3])], _labels())
    assert a.fingerprint != b.fingerprint
    assert a.fingerprint == c.fingerprint


def test_failed_write_leaves_nothing(tmp_path) -> None:
    rows = [_row(0, _layers(), [3]), _row(0, _layers(), [3])]
    with pytest.raises(BrodenError, match="src/0.jpg: duplicate image id"):
        write_dataset(tmp_path / "d", iter(rows), _labels())
    assert list(tmp_path.iterdir()) == []


def test_not_a_dataset_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(BrodenError, match="not a Broden dataset"):
        load(tmp_path)


def test_label_map_codec_and_rle_layers() -> None:
    lm = np.array([[0, 1, 300], [65535, 256, 0]])
    np.testing.assert_array_equal(label_map_from_rgb(label_map_to_rgb(lm)), lm)
    assert label_map_to_rgb(lm)[1, 1].tolist() == [0, 1, 0]
    ents = encode_label_map(lm)
    assert [lab for lab, _ in ents] == [1, 256, 300, 65535]
    maps = decode_label_maps([0] * 4, [e[0] for e in ents], [e[1] for e in ents], 1, 2, 3)
    np.testing.assert_array_equal(maps[0], lm)


def test_primary_category_rule() -> None:
    labels = _labels()
    prim = labels.primary_categories()
    assert prim[2] == "object"  # larger coverage wins
    assert labels.primary_categories(["part", "color"])[2] == "part"  # only selected categories count
    assert 3 not in labels.primary_categories(["object"])  # no fallback category
    tie = assign_codes(CATS, [(1, "x", 1.0, [], {"object": (1, 0.5), "part": (1, 0.5)})])
    assert tie.primary_categories()[1] == "part"  # ties go to the later category, as in the original
    assert labels[2].category_field() == "object(4);part(2)"
    assert [r["count"] for r in labels.category_rows()] == [1, 1, 2, 0, 1, 0]
    assert LabelTable.from_json(labels.to_json()).to_json() == labels.to_json()


def test_cli_help_and_unknown_command(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        broden_main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("download", "convert", "export-legacy", "build", "sample", "validate", "info"):
        assert command in out
    with pytest.raises(SystemExit) as exc:
        broden_main(["frobnicate"])
    assert exc.value.code == 2
