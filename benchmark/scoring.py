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


def iou_from_counts(inter: torch.Tensor, truth: torch.Tensor, act: torch.Tensor, label_cat: torch.Tensor) -> torch.Tensor:
    """IoU ``(..., U, NL)`` from ``intersection (..., U, NL)``, ``truth (..., NL)`` and ``activation_by_category
    (..., U, C)`` (leading dimensions: e.g. bootstrap replicates); -1 for labels that are never scored."""
    scored = label_cat >= 0
    union = act[..., label_cat.clamp(min=0)] + truth[..., None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(inter))
    return torch.where(scored, iou, torch.full_like(iou, -1.0))


def iou_matrix(tally: Tally) -> torch.Tensor:
    """``(U, NL)`` float64 IoU of every unit with every label; -1 for labels that are never scored."""
    return iou_from_counts(tally.intersection.double(), tally.truth.double(), tally.activation_by_category.double(),
                           tally.label_cat)


def best_by_category(iou: torch.Tensor, label_cat: torch.Tensor, num_categories: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per category, the best IoU (at least 0) and its label over ``iou (..., NL)``: ``(..., C)`` each.

    The lowest label number wins ties; a category without labels gets IoU 0 and label 0.
    """
    values, labels = [], []
    for c in range(num_categories):
        members = (label_cat == c).nonzero(as_tuple=True)[0]  # increasing label numbers
        if members.numel() == 0:
            values.append(torch.zeros(iou.shape[:-1], dtype=iou.dtype, device=iou.device))
            labels.append(torch.zeros(iou.shape[:-1], dtype=torch.int64, device=iou.device))
            continue
        value, index = iou.index_select(-1, members).max(dim=-1)  # first maximum: the lowest label number
        values.append(value.clamp(min=0))
        labels.append(members[index])
    return torch.stack(values, dim=-1), torch.stack(labels, dim=-1)


def score_units(tally: Tally, label_names: Mapping[int, str]) -> list[dict]:
    """One dict per unit: the schema's ``unit`` object without ``threshold`` and ``top_images``."""
    ious, labels = best_by_category(iou_matrix(tally), tally.label_cat, len(tally.categories))
    ious, labels = ious.cpu(), labels.cpu()  # (U, C)
    # every value a unit's record reads, as Python lists (indexing tensors element by element cost more than the rest)
    inter = tally.intersection.cpu().gather(1, labels).tolist()
    truth = tally.truth.cpu()[labels].tolist()
    act = tally.activation_by_category.cpu().tolist()
    best = torch.argmax(ious, dim=1).tolist()
    ious, labels = ious.tolist(), labels.tolist()

    units = []
    for u in range(tally.num_units):
        per_cat = {}
        for c, cat in enumerate(tally.categories):
            value = float(ious[u][c])
            lab = labels[u][c] if value > 0 else None
            per_cat[cat] = {
                "label": label_names.get(lab, "") if lab is not None else "",
                "label_id": lab,
                "iou": value,
                "intersection": inter[u][c] if lab is not None else 0,
                "activation": act[u][c],
                "truth": truth[u][c] if lab is not None else 0,
            }
        top = per_cat[tally.categories[best[u]]]
        alive = top["iou"] > 0
        units.append({
            "unit": u,
            "label": top["label"] if alive else "",
            "category": tally.categories[best[u]] if alive else "",
            "iou": top["iou"],
            "categories": per_cat,
        })
    return units


def held_out_units(tally: Tally, label_names: Mapping[int, str]) -> list[dict]:
    """The held-out protocol: each label chosen on the train images, its IoU measured on the others.

    Per unit and category the label is the best on the tally's train counts (as in :func:`score_units`), and its
    ``iou`` is that label's IoU on the remaining (val) images: ``total - train`` counts. The unit's label is its best
    over categories on train; ``train_iou`` is that label's train IoU. The objects have the fields that
    :func:`benchmark.summary.summarize_layer` reads, so it counts detectors and unique detectors under the protocol.
    """
    cats = tally.categories
    train = (tally.train_intersection.double(), tally.train_truth.double(), tally.train_activation_by_category.double())
    val = (tally.intersection.double() - train[0], tally.truth.double() - train[1],
           tally.activation_by_category.double() - train[2])
    train_best, labels = best_by_category(iou_from_counts(*train, tally.label_cat), tally.label_cat, len(cats))
    val_iou = iou_from_counts(*val, tally.label_cat).clamp(min=0).gather(1, labels)
    chosen = train_best > 0
    val_iou = torch.where(chosen, val_iou, torch.zeros_like(val_iou)).cpu()
    best = torch.argmax(train_best.cpu(), dim=1).tolist()
    train_best, labels, chosen, val_iou = (t.cpu().tolist() for t in (train_best, labels, chosen, val_iou))
    units = []
    for u in range(tally.num_units):
        per_cat = {}
        for c, cat in enumerate(cats):
            lab = labels[u][c] if chosen[u][c] else None
            per_cat[cat] = {"label": label_names.get(lab, "") if lab is not None else "", "label_id": lab,
                            "iou": float(val_iou[u][c])}
        c_best = best[u]
        alive = chosen[u][c_best]
        units.append({
            "unit": u,
            "label": per_cat[cats[c_best]]["label"] if alive else "",
            "category": cats[c_best] if alive else "",
            "iou": float(val_iou[u][c_best]) if alive else 0.0,
            "train_iou": float(train_best[u][c_best]),
            "categories": per_cat,
        })
    return units
