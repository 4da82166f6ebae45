"""Random tally batches (overlapping layers, zeros, an unselected label) and a one-call tally, for tally tests."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.tally import Tally, TallyInput

CATS = ["color", "object", "part", "scene", "texture"]
PRIMARY = {
    **{n: "color" for n in range(1, 5)},
    **{n: "object" for n in range(5, 9)},  # 8 also appears in the part layer: multi-category, primary object
    **{n: "part" for n in range(9, 13)},
    **{n: "scene" for n in range(13, 16)},
    **{n: "texture" for n in (16, 17)},
}  # label 18 is outside the selected categories
NUM_LABELS = 19


def random_batch(rng: np.random.Generator, images: int, units: int, size: int = 3, seg: int = 7):
    """Activations, overlapping multi-layer label maps (with zeros and an unselected label), image-level labels."""
    acts = rng.standard_normal((images, units, size, size)).astype(np.float32)
    maps = np.zeros((images, 3, seg, seg), dtype=np.int64)
    maps[:, 0] = rng.integers(1, 5, (images, seg, seg))
    maps[:, 1] = rng.integers(5, 10, (images, seg, seg)) * (rng.random((images, seg, seg)) < 0.6)
    maps[:, 2] = rng.choice([0, 0, 0, 8, 9, 10, 11, 12, 18], (images, seg, seg))
    maps[rng.random(images) < 0.3, 2] = 0  # some images without parts
    image_labels = [
        [int(lab) for lab in rng.choice([0, 13, 14, 15], rng.integers(0, 3))]
        + [int(lab) for lab in rng.choice([16, 17], rng.integers(0, 2))]
        for _ in range(images)
    ]
    return acts, maps, image_labels


def run_tally(batches, thresholds, compat="netdissect", primary=PRIMARY, categories=CATS, **kwargs) -> Tally:
    tally = Tally(thresholds.shape[0], NUM_LABELS, categories, primary, compat=compat, **kwargs)
    for acts, maps, image_labels in batches:
        tally.add(TallyInput(torch.from_numpy(acts), torch.from_numpy(maps), image_labels),
                  torch.from_numpy(thresholds))
    return tally


def counts_of(tally: Tally) -> dict:
    return {
        "intersection": tally.intersection.cpu().numpy(), "truth": tally.truth.cpu().numpy(),
        "activation_by_category": tally.activation_by_category.cpu().numpy(), "active": tally.active.cpu().numpy(),
        "images": tally.images,
    }


def assert_same_counts(a: dict, b: dict) -> None:
    assert a["images"] == b["images"]
    for key in ("intersection", "truth", "activation_by_category", "active"):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def unit_thresholds(batches, level: float) -> np.ndarray:
    values = np.concatenate([b[0] for b in batches]).transpose(1, 0, 2, 3).reshape(batches[0][0].shape[1], -1)
    return np.quantile(values, level, axis=1).astype(np.float32)
