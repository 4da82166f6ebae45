"""A deliberately plain reference for the tally and scoring: loops over images, units and labels, in numpy.

Written from the definitions (docs/algorithm.md §5, and the module docstring of
``benchmark.tally``), not from the vectorised code, so the tests and ``bench/tally_bench.py`` can check one against
the other. Slow by design: do not use it for real runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def naive_tally(
    batches: Sequence[tuple[np.ndarray, np.ndarray, Sequence[Sequence[tuple[int, int]]]]],
    thresholds: np.ndarray,
    num_labels: int,
    categories: Sequence[str],
    label_category: Mapping[int, str],
    compat: str = "netdissect",
) -> dict[str, np.ndarray | int]:
    """Counts for ``batches`` of ``(acts (B,U,h,w), label_maps (B,L,sh,sw), image_labels)``."""
    lite = compat == "netdissect-lite"
    last = len(categories) - 1

    def category_of(label: int) -> int | None:
        if label in label_category and label != 0:
            return categories.index(label_category[label])
        return last if lite else None

    num_units = thresholds.shape[0]
    inter = np.zeros((num_units, num_labels), dtype=np.int64)
    truth = np.zeros(num_labels, dtype=np.int64)
    act_cat = np.zeros((num_units, len(categories)), dtype=np.int64)
    active_total = np.zeros(num_units, dtype=np.int64)
    images = 0
    for acts, maps, image_labels in batches:
        for b in range(acts.shape[0]):
            images += 1
            layers = maps[b]
            sh, sw = layers.shape[1:]
            scalars = [lab for lab in image_labels[b] if lab != 0 or lite]
            for layer in layers:
                for label in np.unique(layer):
                    if label != 0:
                        truth[label] += int((layer == label).sum())
            for label in scalars:
                truth[label] += sh * sw
            # Categories present anywhere in the image (the original gate).
            image_cats = set()
            for label in np.unique(layers):
                if label != 0 and category_of(int(label)) is not None:
                    image_cats.add(category_of(int(label)))
            for label in scalars:
                if category_of(label) is not None:
                    image_cats.add(category_of(label))
            scalar_cats = {category_of(label) for label in scalars} - {None}
            for u in range(num_units):
                fmap = acts[b, u]
                if not fmap.max() > thresholds[u]:
                    continue
                up = F.interpolate(
                    torch.from_numpy(np.ascontiguousarray(fmap, dtype=np.float32))[None, None],
                    size=(sh, sw), mode="bilinear", align_corners=False,
                )[0, 0].numpy()
                active = up > thresholds[u]
                n_active = int(active.sum())
                active_total[u] += n_active
                overlap_cats = set()
                for layer in layers:
                    under = layer[active]
                    for label in np.unique(under):
                        if label == 0:
                            continue
                        inter[u, label] += int((under == label).sum())
                        if category_of(int(label)) is not None:
                            overlap_cats.add(category_of(int(label)))
                for label in scalars:
                    inter[u, label] += n_active
                gated = (overlap_cats | scalar_cats) if lite else image_cats
                for c in gated:
                    act_cat[u, c] += n_active
    return {
        "intersection": inter, "truth": truth, "activation_by_category": act_cat,
        "active": active_total, "images": images,
    }


def naive_scores(counts: Mapping[str, np.ndarray], categories: Sequence[str], label_category: Mapping[int, str],
                 compat: str = "netdissect") -> list[tuple[str, int | None, float]]:
    """Per unit ``(category, label, iou)`` of the overall best label, by plain loops ("" / None / 0 when none)."""
    lite = compat == "netdissect-lite"
    inter, truth, act_cat = counts["intersection"], counts["truth"], counts["activation_by_category"]
    num_units, num_labels = inter.shape
    out = []
    for u in range(num_units):
        best = ("", None, 0.0)
        for c, cat in enumerate(categories):
            for label in range(num_labels):
                primary = label_category.get(label) if label != 0 else None
                if primary is None and lite:
                    primary = categories[-1]
                if primary != cat:
                    continue
                union = act_cat[u, c] + truth[label] - inter[u, label]
                iou = inter[u, label] / union if union > 0 else 0.0
                if iou > best[2]:  # strict: earlier categories and lower labels win ties
                    best = (cat, label, float(iou))
        out.append(best)
    return out
