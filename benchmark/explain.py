"""Compositional explanations of units: the best logical formula of concepts for each unit (Mu & Andreas 2020).

A unit is explained by a formula over Broden concepts built left to right with ``OR``, ``AND`` and ``AND NOT``,
e.g. ``(water OR river) AND NOT blue``, found by beam search for the largest IoU between the formula's mask and the
unit's mask ("Compositional Explanations of Neurons", NeurIPS 2020; the vision code of jayelm/compexp).

Definitions (those of the paper's code):

* The **unit mask** is the set of active pixels of the tally (:func:`benchmark.tally.active_column_chunks`): the
  unit's map, bilinearly upsampled to the segmentation size, strictly above the run's threshold.
* A **concept mask** is the set of pixels carrying the label in any layer of the selected categories (a set: a
  pixel labeled in two layers counts once); an image-level label (scene, texture) covers its whole image. Label 0
  is no concept. The candidate concepts are the labels that occur in the selected categories' data.
* ``IoU(u, F) = |U and F| / |U or F|`` over all pixels of all images (no category gate; 0 when both are empty).
* **Beam search**: the beam starts as the ``beam`` single concepts of largest IoU (only IoU > 0; ties: the lower
  label). Each of ``max_length - 1`` steps forms ``F op c`` for every formula ``F`` in the beam, every candidate
  concept ``c`` and ``op`` in ``OR, AND, AND NOT``, scores it ``IoU * (1 - complexity_penalty) ** (n - 1)`` (``n``:
  the formula's concepts plus its NOTs, compexp's formula length) and keeps the ``beam`` best of the old beam and
  the new formulas (ties: the old beam first, then the new ones in the order beam slot, label, operator). The
  explanation is the best formula of the final beam; the best single concept is the first of the initial beam.

How it is fast: a formula's IoU needs only ``|U and F|``, ``|F|`` and ``|U|``, and the counts of every extension
``F op c`` follow from ``|U and F and c|`` and ``|F and c|`` for all concepts ``c`` (``OR`` and ``AND NOT`` by
inclusion-exclusion). Each step is therefore one pass over the data for all units at once: the pixels of each
batch are grouped by their set of labels (from the label tuples the DataLoader workers group for the tally:
:class:`benchmark.activations.PixelLabels`), the beam formulas are evaluated
on the label sets under each unit's active pixels and, for ``|F and c|``, on the label sets holding one of the
formula's positive concepts, and the labels present are counted with the tally's ``bincount``
(:func:`label_hits`). A search of length N makes N passes; everything runs as batched tensor
operations on the chosen device.
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from benchmark.activations import ActivationCache, CacheRows, PixelLabels, RowBatches, SuppliedActivations, batch_loader
from benchmark.checkpoint import single_process_key
from benchmark.results import (
    EXPLANATIONS_FILE,
    EXPLANATIONS_SCHEMA_FILE,
    EXPLANATIONS_SCHEMA_VERSION,
    load_results,
    write_json,
)
from benchmark.tally import DEFAULT_CHUNK_ELEMENTS, active_column_chunks
from benchmark.upsample import SegmentValues
from broden.dataset import Broden
from broden.errors import BrodenError
from broden.utils import atomic
from broden.utils.progress import track

#: The operators, in the order the search tries them (the tie order).
OPERATORS = ("OR", "AND", "AND NOT")
_OR, _AND, _AND_NOT = 1, 2, 3  # operator codes; 0: no operator (a formula's first concept, or padding)
#: Per-chunk budget, in label entries, for the expanded (formula, label set) pairs of the ``|F and c|`` count.
_SEGMENT_BUDGET = 2**22


@dataclass
class ExplainSettings:
    """``benchmark explain`` options; the defaults are the paper's (compexp ``settings.py``)."""

    layers: list[str] | None = None  # None: every layer of the results
    units: list[int] | None = None  # None: every unit
    max_length: int = 3
    beam: int = 5
    complexity_penalty: float = 0.0
    categories: list[str] | None = None  # None: the run's categories
    device: str = "cpu"
    batch_size: int = 32
    workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    cache_budget_bytes: int = 8 * 10**9
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
    checkpoint_every_s: float = 60.0

    def check(self) -> None:
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if not 1 <= self.max_length <= 10:
            raise BrodenError(f"--max-length {self.max_length}: must be between 1 and 10 concepts")
        if not 1 <= self.beam <= 100:
            raise BrodenError(f"--beam {self.beam}: must be between 1 and 100")
        if not 0 <= self.complexity_penalty < 1:
            raise BrodenError(f"--complexity-penalty {self.complexity_penalty}: must lie in [0, 1) "
                              "(each extra term multiplies the IoU by 1 - penalty)")
        if self.batch_size < 1:
            raise BrodenError("--batch-size must be >= 1")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise BrodenError(f"--device {self.device}: CUDA is not available here (torch {torch.__version__}); "
                              "use --device cpu")


def label_hits(
    groups: torch.Tensor, labels: torch.Tensor, num_groups: int, num_labels: int, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """``(num_groups, num_labels)`` int64 counts: entry ``[g, l]`` adds, for every row ``i`` with ``groups[i] == g``,
    the number of times ``l`` occurs in ``labels[i]`` ``(N, L)``, times ``weights[i]`` (integer-valued; default 1).

    One ``bincount`` over ``group * num_labels + label``: every count of the search (unit masks, formula masks).
    """
    keys = ((groups * num_labels)[:, None] + labels).flatten()
    if weights is None:
        return torch.bincount(keys, minlength=num_groups * num_labels).view(num_groups, num_labels)
    w = weights.to(torch.float64)[:, None].expand(labels.shape).flatten()
    counts = torch.bincount(keys, weights=w, minlength=num_groups * num_labels)
    return counts.round().to(torch.int64).view(num_groups, num_labels)


# -- the pixels of a batch as label sets ---------------------------------------------------------------------------
@dataclass
class LabelSets:
    """A batch's pixels grouped by the set of concepts they carry."""

    labels: torch.Tensor  # (R, K) int64: each distinct label set, sorted descending, 0-padded
    counts: torch.Tensor  # (R,) int64: pixels carrying exactly that set
    of_pixel: torch.Tensor | None  # (B * sh * sw,) int64: each pixel's set (row b * sh * sw + y * sw + x); None in
    # a pass record, which keeps only what the later passes count


def label_sets(pixels: PixelLabels, image_labels: Sequence[Sequence[int]], num_labels: int) -> LabelSets:
    """The concept label sets of a batch's pixels, given grouped by label tuple (:class:`PixelLabels`, as the
    DataLoader workers group them for the tally), plus each image's image-level labels.

    A pixel's set holds every nonzero label of its tuple once, plus the image's image-level labels (which cover the
    whole image). Pixels of one tuple share a set, so the distinct sets are one ``unique`` over the images' tuples
    (a few dozen per image), not over their pixels.
    """
    table = pixels.table
    device = table.device
    nb = table.shape[0]
    width = max((len(x) for x in image_labels), default=0)
    image = torch.zeros(nb, width, dtype=torch.int64)
    for b, entries in enumerate(image_labels):
        image[b, : len(entries)] = torch.as_tensor(list(entries), dtype=torch.int64)
    image = image.to(device)
    if bool((table >= num_labels).any()) or bool((image >= num_labels).any()) or bool((image < 0).any()):
        raise BrodenError(f"label maps hold label numbers outside 0..{num_labels - 1}")
    tb, tt = (pixels.counts > 0).nonzero(as_tuple=True)  # the tuples some pixel carries
    none = torch.zeros(tb.numel(), 1, dtype=torch.int64, device=device)  # every set has a column
    rows = torch.cat([table[tb, tt], image[tb], none], dim=1)
    rows = rows.sort(dim=1, descending=True).values
    if rows.shape[1] > 1:
        repeated = rows[:, 1:] == rows[:, :-1]
        rows[:, 1:][repeated] = 0
        rows = rows.sort(dim=1, descending=True).values
    depth = int((rows > 0).sum(dim=1).max()) if rows.numel() else 0
    rows = rows[:, : max(depth, 1)].contiguous()
    labels, of_tuple = torch.unique(rows, dim=0, return_inverse=True)
    counts = torch.zeros(labels.shape[0], dtype=torch.int64, device=device).index_add_(0, of_tuple,
                                                                                       pixels.counts[tb, tt])
    set_of = torch.zeros(table.shape[:2], dtype=torch.int64, device=device)
    set_of[tb, tt] = of_tuple
    of_pixel = set_of.gather(1, pixels.of_pixel.view(nb, -1).long()).flatten()
    return LabelSets(labels, counts, of_pixel)


def unit_label_sets(
    acts: torch.Tensor, thresholds: torch.Tensor, sets: LabelSets, size: tuple[int, int], chunk_elements: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each unit's active pixels as ``(unit, label set, pixels)`` triples, one per distinct (unit, set) pair."""
    num_sets = sets.labels.shape[0]
    of_segment = SegmentValues(sets.of_pixel, acts.shape[0], acts.shape[2], size)
    keys = [((pu[columns.maps] * num_sets)[:, None] + of_segment.under(pb, columns))[columns.above]
            for pb, pu, columns in active_column_chunks(acts, thresholds, size, chunk_elements)]
    flat = torch.cat(keys) if keys else torch.zeros(0, dtype=torch.int64, device=acts.device)
    bins = acts.shape[1] * num_sets
    if bins <= 4 * flat.numel() + 2**20:  # a dense count is cheaper than sorting
        counts = torch.bincount(flat, minlength=bins)
        distinct = counts.nonzero().flatten()
        counts = counts[distinct]
    else:
        distinct, counts = torch.unique(flat, return_counts=True)
    return distinct // num_sets, distinct % num_sets, counts


def _presence(rows: torch.Tensor, leaves: torch.Tensor) -> torch.Tensor:
    """``(P, M)``: whether label set ``rows[p]`` holds concept ``leaves[p, m]`` (padding ``-1`` never does)."""
    return (rows[:, None, :] == leaves[:, :, None]).any(dim=2)


def _fold(present: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
    """Evaluate left-deep formulas from the presence of their concepts ``(P, M)`` and operator codes ``(P, M)``."""
    value = present[:, 0]
    for m in range(1, present.shape[1]):
        p, op = present[:, m], ops[:, m]
        value = torch.where(op == _OR, value | p, torch.where(op == _AND, value & p,
                            torch.where(op == _AND_NOT, value & ~p, value)))
    return value


# -- the search of one layer ---------------------------------------------------------------------------------------
class BeamSearch:
    """Beam search for ``num_units`` units over labels ``0 .. num_labels - 1``, fed one pass at a time.

    Pass 0 (:meth:`add` then :meth:`finish`) counts ``|U and c|`` and ``|U|`` and starts the beams; each further pass
    counts ``|U and F and c|`` and ``|F and c|`` for the beams' formulas and extends every beam by one concept.
    """

    def __init__(self, num_units: int, num_labels: int, *, beam: int, max_length: int, complexity_penalty: float,
                 device: str | torch.device = "cpu") -> None:
        self.num_units, self.num_labels = int(num_units), int(num_labels)
        self.beam, self.max_length = int(beam), int(max_length)
        self.device = torch.device(device)
        factor = 1.0 - float(complexity_penalty)
        # factor ** (n - 1) for n = 1 .. 2 * max_length (concepts plus NOTs), as Python floats.
        self.weight = torch.tensor([factor**k for k in range(2 * self.max_length)], dtype=torch.float64,
                                   device=self.device)
        z = {"dtype": torch.int64, "device": self.device}
        u, b, m = self.num_units, self.beam, self.max_length
        self.active = torch.zeros(u, **z)  # |U|
        self.single = torch.zeros(u, self.num_labels, **z)  # |U and c|
        self.truth: torch.Tensor | None = None  # |c|, given to finish()
        self.leaves = torch.full((u, b, m), -1, **z)  # the beams' formulas: concepts (-1: none) ...
        self.ops = torch.zeros(u, b, m, **z)  # ... and operator codes before each concept
        self.length = torch.zeros(u, b, **z)  # concepts
        self.nodes = torch.zeros(u, b, **z)  # concepts plus NOTs
        self.inter = torch.zeros(u, b, **z)  # |U and F|
        self.size = torch.zeros(u, b, **z)  # |F|
        self.iou = torch.zeros(u, b, dtype=torch.float64, device=self.device)
        self.score = torch.full((u, b), float("-inf"), dtype=torch.float64, device=self.device)
        self.steps: list[dict[str, torch.Tensor]] = []  # the best formula after each pass
        self.passes_done = 0

    @property
    def done(self) -> bool:
        return self.passes_done >= self.max_length

    @property
    def valid(self) -> torch.Tensor:
        return self.score > float("-inf")

    # -- one pass --------------------------------------------------------------------------------------------------
    def begin_pass(self) -> None:
        """Reset the counts of the coming pass (for an extension pass: index the beams' distinct formulas)."""
        if self.passes_done == 0:
            return
        u, b, nl = self.num_units, self.beam, self.num_labels
        self._with_c = torch.zeros(u * b, nl, dtype=torch.int64, device=self.device)  # |U and F and c|
        slots = self.valid.flatten().nonzero().flatten()
        keys = torch.cat([self.leaves.view(u * b, -1)[slots], self.ops.view(u * b, -1)[slots]], dim=1)
        distinct, inverse = torch.unique(keys, dim=0, return_inverse=True)
        m = self.max_length
        self._f_leaves, self._f_ops = distinct[:, :m].contiguous(), distinct[:, m:].contiguous()
        self._slot_formula = torch.full((u * b,), -1, dtype=torch.int64, device=self.device)
        self._slot_formula[slots] = inverse
        self._f_and_c = torch.zeros(distinct.shape[0], nl, dtype=torch.int64, device=self.device)  # |F and c|
        positive = (self._f_leaves >= 0) & ((self._f_ops == _OR) | (torch.arange(m, device=self.device) == 0))
        self._f_positive = positive  # the concepts whose pixels can hold F (the first one and those after OR)
        self._seg_formula, self._seg_leaf = positive.nonzero(as_tuple=True)

    def add(self, sets: LabelSets, units: torch.Tensor, set_idx: torch.Tensor, weights: torch.Tensor) -> None:
        """Count one batch: ``sets`` of its pixels, and the units' active pixels as (unit, set, pixels) triples."""
        rows = sets.labels[set_idx]
        if self.passes_done == 0:
            self.active += torch.bincount(units, weights=weights.double(), minlength=self.num_units).round().long()
            self.single += label_hits(units, rows, self.num_units, self.num_labels, weights)
            return
        for j in range(self.beam):
            keep = self.valid[units, j]
            u, r, w = units[keep], rows[keep], weights[keep]
            holds = _fold(_presence(r, self.leaves[u, j]), self.ops[u, j])
            self._with_c += label_hits(u[holds] * self.beam + j, r[holds], self.num_units * self.beam,
                                       self.num_labels, w[holds])
        self._count_formulas(sets)

    def _count_formulas(self, sets: LabelSets) -> None:
        """``|F and c|`` over the batch: F is evaluated on the label sets that hold one of its positive concepts."""
        labels, nl = sets.labels, self.num_labels
        set_of, col = (labels > 0).nonzero(as_tuple=True)
        holding = labels[set_of, col]
        order = torch.argsort(holding, stable=True)
        sets_by_label = set_of[order]
        per_label = torch.bincount(holding, minlength=nl)
        first = torch.cumsum(per_label, 0) - per_label
        seg_label = self._f_leaves[self._seg_formula, self._seg_leaf]
        lengths = per_label[seg_label]
        ends = torch.cumsum(lengths, 0)
        budget = max(1, _SEGMENT_BUDGET // max(1, labels.shape[1]))
        start = 0
        while start < lengths.numel():
            stop = int(torch.searchsorted(ends, ends[start] - lengths[start] + budget, right=True))
            stop = max(stop, start + 1)
            seg = torch.arange(start, stop, device=self.device)
            n = lengths[seg]
            which = torch.repeat_interleave(seg, n)
            offset = torch.arange(int(n.sum()), device=self.device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
            row = sets_by_label[first[seg_label[which]] + offset]
            f, leaf = self._seg_formula[which], self._seg_leaf[which]
            r = labels[row]
            present = _presence(r, self._f_leaves[f])
            earlier = (present & self._f_positive[f] & (torch.arange(self.max_length, device=self.device) < leaf[:, None])).any(1)
            keep = _fold(present, self._f_ops[f]) & ~earlier  # each pixel counted once, from its first positive concept
            self._f_and_c += label_hits(f[keep], r[keep], self._f_and_c.shape[0], nl, sets.counts[row[keep]])
            start = stop

    def finish(self, truth: torch.Tensor) -> None:
        """End the pass: start the beams (pass 0) or extend them by one concept, and record the best formula."""
        if self.passes_done == 0:
            self._start(truth.to(self.device))
        else:
            self._extend()
            del self._with_c, self._f_and_c
        self.passes_done += 1
        self.steps.append({k: getattr(self, k)[:, 0].clone() for k in
                           ("leaves", "ops", "length", "nodes", "inter", "size", "iou", "score")})

    def _start(self, truth: torch.Tensor) -> None:
        self.truth = truth
        nl = self.num_labels
        candidate = (truth > 0) & (torch.arange(nl, device=self.device) > 0)
        iou = _iou(self.single, self.active[:, None], truth[None, :])
        score = torch.where(candidate & (iou > 0), iou, torch.full_like(iou, float("-inf")))
        take = min(self.beam, nl)
        value, label = torch.sort(score, dim=1, descending=True, stable=True)
        value, label = value[:, :take], label[:, :take]
        rows = torch.arange(self.num_units, device=self.device)[:, None]
        self.score[:, :take] = value
        ok = value > float("-inf")
        self.leaves[:, :take, 0] = torch.where(ok, label, -1)
        self.length[:, :take] = ok.long()
        self.nodes[:, :take] = ok.long()
        self.inter[:, :take] = torch.where(ok, self.single[rows, label], 0)
        self.size[:, :take] = torch.where(ok, truth[label], 0)
        self.iou[:, :take] = torch.where(ok, iou[rows, label], 0.0)
        self.candidate = candidate

    def _extend(self) -> None:
        u, b, nl = self.num_units, self.beam, self.num_labels
        with_c = self._with_c.view(u, b, nl)
        f_and_c = self._f_and_c[self._slot_formula.clamp(min=0)].view(u, b, nl)
        inter, size = self.inter[:, :, None], self.size[:, :, None]
        new_inter = torch.stack([inter + self.single[:, None, :] - with_c, with_c, inter - with_c], dim=3)
        new_size = torch.stack([size + self.truth[None, None, :] - f_and_c, f_and_c, size - f_and_c], dim=3)
        iou = _iou(new_inter, self.active[:, None, None, None], new_size)  # (U, B, NL, 3): OR, AND, AND NOT
        nodes = self.nodes[:, :, None, None] + torch.tensor([1, 1, 2], device=self.device)
        score = iou * self.weight[(nodes - 1).clamp(max=self.weight.numel() - 1)]
        allowed = self.valid[:, :, None, None] & self.candidate[None, None, :, None]
        score = torch.where(allowed, score, torch.full_like(score, float("-inf")))
        pool = torch.cat([self.score, score.view(u, -1)], dim=1)
        value, chosen = torch.sort(pool, dim=1, descending=True, stable=True)
        value, chosen = value[:, :b], chosen[:, :b]
        old = chosen < b
        c = (chosen - b).clamp(min=0)
        parent = torch.where(old, chosen, c // (nl * 3))
        label, op = (c // 3) % nl, c % 3
        rows = torch.arange(u, device=self.device)[:, None]
        leaves, ops = self.leaves[rows, parent], self.ops[rows, parent]  # (U, B, M)
        length = self.length[rows, parent]
        at = torch.nn.functional.one_hot(length.clamp(max=self.max_length - 1), self.max_length).bool() & ~old[..., None]
        self.leaves = torch.where(at, label[..., None], leaves)
        self.ops = torch.where(at, (op + 1)[..., None], ops)
        self.length = length + (~old).long()
        self.nodes = torch.where(old, self.nodes[rows, parent], self.nodes[rows, parent] + 1 + (op == 2).long())
        self.inter = torch.where(old, self.inter[rows, parent], new_inter[rows, parent, label, op])
        self.size = torch.where(old, self.size[rows, parent], new_size[rows, parent, label, op])
        self.iou = torch.where(old, self.iou[rows, parent], iou[rows, parent, label, op])
        self.score = value
        invalid = value == float("-inf")
        self.leaves[invalid] = -1
        self.ops[invalid] = 0

    # -- output ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The search between passes, as CPU tensors (``torch.save``-able)."""
        names = ("active", "single", "leaves", "ops", "length", "nodes", "inter", "size", "iou", "score", "weight")
        state: dict[str, Any] = {k: getattr(self, k).cpu() for k in names}
        if self.passes_done and hasattr(self, "_with_c"):  # an extension pass under way: its counts so far
            state["pass_counts"] = {"with_c": self._with_c.cpu(), "f_and_c": self._f_and_c.cpu()}
        state.update(passes_done=self.passes_done, steps=[{k: v.cpu() for k, v in s.items()} for s in self.steps],
                     truth=None if self.truth is None else self.truth.cpu(),
                     candidate=getattr(self, "candidate", torch.zeros(0, dtype=torch.bool)).cpu(),
                     shape=(self.num_units, self.num_labels, self.beam, self.max_length))
        return state

    def load_pass_counts(self, counts: dict[str, torch.Tensor]) -> None:
        """After :meth:`begin_pass` of an interrupted extension pass: the counts it had reached."""
        self._with_c, self._f_and_c = counts["with_c"].to(self.device), counts["f_and_c"].to(self.device)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k in ("active", "single", "leaves", "ops", "length", "nodes", "inter", "size", "iou", "score", "weight"):
            setattr(self, k, state[k].to(self.device))
        self.passes_done = int(state["passes_done"])
        self.steps = [{k: v.to(self.device) for k, v in s.items()} for s in state["steps"]]
        self.truth = None if state["truth"] is None else state["truth"].to(self.device)
        if self.passes_done:
            self.candidate = state["candidate"].to(self.device)


def _iou(inter: torch.Tensor, active: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """``inter / (active + size - inter)`` in float64 from integer counts; 0 where the union is empty."""
    union = active + size - inter
    return torch.where(union > 0, inter.double() / union.clamp(min=1).double(), torch.zeros_like(inter, dtype=torch.float64))


# -- where the activations come from -------------------------------------------------------------------------------
class _Activations:
    """The explained units' activations, batch by batch in the run's row order, with the masks of ``categories``.

    In order of preference: the scorer's float16 cache beside the results (``score --keep-cache``, same run key),
    the supplied ``.npz`` (results of ``score --activations``), or the model's forward pass. Activations are float16
    in every path, as in ``score``.
    """

    def __init__(self, results: dict[str, Any], results_path: Path, dataset: Broden, layers: list[dict[str, Any]],
                 units: list[int], categories: list[str], settings: ExplainSettings,
                 model: str | None, activations: str | os.PathLike[str] | None) -> None:
        from benchmark.scorer import CACHE_DIR

        self.dataset, self.categories, self.settings = dataset, categories, settings
        self.layers = [layer["name"] for layer in layers]
        self.units = torch.tensor(units, dtype=torch.int64)
        self.num_rows = int(results["dataset"]["num_images"])
        self.amp = bool(results["protocol"].get("amp"))  # the forward pass as scored
        self.source = None
        self.scorer_cache: CacheRows | None = None
        recorded = results["model"]
        if activations is not None or recorded["source"] == "activations":
            self._supplied(Path(activations if activations is not None else recorded["file"]))
        else:
            self.indices = list(range(len(dataset)))
            cache_dir = results_path.parent / CACHE_DIR
            all_shapes = {layer["name"]: tuple(layer["shape"]) for layer in results["layers"]}
            key = single_process_key(cache_dir)
            run_key = results.get("environment", {}).get("run_key")
            if key is not None and key == run_key and ActivationCache.intact(cache_dir, all_shapes, self.num_rows):
                self.scorer_cache = CacheRows(cache_dir, all_shapes, 0)
                self.kind = "scorer-cache"
            else:
                self._model(model, recorded)
        if len(self.indices) != self.num_rows:
            raise BrodenError(f"the activations cover {len(self.indices)} images but the results were scored on "
                              f"{self.num_rows}; pass the --activations or model of that run")

    def _supplied(self, path: Path) -> None:
        from benchmark.activations.producers import SuppliedProducer

        supplied = SuppliedActivations(path, self.dataset)
        if self.layers != [supplied.layer]:
            raise BrodenError(f"{path}: holds layer {supplied.layer!r}, the explained layers are {self.layers}; "
                              "pass the activations the results were scored from")
        self.source = SuppliedProducer(supplied, self.dataset)
        self.indices = supplied.indices
        self.kind = "activations"

    def _model(self, spec: str | None, recorded: dict[str, Any]) -> None:
        from benchmark.activations.producers import ModelProducer
        from benchmark.models.loader import load_model

        weights = recorded.get("weights") or {}
        seed = int(weights.get("seed", 0)) if weights.get("kind") == "random" else 0
        if spec is None:
            if recorded["source"] == "torchvision" and recorded.get("architecture"):
                choice = "none" if weights.get("kind") == "random" else str(weights.get("enum", "DEFAULT")).split(".")[-1]
                spec = f"torchvision:{recorded['architecture']}:{choice}"
            elif recorded.get("file"):
                spec = recorded["file"]
            else:
                raise BrodenError("the results name no model file to recompute activations from; pass --model MODEL "
                                  "or --activations NPZ")
        weights_file = weights.get("file") if weights.get("kind") == "file" else None
        loaded = load_model(spec, weights_file=weights_file, seed=seed)
        if recorded.get("file_sha256") and loaded.file_sha256 and loaded.file_sha256 != recorded["file_sha256"]:
            raise BrodenError(f"{spec}: this model file differs from the one the results were scored with "
                              "(sha256 mismatch); pass the same model file with --model")
        self.source = ModelProducer(loaded, self.dataset, self.layers, self.settings.device, amp=self.amp)
        self.kind = "model"

    def batches(self, first_row: int = 0) -> Iterator[tuple[Any, dict[str, torch.Tensor]]]:
        """One pass from ``first_row`` on: ``(Batch with label maps, {layer: (B, units, h, w) float16})``."""
        s = self.settings
        if self.scorer_cache is not None:
            rb = RowBatches(self.dataset, self.indices, s.batch_size, categories=self.categories, first_row=first_row)
            for batch in batch_loader(rb, s.workers):
                yield batch, {name: self.scorer_cache.read(name, batch.start, batch.end)[:, self.units]
                              for name in self.layers}
            return
        for batch, acts in self.source.batches(s.batch_size, s.workers, first_row, self.categories):
            yield batch, {name: acts[name][:, self.units.to(acts[name].device)] for name in self.layers}

class _PassRecord:
    """What the extension passes count, kept from the first pass: per batch, its label sets and each layer's
    (unit, set, pixels) triples. Later passes read it instead of recomputing activations, masks and active pixels.
    Written under ``directory`` while it stays under ``budget_bytes``; beyond that it is dropped and the later
    passes recompute."""

    def __init__(self, directory: Path, budget_bytes: int, device: torch.device) -> None:
        self.dir, self.budget, self.device = directory, int(budget_bytes), device
        self.batches, self.nbytes, self.dropped = 0, 0, False

    def write(self, sets: LabelSets, triples: dict[str, tuple[torch.Tensor, ...]]) -> None:
        if self.dropped:
            return
        item = {"labels": sets.labels.cpu(), "counts": sets.counts.cpu(),
                "layers": {name: tuple(t.cpu() for t in ts) for name, ts in triples.items()}}
        self.nbytes += sum(t.numel() * t.element_size() for ts in item["layers"].values() for t in ts)
        self.nbytes += item["labels"].numel() * 8 + item["counts"].numel() * 8
        if self.nbytes > self.budget:
            self.drop()
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic.atomic_path(self.dir / f"batch{self.batches:06d}.pt") as tmp:
            torch.save(item, tmp)
        self.batches += 1

    def drop(self) -> None:
        self.dropped = True
        shutil.rmtree(self.dir, ignore_errors=True)

    def intact(self, batches: int) -> bool:
        return all((self.dir / f"batch{i:06d}.pt").is_file() for i in range(batches))

    def read(self, first: int = 0) -> Iterator[tuple[LabelSets, dict[str, tuple[torch.Tensor, ...]], int]]:
        """The recorded batches from batch ``first`` on (the third item, a batch's end row, is not kept: 0)."""
        for i in range(first, self.batches):
            item = torch.load(self.dir / f"batch{i:06d}.pt", map_location=self.device, weights_only=True)
            yield LabelSets(item["labels"], item["counts"], None), item["layers"], 0


class _TopImageCheck:
    """Verifies, on the first pass, that the activations are the scored run's: each unit's recorded top images must
    have the recorded peak activation (float16, as ``score`` saw it)."""

    def __init__(self, layer: dict[str, Any], units: list[int], row_of: dict[str, int], device: torch.device) -> None:
        self.layer = layer["name"]
        self.units = units
        entries = [(i, row_of[t["id"]], float(t["activation"])) for i, u in enumerate(units)
                   for t in layer["units"][u].get("top_images", []) if t["id"] in row_of]
        t = torch.tensor([(i, r) for i, r, _ in entries], dtype=torch.int64).reshape(-1, 2).to(device)
        self.unit_idx, self.rows = t[:, 0], t[:, 1]
        self.values = torch.tensor([v for _, _, v in entries], dtype=torch.float32, device=device)

    def check(self, start: int, acts: torch.Tensor) -> None:
        here = (self.rows >= start) & (self.rows < start + acts.shape[0])
        if not bool(here.any()):
            return
        peak = acts.flatten(2).amax(dim=2).float()[self.rows[here] - start, self.unit_idx[here]]
        bad = (peak != self.values[here]).nonzero().flatten()
        if bad.numel():
            k = int(bad[0])
            unit = self.units[int(self.unit_idx[here][k])]
            raise BrodenError(
                f"layer {self.layer!r} unit {unit}: the activations differ from the scored run's (a top image peaks "
                f"at {float(peak[k]):g}, the results record {float(self.values[here][k]):g}); pass the model or "
                "--activations the results were scored with")


# -- the run -------------------------------------------------------------------------------------------------------
@dataclass
class Outcome:
    path: Path  # explanations.json
    explanations: dict[str, Any]
    resumed_passes: int  # passes taken from a checkpoint


def _computed(source: _Activations, first_row: int, thresholds: dict[str, torch.Tensor],
              checks: dict[str, _TopImageCheck] | None, num_labels: int, device: torch.device, chunk_elements: int,
              label: str) -> Iterator[tuple[LabelSets, dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]], int]]:
    """A pass from the activations and masks, from ``first_row`` on: per batch, its label sets, each layer's unit
    triples and the batch's end row."""
    stream = source.batches(first_row)
    for batch, acts in track(stream, label, total=source.num_rows - first_row, advance_by=lambda item: len(item[0].ids)):
        maps = batch.label_maps.to(device, non_blocking=True)
        size = (int(maps.shape[2]), int(maps.shape[3]))
        grouped = PixelLabels.of(maps) if batch.pixel_labels is None else batch.pixel_labels.to(device)
        sets = label_sets(grouped, batch.image_labels, num_labels)
        triples = {}
        for name, a in acts.items():
            a = a.to(device).float()
            if checks is not None:
                checks[name].check(batch.start, a)
            triples[name] = unit_label_sets(a, thresholds[name], sets, size, chunk_elements)
        yield sets, triples, batch.end


def parse_units(text: str) -> list[int]:
    """``"0-99,120,130-139"`` -> unit numbers, in order, each once."""
    units: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        lo, dash, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise BrodenError(f"--units {text!r}: write unit numbers and ranges like 0-99,120") from None
        if first < 0 or last < first:
            raise BrodenError(f"--units {text!r}: ranges go from a low to a high unit number, from 0")
        units.extend(range(first, last + 1))
    return list(dict.fromkeys(units))


def explain(results_path: str | os.PathLike[str], settings: ExplainSettings | None = None, *,
            out: str | os.PathLike[str] | None = None, dataset: str | os.PathLike[str] | None = None,
            model: str | None = None, activations: str | os.PathLike[str] | None = None) -> Outcome:
    """Explain the units of a results file by formulas; write ``OUT/explanations.json`` (default: beside the results).

    The activations are recomputed as ``score`` computed them (see :class:`_Activations`; ``model`` and
    ``activations`` override what the results record) and checked against the recorded top images; the dataset
    (default: the recorded path) must have the recorded fingerprint. A checkpoint is saved under
    ``OUT/explain-cache/`` every ``checkpoint_every_s`` and after every pass: running the same command again resumes
    where it stopped, with the same explanations.
    """
    from benchmark.checkpoint import Checkpoint, run_key

    settings = settings or ExplainSettings()
    settings.check()
    results_path = Path(results_path)
    results = load_results(results_path)
    layers = _select_layers(results, settings.layers, results_path)
    ds = _dataset(results, dataset, results_path)
    have = ds.labels.category_names
    categories = settings.categories or list(results["protocol"]["categories"])
    for c in categories:
        if c not in have:
            raise BrodenError(f"category {c!r} is not in the dataset {ds.path} (it has {', '.join(have)}); fix --categories")
    num_units = min(layer["num_units"] for layer in layers)
    units = settings.units if settings.units is not None else list(range(num_units))
    if not units or max(units) >= num_units:
        raise BrodenError(f"--units: the layers have {num_units} units (0-{num_units - 1}); pick units among them")
    out_dir = Path(out) if out is not None else results_path.parent
    work = out_dir / "explain-cache"
    device = torch.device(settings.device)
    num_labels = ds.labels.max_number + 1
    key = run_key({"results": results.get("environment", {}).get("run_key") or results["created"],
                   "dataset": ds.fingerprint, "layers": [layer["name"] for layer in layers], "units": units,
                   "categories": categories, "max_length": settings.max_length, "beam": settings.beam,
                   "complexity_penalty": settings.complexity_penalty, "schema": EXPLANATIONS_SCHEMA_VERSION})
    ckpt = Checkpoint(work, key)
    state = ckpt.open() or {}
    searches = {layer["name"]: BeamSearch(len(units), num_labels, beam=settings.beam, max_length=settings.max_length,
                                          complexity_penalty=settings.complexity_penalty, device=device)
                for layer in layers}
    for name, s in state.get("searches", {}).items():
        searches[name].load_state_dict(s)
    timings = dict(state.get("timings", {}))
    resumed = int(state.get("passes", 0))
    row, done_batches = int(state.get("row", 0)), int(state.get("batch", 0))  # within the unfinished pass
    truth = state["truth"].to(device) if "truth" in state else torch.zeros(num_labels, dtype=torch.int64, device=device)
    source = _Activations(results, results_path, ds, layers, units, categories, settings, model, activations)
    record = _PassRecord(work / "passes", settings.cache_budget_bytes, device)
    record.batches = int(state.get("recorded_batches", 0))
    record_complete = bool(state.get("record_complete")) and record.intact(record.batches)
    if not record_complete and row and not record.intact(record.batches):
        row, done_batches = 0, 0  # the record of this pass's first batches is gone: redo the pass
    thresholds = {layer["name"]: torch.tensor([layer["units"][u]["threshold"] for u in units], dtype=torch.float32,
                                              device=device) for layer in layers}
    last_save = time.perf_counter()

    def save(passes: int) -> None:
        ckpt.save({"passes": passes, "row": row, "batch": done_batches, "truth": truth.cpu(), "timings": timings,
                   "record_complete": record_complete, "recorded_batches": record.batches,
                   "searches": {k: s.state_dict() for k, s in searches.items()}})

    for p in range(resumed, settings.max_length):
        t0 = time.perf_counter() - timings.pop("unfinished_pass_s", 0.0)
        for name, s in searches.items():
            s.begin_pass()
            if done_batches and "pass_counts" in state["searches"][name]:
                s.load_pass_counts(state["searches"][name]["pass_counts"])
        label = f"explain pass {p + 1}/{settings.max_length}"
        recording = not record_complete and p + 1 < settings.max_length
        if record_complete:
            items = track(record.read(done_batches), label, total=record.batches - done_batches)
        else:
            checks = None
            if p == 0:
                row_of = {rid: r for r, rid in enumerate(ds.ids_at(source.indices))}
                checks = {layer["name"]: _TopImageCheck(layer, units, row_of, device) for layer in layers}
            items = _computed(source, row, thresholds, checks, num_labels, device, settings.chunk_elements, label)
            if recording and not done_batches:
                record.drop()
                record.batches, record.nbytes, record.dropped = 0, 0, False
        for sets, triples, end in items:
            if p == 0:
                zeros = torch.zeros(sets.labels.shape[0], dtype=torch.int64, device=device)
                truth += label_hits(zeros, sets.labels, 1, num_labels, sets.counts)[0]
            for name, t in triples.items():
                searches[name].add(sets, *t)
            if recording:
                record.write(sets, triples)
            row, done_batches = end, done_batches + 1
            if time.perf_counter() - last_save >= settings.checkpoint_every_s:
                timings["unfinished_pass_s"] = round(time.perf_counter() - t0, 3)
                save(p)
                del timings["unfinished_pass_s"]
                last_save = time.perf_counter()
        if recording and not record.dropped:
            record_complete = True
        truth[0] = 0
        for s in searches.values():
            s.finish(truth)
        timings[f"pass{p + 1}_s"] = round(time.perf_counter() - t0, 3)
        row, done_batches = 0, 0
        state = {}
        save(p + 1)
        last_save = time.perf_counter()
    timings["total_s"] = round(sum(v for k, v in timings.items() if k.startswith("pass")), 3)
    doc = _document(results, results_path, ds, layers, units, categories, settings, searches, source.kind, timings)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / EXPLANATIONS_FILE
    write_json(path, doc, EXPLANATIONS_SCHEMA_FILE, check_every_unit=False)  # units from _formulas, tested
    ckpt.remove()
    return Outcome(path, doc, resumed)


def _select_layers(results: dict[str, Any], names: list[str] | None, where: Path) -> list[dict[str, Any]]:
    have = {layer["name"]: layer for layer in results["layers"] if layer.get("units")}
    if not have:
        raise BrodenError(f"{where}: has no per-unit data (thresholds); explain needs results written by 'benchmark score'")
    for name in names or []:
        if name not in have:
            raise BrodenError(f"{where}: no layer {name!r} with units (it has {', '.join(have)}); fix --layers")
    chosen = [have[n] for n in dict.fromkeys(names)] if names else list(have.values())
    for layer in chosen:
        if len(layer.get("shape") or []) != 3 or any("threshold" not in u for u in layer["units"]):
            raise BrodenError(f"{where}: layer {layer['name']!r} has no shape or thresholds; explain needs results "
                              "written by 'benchmark score'")
    return chosen


def _dataset(results: dict[str, Any], path: str | os.PathLike[str] | None, where: Path) -> Broden:
    from broden.dataset import load

    recorded = results["dataset"]
    chosen = path if path is not None else recorded.get("path")
    if not chosen or not Path(chosen).exists():
        raise BrodenError(f"{where}: the dataset {chosen or '(none recorded)'} is not there; pass --dataset PATH "
                          "(the dataset the results were scored on)")
    ds = load(chosen)
    if recorded.get("fingerprint") and ds.fingerprint != recorded["fingerprint"]:
        raise BrodenError(f"{chosen}: not the dataset the results were scored on (fingerprint {ds.fingerprint}, the "
                          f"results record {recorded['fingerprint']}); pass that dataset with --dataset")
    return ds


def formula_text(names: Sequence[str], operators: Sequence[str]) -> str:
    """A left-deep formula as text: ``(water OR river) AND NOT blue`` (an operator joins everything before it)."""
    text = names[0]
    for k, (op, name) in enumerate(zip(operators, names[1:])):
        text = f"({text}) {op} {name}" if k else f"{text} {op} {name}"
    return text


def _formulas(step: dict[str, torch.Tensor], ds: Broden, primary: dict[int, str]) -> list[dict[str, Any] | None]:
    """The schema's formula objects of one step, one per unit (None: no concept overlaps the unit)."""
    cpu = {k: v.cpu().tolist() for k, v in step.items()}
    out: list[dict[str, Any] | None] = []
    for i, score in enumerate(cpu["score"]):
        if score == float("-inf"):
            out.append(None)
            continue
        n = cpu["length"][i]
        labels = cpu["leaves"][i][:n]
        names = [ds.labels.name(lab) for lab in labels]
        operators = [OPERATORS[op - 1] for op in cpu["ops"][i][1:n]]
        out.append({
            "formula": formula_text(names, operators),
            "concepts": [{"label_id": lab, "label": name, "category": primary.get(lab, "")}
                         for lab, name in zip(labels, names)],
            "operators": operators,
            "length": n,
            "iou": float(cpu["iou"][i]),
            "score": float(score),
            "intersection": int(cpu["inter"][i]),
            "formula_pixels": int(cpu["size"][i]),
        })
    return out


def _document(results: dict[str, Any], results_path: Path, ds: Broden, layers: list[dict[str, Any]],
              units: list[int], categories: list[str], settings: ExplainSettings,
              searches: dict[str, BeamSearch], kind: str, timings: dict[str, float]) -> dict[str, Any]:
    from broden.version import __version__

    primary = ds.labels.primary_categories(categories)
    out_layers = []
    for layer in layers:
        search = searches[layer["name"]]
        steps = [_formulas(step, ds, primary) for step in search.steps]
        active = search.active.cpu().tolist()
        out_units = []
        for i, u in enumerate(units):
            scored = layer["units"][u]
            out_units.append({
                "unit": u,
                "threshold": float(scored["threshold"]),
                "active_pixels": int(active[i]),
                "netdissect_label": scored.get("label", ""),
                "netdissect_iou": float(scored.get("iou", 0.0)),
                "single": steps[0][i],
                "formula": steps[-1][i],
                "steps": [step[i] for step in steps],
            })
        out_layers.append({"name": layer["name"], "num_units": layer["num_units"], "units": out_units})
    return {
        "schema": EXPLANATIONS_SCHEMA_VERSION,
        "name": results["name"],
        "results": {"file": str(results_path), "run_key": results.get("environment", {}).get("run_key"),
                    "created": results["created"]},
        "dataset": {"name": results["dataset"]["name"], "fingerprint": ds.fingerprint, "path": str(ds.path),
                    "num_images": int(results["dataset"]["num_images"])},
        "settings": {
            "method": "compositional explanations (Mu & Andreas, NeurIPS 2020): beam search over left-deep "
                      "formulas; IoU over all pixels of all images; image-level labels cover the whole image",
            "max_length": settings.max_length,
            "beam": settings.beam,
            "complexity_penalty": settings.complexity_penalty,
            "score": "IoU * (1 - complexity_penalty) ** (n - 1), n = concepts + NOTs",
            "operators": list(OPERATORS),
            "categories": categories,
            "units": units,
            "upsample": results["protocol"].get("upsample", "bilinear"),
            "activations": kind,
        },
        "environment": {"broden_version": __version__, "torch_version": torch.__version__,
                        "python_version": platform.python_version(), "device": str(settings.device)},
        "timings": timings,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "layers": out_layers,
    }
