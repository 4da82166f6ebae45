"""Draw one row of a Broden dataset as a PNG a person can read: the photo, then one panel per label-map layer of
each pixel category with its labels colour-coded over a grey copy of the photo, and a legend under each panel
naming every label drawn (largest first, with its share of the image). Image-level labels (scene, texture) are
written in the title.

A label keeps its colour in every panel and every image (the colour is a function of the label number), so the
same object reads the same across a dataset.
"""

from __future__ import annotations

import colorsys
import io
from pathlib import Path

import numpy as np

from broden.dataset import Broden, Example
from broden.errors import BrodenError
from broden.utils import atomic

LEGEND_LINES = 12
MIN_PANEL = 224


def label_color(number: int) -> tuple[int, int, int]:
    """A stable, well-spread colour for label ``number`` (golden-ratio hues, two lightness levels)."""
    hue = (number * 0.6180339887) % 1.0
    light = 0.45 if number % 2 else 0.6
    r, g, b = colorsys.hls_to_rgb(hue, light, 0.85)
    return int(r * 255), int(g * 255), int(b * 255)


def find_row(ds: Broden, key: str) -> int:
    """The canonical index of the row whose id is ``key`` (or ``key`` itself when it is a row number)."""
    ids = ds.ids
    if key in ids:
        return ids.index(key)
    if key.isdigit() and int(key) < len(ids):
        return int(key)
    near = [i for i in ids if key in i][:3]
    hint = f" (did you mean {', '.join(near)}?)" if near else f"; ids look like {ids[0]}"
    raise BrodenError(f"{key}: no such image id or row number in {ds.path}{hint}")


def _panel(photo: np.ndarray, label_map: np.ndarray) -> np.ndarray:
    """``photo`` (H, W, 3) greyed, with each label of ``label_map`` (at any size, upsampled by nearest) painted."""
    from PIL import Image

    h, w = photo.shape[:2]
    grey = photo.mean(axis=2, keepdims=True).repeat(3, axis=2)
    up = np.asarray(Image.fromarray(label_map.astype(np.int32)).resize((w, h), Image.NEAREST))
    out = grey.copy()
    for n in np.unique(up):
        if n:
            sel = up == n
            out[sel] = 0.35 * grey[sel] + 0.65 * np.asarray(label_color(int(n)), np.float64)
    return out.astype(np.uint8)


def render(ds: Broden, example: Example) -> bytes:
    """The PNG bytes of ``example`` drawn as described in the module docstring."""
    from PIL import Image, ImageDraw, ImageFont

    photo_img = example.image()
    scale = max(1.0, MIN_PANEL / max(photo_img.size))
    size = (round(photo_img.width * scale), round(photo_img.height * scale))
    photo = np.asarray(photo_img.resize(size, Image.BILINEAR), np.float64)
    font = ImageFont.load_default(13)
    panels: list[tuple[str, np.ndarray, list[tuple[int, str]]]] = [("image", photo.astype(np.uint8), [])]
    for cat in ds.pixel_categories:
        maps = example.pixel.get(cat)
        for k in range(0 if maps is None else maps.shape[0]):
            numbers, counts = np.unique(maps[k], return_counts=True)
            legend = sorted(((int(c), int(n)) for n, c in zip(numbers, counts) if n), reverse=True)
            title = cat if maps.shape[0] == 1 else f"{cat} (layer {k + 1})"
            total = maps[k].size
            panels.append((title, _panel(photo, maps[k]),
                           [(n, f"{ds.labels.name(n) or n} {100 * c / total:.0f}%") for c, n in legend]))
    line = 16
    header = 2 * line + 6
    legend_h = line * (min(LEGEND_LINES, max(len(p[2]) for p in panels)) + 1) + 4
    w, h = size
    gap = 6
    canvas = Image.new("RGB", (len(panels) * (w + gap) + gap, header + h + 18 + legend_h), "white")
    draw = ImageDraw.Draw(canvas)
    image_labels = "; ".join(
        f"{c}: {', '.join(ds.labels.name(n) or str(n) for n in example.image_labels[c] if n) or '-'}"
        for c in ds.image_categories
    )
    draw.text((gap, 4), f"{example.id} ({example.split}, {example.source}, {example.height}x{example.width}, "
                        f"masks {example.seg_height}x{example.seg_width})", fill="black", font=font)
    draw.text((gap, 4 + line), image_labels or " ", fill="black", font=font)
    for i, (title, pixels, legend) in enumerate(panels):
        x = gap + i * (w + gap)
        draw.text((x, header), title, fill="black", font=font)
        canvas.paste(Image.fromarray(pixels), (x, header + 18))
        y = header + 18 + h + 4
        for n, text in legend[:LEGEND_LINES]:
            draw.rectangle((x, y + 2, x + 11, y + 13), fill=label_color(n))
            draw.text((x + 16, y), text, fill="black", font=font)
            y += line
        if len(legend) > LEGEND_LINES:
            draw.text((x + 16, y), f"... {len(legend) - LEGEND_LINES} more", fill="grey", font=font)
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def show(dataset: Broden, key: str, out: str | Path) -> Path:
    """Draw the row ``key`` (an image id or a row number) of ``dataset`` to the PNG file ``out``."""
    index = find_row(dataset, key)
    out = Path(out)
    atomic.write_bytes(out, render(dataset, dataset[index]))
    return out
