"""IoU per (unit, label) from a tally, and each unit's best label per category and overall.

``IoU(u, l) = I / (A + T - I)`` with ``I = intersection[u, l]``, ``T = truth[l]`` and ``A`` the unit's activation
counted in the images that pass the gate of ``l``'s primary category (see :mod:`benchmark.tally`); 0 when the
denominator is 0. Per category the best label is the argmax IoU over the labels whose primary category it is (ties:
lowest label number); the unit's label is the best over categories (ties: the earlier category). A category, or a
unit, with no positive IoU has label ``""``, IoU 0 and no label id.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from benchmark.tally import Tally


def iou_matrix(tally: Tally) -> torch.Tensor:
    """``(U, NL)`` float64 IoU of every unit with every label; -1 for labels that are never scored."""
    inter = tally.intersection.double()
    scored = tally.label_cat >= 0
    act = tally.activation_by_category.double()[:, tally.label_cat.clamp(min=0)]
    union = act + tally.truth.double() - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    return torch.where(scored, iou, torch.full_like(iou, -1.0))


def score_units(tally: Tally, label_names: Mapping[int, str]) -> list[dict]:
    """One dict per unit: the schema's ``unit`` object without ``threshold`` and ``top_images``."""
    iou = iou_matrix(tally)
    num_units = tally.num_units
    best_iou, best_label = [], []
    for c in range(len(tally.categories)):
        in_c = torch.where(tally.label_cat == c, iou, torch.full_like(iou, -1.0))
        value, label = in_c.max(dim=1)  # first maximum: the lowest label number wins ties
        best_iou.append(value.clamp(min=0))
        best_label.append(label)
    ious = torch.stack(best_iou, dim=1).cpu()  # (U, C)
    labels = torch.stack(best_label, dim=1).cpu()
    inter = tally.intersection.cpu()
    truth = tally.truth.cpu()
    act = tally.activation_by_category.cpu()

    units = []
    for u in range(num_units):
        per_cat = {}
        for c, cat in enumerate(tally.categories):
            value = float(ious[u, c])
            lab = int(labels[u, c]) if value > 0 else None
            per_cat[cat] = {
                "label": label_names.get(lab, "") if lab is not None else "",
                "label_id": lab,
                "iou": value,
                "intersection": int(inter[u, lab]) if lab is not None else 0,
                "activation": int(act[u, c]),
                "truth": int(truth[lab]) if lab is not None else 0,
            }
        c_best = int(torch.argmax(ious[u]))
        top = per_cat[tally.categories[c_best]]
        alive = top["iou"] > 0
        units.append({
            "unit": u,
            "label": top["label"] if alive else "",
            "category": tally.categories[c_best] if alive else "",
            "iou": top["iou"],
            "categories": per_cat,
        })
    return units
