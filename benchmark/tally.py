"""Network Dissection counts per (unit, label): intersection, truth and the category-gated activation.

A :class:`Tally` accumulates, over batches of images, the integer counts from which :mod:`benchmark.scoring` computes
each unit's IoU with each label. Counting a batch (:class:`BatchCounter`, the tally's set-up without its counts)
and adding its :class:`BatchCounts` are separate steps, so batches can be counted in other processes (the scorer's
DataLoader workers) and added here. Everything runs as batched tensor operations on the tally's device; there is no
Python loop over units, labels or pixels. How (each step measured, see ``bench/README.md``):

* the pixels of each image are grouped by the tuple of labels they carry, one per layer
  (:class:`benchmark.activations.PixelLabels`, computed in the DataLoader workers): a few dozen tuples per image
  stand for its 12,544 pixels;
* the (image, unit) maps whose maximum reaches the threshold are thresholded cell by cell, column segment by
  column segment, without upsampling whole maps, and the tuples under their active pixels are counted per
  (image, unit) (:class:`benchmark.upsample.ActiveKeys`: on the CPU one compiled loop, elsewhere
  :func:`benchmark.upsample.active_columns` and one ``bincount`` per chunk of pairs);
* only the (pair, tuple) counts that are not zero are expanded into (unit, label) counts, a tuple's count going
  to every label it carries (once per layer): the per-pixel work never touches the label layers;
* truth, the image-level labels and the category gate are small tensor operations (on the CPU in compiled runs,
  with the (unit, label) hits, one compiled loop: :func:`benchmark.kernels.add_batch_counts`).

Work is chunked by (image, unit) pairs so that a chunk's arrays stay under ``chunk_elements`` pixels whatever the
batch size. Every count is an integer sum, so the order of the work never changes a result.

Definitions (``compat="netdissect"``, the original paper's code, NetDissect ``makeresult.py``):

* A unit's map is upsampled to the segmentation size (``upsample``, default bilinear) and is **active** where it is
  strictly above the unit's threshold. A map whose raw maximum is not above the threshold has no active pixels
  (bilinear upsampling cannot exceed the maximum, so this only fixes float-rounding ties, as the originals do).
* ``intersection[u, l]``: active pixels of ``u`` that carry label ``l``, summed over all label-map layers (a pixel
  carrying ``l`` in two layers counts twice, as in both originals); for an image-level label (scene, texture) the
  whole image is labeled, so it adds all of the unit's active pixels in that image.
* ``truth[l]``: pixels carrying ``l``, summed over layers; an image-level label adds ``sh * sw`` per image.
* ``activation_by_category[u, c]``: active pixels of ``u`` in the images that have some label whose primary
  category is ``c`` (pixel or image-level, anywhere in the image). This is the IoU's activation term for the labels
  of ``c``. Label 0 (unlabeled; also Broden's marker for a filtered-out image-level label) never counts.
* ``active[u]``: all active pixels of ``u`` (not used by the IoU; reported for reference).

**Folds and splits.** Each image also belongs to one of ``folds`` image folds (``TallyInput.folds``, assigned by
:func:`benchmark.bootstrap.fold_of` from the image id, so independent of order and of how the images are spread
over processes) and to the ``train`` split or not (``TallyInput.train``). Beside the totals the tally keeps the
same counts per fold (``fold_intersection (G, U, NL)``, ``fold_truth (G, NL)``, ``fold_activation_by_category
(G, U, C)``, ``fold_images (G,)``: they sum exactly to the totals) and over the train images
(``train_intersection``, ``train_truth``, ``train_activation_by_category``, ``train_images``): the first feed the
bootstrap intervals (:mod:`benchmark.bootstrap`), the second the held-out protocol (label chosen on train, IoU on
the rest). All are plain int64 tensors, merged by addition. Memory is ``(G + 2) x U x NL`` int64 values, whatever
the number of images.

``compat="netdissect-lite"`` reproduces NetDissect-Lite (``feature_operation.py``) where it differs:

* **Narrow gate**: an image's active pixels of ``u`` count for category ``c`` only when they overlap a pixel label
  whose primary category is ``c``, or when the image has an image-level label of primary category ``c``.
* **Image-level label 0**: a ``0`` in an image-level list adds ``sh * sw`` to ``truth[0]``, the unit's active pixels
  to ``intersection[u, 0]``, and credits the gate of label 0's (fallback) category.
* **Fallback category**: labels outside the selected categories, and label 0, get the last category of the
  *dataset's own* category order (``category.csv``; texture for Broden) among the selected ones as primary
  category, so they are scored there (label 0 under the name ``''``). ``categories`` may be in display order, so
  the caller names that category (``fallback_category``); it defaults to the last of ``categories``.

Lite's stale ``tally_cat`` (reused from the previous unit when an image has no pixel layers) is a crash/bug rather
than a rule, and is not reproduced: such images gate only their image-level categories.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch

from benchmark import compiled as compiled_loops
from benchmark.activations import PixelLabels
from benchmark.protocol import COMPAT_MODES, DEFAULT_COMPAT
from benchmark.quantile import NOT_FINITE
from benchmark.upsample import ActiveColumns, ActiveKeys, active_columns, check_mode
from broden.errors import BrodenError

#: Image folds kept by default (see :mod:`benchmark.bootstrap`).
DEFAULT_FOLDS = 16
#: The tally's integer count tensors, in state_dict order: all are merged by addition.
COUNT_TENSORS = (
    "intersection", "truth", "activation_by_category", "active",
    "fold_intersection", "fold_truth", "fold_activation_by_category", "fold_images",
    "train_intersection", "train_truth", "train_activation_by_category", "train_images",
)

#: Default budget, in elements, for a chunk of (image, unit) pairs: pairs x what counting a pair holds stays under it
#: (:attr:`benchmark.upsample.ActiveKeys.pair_elements`: with tensor operations its sh x sw candidate pixels, in the
#: compiled loop its map and counts). It bounds memory whatever the batch size, and is small enough that a chunk's
#: candidate pixels stay in the CPU's caches: the tensor operations are bound by memory traffic (MobileNetV2
#: ``features.18`` on 2,000 images, one thread: 5.0 CPU s at 2^24, 4.0 s at 2^22, 3.9 s at 2^21, 4.1 s at 2^20).
DEFAULT_CHUNK_ELEMENTS = 2**21


def pair_chunks(
    acts: torch.Tensor, thresholds: torch.Tensor, pair_elements: int, chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    parts: int = 1,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The (image, unit) pairs of ``acts`` ``(B, U, h, w)`` whose raw maximum is above their unit's threshold (only
    they can have active pixels: bilinear upsampling never exceeds the maximum), as ``(pb, pu)`` index chunks of at
    most ``chunk_elements // pair_elements`` pairs (``pair_elements``: what counting a pair holds, e.g. its
    ``sh * sw`` candidate pixels), and at least ``parts`` chunks where there are that many pairs."""
    pair_b, pair_u = (acts.amax(dim=(2, 3)) > thresholds).nonzero(as_tuple=True)
    step = max(1, min(int(chunk_elements) // int(pair_elements), -(-pair_b.numel() // max(1, int(parts)))))
    return [(pair_b[i : i + step], pair_u[i : i + step]) for i in range(0, pair_b.numel(), step)]


def active_column_chunks(
    acts: torch.Tensor,
    thresholds: torch.Tensor,
    size: tuple[int, int],
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, ActiveColumns]]:
    """The active pixels of ``acts`` ``(B, U, h, w)`` upsampled to ``size`` against per-unit ``thresholds`` ``(U,)``.

    Yields, per chunk of :func:`pair_chunks`, ``(pb, pu, columns)``: the chunk's image and unit indices ``(P,)``
    and its active pixels as :func:`benchmark.upsample.active_columns` gives them (``columns.maps`` indexes the
    chunk's pairs).
    """
    for pb, pu in pair_chunks(acts, thresholds, size[0] * size[1], chunk_elements):
        yield pb, pu, active_columns(acts[pb, pu], thresholds[pu], size)


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per size for the life of the process (a score run tallies hundreds of batches)."""
    if threads not in _POOLS:
        _POOLS[threads] = ThreadPoolExecutor(threads, thread_name_prefix="tally")
    return _POOLS[threads]


@dataclass
class TallyInput:
    """One batch of images, already decoded."""

    acts: torch.Tensor  # (B, U, h, w) float activations of one layer
    label_maps: torch.Tensor  # (B, L, sh, sw) integer global label numbers, 0 = none (pad with zero layers)
    image_labels: Sequence[Sequence[int]]  # per image: its image-level label numbers (scene, texture)
    folds: torch.Tensor | None = None  # (B,) int fold of each image in 0 .. folds - 1; None: all in fold 0
    train: torch.Tensor | None = None  # (B,) bool, the image is in the train split; None: none is
    pixel_labels: PixelLabels | None = None  # label_maps grouped by label tuple (the batch's DataLoader worker
    # computes it); None: grouped here


@dataclass
class BatchCounts:
    """One batch's counts: what :meth:`BatchCounter.count` computes and :meth:`Tally.add_counts` adds. A few
    small tensors and no per-pixel data, so a DataLoader worker that counts a batch sends back little; they are
    pickled by value (:meth:`__reduce__`)."""

    fold: torch.Tensor  # (B,) int64: each image's fold
    train: torch.Tensor  # (B,) bool: the image is in the train split
    truth: torch.Tensor  # (B, NL) int64: pixels per (image, label), over layers, image-level labels included
    active: torch.Tensor  # (B, U) int64: active pixels per (image, unit)
    cell: torch.Tensor  # (E,) int64: unit * NL + label, per (image, unit, pixel label) that overlap ...
    hits: torch.Tensor  # (E,) int64: ... their active pixels carrying the label ...
    image: torch.Tensor  # (E,) int64: ... and the image
    entry_image: torch.Tensor  # (M,) int64: the image-level label entries: image ...
    entry_label: torch.Tensor  # (M,) int64: ... and label
    gate: torch.Tensor  # (B, 1 or U, C) bool: which categories' activation terms an image's active pixels count in

    def to(self, device: torch.device) -> BatchCounts:
        return BatchCounts(*(getattr(self, f.name).to(device) for f in fields(self)))

    def __reduce__(self) -> tuple:
        """Pickled as numpy arrays, by value: torch sends a tensor between processes as a shared-memory segment,
        one socket connection and file descriptor each, which cost the receiving process more than copying these
        1.6 MB (MobileNetV2 ``features.18``, a batch of 32: 9 ms against 3 ms, mostly reading the pipe)."""
        return _batch_counts, tuple(getattr(self, f.name).cpu().numpy() for f in fields(self))


def _batch_counts(*arrays: np.ndarray) -> BatchCounts:
    """:class:`BatchCounts` from the arrays of its pickle."""
    return BatchCounts(*(torch.from_numpy(a) for a in arrays))


class BatchCounter:
    """Counts batches for a :class:`Tally` with the same set-up (:attr:`Tally.counter`): everything of the
    tally but its counts. It keeps no state between batches, so batches can be counted anywhere (threads,
    DataLoader workers) and their :class:`BatchCounts` added in any order."""

    def __init__(self, num_units: int, num_labels: int, label_cat: torch.Tensor, num_categories: int, *,
                 compat: str, device: torch.device, chunk_elements: int, folds: int, compiled: bool) -> None:
        self.num_units, self.num_labels, self.num_categories = num_units, num_labels, num_categories
        self.label_cat = label_cat  # (NL,) primary category index, -1 = not scored (the tally's)
        self.compat, self.device, self.chunk_elements, self.folds = compat, device, chunk_elements, folds
        self.compiled = compiled  # on the CPU, count active pixels with the compiled loop (ActiveKeys)

    def count(self, batch: TallyInput, thresholds: torch.Tensor, threads: int = 1) -> BatchCounts:
        """Count one batch of images against per-unit ``thresholds`` (``(U,)``).

        ``threads`` > 1: chunks of pairs are counted by that many Python threads side by side (torch releases the
        interpreter lock inside its operations). Run them with one torch intra-op thread each
        (:meth:`benchmark.runtime.ThreadBudget.tallying`): chunks are coarse enough that a thread descheduled on
        a loaded machine delays only its own chunk, where intra-op threads wait for each other at every small
        operation.

        Float16 activations on the CPU, with the compiled loops: counted in one compiled pass as they are
        (:meth:`_count_fused`, ``threads`` ranges of images side by side), refused when not finite; otherwise
        converted to float32 and counted chunk by chunk (:meth:`_count_chunks`). Both give the same counts.
        """
        acts, maps, fold, train = self._check(batch, thresholds)
        thr = thresholds.to(self.device, torch.float32)
        nb, nu = acts.shape[:2]
        nl = self.num_labels
        sh, sw = maps.shape[2:]
        num_cats = self.num_categories
        pixels = PixelLabels.of(maps) if batch.pixel_labels is None else batch.pixel_labels.to(self.device)
        if pixels.table.numel() and not 0 <= int(pixels.table.min()) <= int(pixels.table.max()) < nl:
            raise BrodenError(f"label maps hold label numbers outside 0..{nl - 1}")
        width = pixels.counts.shape[1]

        img_b, img_l = self._image_label_entries(batch.image_labels)
        # Pixels per (image, label), over all layers: each tuple's pixels, once per layer that carries the label.
        per_image = torch.zeros(nb * nl, dtype=torch.int64, device=self.device)
        tuple_image = torch.arange(nb, device=self.device)[:, None, None] * nl
        per_image.index_add_(0, (tuple_image + pixels.table).flatten(),
                             pixels.counts[:, :, None].expand(pixels.table.shape).flatten())
        per_image = per_image.view(nb, nl)
        per_image[:, 0] = 0  # label 0 (unlabeled) has no truth
        image_truth = torch.zeros_like(per_image).view(-1)
        image_truth.index_add_(0, img_b * nl + img_l, torch.full_like(img_l, sh * sw))

        # Image-level categories per image (through the labels' primary categories; -1 goes to column 0, dropped).
        image_cats = torch.zeros(nb, num_cats + 1, dtype=torch.bool, device=self.device)
        image_cats[img_b, self.label_cat[img_l] + 1] = True

        counts = torch.zeros(nb, nu, dtype=torch.int64, device=self.device)  # active pixels per (image, unit)
        overlap = torch.zeros(nb, nu, num_cats + 1, dtype=torch.bool, device=self.device)  # lite gate
        cat_column = self.label_cat + 1  # column of each pixel label's category; 0 = none (pixel label 0 too)
        cat_column[0] = 0
        tuples = ActiveKeys(pixels.of_pixel.view(nb, sh * sw), width, acts.shape[2:], (sh, sw),
                            compiled=self.compiled)
        fused = compiled_loops.float16_maps(tuples.kernel is not None, acts)
        if fused is not None:
            cell, hits, image = self._count_fused(fused, thr, tuples, pixels.table, counts, threads)
            if self.compat == "netdissect-lite":
                overlap[image, cell // nl, cat_column[cell % nl]] = True
            cells, hits, images = [cell], [hits], [image]
        else:
            cells, hits, images = self._count_chunks(acts.to(torch.float32), thr, tuples, pixels, counts, overlap,
                                                     cat_column, threads)
        if self.compat == "netdissect":
            pixel_cats = torch.zeros_like(image_cats)
            present_b, present_l = per_image[:, 1:].nonzero(as_tuple=True)
            pixel_cats[present_b, self.label_cat[present_l + 1] + 1] = True
            gate = (image_cats | pixel_cats)[:, None, 1:]  # (B, 1, C): any label of c in the image
        else:
            gate = (overlap | image_cats[:, None, :])[:, :, 1:]  # (B, U, C)

        def joined(parts: list[torch.Tensor]) -> torch.Tensor:
            return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.int64, device=self.device)

        return BatchCounts(fold, train, per_image + image_truth.view(nb, nl), counts, joined(cells), joined(hits),
                           joined(images), img_b, img_l, gate)

    def _count_fused(self, fused: tuple[Any, np.ndarray], thr: torch.Tensor, tuples: ActiveKeys,
                     table: torch.Tensor, counts: torch.Tensor, threads: int) -> tuple[torch.Tensor, ...]:
        """The per-pair counting of float16 activations on the CPU in one compiled pass per image range
        (:func:`benchmark.kernels.count_batch`; ``threads`` ranges side by side). It reads the activations as they
        are, where :meth:`_count_chunks` converts them, finds the hot pairs, gathers their maps and builds the
        entries with tensor operations; the counts, the entries and their order are the same. Fills ``counts``;
        returns the entries ``(cell, hits, image)``."""
        loops, bits = fused
        nb = bits.shape[0]  # at least one image (float16_maps)
        thresholds, tuple_labels, active = thr.contiguous().numpy(), table.contiguous().numpy(), counts.numpy()

        def run(b0: int, b1: int) -> tuple[np.ndarray, ...]:
            cell, hits, image = loops.count_batch(
                bits[b0:b1], tuples.map_size[1], loops.HALF_VALUES, thresholds, tuples.keys[b0:b1],
                tuple_labels[b0:b1], self.num_labels, *tuples.pieces, tuples.size[1], active[b0:b1])
            if active[b0, 0] < 0:
                raise BrodenError(NOT_FINITE)
            return cell, hits, image + b0

        step = -(-nb // max(1, threads))
        ranges = [(b, min(b + step, nb)) for b in range(0, nb, step)]
        parts = list(_pool(threads).map(lambda r: run(*r), ranges)) if len(ranges) > 1 else [run(0, nb)]
        return tuple(torch.from_numpy(np.concatenate([p[i] for p in parts])) for i in range(3))

    def _count_chunks(self, acts: torch.Tensor, thr: torch.Tensor, tuples: ActiveKeys, pixels: PixelLabels,
                      counts: torch.Tensor, overlap: torch.Tensor, cat_column: torch.Tensor,
                      threads: int) -> tuple[list[torch.Tensor], ...]:
        """The per-pair counting with :meth:`ActiveKeys.count <benchmark.upsample.ActiveKeys.count>`, chunk by chunk
        of hot pairs (``threads`` chunks side by side); fills ``counts`` (and ``overlap`` in netdissect-lite compat)
        and returns the entries' parts ``(cells, hits, images)``."""
        nl = self.num_labels

        def count(chunk: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, ...]:
            """One chunk of pairs: its active pixels per pair, and per (pair, tuple, layer) with a label and
            active pixels the (unit, label) cell, the pixels and the image (only tensors of its own: threads run
            this side by side)."""
            pb, pu = chunk
            per_tuple = tuples.count(acts[pb, pu], thr[pu], pb)  # active pixels per (pair, tuple of its image)
            pair, t = per_tuple.nonzero(as_tuple=True)
            labels = pixels.table[pb[pair], t]  # (E, L): the labels of each (pair, tuple) ...
            carried = labels > 0  # label 0 never counts
            hits = per_tuple[pair, t][:, None].expand(labels.shape)[carried]  # ... and its active pixels
            cell = ((pu[pair] * nl)[:, None] + labels)[carried]
            image = pb[pair][:, None].expand(labels.shape)
            lite = ((image, pu[pair][:, None].expand(labels.shape), cat_column[labels])
                    if self.compat == "netdissect-lite" else None)
            return pb, pu, per_tuple.sum(dim=1), cell, hits, image[carried], lite

        chunks = pair_chunks(acts, thr, tuples.pair_elements, self.chunk_elements, threads)
        pool = _pool(threads) if threads > 1 and len(chunks) > 1 else None
        cells, hits, images = [], [], []
        for pb, pu, active, cell, hit, image, lite in (pool.map(count, chunks) if pool else map(count, chunks)):
            counts[pb, pu] = active
            cells.append(cell)
            hits.append(hit)
            images.append(image)
            if self.compat == "netdissect-lite":
                overlap[lite] = True
        return cells, hits, images

    def _check(self, batch: TallyInput, thresholds: torch.Tensor) -> tuple[torch.Tensor, ...]:
        acts, maps = batch.acts, batch.label_maps
        if acts.dim() != 4 or maps.dim() != 4 or acts.shape[0] != maps.shape[0]:
            raise BrodenError(
                f"tally expects acts (B, U, h, w) and label_maps (B, L, sh, sw) for the same images; "
                f"got {tuple(acts.shape)} and {tuple(maps.shape)}"
            )
        if acts.shape[1] != self.num_units or thresholds.shape != (self.num_units,):
            raise BrodenError(f"tally was built for {self.num_units} units; got activations {tuple(acts.shape)} "
                              f"and thresholds {tuple(thresholds.shape)}")
        if len(batch.image_labels) != acts.shape[0]:
            raise BrodenError("tally batch: image_labels must hold one list per image")
        maps = maps.to(self.device)  # integers; only grouped (PixelLabels.of) when the batch brings no grouping
        nb = acts.shape[0]
        fold = torch.zeros(nb, dtype=torch.int64) if batch.folds is None else batch.folds.to(torch.int64)
        train = torch.zeros(nb, dtype=torch.bool) if batch.train is None else batch.train.to(torch.bool)
        if fold.shape != (nb,) or train.shape != (nb,):
            raise BrodenError("tally batch: folds and train must hold one value per image")
        if nb and not 0 <= int(fold.min()) <= int(fold.max()) < self.folds:
            raise BrodenError(f"tally batch: folds must lie in 0..{self.folds - 1}")
        return acts.to(self.device), maps, fold.to(self.device), train.to(self.device)

    def _image_label_entries(
        self, image_labels: Sequence[Sequence[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image-level labels as parallel (image index, label) tensors; label 0 dropped except in lite compat."""
        keep_zero = self.compat == "netdissect-lite"
        pairs = [(b, lab) for b, entries in enumerate(image_labels) for lab in entries if lab > 0 or keep_zero]
        if any(not 0 <= lab < self.num_labels for _, lab in pairs):
            raise BrodenError(f"image-level labels hold label numbers outside 0..{self.num_labels - 1}")
        t = torch.tensor(pairs, dtype=torch.int64, device=self.device).reshape(-1, 2)
        return t[:, 0], t[:, 1]


class Tally:
    """Integer counts for IoU scoring of ``num_units`` units against labels ``0 .. num_labels - 1``.

    ``label_category`` maps each scored label to its primary category among ``categories``
    (``LabelTable.primary_categories(categories)``); labels absent from it are counted but never scored (except in
    ``netdissect-lite`` compat, see the module docstring). Counts are int64: ``intersection (U, NL)``,
    ``truth (NL,)``, ``activation_by_category (U, C)``, ``active (U,)`` and ``images`` (0-d), and the same per fold
    and over the train split (module docstring). Tallies of disjoint sets of images add up: :meth:`counts` is every
    count, which :meth:`merge` (and a distributed run's ``all_reduce``) sums.

    ``compiled`` (a setting of the process, not of the counts; it may be changed between batches): on the CPU,
    count active pixels with the compiled loop (:class:`benchmark.upsample.ActiveKeys`) and add the counts with
    another (:meth:`add_counts`); False does both with tensor operations, which need no loading (the scorer
    chooses by the run's size, ``COMPILED_MIN_MAPS``).
    """

    def __init__(
        self,
        num_units: int,
        num_labels: int,
        categories: Sequence[str],
        label_category: Mapping[int, str],
        *,
        compat: str = DEFAULT_COMPAT,
        upsample: str = "bilinear",
        device: str | torch.device = "cpu",
        chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
        fallback_category: str | None = None,
        folds: int = DEFAULT_FOLDS,
        compiled: bool = True,
    ) -> None:
        if compat not in COMPAT_MODES:
            raise BrodenError(f"unknown compat mode {compat!r}; choose one of {', '.join(COMPAT_MODES)}")
        if not categories or num_units < 1 or num_labels < 1 or folds < 1:
            raise BrodenError("a tally needs at least one category, one unit, one label and one fold")
        self.num_units, self.num_labels = int(num_units), int(num_labels)
        self.categories = list(categories)
        self.compat = compat
        self.upsample = check_mode(upsample)
        self.device = torch.device(device)
        self.chunk_elements = int(chunk_elements)
        self.folds = int(folds)
        self.compiled = bool(compiled)
        index = {c: i for i, c in enumerate(self.categories)}
        label_cat = torch.full((self.num_labels,), -1, dtype=torch.int64)
        for label, cat in label_category.items():
            if cat not in index:
                raise BrodenError(f"label {label} has category {cat!r}, which is not among {self.categories}")
            if 0 < label < self.num_labels:
                label_cat[label] = index[cat]
        if compat == "netdissect-lite":
            fallback = self.categories[-1] if fallback_category is None else fallback_category
            if fallback not in index:
                raise BrodenError(f"fallback category {fallback!r} is not among {self.categories}")
            label_cat[label_cat < 0] = index[fallback]
        self.label_cat = label_cat.to(self.device)  # (NL,) primary category index, -1 = not scored
        self.intersection = torch.zeros(self.num_units, self.num_labels, dtype=torch.int64, device=self.device)
        self.truth = torch.zeros(self.num_labels, dtype=torch.int64, device=self.device)
        self.activation_by_category = torch.zeros(
            self.num_units, len(self.categories), dtype=torch.int64, device=self.device
        )
        self.active = torch.zeros(self.num_units, dtype=torch.int64, device=self.device)
        self.images = torch.zeros((), dtype=torch.int64, device=self.device)
        g, u, nl, nc = self.folds, self.num_units, self.num_labels, len(self.categories)
        shapes = {
            "fold_intersection": (g, u, nl), "fold_truth": (g, nl), "fold_activation_by_category": (g, u, nc),
            "fold_images": (g,), "train_intersection": (u, nl), "train_truth": (nl,),
            "train_activation_by_category": (u, nc), "train_images": (),
        }
        for name, shape in shapes.items():
            setattr(self, name, torch.zeros(shape, dtype=torch.int64, device=self.device))

    # -- accumulation ------------------------------------------------------------------------------------------------
    @property
    def counter(self) -> BatchCounter:
        """What counts a batch for this tally (its set-up, none of its counts): small, so DataLoader workers can
        count batches and send back only their :class:`BatchCounts`."""
        return BatchCounter(self.num_units, self.num_labels, self.label_cat, len(self.categories), compat=self.compat,
                            device=self.device, chunk_elements=self.chunk_elements, folds=self.folds,
                            compiled=self.compiled)

    def add(self, batch: TallyInput, thresholds: torch.Tensor, threads: int = 1) -> None:
        """Count one batch of images against per-unit ``thresholds`` (``(U,)``): :meth:`BatchCounter.count`, then
        :meth:`add_counts`."""
        self.add_counts(self.counter.count(batch, thresholds, threads))

    def add_counts(self, counts: BatchCounts) -> None:
        """Add one batch's counts (from :meth:`BatchCounter.count` with this tally's :attr:`counter`); ``compiled``
        on the CPU, by one call of :func:`benchmark.kernels.add_batch_counts`, which checks them first: counts naming
        cells, images, folds or labels beyond this tally's are refused before anything is added."""
        nu, nl = self.num_units, self.num_labels
        c = counts.to(self.device)
        fold, train = c.fold, c.train
        kernels = compiled_loops.kernels() if self.compiled and self.device.type == "cpu" else None
        if kernels is not None:
            if kernels.add_batch_counts(
                    *(self._flat(name) for name in ("intersection", "truth", "activation_by_category")
                      for name in (name, f"fold_{name}", f"train_{name}")),
                    *(self._flat(name) for name in ("active", "images", "fold_images", "train_images")),
                    *(np.ascontiguousarray(t.numpy()) for t in (c.cell, c.hits, c.image, fold, train, c.truth,
                                                                 c.active, c.entry_image, c.entry_label, c.gate))) < 0:
                raise BrodenError("a batch's counts name units, labels, images or folds beyond the tally's: they were "
                                  "counted for another tally; count with this tally's counter")
            return
        self.intersection.view(-1).index_add_(0, c.cell, c.hits)
        self.fold_intersection.view(-1).index_add_(0, fold[c.image] * (nu * nl) + c.cell, c.hits)
        in_train = train[c.image]
        self.train_intersection.view(-1).index_add_(0, c.cell[in_train], c.hits[in_train])
        self._add_per_image(self.truth, self.fold_truth, self.train_truth, c.truth, fold, train)
        self.active += c.active.sum(dim=0)
        # Image-level labels: all of the unit's active pixels in the image, as (image entry, unit) -> (unit, label).
        img_b, img_l = c.entry_image, c.entry_label
        entry_counts = c.active[img_b]  # (E, U)
        self.intersection.index_add_(1, img_l, entry_counts.t().contiguous())
        flat = (torch.arange(nu, device=self.device) * nl)[None, :] + img_l[:, None]  # (E, U) into (U, NL)
        self.fold_intersection.view(-1).index_add_(
            0, (flat + (fold[img_b] * (nu * nl))[:, None]).flatten(), entry_counts.flatten())
        in_train = train[img_b]
        self.train_intersection.view(-1).index_add_(0, flat[in_train].flatten(), entry_counts[in_train].flatten())
        self._add_per_image(self.activation_by_category, self.fold_activation_by_category,
                            self.train_activation_by_category, c.active[:, :, None] * c.gate, fold, train)
        self.images += fold.shape[0]
        self.fold_images += torch.bincount(fold, minlength=self.folds)
        self.train_images += train.sum()

    def _flat(self, name: str) -> np.ndarray:
        """Count ``name`` as the numpy array the compiled adding writes in place: ``(F, size)`` by fold, else flat."""
        t = getattr(self, name)
        return (t.view(self.folds, -1) if name.startswith("fold_") and t.dim() > 1 else t.view(-1)).numpy()

    @staticmethod
    def _add_per_image(total: torch.Tensor, by_fold: torch.Tensor, by_train: torch.Tensor, per_image: torch.Tensor,
                       fold: torch.Tensor, train: torch.Tensor) -> None:
        """Add per-image counts ``(B, ...)`` to a total, its per-fold counts and its train-split counts."""
        total += per_image.sum(dim=0)
        by_fold.index_add_(0, fold, per_image)
        by_train += per_image[train].sum(dim=0)

    def counts(self) -> dict[str, torch.Tensor]:
        """Every count of the tally by name (:data:`COUNT_TENSORS` and ``images``): what merging adds up."""
        return {name: getattr(self, name) for name in (*COUNT_TENSORS, "images")}

    def merge(self, other: "Tally") -> None:
        """Add the counts of ``other`` (a tally of other images with the same set-up)."""
        same = (other.num_units, other.num_labels, other.categories, other.compat, other.upsample, other.folds) == (
            self.num_units, self.num_labels, self.categories, self.compat, self.upsample, self.folds,
        )
        if not same or not torch.equal(other.label_cat.to(self.device), self.label_cat):
            raise BrodenError("cannot merge tallies with different units, labels, categories, folds or options")
        theirs = other.counts()
        for name, mine in self.counts().items():
            mine += theirs[name].to(self.device)

    # -- persistence -------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Counts and set-up as CPU tensors and plain values (``torch.save``-able)."""
        return {
            "num_units": self.num_units,
            "num_labels": self.num_labels,
            "categories": list(self.categories),
            "compat": self.compat,
            "upsample": self.upsample,
            "folds": self.folds,
            "label_cat": self.label_cat.cpu(),
            **{name: getattr(self, name).cpu() for name in COUNT_TENSORS},
            "images": int(self.images),
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: str | torch.device = "cpu") -> Tally:
        new = cls(
            state["num_units"], state["num_labels"], state["categories"], {},
            compat=state["compat"], upsample=state["upsample"], device=device, folds=state["folds"],
        )
        new.label_cat = state["label_cat"].to(new.device).clone()  # copies: the state may live on
        for name in COUNT_TENSORS:
            setattr(new, name, state[name].to(new.device).clone())
        new.images = torch.tensor(int(state["images"]), dtype=torch.int64, device=new.device)
        return new
