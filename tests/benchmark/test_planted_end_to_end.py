"""Planted detectors through the whole pipeline: `benchmark score --activations` on the sample dataset.

Unit k's activation map is exactly concept k's mask at the segmentation resolution (whole images for scene and
texture labels). With quantile 0.5 every unit's threshold is 0 (each mask covers well under half of all pixels),
so the active region is the mask itself: every planted unit must come out with its concept, IoU exactly 1, and
the top-label unique counts must equal the planted concepts per category.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from benchmark.cli import main as benchmark_main
from broden.dataset import load


def _pick(ds, category: str, exclusive: bool) -> int:
    """The most frequent label whose primary category is ``category`` (and, if ``exclusive``, only that one)."""
    primary = ds.labels.primary_categories()
    labels = [lab for lab in ds.labels.labels if primary.get(lab.number) == category]
    if exclusive:
        labels = [lab for lab in labels if list(lab.categories) == [category]]
    return max(labels, key=lambda lab: (lab.frequency, -lab.number)).number


@pytest.fixture(scope="module")
def planted(sample_dataset, tmp_path_factory):
    ds = load(sample_dataset)
    concepts = {c: _pick(ds, c, exclusive=c in ("object", "material")) for c in ("object", "material", "scene", "texture")}
    units = list(concepts.values())
    sh, sw = ds.meta["seg_size"]
    acts = np.zeros((len(ds), len(units), sh, sw), np.float16)
    for i in range(len(ds)):
        sample = ds[i]
        for k, (category, label) in enumerate(concepts.items()):
            if ds.labels.category(category).kind == "image":
                acts[i, k] = float(label in sample.image_labels[category])
            else:
                layers = np.concatenate([sample.pixel[c] for c in ds.pixel_categories])
                present = (layers == label).sum(axis=0)
                assert present.max() <= 1, "planted label must not sit in two layers at one pixel"
                acts[i, k] = present
    assert all(acts[:, k].mean() < 0.5 for k in range(len(units)))
    work = tmp_path_factory.mktemp("planted")
    npz = work / "acts.npz"
    np.savez(npz, activations=acts, image=np.array(ds.ids))
    out = work / "out"
    code = benchmark_main(["score", "--activations", str(npz), "--dataset", str(sample_dataset), "--out", str(out),
                           "--quantile", "0.5", "--batch-size", "64"])
    assert code == 0
    return ds, concepts, json.loads((out / "results.json").read_text())


def test_every_planted_unit_finds_its_concept_with_iou_one(planted) -> None:
    ds, concepts, results = planted
    units = results["layers"][0]["units"]
    for unit, (category, label) in zip(units, concepts.items()):
        assert (unit["category"], unit["label"], unit["iou"]) == (category, ds.labels.name(label), 1.0)
        best = unit["categories"][category]
        assert best["label_id"] == label
        assert best["intersection"] == best["truth"] == best["activation"] > 0
        assert unit["threshold"] == 0.0


def test_top_label_unique_counts_are_exact(planted) -> None:
    _, concepts, results = planted
    summary = results["layers"][0]["summary"]
    expected = Counter(concepts.keys())  # one planted unit per category
    assert summary["detectors"]["all"] == len(concepts)
    for category in ("object", "part", "scene", "material", "texture", "color"):
        assert summary["unique_top_label"][category] == expected.get(category, 0)
        assert summary["unique_per_category"][category] >= expected.get(category, 0)
    assert summary["unique_top_label"]["all"] == len(concepts)


def test_truth_counts_equal_the_dataset_masks(planted) -> None:
    ds, concepts, results = planted
    sh, sw = ds.meta["seg_size"]
    for unit, (category, label) in zip(results["layers"][0]["units"], concepts.items()):
        if ds.labels.category(category).kind == "image":
            expected = sh * sw * sum(label in ds[i].image_labels[category] for i in range(len(ds)))
        else:
            expected = sum(int((np.concatenate(list(ds[i].pixel.values())) == label).sum()) for i in range(len(ds)))
        assert unit["categories"][category]["truth"] == expected
