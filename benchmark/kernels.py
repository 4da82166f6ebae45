"""The tally's per-pixel loops compiled for the CPU (numba): bilinear upsampling, thresholding and counting by key, in
one pass over the candidate pixels; and filling label maps from the masks' RLE strings.

:func:`count_active_keys` is the arithmetic of :func:`benchmark.upsample.active_columns` (the same float32
operations in the same order, so the same ``above`` bit for bit) with the counting of
:meth:`benchmark.upsample.ActiveKeys.count` fused in: no per-pixel array is ever written, which is what the tensor
version spends most of its time on (MobileNetV2 ``features.18`` on 2,000 images, one thread: 0.43 CPU s against
2.8 for ``active_columns`` with its keys and ``bincount``; ``bench/README.md``). The tensor version stays the one used
on other devices and for small runs; ``tests/benchmark/test_tally.py`` holds the two equal.

:func:`fill_label_maps` decodes a batch's masks straight into its stacked label maps
(:class:`benchmark.activations.RowBatches` where the run counts with the compiled loop): the same maps as
pycocotools' decoding and :func:`broden.masks.decode_label_maps`, without a 0/1 array per mask
(``tests/benchmark/test_activations.py`` holds the two equal).

Importing this module (through :func:`benchmark.compiled.kernels`) compiles the loops for their one signature each
(0.93 s here, numba's import included), or loads them from numba's cache (``__pycache__`` beside this file, else
numba's per-user cache): 0.3-0.64 s, once per process. A process that forks DataLoader workers after importing
it passes the compiled loops on to them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_SIGNATURE = (
    "void(float32[:, :, ::1], float32[::1], int64[::1], int32[:, ::1],"  # maps, thresholds, images, keys
    " int64[::1], int64[::1], float32[:, ::1], int64[:, ::1], boolean[:, ::1],"  # row pieces
    " int64[::1], int64[::1], float32[:, ::1], int64[:, ::1], boolean[:, ::1],"  # column pieces
    " int64, int64[:, ::1])"  # output width (sw), counts
)


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
    one = np.float32(1.0)
    margin = np.float32(2.0**-19)
    for p in range(maps.shape[0]):
        t = thresholds[p]
        m = maps[p]
        key = keys[images[p]]
        count = out[p]
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
