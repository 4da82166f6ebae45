"""Upsampling of unit activation maps to the segmentation (or image) resolution, one mode name per method."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from benchmark import compiled as compiled_loops
from broden.errors import BrodenError

#: Supported modes. ``bilinear`` is torch's ``align_corners=False`` interpolation: half-pixel centres with edge
#: clamping, identical to float rounding to PIL BILINEAR (``scipy.misc.imresize(mode='F')``) used by
#: NetDissect-Lite. It never exceeds the input map's maximum (a convex combination), which the tally relies on to
#: skip maps whose maximum is not above the threshold.
UPSAMPLE_MODES = ("bilinear",)


def check_mode(mode: str) -> str:
    """Validate an upsampling mode name (for CLI options and results metadata)."""
    if mode not in UPSAMPLE_MODES:
        raise BrodenError(f"unknown upsampling mode {mode!r}; choose one of {', '.join(UPSAMPLE_MODES)}")
    return mode


def upsample_maps(maps: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Resize ``(P, h, w)`` float maps to ``(P, *size)`` in one batched call."""
    check_mode(mode)
    if maps.shape[0] == 0:
        return maps.new_zeros((0, *size))
    return F.interpolate(maps.unsqueeze(1).float(), size=size, mode=mode, align_corners=False).squeeze(1)


@dataclass
class ActiveColumns:
    """The candidate active pixels of a set of maps, as column segments of one cell each.

    The output pixels of a cell's column form a *segment* (one column ``x``, the consecutive rows of one row piece
    of the upsampling); segment ``s`` of an ``(sh, sw)`` output holds the pixels ``segment_pixels(h, (sh, sw))[s]``
    (``y * sw + x``). ``maps[k]`` and ``segments[k]`` say which map and segment candidate ``k`` is, and
    ``above[k, j]`` whether its ``j``-th pixel is above the map's threshold. Every active pixel is in exactly one
    candidate, marked ``above``; padding positions of short pieces are never ``above``.
    """

    maps: torch.Tensor  # (K,) int64
    segments: torch.Tensor  # (K,) int64
    above: torch.Tensor  # (K, G) bool


def segment_pixels(h: int, size: tuple[int, int], device: torch.device | str = "cpu") -> torch.Tensor:
    """``(segments, G)`` int64: the output pixels ``y * sw + x`` of each segment of an ``h``-row map upsampled to
    ``size`` (:class:`ActiveColumns`; padding positions of short pieces point at row 0). Indexing a per-pixel
    tensor with it lays the pixels out segment by segment."""
    key = (h, tuple(size), str(device))
    if key not in _SEGMENT_PIXELS:
        rows = _pieces(h, size[0], torch.device(device))
        columns = torch.arange(size[1], device=rows.index.device)
        _SEGMENT_PIXELS[key] = (rows.index[:, None, :] * size[1] + columns[None, :, None]).flatten(0, 1)
    return _SEGMENT_PIXELS[key]


def active_columns(maps: torch.Tensor, thresholds: torch.Tensor, size: tuple[int, int]) -> ActiveColumns:
    """The active pixels of the bilinear upsampling of ``(P, h, w)`` maps against ``thresholds`` ``(P,)``, as
    :class:`ActiveColumns`, computed without upsampling whole maps, in three narrowing steps:

    1. an upsampled pixel is a convex combination of the (up to) 2x2 feature values around it, so only cells
       whose corner maximum is above the threshold can hold active pixels (peaky maps have few);
    2. in such a cell, each output column is first interpolated along x in the cell's two feature rows (``top``,
       ``bottom``); its pixels are convex combinations of those two, so only columns where the larger of them is
       above the threshold (less a margin of 2^-19 of it, far above float32's rounding) are kept: these are the
       segments;
    3. the segments' pixels are interpolated along y and compared with the threshold (``above``).

    Every pixel that steps 1 and 2 leave out is provably not above the threshold in float32, so ``above`` is the
    same bit for bit as interpolating every pixel of every cell of step 1 with the same arithmetic
    (``top = left * (1 - wx) + right * wx``, then ``top * (1 - wy) + bottom * wy``).
    """
    rows, cols = _pieces(maps.shape[1], size[0], maps.device), _pieces(maps.shape[2], size[1], maps.device)
    maps = maps.float()
    padded = F.pad(maps[:, None], (0, 1, 0, 1), mode="replicate")[:, 0]
    corner_max = torch.maximum(
        torch.maximum(padded[:, :-1, :-1], padded[:, 1:, :-1]), torch.maximum(padded[:, :-1, 1:], padded[:, 1:, 1:])
    )  # (P, h, w): the max over cell (r, c)'s corners (r or r+1, c or c+1, clamped)
    hot = corner_max.index_select(1, rows.base).index_select(2, cols.base) > thresholds[:, None, None]
    hp, hr, hc = hot.nonzero(as_tuple=True)
    flat, w = maps.reshape(-1), maps.shape[2]
    r0, r1 = hp * (maps.shape[1] * w) + rows.base[hr] * w, hp * (maps.shape[1] * w) + rows.second[hr] * w
    c0, c1 = cols.base[hc], cols.second[hc]
    wx = cols.weight[hc]  # (H, G'): weight of the second column
    top = flat[r0 + c0][:, None] * (1 - wx) + flat[r0 + c1][:, None] * wx
    bottom = flat[r1 + c0][:, None] * (1 - wx) + flat[r1 + c1][:, None] * wx
    # Step 2. With top, bottom >= 0 a pixel is at most max(top, bottom) * (1 + 3 * 2^-24) in float32; otherwise
    # at most max(top, bottom) + 2^-22 * (|top| + |bottom|).
    upper = torch.maximum(top, bottom)
    if bool((maps >= 0).all()) and bool((thresholds >= 0).all()):
        column = upper > (thresholds * (1 - 2.0**-19))[hp, None]
    else:
        column = upper + (top.abs() + bottom.abs()) * 2.0**-19 > thresholds[hp, None]
    if cols.padded:
        column &= cols.valid[hc]
    kc, gx = column.nonzero(as_tuple=True)
    # Step 3.
    cell_row = hr[kc]
    wy = rows.weight[cell_row]  # (K, G): weight of the second row
    values = top[kc, gx][:, None] * (1 - wy) + bottom[kc, gx][:, None] * wy
    kp = hp[kc]
    above = values > thresholds[kp, None]
    if rows.padded:
        above &= rows.valid[cell_row]
    return ActiveColumns(kp, cell_row * size[1] + cols.index[hc[kc], gx], above)


class SegmentValues:
    """A per-pixel tensor of a batch (``(B * sh * sw,)``, row-major per image) laid out segment by segment, so that
    the values under a chunk's candidate pixels (:class:`ActiveColumns`) are one row gather.

    ``h`` is the height of the activation maps (the segments depend on it), ``size`` the output ``(sh, sw)``.
    """

    def __init__(self, of_pixel: torch.Tensor, num_images: int, h: int, size: tuple[int, int]) -> None:
        layout = segment_pixels(h, size, of_pixel.device)
        self.segments = layout.shape[0]
        self.rows = of_pixel.view(num_images, size[0] * size[1])[:, layout].view(-1, layout.shape[1])

    def under(self, images: torch.Tensor, columns: ActiveColumns) -> torch.Tensor:
        """``(K, G)``: the values under each candidate of ``columns``, whose maps are of images ``images``."""
        return self.rows.index_select(0, images[columns.maps] * self.segments + columns.segments)


class ActiveKeys:
    """Active pixels of upsampled maps counted by a key of each pixel of their image: the tally's per-pixel work.

    ``keys`` ``(B, sh * sw)`` int32 holds a key in ``0 .. width - 1`` for every pixel of each of ``B`` images
    (row-major); maps are ``map_size`` ``(h, w)``, upsampled bilinearly to ``size`` ``(sh, sw)``. On the CPU, and
    ``compiled``, the counting runs as one compiled loop (:func:`benchmark.kernels.count_active_keys`, where numba
    can load it); otherwise as tensor operations (:func:`active_columns`, the keys under its candidates, one
    ``bincount``), which cost no loading. Both compute every pixel with the same float32 arithmetic, so their
    counts are equal.
    """

    def __init__(self, keys: torch.Tensor, width: int, map_size: tuple[int, int], size: tuple[int, int], *,
                 compiled: bool = True) -> None:
        if keys.dim() != 2 or keys.shape[1] != size[0] * size[1] or keys.dtype != torch.int32:
            raise BrodenError(f"pixel keys must be (images, {size[0] * size[1]}) int32; got {tuple(keys.shape)} "
                              f"{keys.dtype}")
        if keys.numel() and not 0 <= int(keys.min()) <= int(keys.max()) < width:
            raise BrodenError(f"pixel keys must lie in 0..{width - 1}")
        self.width, self.size = int(width), (int(size[0]), int(size[1]))
        self.map_size, self.num_images = (int(map_size[0]), int(map_size[1])), keys.shape[0]
        kernels = compiled_loops.kernels() if compiled and keys.device.type == "cpu" else None
        self.kernel = kernels.count_active_keys if kernels is not None else None
        # the elements counting one map holds: tensor operations, its candidate pixels (up to every pixel); the
        # compiled loop, its map and its counts
        self.pair_elements = self.size[0] * self.size[1] if self.kernel is None else (
            map_size[0] * map_size[1] + self.width)
        if self.kernel is None:
            self.segments = SegmentValues(keys.reshape(-1), keys.shape[0], map_size[0], self.size)
        else:
            self.keys = keys.contiguous().numpy()
            cpu = torch.device("cpu")
            rows, cols = _pieces(map_size[0], self.size[0], cpu), _pieces(map_size[1], self.size[1], cpu)
            self.pieces = rows.arrays + cols.arrays

    def count(self, maps: torch.Tensor, thresholds: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """``(P, width)`` int64: per map of ``maps`` ``(P, h, w)``, the active pixels (strictly above its threshold,
        ``thresholds`` ``(P,)``) with each key; ``images`` ``(P,)`` says whose keys each map's pixels carry."""
        num, width = maps.shape[0], self.width
        # the compiled loop reads where these say without checking: a wrong one must not reach it
        if maps.shape[1:] != self.map_size or thresholds.shape != (num,) or images.shape != (num,):
            raise BrodenError(f"active pixels: maps must be (P, {self.map_size[0]}, {self.map_size[1]}) with one "
                              f"threshold and one image each; got {tuple(maps.shape)}, {tuple(thresholds.shape)} "
                              f"and {tuple(images.shape)}")
        if num and not 0 <= int(images.min()) <= int(images.max()) < self.num_images:
            raise BrodenError(f"active pixels: image indices must lie in 0..{self.num_images - 1}")
        if self.kernel is not None:
            out = torch.zeros(num, width, dtype=torch.int64)
            self.kernel(maps.to(torch.float32).contiguous().numpy(), thresholds.to(torch.float32).contiguous().numpy(),
                        images.to(torch.int64).contiguous().numpy(), self.keys, *self.pieces, self.size[1],
                        out.numpy())
            return out
        columns = active_columns(maps, thresholds, self.size)
        # the last bin takes the inactive candidates; int32 keys (maps x width <= the tally's chunk_elements): these
        # are the largest arrays, and the counting is bound by memory traffic
        keys = self.segments.under(images, columns)
        if num * width >= 2**31 - 1:  # only with a chunk_elements beyond int32
            keys = keys.long()
        keys.add_((columns.maps * width).to(keys.dtype)[:, None]).masked_fill_(~columns.above, num * width)
        return torch.bincount(keys.view(-1), minlength=num * width + 1)[:-1].view(-1, width)


class _Pieces:
    """Output rows (or columns) grouped by the pair of input rows they interpolate, in pieces of equal width."""

    def __init__(self, n_in: int, n_out: int, device: torch.device) -> None:
        # torch's align_corners=False source index: scale * (o + 0.5) - 0.5, clamped at 0, in float32.
        scale = torch.tensor(n_in, dtype=torch.float32) / n_out
        src = (scale * (torch.arange(n_out, dtype=torch.float32) + 0.5) - 0.5).clamp(min=0)
        first = src.long().clamp(max=n_in - 1)
        lam = src - first
        groups = [(first == r).nonzero().flatten().tolist() for r in range(n_in)]
        # Pieces of a width that divides every group when one is not too small (7 -> 112: 8), so none is padded.
        width = max(1, -(-n_out // n_in))
        common = math.gcd(*(len(g) for g in groups))
        if 2 * common >= width:
            width = common
        bases, members = [], []
        for r, outs in enumerate(groups):
            for i in range(0, len(outs), width):
                bases.append(r)
                members.append(outs[i : i + width] + [-1] * (width - len(outs[i : i + width])))
        index = torch.tensor(members, dtype=torch.int64)
        self.valid = (index >= 0).to(device)
        self.padded = bool((index < 0).any())
        self.index = index.clamp(min=0).to(device)  # (pieces, width) output positions
        self.base = torch.tensor(bases, dtype=torch.int64, device=device)  # first input row of each piece
        self.second = (self.base + 1).clamp(max=n_in - 1)  # the row it interpolates with
        self.weight = lam.to(device)[self.index]  # (pieces, width) weight of the second row

    @functools.cached_property
    def arrays(self) -> tuple:
        """The pieces as the compiled loop takes them (:func:`benchmark.kernels.count_active_keys`): contiguous
        numpy arrays of ``base``, ``second``, ``weight``, ``index``, ``valid`` (made once: a run counts hundreds
        of batches with the same pieces)."""
        return tuple(t.contiguous().numpy() for t in (self.base, self.second, self.weight, self.index, self.valid))


_PIECES: dict[tuple[int, int, str], _Pieces] = {}
_SEGMENT_PIXELS: dict[tuple[int, tuple[int, ...], str], torch.Tensor] = {}


def _pieces(n_in: int, n_out: int, device: torch.device) -> _Pieces:
    key = (n_in, n_out, str(device))
    if key not in _PIECES:
        _PIECES[key] = _Pieces(n_in, n_out, device)
    return _PIECES[key]
