"""The embedded sample dataset: a small, deterministic Broden built from scikit-image's photographs and textures.

It has all six Broden categories with exact masks, so the whole pipeline (scoring, reports, leaderboard) runs
offline in seconds: ``broden sample OUT`` or :func:`write_sample`. Images are drawn at full resolution by
:mod:`broden.sample.scenes`; as in Broden, colors are named on the full-resolution pixels with the w2color table,
then the image is resized bilinearly to ``size`` and every label map is reduced to ``size // 2`` by nearest
selection (``scipy.ndimage.zoom(order=0)``). Label statistics are computed on the reduced masks; labels seen in fewer
than ``min_frequency`` images of a category are dropped from that category and from the masks; the rest are
numbered 1..N by frequency, then coverage.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from broden.colors import COLOR_NAMES, color_index_map, color_label_name
from broden.dataset import Broden, encode_row, write_dataset
from broden.errors import BrodenError
from broden.labels import BRODEN_CATEGORIES, Category, assign_codes
from broden.masks import reduce_nearest
from broden.sample.assets import MATERIALS
from broden.sample.scenes import SCENES, TEXTURES, Canvas, draw_scene, draw_surfaces, draw_texture
from broden.split import assign_split, split_hash
from broden.utils.progress import track

JPEG_QUALITY = 90
SIZES = range(32, 513)  # Broden itself uses 224, 227 and 384
IMAGES = range(1, 5001)  # all images are held in memory (~80 kB each at 224) until the labels are numbered
#: Share of each source in the sample, in the order images are assigned to sources.
SOURCE_PATTERN = ("scenes", "surfaces", "scenes", "textures")


@dataclass
class Drawn:
    """One image after reduction: JPEG bytes, label maps of names and image-level labels."""

    id: str
    source: str
    jpeg: bytes
    maps: dict[str, np.ndarray]  # pixel category -> (layers, seg, seg) local ids (uint8)
    names: list[str]  # local id -> label name
    image_labels: dict[str, list[str]]


def draw_image(index: int, size: int, seed: int) -> Drawn:
    """Draw image ``index`` of the sample; depends only on its arguments."""
    rng = np.random.default_rng([seed, index])
    full, rest = divmod(index, len(SOURCE_PATTERN))
    source = SOURCE_PATTERN[rest]
    # the n-th image of a source features its n-th kind in turn, so every kind is seen equally often
    nth = full * SOURCE_PATTERN.count(source) + SOURCE_PATTERN[:rest].count(source)
    # full resolution: about 1.3-2x the output size, landscape, squashed to a square at the end (as Broden)
    canvas = Canvas(round(size * rng.uniform(1.34, 2.0)), round(size * rng.uniform(1.6, 2.3)))
    if source == "scenes":
        scene = sorted(SCENES)[nth % len(SCENES)]
        draw_scene(canvas, scene, rng)
        stem = f"{scene[:-2].replace('-', '_')}_{index:05d}"
    elif source == "surfaces":
        draw_surfaces(canvas, sorted(MATERIALS)[nth % len(MATERIALS)], rng)
        stem = f"{index:05d}"
    else:
        draw_texture(canvas, TEXTURES[nth % len(TEXTURES)], rng)
        stem = f"{TEXTURES[nth % len(TEXTURES)]}_{index:05d}"
    jpeg, maps, names = finish(canvas, size)
    return Drawn(f"{source}/{stem}.jpg", source, jpeg, maps, names, canvas.image_labels)


def finish(canvas: Canvas, size: int) -> tuple[bytes, dict[str, np.ndarray], list[str]]:
    """Name the colors of the full-resolution pixels, then reduce: JPEG at ``size``, label maps at ``size // 2``."""
    pixels = canvas.image()
    offset = len(canvas.names)
    names = canvas.names + [color_label_name(i) for i in range(len(COLOR_NAMES))]
    if len(names) > 255:
        raise ValueError("too many labels in one sample image for uint8 label maps")
    maps = {"color": (color_index_map(pixels).astype(np.int16) + offset)[None], **canvas.maps}
    seg = size // 2
    buf = io.BytesIO()
    Image.fromarray(pixels).resize((size, size), Image.BILINEAR).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue(), {c: reduce_nearest(m, seg).astype(np.uint8) for c, m in maps.items()}, names


def _stats(drawn: list[Drawn]) -> dict[tuple[str, str], tuple[int, float]]:
    """(category, name) -> (images containing it, sum of covered fractions) on the reduced masks."""
    out: dict[tuple[str, str], tuple[int, float]] = {}
    for d in drawn:
        for cat, stack in d.maps.items():
            area = stack[0].size
            present = np.unique(stack)
            for local in present[present != 0]:
                covered = float(np.any(stack == local, axis=0).sum()) / area
                f, c = out.get((cat, d.names[local]), (0, 0.0))
                out[(cat, d.names[local])] = (f + 1, c + covered)
        for cat, names in d.image_labels.items():
            for name in sorted(set(names)):
                f, c = out.get((cat, name), (0, 0.0))
                out[(cat, name)] = (f + 1, c + 1.0)
    return out


def _rows(drawn: list[Drawn], numbers: dict[tuple[str, str], int], size: int) -> Iterator[dict[str, Any]]:
    seg = size // 2
    for d in sorted(drawn, key=lambda d: (split_hash(d.id), d.id)):
        label_maps: dict[str, list[np.ndarray]] = {}
        image_labels: dict[str, list[int]] = {}
        for cat, kind in BRODEN_CATEGORIES:
            if kind == "image":
                image_labels[cat] = sorted({numbers[(cat, n)] for n in d.image_labels[cat] if (cat, n) in numbers})
                continue
            lut = np.array([numbers.get((cat, n), 0) for n in d.names], np.int32)
            stack = lut[d.maps[cat]]
            used = [i for i in range(stack.shape[0]) if stack[i].any()]
            label_maps[cat] = list(stack[: used[-1] + 1 if used else 0])
        row = encode_row(
            id=d.id, image=d.jpeg, split=assign_split(d.id), source=d.source, size=(size, size),
            seg_size=(seg, seg), label_maps=label_maps, image_labels=image_labels,
        )
        yield row


def write_sample(
    out: str | os.PathLike[str], *, num_images: int = 240, size: int = 224, seed: int = 0, min_frequency: int = 3
) -> Broden:
    """Write the sample dataset to ``out`` (replaced atomically) and return it loaded.

    Same arguments, same bytes: the fingerprint is identical on every run.
    """
    if num_images not in IMAGES:
        raise BrodenError(f"--images {num_images}: the sample has {IMAGES.start}..{IMAGES.stop - 1} images; for "
                          "real data use 'broden download' or 'broden build'")
    if size not in SIZES:
        raise BrodenError(f"--size {size}: image size must be {SIZES.start}..{SIZES.stop - 1} (Broden uses 224)")
    drawn = [draw_image(i, size, seed) for i in track(range(num_images), "drawing sample images")]
    stats = {k: v for k, v in _stats(drawn).items() if v[0] >= min_frequency}
    by_name: dict[str, dict[str, tuple[int, float]]] = {}
    for (cat, name), fc in stats.items():
        by_name.setdefault(name, {})[cat] = fc
    order = sorted(by_name, key=lambda n: (-sum(f for f, _ in by_name[n].values()),
                                           -sum(c for _, c in by_name[n].values()), n))
    categories = [Category(name, kind) for name, kind in BRODEN_CATEGORIES]
    labels = assign_codes(
        categories,
        [(i, name, sum(c for _, c in by_name[name].values()), (), by_name[name]) for i, name in enumerate(order, 1)],
    )
    numbers = {(cat, name): i for i, name in enumerate(order, 1) for cat in by_name[name]}
    meta = {
        "name": "broden-sample",
        "source": "sample",
        "generator": {"num_images": num_images, "size": size, "seed": seed, "min_frequency": min_frequency,
                      "jpeg_quality": JPEG_QUALITY},
    }
    return write_dataset(out, _rows(drawn, numbers, size), labels, meta=meta)
