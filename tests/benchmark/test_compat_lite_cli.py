"""`benchmark score --compat netdissect-lite` through the command line against the plain reference tally.

NetDissect-Lite gives label 0 (in image-level lists: a filtered-out label) and labels outside the selected
categories the *last category of the dataset's category.csv order* (texture for Broden), whatever order results
are displayed in. The scorer reorders categories for display (object first, color last), so only a run through
the CLI, on a dataset whose image-level lists hold 0, shows whether the fallback follows the dataset's order.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from broden.dataset import encode_row, load, write_dataset
from broden.labels import BRODEN_CATEGORIES, Category, Label, LabelTable, Membership
from tests.helpers.naive_tally import naive_tally

#: number, name, categories
LABELS = [(1, "red-c", "color"), (2, "dog", "object"), (3, "sky", "object"), (4, "wheel", "part"),
          (5, "wood", "material"), (6, "street-s", "scene"), (7, "striped", "texture")]
SEG = 8


def _dataset(path):
    rng = np.random.default_rng(3)
    code = {n: sum(c == cat for _, _, c in LABELS[: i + 1]) for i, (n, _, cat) in enumerate(LABELS)}
    table = LabelTable([Category(c, k) for c, k in BRODEN_CATEGORIES],
                       [Label(n, name, 1, 1.0, {cat: Membership(code[n], 1, 1.0)}) for n, name, cat in LABELS])
    rows = []
    for i in range(10):
        buf = io.BytesIO()
        Image.new("RGB", (2 * SEG, 2 * SEG), (100, 120, 140)).save(buf, format="JPEG")
        obj = rng.choice([0, 2, 3], size=(SEG, SEG)).astype(np.int32)
        color = np.where(rng.random((SEG, SEG)) < 0.5, 1, 0).astype(np.int32)
        material = [np.where(rng.random((SEG, SEG)) < 0.3, 5, 0).astype(np.int32)] if i % 3 == 0 else []
        rows.append(encode_row(
            id=f"img{i}.jpg", image=buf.getvalue(), split="train", source="fake", size=(2 * SEG, 2 * SEG),
            seg_size=(SEG, SEG), label_maps={"color": [color], "object": [obj], "part": [], "material": material},
            image_labels={"scene": [[0], [6], []][i % 3], "texture": [[7], [0], [0, 7]][i % 3] if i % 2 else []},
        ))
    return write_dataset(path, rows, table)


def _reference(ds, acts, thresholds, categories):
    pixel, image = ds.pixel_categories, ds.image_categories
    examples = [ds[i] for i in range(len(ds))]
    stacks = [np.concatenate([e.pixel[c] for c in pixel], axis=0) for e in examples]
    depth = max(s.shape[0] for s in stacks)  # zero layers (no label) pad the images with fewer layers
    maps = np.stack([np.concatenate([s, np.zeros((depth - len(s), SEG, SEG), s.dtype)]) for s in stacks])
    image_labels = [[lab for c in image for lab in e.image_labels[c]] for e in examples]
    return naive_tally([(acts, maps, image_labels)], thresholds, ds.labels.max_number + 1, categories,
                       ds.labels.primary_categories(), compat="netdissect-lite")


def test_lite_fallback_is_the_datasets_last_category_through_the_cli(tmp_path, capsys) -> None:
    ds = _dataset(tmp_path / "ds")
    rng = np.random.default_rng(0)
    acts = rng.standard_normal((len(ds), 6, 4, 4)).astype(np.float16).astype(np.float32)
    np.savez(tmp_path / "acts.npz", activations=acts, image=np.array(list(ds.ids)))
    out = tmp_path / "out"
    code = main(["score", "--activations", str(tmp_path / "acts.npz"), "--dataset", str(ds.path), "--out", str(out),
                 "--compat", "netdissect-lite", "--quantile", "0.2", "--workers", "0"])
    assert code == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    units = results["layers"][0]["units"]
    thresholds = np.array([u["threshold"] for u in units], np.float32)
    ds = load(ds.path)
    own_order = ds.labels.category_names
    assert own_order[-1] == "texture" and results["protocol"]["categories"][-1] == "color"
    expected = _reference(ds, acts, thresholds, own_order)
    display_fallback = _reference(ds, acts, thresholds, [c for c in own_order if c != "color"] + ["color"])
    differs = 0
    for u in units:
        for c, entry in u["categories"].items():
            want = int(expected["activation_by_category"][u["unit"], own_order.index(c)])
            assert entry["activation"] == want, (u["unit"], c)
            differs += want != display_fallback["activation_by_category"][u["unit"], own_order.index(c)]
            if entry["label_id"] is not None:
                lab = entry["label_id"]
                inter, truth = expected["intersection"][u["unit"], lab], expected["truth"][lab]
                assert (entry["intersection"], entry["truth"]) == (inter, truth)
                assert entry["iou"] == pytest.approx(inter / (want + truth - inter))
    assert differs > 0  # the dataset tells the two fallbacks apart
    assert any(u["categories"]["texture"]["label_id"] == 0 for u in units)  # label 0 is scored under texture
