"""Pixel masks as COCO run-length encodings (pycocotools), one per (category, layer, label).

A legacy Broden label map (one PNG per category layer, label = R + 256*G) becomes one RLE per label present in
it; masks of one layer never overlap, masks of different layers (ADE part levels) and categories may. Decoding
rebuilds the per-layer label maps in one vectorised step; an RLE's pixel count is checked without decoding it
(:func:`rle_total`, :func:`rle_totals`), since pycocotools decodes a wrong-sized RLE without complaint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pycocotools import mask as mask_util


def encode_label_map(label_map: np.ndarray) -> list[tuple[int, str]]:
    """Encode an (H, W) integer label map as ``[(label, rle_counts), ...]`` for every non-zero label, ascending."""
    flat = label_map.ravel()
    if flat.size and flat.min() >= 0:  # label numbers: bincount is ~10x faster than np.unique
        labels = np.flatnonzero(np.bincount(flat))
    else:
        labels = np.unique(flat)
    labels = labels[labels != 0]
    if labels.size == 0:
        return []
    # (L, W, H) in C order is (H, W, L) in Fortran order, the layout pycocotools needs, without a copy
    stack = np.equal(label_map.T[None, :, :], labels[:, None, None], order="C").view(np.uint8).transpose(2, 1, 0)
    rles = mask_util.encode(stack)
    return [(int(lab), r["counts"].decode("ascii")) for lab, r in zip(labels, rles)]


def decode_binary(rles: Sequence[str], height: int, width: int) -> np.ndarray:
    """Decode RLE strings to a (N, H, W) uint8 array of 0/1 masks."""
    if not rles:
        return np.zeros((0, height, width), np.uint8)
    objs = [{"size": [height, width], "counts": r} for r in rles]
    return np.moveaxis(mask_util.decode(objs), -1, 0)


def rle_area(rles: Sequence[str], height: int, width: int) -> np.ndarray:
    """Pixel count of each RLE, without decoding."""
    if not rles:
        return np.zeros(0, np.int64)
    objs = [{"size": [height, width], "counts": r} for r in rles]
    return np.asarray(mask_util.area(objs), dtype=np.int64)


def decode_label_maps(
    layer_ids: Sequence[int], labels: Sequence[int], rles: Sequence[str], num_layers: int, height: int, width: int
) -> np.ndarray:
    """Rebuild ``num_layers`` label maps (L, H, W) int32 from masks tagged with their layer index.

    Masks within one layer are disjoint, so each layer's map is the label-weighted sum of its masks.
    """
    out = np.zeros((num_layers, height * width), np.int32)
    if len(rles):
        binary = decode_binary(rles, height, width).reshape(len(rles), -1)
        weights = np.zeros((len(rles), num_layers), np.float32)
        weights[np.arange(len(rles)), np.asarray(layer_ids)] = np.asarray(labels, np.float32)
        out[:] = np.rint(weights.T @ binary.astype(np.float32)).astype(np.int32)
    return out.reshape(num_layers, height, width)


def reduce_nearest(label_maps: np.ndarray, size: int) -> np.ndarray:
    """(..., H, W) label maps reduced to (..., size, size) with Broden's own pixel choice.

    The original builder used ``scipy.ndimage.zoom(order=0)``, whose corner-aligned nearest index differs from PIL's
    NEAREST (10 -> 4 columns: scipy takes 0, 3, 6, 9; PIL 1, 3, 6, 8), so the same call is used here. Leading axes
    (layers) are kept; the dtype is kept.
    """
    from scipy import ndimage

    h, w = label_maps.shape[-2:]
    return ndimage.zoom(label_maps, (1,) * (label_maps.ndim - 2) + (size / h, size / w), order=0)


def label_map_from_rgb(rgb: np.ndarray) -> np.ndarray:
    """Decode a legacy Broden label PNG (label = R + 256*G; blue unused) to int32."""
    if rgb.ndim == 2:  # a grayscale/palette PNG carries the label in its single channel
        return rgb.astype(np.int32)
    return rgb[..., 0].astype(np.int32) + 256 * rgb[..., 1].astype(np.int32)


def label_map_to_rgb(label_map: np.ndarray) -> np.ndarray:
    """Encode a label map as a legacy Broden RGB PNG array (R = n % 256, G = n // 256, B = 0)."""
    lm = label_map.astype(np.int64)
    if lm.min(initial=0) < 0 or lm.max(initial=0) > 65535:
        raise ValueError("label numbers must lie in 0..65535 to fit a Broden label PNG")
    rgb = np.zeros(lm.shape + (3,), np.uint8)
    rgb[..., 0] = lm % 256
    rgb[..., 1] = lm // 256
    return rgb


def _decode_numbers(b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The signed integers of a COCO compressed RLE byte run (values 0..63 after -48) and each one's end index."""
    ends = np.flatnonzero((b & 0x20) == 0)
    starts = np.r_[0, ends[:-1] + 1]
    k = np.arange(b.size) - np.repeat(starts, ends - starts + 1)
    x = np.add.reduceat((b & 0x1F) << (5 * k), starts)
    return np.where((b[ends] & 0x10) != 0, x - (1 << (5 * (k[ends] + 1))), x), ends


def rle_total(counts: str) -> int | None:
    """Number of pixels a compressed COCO RLE string covers (sum of its runs); None if it is malformed.

    pycocotools does not check this on decode, so a mask of the wrong size would silently decode to garbage.
    """
    b = np.frombuffer(counts.encode("utf-8"), np.uint8).astype(np.int64) - 48
    if b.size == 0 or b.min() < 0 or b.max() > 63 or b[-1] & 0x20:
        return None
    x, _ = _decode_numbers(b)
    x[1::2] = np.cumsum(x[1::2])  # runs after the third are stored as differences to the run two before
    x[2::2] = np.cumsum(x[2::2])
    return None if x.min() < 0 else int(x.sum())


def rle_totals(rles: list[str]) -> list[int | None]:
    """:func:`rle_total` of each string, vectorised over all of them (one row's masks) for speed."""
    joined = "".join(rles)
    lengths = np.fromiter((len(r) for r in rles), np.int64, len(rles))
    b = np.frombuffer(joined.encode("ascii", "replace"), np.uint8).astype(np.int64) - 48
    offsets = np.cumsum(lengths)
    if (not rles or not joined.isascii() or lengths.min() == 0 or b.min() < 0 or b.max() > 63
            or (b[offsets - 1] & 0x20).any()):
        return [rle_total(r) for r in rles]  # something is malformed: find out which, one by one
    x, ends = _decode_numbers(b)
    sid = np.searchsorted(offsets, ends, side="right")  # the string each number belongs to
    m = np.bincount(sid, minlength=len(rles))
    first = np.cumsum(m) - m
    j = np.arange(x.size) - first[sid]  # position of the number within its string
    # run j >= 3 is stored as the difference to run j - 2: each stored value counts in every later run of its parity
    total = np.bincount(sid, weights=x * np.where(j == 0, 1, (m[sid] - 1 - j) // 2 + 1), minlength=len(rles))
    negative = np.where(j == 0, x, 0) < 0  # a run (the first, or a running sum of differences) below zero
    for parity in (1, 0):
        chain = np.where((j % 2 == parity) & (j >= 1), x, 0).cumsum()
        before = np.where(first > 0, chain[np.maximum(first - 1, 0)], 0)
        negative |= (chain - before[sid] < 0) & (j % 2 == parity) & (j >= 1)
    bad = np.bincount(sid, weights=negative, minlength=len(rles)) > 0
    return [None if bad[i] else int(round(t)) for i, t in enumerate(total)]
