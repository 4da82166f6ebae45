"""A deliberately plain reference for compositional explanations: dense masks and the beam search as loops.

Written from the definitions (Mu & Andreas 2020 and the module docstring of ``benchmark.explain``), not from the
vectorised code: every concept and unit mask is a dense boolean array over all pixels of all images (bit-packed so
that the brute force stays fast enough for tests), and every candidate formula's mask is built and counted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

OPS = ("OR", "AND", "AND NOT")


def concept_masks(ds, rows: Sequence[int], categories: Sequence[str]) -> dict[int, np.ndarray]:
    """Label -> packed dense mask over the images ``rows`` of ``ds`` (pixel labels of any layer; image-level labels
    cover the whole image); only labels with at least one pixel."""
    sh, sw = ds.meta["seg_size"]
    dense: dict[int, np.ndarray] = {}
    for i, row in enumerate(rows):
        example = ds[int(row)]
        for category in categories:
            if ds.labels.category(category).kind == "image":
                for label in example.image_labels[category]:
                    if label:
                        dense.setdefault(int(label), np.zeros((len(rows), sh, sw), bool))[i] = True
            else:
                for layer in example.pixel[category]:
                    for label in np.unique(layer):
                        if label:
                            m = dense.setdefault(int(label), np.zeros((len(rows), sh, sw), bool))
                            m[i] |= layer == label
    return {label: np.packbits(m) for label, m in sorted(dense.items()) if m.any()}


def unit_mask(acts: np.ndarray, threshold: float, size: tuple[int, int]) -> np.ndarray:
    """Packed mask of ``acts`` ``(N, h, w)``: bilinear upsampling above ``threshold`` (maps whose max is not above
    it have no active pixels)."""
    out = np.zeros((acts.shape[0], *size), bool)
    for i, fmap in enumerate(acts):
        if fmap.max() > threshold:
            up = F.interpolate(torch.from_numpy(np.ascontiguousarray(fmap, np.float32))[None, None], size=size,
                               mode="bilinear", align_corners=False)[0, 0].numpy()
            out[i] = up > np.float32(threshold)
    return np.packbits(out)


def _count(mask: np.ndarray) -> int:
    return int(np.bitwise_count(mask).sum())


def _combine(a: np.ndarray, op: str, b: np.ndarray) -> np.ndarray:
    if op == "OR":
        return a | b
    if op == "AND":
        return a & b
    return a & ~b


def naive_explain(unit: np.ndarray, masks: dict[int, np.ndarray], beam: int, max_length: int,
                  penalty: float = 0.0) -> list[tuple[tuple, float, float]]:
    """Per step, the best ``(formula, iou, score)``; formula = ``(label, (op, label), ...)``; ``[]``: none.

    Beam entries are kept in a list; ``sorted`` is stable, so ties keep the old beam first and then the new
    formulas in the order they were made (beam slot, label, operator), as compexp's dict + Counter do.
    """
    u = _count(unit)

    def iou(m: np.ndarray) -> float:
        inter, size = _count(unit & m), _count(m)
        union = u + size - inter
        return inter / union if union > 0 else 0.0

    singles = [((label,), iou(m), m, 1) for label, m in masks.items()]
    entries = [(f, v, v, m, n) for f, v, m, n in singles if v > 0]  # (formula, score, iou, mask, nodes)
    entries = sorted(entries, key=lambda e: -e[1])[:beam]
    if not entries:
        return []
    steps = [entries[0]]
    for _ in range(max_length - 1):
        new = []
        for formula, _, _, fmask, nodes in entries:
            for label, m in masks.items():
                for op in OPS:
                    cm = _combine(fmask, op, m)
                    n = nodes + 1 + (op == "AND NOT")
                    value = iou(cm)
                    new.append((formula + ((op, label),), value * (1.0 - penalty) ** (n - 1), value, cm, n))
        entries = sorted(entries + new, key=lambda e: -e[1])[:beam]
        steps.append(entries[0])
    return [(f, v, s) for f, s, v, _, _ in steps]
