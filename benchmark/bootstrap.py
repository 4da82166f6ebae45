"""Confidence intervals from per-fold tallies: a seeded bootstrap over image folds.

**Folds.** Image ``id`` is in fold ``floor(split_hash(id) * G)`` (:func:`fold_of`; ``split_hash`` is the md5
position that also decides Broden's train/val split and orders its rows), ``G = FOLDS = 16``. The assignment
depends only on the id: the same whatever the order of the images or the number of processes they were tallied
on. Because rows are stored in hash order, a batch of consecutive rows spans one or two folds, so keeping the
counts per fold costs little (:mod:`benchmark.tally`); their memory is ``G x U x NL`` int64 values per layer
(16 x 1280 x 84 x 8 B = 14 MB for MobileNetV2's last layer on the sample, 16 x 2048 x 1198 x 8 B = 314 MB for a
2048-unit layer on full Broden), whatever the number of images.

**Bootstrap.** Replicate ``r`` draws, with replacement, as many folds as there are non-empty folds, from the
non-empty folds (a cluster bootstrap: images within a fold stay together), giving integer fold weights ``w[r]``
(:func:`replicate_weights`, from ``torch.Generator().manual_seed(seed)`` alone). Its counts are ``sum_g w[r, g] x
counts[g]``. The labels stay those chosen on all images (each unit's best label per category, and its overall
label): a replicate recomputes their IoUs and, from them, detectors and unique detectors as
:func:`benchmark.summary.summarize_layer` counts them. The intervals thus say how sure the IoUs behind the reported
labels and counts are; they leave out the label choice's own variability on purpose: re-choosing labels in every
replicate takes the best of many noisy IoUs and biases the counts upwards (measured on the sample: MobileNetV2's
49 unique detectors got [51, 66]), and costs a full IoU matrix per replicate. The interval is the percentile
interval at ``CONFIDENCE`` (0.95): the replicate values at ranks ``floor(0.025 (R - 1))`` and ``ceil(0.975 (R -
1))`` of the ``R`` sorted values (``REPLICATES = 1000``), so its ends are values some replicate reached. The point
estimates stay the all-images values.

Weights depend only on the seed, ``R`` and the non-empty folds, so two runs on the same dataset with the same
seed share them: :func:`paired_interval` then gives an interval for a difference of two runs' counts from their
stored replicate values. A replicate costs ``G x U x C`` multiply-adds (float64, exact on integer counts), computed
``REPLICATE_CHUNK`` replicates at a time: the bootstrap's time and memory do not depend on the number of images or
labels (MobileNetV2's 1280 units: about 20 MB of working arrays, and an ``R x U`` float64 array of unit IoUs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from benchmark.tally import DEFAULT_FOLDS, Tally
from broden.errors import BrodenError
from broden.split import split_hash

FOLDS = DEFAULT_FOLDS
REPLICATES = 1000
CONFIDENCE = 0.95
#: Replicates computed together: their working arrays are 3 x REPLICATE_CHUNK x U x C float64.
REPLICATE_CHUNK = 100
#: Interval keys of a layer's ``intervals`` object, as in its summary.
INTERVAL_RULES = ("detectors", "detectors_top_label", "unique_per_category", "unique_top_label")
#: The rules whose replicate values are stored for paired comparisons.
PAIRED_RULES = ("unique_per_category", "unique_top_label")
METHOD = "percentile bootstrap over image folds (md5 split hash); labels fixed at their all-images choice"


def fold_of(image_id: str, folds: int = FOLDS) -> int:
    """The fold of image ``image_id`` (its dataset id, e.g. ``ade20k/ADE_train_00003153.jpg``)."""
    return min(int(split_hash(image_id) * folds), folds - 1)


def fold_tensor(image_ids: Sequence[str], folds: int = FOLDS) -> torch.Tensor:
    return torch.tensor([fold_of(i, folds) for i in image_ids], dtype=torch.int64)


def replicate_weights(fold_images: Sequence[int], replicates: int, seed: int) -> torch.Tensor:
    """``(replicates, G)`` int64 weights: each row draws the non-empty folds with replacement, as many as there are."""
    present = torch.tensor([g for g, n in enumerate(fold_images) if n > 0], dtype=torch.int64)
    if replicates < 1 or present.numel() == 0:
        raise BrodenError("the bootstrap needs at least one replicate and one image")
    gen = torch.Generator().manual_seed(int(seed))
    draws = present[torch.randint(present.numel(), (replicates, present.numel()), generator=gen)]
    weights = torch.zeros(replicates, len(fold_images), dtype=torch.int64)
    return weights.scatter_add_(1, draws, torch.ones_like(draws))


def percentile_interval(values: torch.Tensor, confidence: float = CONFIDENCE) -> tuple[torch.Tensor, torch.Tensor]:
    """Low and high ends over dim 0 of ``values (R, ...)``: sorted values at ranks floor(a (R-1)), ceil(b (R-1))
    (two selections, not a sort: 1000 x 1280 IoUs in 0.02-0.03 s instead of 0.045)."""
    r = values.shape[0]
    tail = (1 - confidence) / 2
    rows = values.reshape(r, -1).t().contiguous()  # each column's values contiguous: selection runs along them
    low = rows.kthvalue(math.floor(tail * (r - 1)) + 1, dim=1).values
    high = rows.kthvalue(math.ceil((1 - tail) * (r - 1)) + 1, dim=1).values
    return low.reshape(values.shape[1:]), high.reshape(values.shape[1:])


def _labelled_counts(tally: Tally, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per fold, each unit's intersection, active and truth counts for its reported label per category: three
    ``(G, U, C)`` float64 tensors (integer sums below 2**53 stay exact), picked once per layer for every chunk of
    replicates. ``labels (U, C)``: the label chosen on all images per unit and category, -1 for none."""
    dev = tally.fold_intersection.device
    nu, nc = labels.shape
    lab = labels.to(dev).clamp(min=0)
    units = torch.arange(nu, device=dev)[:, None].expand(nu, nc)
    return (tally.fold_intersection[:, units, lab].double(), tally.fold_activation_by_category.double(),
            tally.fold_truth[:, lab].double())


def _replicate_ious(counts: tuple[torch.Tensor, torch.Tensor, torch.Tensor], weights: torch.Tensor,
                    labels: torch.Tensor) -> torch.Tensor:
    """``(R, U, C)`` IoU in each replicate of each unit with its reported label per category (0 where it has none),
    from :func:`_labelled_counts` and the replicates' fold ``weights (R, G)``."""
    w = weights.to(counts[0].device, torch.float64)
    inter, act, truth = (torch.einsum("rg,guc->ruc", w, c) for c in counts)
    union = act + truth - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1), 0.0)
    return torch.where(labels.to(iou.device)[None] >= 0, iou, 0.0).cpu()


def _replicate_counts(iou: torch.Tensor, labels: torch.Tensor, top: torch.Tensor, threshold: float,
                      num_labels: int) -> dict[str, torch.Tensor]:
    """Per rule, ``(R, C + 1)`` counts per category and all (last column) from replicate IoUs ``(R, U, C)``.

    As :func:`benchmark.summary.summarize_layer` with the reported labels: per category, detectors are the units
    whose label's IoU exceeds ``threshold`` and the unique count their distinct labels; ``all`` detectors the units
    whose best over categories does. Top-label rule: each unit's reported category ``top (U,)`` (-1: none) only.
    """
    r, nu, nc = iou.shape
    det = iou > threshold
    top_iou = iou.gather(2, top.clamp(min=0)[None, :, None].expand(r, nu, 1))[:, :, 0]
    top_det = (top_iou > threshold) & (top >= 0)[None]

    def distinct(lab: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        seen = torch.zeros(r, num_labels + 1, dtype=torch.bool)
        seen.scatter_(1, torch.where(keep, lab[None].expand(r, nu), num_labels), True)
        return seen[:, :num_labels].sum(dim=1)

    out = {rule: torch.zeros(r, nc + 1, dtype=torch.int64) for rule in INTERVAL_RULES}
    top_label = labels.gather(1, top.clamp(min=0)[:, None])[:, 0]
    for c in range(nc):
        out["detectors"][:, c] = det[:, :, c].sum(dim=1)
        out["unique_per_category"][:, c] = distinct(labels[:, c], det[:, :, c])
        in_c = top_det & (top == c)[None]
        out["detectors_top_label"][:, c] = in_c.sum(dim=1)
        out["unique_top_label"][:, c] = distinct(top_label, in_c)
    out["detectors"][:, nc] = det.any(dim=2).sum(dim=1)
    out["detectors_top_label"][:, nc] = top_det.sum(dim=1)
    out["unique_per_category"][:, nc] = out["unique_per_category"][:, :nc].sum(dim=1)
    out["unique_top_label"][:, nc] = out["unique_top_label"][:, :nc].sum(dim=1)
    return out


def layer_intervals(tally: Tally, units: list[dict[str, Any]], iou_threshold: float, *, replicates: int = REPLICATES,
                    seed: int = 0, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The schema's layer ``intervals`` object; also sets each unit's ``iou_interval`` in ``units``.

    ``units``: the layer's scored units (:func:`benchmark.scoring.score_units` of ``tally``).
    """
    weights = replicate_weights(tally.fold_images.tolist(), replicates, seed)
    cats = tally.categories
    labels = torch.tensor([[u["categories"][c]["label_id"] if u["categories"][c]["label_id"] is not None else -1
                            for c in cats] for u in units], dtype=torch.int64).reshape(len(units), len(cats))
    top = torch.tensor([cats.index(u["category"]) if u["category"] else -1 for u in units], dtype=torch.int64)
    picked, chunks = _labelled_counts(tally, labels), []
    for start in range(0, replicates, REPLICATE_CHUNK):  # bounded working memory: a chunk of replicates at a time
        iou = _replicate_ious(picked, weights[start : start + REPLICATE_CHUNK], labels)
        top_iou = iou.gather(2, top.clamp(min=0)[None, :, None].expand(iou.shape[0], len(units), 1))[:, :, 0]
        chunks.append((_replicate_counts(iou, labels, top, iou_threshold, tally.num_labels), top_iou))
    counts = {rule: torch.cat([c[rule] for c, _ in chunks]) for rule in INTERVAL_RULES}
    lo, hi = percentile_interval(torch.cat([t for _, t in chunks]), confidence)
    for unit, a, b, has in zip(units, lo.tolist(), hi.tolist(), (top >= 0).tolist()):
        unit["iou_interval"] = [a, b] if has else [0.0, 0.0]
    columns = [*cats, "all"]
    out: dict[str, Any] = {}
    for rule in INTERVAL_RULES:
        lo, hi = percentile_interval(counts[rule], confidence)
        out[rule] = {c: [int(a), int(b)] for c, a, b in zip(columns, lo.tolist(), hi.tolist())}
    out["replicates"] = {rule: {c: counts[rule][:, i].tolist() for i, c in enumerate(columns)} for rule in PAIRED_RULES}
    return out


def protocol_record(tally: Tally, replicates: int, seed: int, confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The protocol's ``bootstrap`` object: what a paired comparison must find equal in both runs."""
    return {"method": METHOD, "folds": tally.folds, "fold_images": tally.fold_images.tolist(),
            "replicates": replicates, "seed": seed, "confidence": confidence}


def paired_interval(a: Sequence[int], b: Sequence[int], confidence: float = CONFIDENCE) -> tuple[int, int]:
    """Percentile interval of ``b - a`` over replicates drawn with the same fold weights."""
    if len(a) != len(b) or not a:
        raise BrodenError("paired bootstrap needs the same number of replicates in both runs")
    lo, hi = percentile_interval(torch.tensor(b, dtype=torch.int64) - torch.tensor(a, dtype=torch.int64), confidence)
    return int(lo), int(hi)
