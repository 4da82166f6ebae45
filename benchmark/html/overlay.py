"""Pictures of what a unit sees: its thresholded activation region over an image, and the concept's outline.

As in the paper's figures, the unit's feature map is upsampled bilinearly to the image size (with the scorer's own
upsampling, benchmark.upsample), pixels above the unit's threshold keep their brightness and the rest are dimmed.
The label's ground-truth mask, when the image has one, is drawn as a thin outline so the viewer can judge the
overlap the IoU measures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image
from scipy import ndimage

from benchmark.upsample import upsample_maps

#: Brightness kept outside the active region (inside it stays 1.0).
DIM = 0.2
OUTLINE_RGB = (255, 230, 0)
TILE_GAP = 2


def active_regions(maps: np.ndarray, threshold: float, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    """Boolean regions where each (h, w) map of ``maps``, upsampled as in scoring to its image's size, exceeds the
    unit's threshold (strictly). Maps for images of one size go through one batched call: per-image calls are
    dominated by thread start-up."""
    import torch

    out: list[np.ndarray | None] = [None] * len(sizes)
    for size in dict.fromkeys(sizes):
        idx = [i for i, s in enumerate(sizes) if s == size]
        up = upsample_maps(torch.from_numpy(np.asarray(maps[idx], dtype=np.float32)), size)
        for i, region in zip(idx, (up > threshold).numpy()):
            out[i] = region
    return out  # type: ignore[return-value]


def label_mask(pixel: Mapping[str, np.ndarray], label: int, size: tuple[int, int]) -> np.ndarray | None:
    """Where ``label`` is annotated in any pixel category's label maps, at ``size``; None when it is absent.

    Scoring counts a label's pixels from every category it belongs to (``wood`` as object and material), so the
    outline does too. Label maps are resized by nearest neighbour: they hold label numbers, not intensities.
    """
    present = np.zeros((), bool)
    for maps in pixel.values():
        if maps.size:
            present = present | (maps == label).any(axis=0)
    if not present.any():
        return None
    img = Image.fromarray(present.astype(np.uint8) * 255).resize((size[1], size[0]), Image.Resampling.NEAREST)
    return np.asarray(img) > 0


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The inner border of a boolean mask, ``width`` pixels thick."""
    return mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)


def overlay(image: Image.Image, region: np.ndarray, concept: np.ndarray | None = None) -> Image.Image:
    """``image`` with pixels outside ``region`` dimmed to DIM and the concept mask's outline drawn on top."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    if region.shape != rgb.shape[:2]:
        raise ValueError(f"region {region.shape} does not match image {rgb.shape[:2]}")
    out = rgb * np.where(region, 1.0, DIM)[:, :, None]
    if concept is not None:
        out[outline(concept)] = OUTLINE_RGB
    return Image.fromarray(np.rint(out).astype(np.uint8))


def tile_height(sizes: Sequence[tuple[int, int]], max_height: int, max_width: int) -> int:
    """The common height of a strip's tiles for images of ``sizes`` ((height, width) each): their tallest, at
    most ``max_height``, and lower when the strip (with its gaps) would be wider than ``max_width``."""
    height = min(max_height, max(h for h, _ in sizes))
    natural = sum(w * height / h for h, w in sizes)
    room = max_width - TILE_GAP * (len(sizes) - 1)
    return max(1, int(height * room / natural)) if natural > room else height


def strip(tiles: Sequence[Image.Image], height: int) -> Image.Image:
    """Tiles side by side on white, each scaled to ``height`` pixels high: one unit's top images as one file."""
    scaled = [t if t.height == height else t.resize((max(1, round(t.width * height / t.height)), height))
              for t in tiles]
    width = sum(t.width for t in scaled) + TILE_GAP * max(len(scaled) - 1, 0)
    canvas = Image.new("RGB", (max(width, 1), height), (255, 255, 255))
    x = 0
    for t in scaled:
        canvas.paste(t, (x, 0))
        x += t.width + TILE_GAP
    return canvas
