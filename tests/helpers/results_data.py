"""Hand-made results, top maps and a tiny Broden dataset for the report, compare and browser tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from benchmark.results import validate_results
from benchmark.summary import summarize_layer
from broden.dataset import Broden, encode_row, write_dataset
from broden.labels import BRODEN_CATEGORIES, Category, Label, LabelTable, Membership

CATEGORIES = [c for c, _ in BRODEN_CATEGORIES]
#: number, name, categories
LABELS = [
    (1, "red-c", ("color",)),
    (2, "dog", ("object",)),
    (3, "sky", ("object",)),
    (4, "wheel", ("part",)),
    (5, "wood", ("material", "object")),
    (6, "street-s", ("scene",)),
    (7, "striped", ("texture",)),
]
LABEL_ID = {name: n for n, name, _ in LABELS}
IMAGE = 32  # image side; label maps are half of it, as in Broden
GREY = 200


def make_dataset(path: Path) -> Broden:
    """Six uniform grey images; a dog in the top-left quarter of images 0-2, sky elsewhere, wood in image 3."""
    code = {(n, c): sum(c in cs for _, _, cs in LABELS[: i + 1]) for i, (n, _, cats) in enumerate(LABELS) for c in cats}
    table = LabelTable(  # a consistent table (dense codes per category, frequencies summed), as validate wants
        [Category(c, k) for c, k in BRODEN_CATEGORIES],
        [Label(n, name, len(cats), float(len(cats)), {c: Membership(code[(n, c)], 1, 1.0) for c in cats})
         for n, name, cats in LABELS],
    )
    rows = []
    s = IMAGE // 2
    for i in range(6):
        buf = io.BytesIO()
        Image.new("RGB", (IMAGE, IMAGE), (GREY, GREY, GREY)).save(buf, format="JPEG", quality=95)
        obj = np.full((s, s), LABEL_ID["sky"], np.int32)
        if i < 3:
            obj[: s // 2, : s // 2] = LABEL_ID["dog"]
        if i == 3:
            obj[s // 2 :, :] = LABEL_ID["wood"]
        rows.append(encode_row(
            id=f"fake/img{i}.jpg", image=buf.getvalue(), split="train", source="fake", size=(IMAGE, IMAGE),
            seg_size=(s, s),
            label_maps={"color": [np.full((s, s), LABEL_ID["red-c"], np.int32)], "object": [obj], "part": [],
                        "material": []},
            image_labels={"scene": [LABEL_ID["street-s"]] if i % 2 else [], "texture": []},
        ))
    return write_dataset(path, rows, table)


def unit_doc(unit: int, best: dict[str, tuple[str, float]], *, threshold: float | None = 0.5, top=()) -> dict:
    """A results unit whose best label per category is ``best[cat] = (label, iou)``; overall best = highest IoU."""
    cats = {
        c: {"label": lab, "label_id": LABEL_ID.get(lab), "iou": iou, "intersection": 10, "activation": 20, "truth": 30}
        for c, (lab, iou) in best.items()
    }
    top_cat = max(best, key=lambda c: best[c][1])
    return {
        "unit": unit,
        "threshold": threshold,
        "label": best[top_cat][0],
        "category": top_cat,
        "iou": best[top_cat][1],
        "categories": cats,
        "top_images": [{"id": i, "activation": 3.0 - k} for k, i in enumerate(top)],
    }


def results_doc(name: str, layers: dict[str, list[dict]], *, fingerprint: str | None = None, path=None) -> dict:
    """A valid results object with summaries computed from the units."""
    doc = {
        "schema": "broden-results/1",
        "name": name,
        "model": {"name": name, "source": "file", "architecture": "tinynet", "metadata": {"note": name}},
        "dataset": {"name": "fake", "fingerprint": fingerprint, "path": None if path is None else str(path)},
        "protocol": {"quantile": 0.005, "iou_threshold": 0.04, "categories": CATEGORIES, "compat": "netdissect"},
        "provenance": {"kind": "measured"},
        "created": "2026-11-27T12:00:00Z",
        "layers": [
            {"name": lname, "num_units": len(units), "units": units,
             "summary": summarize_layer(units, CATEGORIES, 0.04)}
            for lname, units in layers.items()
        ],
    }
    validate_results(doc)
    return doc


def quarter_map() -> np.ndarray:
    """A 4x4 map hot (1.0) in its top-left quarter: thresholded at 0.5 it covers exactly the dog."""
    m = np.zeros((4, 4), np.float32)
    m[:2, :2] = 1.0
    return m


def write_scored(directory: Path, dataset: Broden, *, name: str = "tinynet") -> Path:
    """results.json + top_maps.npz as 'benchmark score' writes them: two layers of four units, three top images."""
    ids = [f"fake/img{i}.jpg" for i in range(3)]
    layer_units = {
        "conv5": [
            unit_doc(0, {"object": ("dog", 0.1), "scene": ("street-s", 0.02)}, top=ids),
            unit_doc(1, {"object": ("dog", 0.2), "part": ("wheel", 0.05), "color": ("red-c", 0.01)}, top=ids),
            unit_doc(2, {"scene": ("street-s", 0.08), "object": ("sky", 0.03)}, top=ids),
            unit_doc(3, {"color": ("red-c", 0.01)}, top=ids),
        ],
        "fc<6>/a": [
            unit_doc(0, {"material": ("wood", 0.3)}, top=ids),
            unit_doc(1, {"texture": ("striped", 0.02)}, threshold=None, top=ids),
        ],
    }
    doc = results_doc(name, layer_units, fingerprint=dataset.fingerprint, path=dataset.path)
    doc["artifacts"] = {"top_maps": "top_maps.npz"}
    arrays = {}
    for lname, units in layer_units.items():
        maps = np.zeros((len(units), 3, 4, 4), np.float16)
        maps[:, :] = quarter_map()
        arrays[f"{lname}/maps"] = maps
        arrays[f"{lname}/ids"] = np.array([ids for _ in units])
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "top_maps.npz", **arrays)
    path = directory / "results.json"
    path.write_text(json.dumps(doc))
    return path


BEFORE = [
    unit_doc(0, {"object": ("dog", 0.2)}),
    unit_doc(1, {"object": ("sky", 0.1)}),
    unit_doc(2, {"scene": ("street-s", 0.08)}),
    unit_doc(3, {"color": ("red-c", 0.01)}),
    unit_doc(4, {"color": ("red-c", 0.02)}),
]
AFTER = [
    unit_doc(0, {"object": ("dog", 0.15)}),  # kept
    unit_doc(1, {"material": ("wood", 0.06)}),  # changed
    unit_doc(2, {"scene": ("street-s", 0.03)}),  # lost
    unit_doc(3, {"texture": ("striped", 0.05)}),  # gained
    unit_doc(4, {"object": ("sky", 0.03)}),  # none
]


def write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path
