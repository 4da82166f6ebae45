"""The tally's per-pixel loops compiled for the CPU (numba): bilinear upsampling, thresholding and counting by key, in
one pass over the candidate pixels; filling label maps from the masks' RLE strings; grouping a batch's pixels by
label tuple; adding a batch's counts to the tally's; and, in pass 1, keeping each unit's candidates for its
threshold and its top images.

:func:`count_active_keys` is the arithmetic of :func:`benchmark.upsample.active_columns` (the same float32
operations in the same order, so the same ``above`` bit for bit) with the counting of
:meth:`benchmark.upsample.ActiveKeys.count` fused in: no per-pixel array is ever written, which is what the tensor
version spends most of its time on (MobileNetV2 ``features.18`` on 2,000 images, one thread: 0.43 CPU s against
2.8 for ``active_columns`` with its keys and ``bincount``; ``bench/README.md``). The tensor version stays the one used
on other devices and for small runs; ``tests/benchmark/test_tally.py`` holds the two equal. :func:`count_batch` is
the same counting for a whole batch of float16 activations read as they are (the scorer's pass 2): it finds the
pairs whose peak is above the threshold and writes the tally's entries itself, where the chunked path converts the
batch to float32, gathers the hot maps and builds the entries with tensor operations (pass 2 of the 2,000-image
set in one process, one thread: 1.79-1.84 s against 1.87-1.99 s, alternating runs; the same counts and entries in
the same order).

:func:`fill_label_maps` decodes a batch's masks straight into its stacked label maps
(:class:`benchmark.activations.RowBatches` where the run counts with the compiled loop): the same maps as
pycocotools' decoding and :func:`broden.masks.decode_label_maps`, without a 0/1 array per mask
(``tests/benchmark/test_activations.py`` holds the two equal). :func:`group_pixels` is
:meth:`benchmark.activations.PixelLabels.of` (2.5-3 ms a batch of 32 at 112 x 112 against 6.4-7.7) and
:func:`add_batch_counts` :meth:`benchmark.tally.Tally.add_counts`; ``tests/benchmark/test_tally.py`` holds each
equal to its tensor version.

:func:`keep_above` and :func:`keep_top_images` are pass 1's per-batch work on the float16 activations (read as their
bits: numba has no float16 on the CPU) for :meth:`TopQuantile.add <benchmark.quantile.TopQuantile.add>` and
:meth:`TopImages.add <benchmark.topk.TopImages.add>`: one pass over a batch each, where the tensor operations
transpose, compare, count, scatter and sort it (MobileNetV2 ``features.18``, 2,000 images, one thread: 0.84-0.96 s of
thresholds and top images against 2.0-2.1 s, the merges of the tops, still ``torch.topk``, most of what is left;
``tests/benchmark/test_quantile.py`` and ``test_topk.py``).

Importing this module (through :func:`benchmark.compiled.kernels`) compiles the loops for their one signature each
(11.4 s for six of them on a loaded 2-core machine, numba's import included), or loads them from numba's cache
(``__pycache__`` beside this file, else numba's per-user cache): 0.45 s for the seven (``bench/tally_bench.py``;
0.74-0.85 s for six on a machine running 2x slower), once per process. A process that forks DataLoader workers
after importing it passes the compiled loops on to them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_SIGNATURE = (
    "void(float32[:, :, ::1], float32[::1], int64[::1], int32[:, ::1],"  # maps, thresholds, images, keys
    " int64[::1], int64[::1], float32[:, ::1], int64[:, ::1], boolean[:, ::1],"  # row pieces
    " int64[::1], int64[::1], float32[:, ::1], int64[:, ::1], boolean[:, ::1],"  # column pieces
    " int64, int64[:, ::1])"  # output width (sw), counts
)


@njit(inline="always", boundscheck=False)
def _count_map(m, t, key, row_base, row_second, row_weight, row_index, row_valid,
               col_base, col_second, col_weight, col_index, col_valid, width, count):
    """:func:`count_active_keys` of one map ``m`` ``(h, w)`` float32 against threshold ``t``: ``count[k]`` gains
    its active pixels whose key (``key[y * width + x]``) is ``k``."""
    one = np.float32(1.0)
    margin = np.float32(2.0**-19)
    for r in range(row_base.shape[0]):
        r0, r1 = row_base[r], row_second[r]
        for c in range(col_base.shape[0]):
            c0, c1 = col_base[c], col_second[c]
            a, b, d, e = m[r0, c0], m[r0, c1], m[r1, c0], m[r1, c1]
            if not max(max(a, b), max(d, e)) > t:
                continue
            for gx in range(col_weight.shape[1]):
                if not col_valid[c, gx]:
                    continue
                wx = col_weight[c, gx]
                top = a * (one - wx) + b * wx
                bottom = d * (one - wx) + e * wx
                if not max(top, bottom) + (abs(top) + abs(bottom)) * margin > t:
                    continue
                x = col_index[c, gx]
                for gy in range(row_weight.shape[1]):
                    if row_valid[r, gy]:
                        wy = row_weight[r, gy]
                        if top * (one - wy) + bottom * wy > t:
                            count[key[row_index[r, gy] * width + x]] += 1


@njit(_SIGNATURE, cache=True, nogil=True, boundscheck=False)
def count_active_keys(maps, thresholds, images, keys,
                      row_base, row_second, row_weight, row_index, row_valid,
                      col_base, col_second, col_weight, col_index, col_valid,
                      width, out):
    """Add to ``out[p, k]`` the number of active pixels of map ``p`` whose key (``keys[images[p], y * width + x]``)
    is ``k``.

    ``maps`` ``(P, h, w)`` are upsampled to ``(len rows, width)`` bilinearly (torch's ``align_corners=False``) and
    a pixel is active where it is strictly above ``thresholds[p]``. The upsampling is given as its row and column
    pieces (:class:`benchmark.upsample._Pieces`: each piece's two input rows, the weight of the second and the
    output positions, padding marked not ``valid``). As in ``active_columns``: a cell whose corner maximum is not
    above the threshold is skipped; so is an output column of a cell whose two x-interpolated values leave no pixel
    above it (their larger, plus a margin of 2^-19 of their magnitudes, far above float32's rounding, is not above
    it); every other pixel is interpolated, ``top = left * (1 - wx) + right * wx`` then
    ``top * (1 - wy) + bottom * wy``, in float32.
    """
    for p in range(maps.shape[0]):
        _count_map(maps[p], thresholds[p], keys[images[p]], row_base, row_second, row_weight, row_index, row_valid,
                   col_base, col_second, col_weight, col_index, col_valid, width, out[p])


@njit("void(uint8[::1], int64[::1], int64[::1], int64[::1], int32[::1], int64, int64, int32[:, :, ::1])", cache=True,
      nogil=True, boundscheck=False)
def fill_label_maps(chars, ends, images, slots, labels, height, width, out):
    """Add each mask's label to the pixels it covers: ``out[images[i], slots[i], y * width + x] += labels[i]``.

    Mask ``i`` is the COCO compressed RLE string ``chars[ends[i - 1]:ends[i]]`` (``ends[-1]`` = 0): runs of 0s and
    1s alternating, 0s first, over the ``height * width`` pixels in column-major order; each run length is 5-bit
    groups with a continuation bit (0x20) and a sign bit (0x10) on the last, offset by 48, and from the fourth run
    on the difference to the run two before (pycocotools' ``rleFrString``). Masks of one layer are disjoint, so
    adding their labels is each layer's label map, as :func:`broden.masks.decode_label_maps` makes it. Runs that
    would reach outside the ``height * width`` pixels (a malformed string) are cut there: nothing is written
    outside a map.
    """
    pixels = height * width
    start = 0
    for i in range(ends.shape[0]):
        stop = ends[i]
        target = out[images[i], slots[i]]
        label = labels[i]
        pos = 0
        run = 0
        before = 0  # the run before the last
        last = 0
        p = start
        while p < stop:
            x = 0
            k = 0
            more = True
            while more and p < stop:
                c = np.int64(chars[p]) - 48
                x |= (c & 0x1F) << (5 * k)
                more = (c & 0x20) != 0
                p += 1
                k += 1
                if not more and (c & 0x10) != 0:
                    x |= np.int64(-1) << (5 * k)
            if run > 2:
                x += before
            before, last = last, x
            if run % 2 == 1:
                for q in range(max(pos, 0), min(pos + x, pixels)):
                    target[(q % height) * width + q // height] += label
            pos += x
            run += 1
        start = stop


@njit(inline="always", boundscheck=False)
def _same_labels(m, a, b):
    """Whether pixels ``a`` and ``b`` of ``m`` ``(L, S)`` carry the same label in every layer."""
    for lay in range(m.shape[0]):
        if m[lay, a] != m[lay, b]:
            return False
    return True


@njit("void(int32[:, :, ::1], int32[::1], int64[:, ::1], int64[:, ::1], int64[::1])", cache=True, nogil=True,
      boundscheck=False)
def group_pixels(maps, of_pixel, first, counts, sizes):
    """Group each image's pixels by the labels they carry, layer by layer (:meth:`PixelLabels.of
    <benchmark.activations.PixelLabels.of>`): ``maps`` ``(B, L, S)``; image ``b``'s ``sizes[b]`` distinct label
    tuples in lexicographic order (layer 0 first), ``first[b, t]`` the first pixel carrying tuple ``t`` and
    ``counts[b, t]`` how many do, and ``of_pixel[b * S + s]`` the tuple of pixel ``s``. A pixel with the labels of
    the one before it takes its tuple; any other looks its tuple up in an open-addressing hash table of the image's
    tuples so far (at most ``S``; the table has room for ``2 S``).
    """
    nb, layers, size = maps.shape
    capacity = 1
    while capacity < 2 * size:
        capacity *= 2
    mask = capacity - 1
    slot_of = np.full(capacity, -1, np.int64)  # hash slot -> tuple (in order of first appearance)
    used = np.empty(size, np.int64)  # the slots taken, cleared after each image
    found_first = np.empty(size, np.int64)
    found_count = np.empty(size, np.int64)
    tuple_of = np.empty(size, np.int64)
    order = np.empty(size, np.int64)
    spare = np.empty(size, np.int64)
    rank = np.empty(size, np.int64)
    for b in range(nb):
        m = maps[b]
        found = 0
        for s in range(size):
            if s > 0 and _same_labels(m, s, s - 1):
                tuple_of[s] = tuple_of[s - 1]
                found_count[tuple_of[s]] += 1
                continue
            h = np.uint64(1469598103934665603)
            for lay in range(layers):
                h = (h ^ np.uint64(np.uint32(m[lay, s]))) * np.uint64(1099511628211)
            slot = np.int64(h >> np.uint64(17)) & mask
            while True:
                t = slot_of[slot]
                if t < 0:
                    slot_of[slot] = found
                    used[found] = slot
                    found_first[found] = s
                    found_count[found] = 1
                    tuple_of[s] = found
                    found += 1
                    break
                if _same_labels(m, found_first[t], s):
                    tuple_of[s] = t
                    found_count[t] += 1
                    break
                slot = (slot + 1) & mask
        for t in range(found):
            slot_of[used[t]] = -1
            order[t] = t
        # bottom-up merge sort of the tuples, compared label by label at their first pixels
        src, dst = order, spare
        width = 1
        while width < found:
            for lo in range(0, found, 2 * width):
                mid = min(lo + width, found)
                hi = min(lo + 2 * width, found)
                i, j, k = lo, mid, lo
                while i < mid and j < hi:
                    pi, pj = found_first[src[i]], found_first[src[j]]
                    right_first = False
                    for lay in range(layers):
                        if m[lay, pj] != m[lay, pi]:
                            right_first = m[lay, pj] < m[lay, pi]
                            break
                    if right_first:
                        dst[k] = src[j]
                        j += 1
                    else:
                        dst[k] = src[i]
                        i += 1
                    k += 1
                while i < mid:
                    dst[k] = src[i]
                    i += 1
                    k += 1
                while j < hi:
                    dst[k] = src[j]
                    j += 1
                    k += 1
            src, dst = dst, src
            width *= 2
        for t in range(found):
            rank[src[t]] = t
            first[b, t] = found_first[src[t]]
            counts[b, t] = found_count[src[t]]
        for s in range(size):
            of_pixel[b * size + s] = rank[tuple_of[s]]
        sizes[b] = found


_COUNTS = "int64[::1], int64[:, ::1], int64[::1]"  # a count, by fold, in the train split (flattened)


@njit("int64(" + ", ".join([_COUNTS] * 3) + ", int64[::1], int64[::1], int64[::1], int64[::1], int64[::1],"
      " int64[::1], int64[::1], int64[::1], boolean[::1], int64[:, ::1], int64[:, ::1], int64[::1], int64[::1],"
      " boolean[:, :, ::1])", cache=True, nogil=True, boundscheck=False)
def add_batch_counts(intersection, fold_intersection, train_intersection, truth, fold_truth, train_truth,
                     by_category, fold_by_category, train_by_category, active, images, fold_images, train_images,
                     cell, hits, image, fold, train, image_truth, image_active, entry_image, entry_label, gate):
    """Add a batch's counts to a tally's (:meth:`Tally.add_counts <benchmark.tally.Tally.add_counts>`), each count
    also to its fold's (``fold_*``, ``(F, size)``) and, for an image of the train split, to ``train_*``:

    - ``hits[e]`` to the (unit, label) cell ``cell[e]`` of ``intersection`` for image ``image[e]``;
    - each image's label pixels ``image_truth`` ``(B, NL)`` to ``truth``, its active pixels ``image_active``
      ``(B, U)`` to ``active`` and, for each image-level label entry (``entry_image``, ``entry_label``), to that
      label's cell of every unit;
    - its active pixels to the (unit, category) cells of ``by_category`` where ``gate`` ``(B, 1 or U, C)`` is set;
    - one image to ``images`` (``(1,)``) and its fold's ``fold_images`` (and ``train_images``).

    Returns the number of (unit, label) hits added, or -1, having added nothing, when a cell, image, fold, label
    or shape lies outside the tally's.
    """
    folds, cells = fold_intersection.shape
    units = active.shape[0]
    labels = truth.shape[0]
    categories = by_category.shape[0] // units
    nb = fold.shape[0]
    if (cells != units * labels or intersection.shape[0] != cells or train_intersection.shape[0] != cells
            or fold_truth.shape != (folds, labels) or train_truth.shape[0] != labels
            or fold_by_category.shape != (folds, units * categories) or train_by_category.shape[0] != units * categories
            or fold_images.shape[0] != folds or train.shape[0] != nb or image_truth.shape != (nb, labels)
            or image_active.shape != (nb, units) or gate.shape[0] != nb or gate.shape[2] != categories
            or (gate.shape[1] != 1 and gate.shape[1] != units) or hits.shape[0] != cell.shape[0]
            or image.shape[0] != cell.shape[0] or entry_label.shape[0] != entry_image.shape[0]):
        return -1
    for b in range(nb):
        if fold[b] < 0 or fold[b] >= folds:
            return -1
    for e in range(cell.shape[0]):
        if cell[e] < 0 or cell[e] >= cells or image[e] < 0 or image[e] >= nb:
            return -1
    for e in range(entry_image.shape[0]):
        if entry_image[e] < 0 or entry_image[e] >= nb or entry_label[e] < 0 or entry_label[e] >= labels:
            return -1
    for e in range(cell.shape[0]):
        c, b, v = cell[e], image[e], hits[e]
        intersection[c] += v
        fold_intersection[fold[b], c] += v
        if train[b]:
            train_intersection[c] += v
    for e in range(entry_image.shape[0]):
        b, label = entry_image[e], entry_label[e]
        g, t = fold_intersection[fold[b]], train[b]
        for u in range(units):
            v = image_active[b, u]
            intersection[u * labels + label] += v
            g[u * labels + label] += v
            if t:
                train_intersection[u * labels + label] += v
    per_unit = gate.shape[1] != 1
    for b in range(nb):
        f, t = fold[b], train[b]
        for label in range(labels):
            v = image_truth[b, label]
            truth[label] += v
            fold_truth[f, label] += v
            if t:
                train_truth[label] += v
        for u in range(units):
            v = image_active[b, u]
            active[u] += v
            row = gate[b, u if per_unit else 0]
            for c in range(categories):
                if row[c]:
                    by_category[u * categories + c] += v
                    fold_by_category[f, u * categories + c] += v
                    if t:
                        train_by_category[u * categories + c] += v
        images[0] += 1
        fold_images[f] += 1
        if t:
            train_images[0] += 1
    return cell.shape[0]


@njit(inline="always")
def _half_key(h):
    """The order of the float16 whose bits are ``h`` (an int32) as an int32: equal for equal values (-0 and +0
    included), larger for larger ones (finite values)."""
    return np.int32(0x8000) - (h & 0x7FFF) if h >= 0x8000 else h + np.int32(0x8000)


@njit(inline="always", boundscheck=False)
def _half_peak(src):
    """The bits of the largest of the float16 values whose bits are ``src`` (+0 over -0), or -1 where one is NaN or
    infinite. Two int32 reductions the compiler vectorises: the largest magnitude (0x7C00 and above is NaN or
    infinity) and the largest of the bits with every bit of a negative flipped, else the sign bit (an order in which
    -0 is below +0, and which flips back)."""
    magnitude = np.int32(0)
    best = np.int32(0)
    for s in range(src.shape[0]):
        h = np.int32(src[s])
        magnitude = max(magnitude, h & 0x7FFF)
        best = max(best, h ^ 0xFFFF if h >= 0x8000 else h ^ 0x8000)
    if magnitude >= 0x7C00:
        return np.int32(-1)
    return best ^ 0x8000 if best >= 0x8000 else best ^ 0xFFFF


@njit("int64(uint16[:, :, ::1], uint16[::1], boolean, uint16[:, ::1], int64[::1])", cache=True, nogil=True,
      boundscheck=False)
def keep_above(acts, floor, full, out, kept):
    """Each unit's values of a batch above its floor, in order (:meth:`TopQuantile.add
    <benchmark.quantile.TopQuantile.add>`): ``acts`` ``(B, U, S)`` float16 bits; unit ``u``'s values
    ``acts[b, u, s]`` strictly above the float16 ``floor[u]`` (every value where not ``full``), in the order of
    ``(b, s)``, go to ``out[u, :kept[u]]``, and the rest of ``out[u, :width]`` is -inf, ``width`` the largest of
    ``kept`` (returned). A map whose peak is not above the floor (most, once a unit's top is full) is only read
    once. Returns -1 when a value is NaN or infinite (``out`` and ``kept`` then hold nothing usable).
    """
    nb, units, size = acts.shape
    bound = np.empty(units, np.int32)
    for u in range(units):
        bound[u] = _half_key(np.int32(floor[u])) if full else -1
        kept[u] = 0
    for b in range(nb):
        for u in range(units):
            src = acts[b, u]
            peak = _half_peak(src)
            if peak < 0:
                return -1
            lowest = bound[u]
            if not _half_key(peak) > lowest:
                continue
            row = out[u]
            n = kept[u]
            for s in range(size):
                if _half_key(np.int32(src[s])) > lowest:
                    row[n] = src[s]
                    n += 1
            kept[u] = n
    width = 0
    for u in range(units):
        width = max(width, kept[u])
    for u in range(units):
        out[u, kept[u]:width] = 0xFC00
    return width


@njit(inline="always")
def _half_value(h):
    """The float16 whose bits are ``h`` (finite) as a float32, exactly."""
    exponent = (h >> 10) & 0x1F
    mantissa = h & 0x3FF
    x = math.ldexp(float(mantissa), -24) if exponent == 0 else math.ldexp(float(mantissa | 0x400), exponent - 25)
    return np.float32(-x if h & 0x8000 else x)


@njit("int64(uint16[:, :, ::1], float32[:, ::1], int64[:, ::1], uint16[:, :, ::1], int64)", cache=True, nogil=True,
      boundscheck=False)
def keep_top_images(acts, values, rows, maps, first_row):
    """Update each unit's top images with a batch (:meth:`TopImages.add <benchmark.topk.TopImages.add>`):
    ``acts`` ``(B, U, S)`` float16 bits of rows ``first_row ..``; unit ``u``'s ``values[u]`` (descending),
    ``rows[u]`` and ``maps[u]`` (``(k, S)`` float16 bits) are its top ``k`` by peak value, ties to the earlier row:
    an image enters after every kept one whose peak is not below its own, the ones after it moving down a slot.
    Returns -1, having changed nothing, when a value is NaN or infinite; else 0.
    """
    nb, units, size = acts.shape
    k = values.shape[1]
    peaks = np.empty((units, nb), np.float32)
    for b in range(nb):
        for u in range(units):
            peak = _half_peak(acts[b, u])
            if peak < 0:
                return -1
            peaks[u, b] = _half_value(peak)
    for u in range(units):
        v, r, m = values[u], rows[u], maps[u]
        for b in range(nb):
            peak = peaks[u, b]
            if not peak > v[k - 1]:
                continue
            slot = k - 1
            while slot > 0 and v[slot - 1] < peak:
                v[slot], r[slot] = v[slot - 1], r[slot - 1]
                m[slot, :] = m[slot - 1, :]
                slot -= 1
            v[slot], r[slot] = peak, first_row + b
            m[slot, :] = acts[b, u]
    return 0


@njit(inline="always")
def _grown(a, capacity):
    """``a`` copied into an array of ``capacity`` elements."""
    out = np.empty(capacity, a.dtype)
    out[: a.shape[0]] = a
    return out


#: Every float16 as a float32 (exactly), indexed by its bits: what :func:`count_batch` reads a map's values through.
HALF_VALUES = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)

_BATCH_SIGNATURE = (
    "UniTuple(int64[::1], 3)(uint16[:, :, ::1], int64, float32[::1], float32[::1], int32[:, ::1], int64[:, :, ::1],"
    " int64,"
    " int64[::1], int64[::1], float32[:, ::1], int64[:, ::1], boolean[:, ::1],"  # row pieces
    " int64[::1], int64[::1], float32[:, ::1], int64[:, ::1], boolean[:, ::1],"  # column pieces
    " int64, int64[:, ::1])"  # output width (sw), active pixels
)


@njit(_BATCH_SIGNATURE, cache=True, nogil=True, boundscheck=False)
def count_batch(acts, map_width, half_values, thresholds, keys, table, labels,
                row_base, row_second, row_weight, row_index, row_valid,
                col_base, col_second, col_weight, col_index, col_valid,
                width, active):
    """A batch's per-pair counting (:meth:`BatchCounter.count <benchmark.tally.BatchCounter.count>`) in one pass,
    from its float16 activations as they are: ``acts`` ``(B, U, h * w)`` float16 bits (finite; ``map_width`` =
    ``w``), ``half_values`` every float16 as a float32 (:data:`HALF_VALUES`), ``thresholds`` ``(U,)``, ``keys``
    ``(B, sh * sw)`` each pixel's label tuple, ``table`` ``(B, T, L)`` each tuple's label per layer (0: none),
    ``labels`` the number of labels.

    A pair ``(b, u)`` whose peak is above its unit's threshold (only they can have active pixels) has its map
    converted to float32 (exactly) and counted as :func:`count_active_keys` counts it: ``active[b, u]`` gets its
    active pixels, and each of its tuples with active pixels gives, per layer with a label, the entry (cell ``u *
    labels + label``, the active pixels, image ``b``). Returns the entries as ``(cell, hits, image)``, in the order
    of ``(b, u, tuple, layer)``: the tensor operations' order. A value that is not finite returns no entries and
    ``active[0, 0] = -1``.
    """
    nb, units, size = acts.shape
    tuples, layers = table.shape[1], table.shape[2]
    height = size // map_width
    m = np.empty((height, map_width), np.float32)
    count = np.zeros(tuples, np.int64)
    capacity = 4096
    cell = np.empty(capacity, np.int64)
    hits = np.empty(capacity, np.int64)
    image = np.empty(capacity, np.int64)
    n = 0
    for b in range(nb):
        key = keys[b]
        for u in range(units):
            src = acts[b, u]
            peak = _half_peak(src)
            if peak < 0:
                active[0, 0] = -1
                return cell[:0].copy(), hits[:0].copy(), image[:0].copy()
            t = thresholds[u]
            if not half_values[peak] > t:
                continue
            for y in range(height):
                for x in range(map_width):
                    m[y, x] = half_values[src[y * map_width + x]]
            _count_map(m, t, key, row_base, row_second, row_weight, row_index, row_valid,
                       col_base, col_second, col_weight, col_index, col_valid, width, count)
            total = 0
            for k in range(tuples):
                c = count[k]
                if c == 0:
                    continue
                count[k] = 0
                total += c
                for layer in range(layers):
                    label = table[b, k, layer]
                    if label <= 0:
                        continue
                    if n == capacity:
                        capacity *= 2
                        cell, hits, image = _grown(cell, capacity), _grown(hits, capacity), _grown(image, capacity)
                    cell[n], hits[n], image[n] = u * labels + label, c, b
                    n += 1
            active[b, u] = total
    return cell[:n].copy(), hits[:n].copy(), image[:n].copy()

