"""A synthetic Broden release in the exact original on-disk layout (``broden1_<size>/``), for tests and benchmarks.

Written independently of ``broden.legacy.write`` so that converting it checks our reader against the format, not
against our own writer. It has what the real release has and readers trip over: four sources (ade20k with
multi-layer parts ``x_part_1.png;x_part_2.png``, a scene ``0`` and an empty scene cell; pascal with one part layer;
opensurfaces with material; dtd with several texture numbers ``51;290``), color maps for every image computed with
the shipped w2color table, label numbers >= 256 (the PNG's G channel is used), a label in two categories
(``wall`` = object + part, as in Broden), empty cells, ``syns``, ``README.txt`` and ``syns.txt``. The label
statistics (``frequency``, ``coverage``) are computed from the written label maps, so the converted dataset
validates cleanly.

``write_legacy_fixture(root, num_images=2000, objects_per_image=12)`` makes the benchmark's realistic dataset
(JPEGs of ~10-20 KB, tens of labels per image).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from broden.colors import COLOR_NAMES, color_index_map, color_label_name
from broden.labels import BRODEN_CATEGORIES, Category, assign_codes
from broden.split import split_hash
from broden.utils.parallel import ordered_map

OBJECTS = (
    "wall", "floor", "sky", "tree", "person", "car", "building", "table", "chair", "window", "door", "grass",
    "road", "plant", "bed", "cabinet", "sofa", "shelf", "curtain", "mirror", "rug", "fence", "sidewalk", "box",
    "bottle", "book", "cushion", "pillow", "sink", "counter", "stairs", "railing", "column", "signboard", "bench",
    "flower", "vase", "clock", "ceiling", "lamp", "painting",
)
PARTS = ("wall", "head", "leg", "wheel", "window", "door", "arm", "hand", "torso", "seat", "back", "drawer",
         "handle", "shade", "pane")
SUBPARTS = ("eye", "nose", "mouth", "hair", "knob", "pane")
MATERIALS = ("wood", "brick", "glass", "fabric", "tile", "stone", "paper", "painted", "plastic-opaque", "metal")
SCENES = ("kitchen-s", "street-s", "bathroom-s", "bedroom-s")
TEXTURES = ("banded", "striped", "dotted", "chequered", "zigzagged")
SYNS = {"person": ("individual", "someone"), "car": ("auto", "automobile"), "rug": ("carpet",),
        "plant": ("flora", "plant life"), "fabric": ("cloth", "textile")}
# Labels >= 256 need the PNG's G channel; the rest are numbered densely after the 11 colors.
HIGH_NUMBERS = {"ceiling": 257, "metal": 260, "pane": 270, "bedroom-s": 280, "zigzagged": 290, "painting": 513}


def _numbering() -> dict[str, int]:
    numbers = {color_label_name(i): i + 1 for i in range(len(COLOR_NAMES))}
    nxt = len(COLOR_NAMES) + 1
    for name in (*OBJECTS, *PARTS, *SUBPARTS, *MATERIALS, *SCENES, *TEXTURES):
        if name in numbers:
            continue
        if name in HIGH_NUMBERS:
            numbers[name] = HIGH_NUMBERS[name]
        else:
            numbers[name] = nxt
            nxt += 1
    return numbers


NUMBERS = _numbering()
SOURCES = ("ade20k", "pascal", "opensurfaces", "dtd")


def _downsample(label_map: np.ndarray, s: int) -> np.ndarray:
    """Nearest-neighbour, corner-aligned (scipy.ndimage.zoom order=0), as the original builder resized masks."""
    n = label_map.shape[0]
    idx = np.rint(np.arange(s) * (n - 1) / max(s - 1, 1)).astype(np.int64)
    return label_map[np.ix_(idx, idx)]


def _ellipse(rng: np.random.Generator, size: int, box=None) -> tuple[np.ndarray, tuple[slice, slice]]:
    """A random filled ellipse inside ``box`` (default: the image): its mask and the slices of its bounding box."""
    y0, x0, y1, x1 = box if box is not None else (0, 0, size, size)
    cy, cx = rng.uniform(y0, y1), rng.uniform(x0, x1)
    ry = rng.uniform(0.08, 0.35) * max(y1 - y0, 8)
    rx = rng.uniform(0.08, 0.35) * max(x1 - x0, 8)
    ys = slice(max(int(cy - ry), 0), min(int(cy + ry) + 1, size))
    xs = slice(max(int(cx - rx), 0), min(int(cx + rx) + 1, size))
    yy, xx = np.ogrid[ys, xs]
    mask = np.zeros((size, size), bool)
    mask[ys, xs] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return mask, (ys, xs)


def _paint(image: np.ndarray, mask: np.ndarray, where: tuple[slice, slice], rng: np.random.Generator) -> None:
    sub, m = image[where], mask[where]
    sub[m] = 0.35 * sub[m] + 0.65 * rng.uniform(0, 255, 3)


def _box(where: tuple[slice, slice]) -> tuple[int, int, int, int]:
    return where[0].start, where[1].start, where[0].stop, where[1].stop


def _stem(source: str, i: int) -> str:
    if source == "ade20k":
        return f"ADE_train_{i + 1:08d}"
    if source == "pascal":
        return f"2008_{i + 2:06d}"
    if source == "opensurfaces":
        return f"{10000 + 7 * i}"
    return f"{TEXTURES[i % len(TEXTURES)]}_{i + 1:04d}"


def _make_image(i: int, size: int, seed: int, objects_per_image: int):
    """One image: its JPEG bytes, label maps per pixel category (lists of layers, full size) and image labels."""
    rng = np.random.default_rng([seed, i])
    source = SOURCES[i % len(SOURCES)]
    small = rng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
    image = np.asarray(Image.fromarray(small).resize((size, size), Image.BILINEAR), np.float32).copy()
    pixel: dict[str, list[np.ndarray]] = {}
    image_labels: dict[str, list[int]] = {}
    if source in ("ade20k", "pascal"):
        obj = np.full((size, size), NUMBERS["wall" if rng.random() < 0.6 else "sky"], np.int32)
        part_layers = (2, 1, 0)[(i // len(SOURCES)) % 3] if source == "ade20k" else 1
        parts = [np.zeros((size, size), np.int32) for _ in range(part_layers)]
        for k in range(objects_per_image):
            m, where = _ellipse(rng, size)
            # the first object is painting (513), lamp or ceiling (257), so the G channel is used; the first part is
            # "wall", a label that is both an object and a part
            obj[m] = NUMBERS[OBJECTS[-1 - i % 3] if k == 0 else OBJECTS[rng.integers(len(OBJECTS))]]
            _paint(image, m, where, rng)
            if parts and (k == 0 or rng.random() < 0.8):
                pm, pwhere = _ellipse(rng, size, _box(where))
                pm &= m
                parts[0][pm] = NUMBERS["wall" if k == 0 else PARTS[rng.integers(len(PARTS))]]
                _paint(image, pm, pwhere, rng)
                if len(parts) > 1:
                    sm, _ = _ellipse(rng, size, _box(pwhere))
                    sm &= pm
                    parts[1][sm] = NUMBERS[SUBPARTS[rng.integers(len(SUBPARTS))]]
        pixel["object"] = [obj]
        if parts:
            pixel["part"] = parts
        if source == "ade20k":
            # a real scene, a scene filtered out by the builder (0), an unlabeled scene (empty cell)
            choice = (i // len(SOURCES)) % 4
            image_labels["scene"] = [[NUMBERS["kitchen-s"]], [0], [], [NUMBERS["bedroom-s"]]][choice]
            if choice in (0, 3) and rng.random() < 0.5:
                image_labels["scene"] = [NUMBERS[SCENES[rng.integers(len(SCENES))]]]
    elif source == "opensurfaces":
        mat = np.zeros((size, size), np.int32)  # OpenSurfaces leaves much of a photo unlabeled
        for k in range(max(2, objects_per_image // 2)):
            m, where = _ellipse(rng, size)
            mat[m] = NUMBERS["metal" if k == 0 else MATERIALS[rng.integers(len(MATERIALS))]]
            _paint(image, m, where, rng)
        pixel["material"] = [mat]
    else:
        period = rng.uniform(6, 20)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        image += (40 * np.sin(xx / period + yy / (2 * period)))[..., None]
        first = TEXTURES[i % len(TEXTURES)]
        extra = [TEXTURES[(i // len(TEXTURES) + 1) % len(TEXTURES)]] if (i // len(SOURCES)) % 2 == 0 else []
        image_labels["texture"] = [NUMBERS[t] for t in dict.fromkeys([first, *extra])]
    image += rng.normal(0, 13, image.shape)
    rgb = np.clip(image, 0, 255).astype(np.uint8)
    pixel["color"] = [color_index_map(rgb).astype(np.int32) + 1]  # color label number = index + 1
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=75)
    return source, _stem(source, i), buf.getvalue(), pixel, image_labels


def _write_png(path: Path, label_map: np.ndarray) -> None:
    rgb = np.zeros(label_map.shape + (3,), np.uint8)
    rgb[..., 0] = label_map % 256
    rgb[..., 1] = label_map // 256
    Image.fromarray(rgb).save(path, format="PNG")


def _write_image(job: tuple[Path, int, int, int, int]) -> tuple[list, dict[tuple[str, int], tuple[int, float]]]:
    """Generate and write image ``i`` with its label PNGs; return its index.csv row and label statistics."""
    images_dir, i, size, seed, objects_per_image = job
    seg = size // 2
    source, stem, jpeg, pixel, image_labels = _make_image(i, size, seed, objects_per_image)
    rel = f"{source}/{stem}"
    (images_dir / f"{rel}.jpg").write_bytes(jpeg)
    cells = {c: "" for c, _ in BRODEN_CATEGORIES}
    stats: dict[tuple[str, int], tuple[int, float]] = {}
    for cat, layers in pixel.items():
        small = [_downsample(lm, seg) for lm in layers]
        names = [f"{rel}_{cat}.png"] if len(small) == 1 else [f"{rel}_{cat}_{k}.png" for k in range(1, len(small) + 1)]
        for name, lm in zip(names, small):
            _write_png(images_dir / name, lm)
        cells[cat] = ";".join(names)
        stack = np.stack(small)
        for lab in np.unique(stack):
            if lab:
                stats[(cat, int(lab))] = (1, float(np.any(stack == lab, axis=0).mean()))
    for cat, labs in image_labels.items():
        cells[cat] = ";".join(str(n) for n in labs)
        for lab in set(labs) - {0}:
            stats[(cat, lab)] = (1, 1.0)
    rel_image = f"{rel}.jpg"
    split = "train" if split_hash(rel_image) <= 0.7 else "val"
    return [rel_image, split, size, size, seg, seg, *cells.values()], stats


def write_legacy_fixture(
    root: Path, size: int = 224, num_images: int = 12, seed: int = 0, *, objects_per_image: int = 3,
    workers: int = 1,
) -> Path:
    """Write ``root/broden1_<size>/`` in the original Broden layout and return that directory.

    ``workers`` > 1 generates images in that many processes (same output, for the benchmark's 2,000 images).
    """
    out = Path(root) / f"broden1_{size}"
    images_dir = out / "images"
    for source in SOURCES:
        (images_dir / source).mkdir(parents=True, exist_ok=True)
    seg = size // 2
    cats = [name for name, _ in BRODEN_CATEGORIES]
    freq: dict[tuple[str, int], int] = defaultdict(int)
    cover: dict[tuple[str, int], float] = defaultdict(float)
    rows = []
    jobs = ((images_dir, i, size, seed, objects_per_image) for i in range(num_images))
    for row, stats in ordered_map(_write_image, jobs, workers=workers):
        rows.append((split_hash(row[0]), row))
        for key, (f, c) in stats.items():
            freq[key] += f
            cover[key] += c
    rows.sort(key=lambda r: r[0])

    names = {n: name for name, n in NUMBERS.items()}
    per_label: dict[int, dict[str, tuple[int, float]]] = defaultdict(dict)
    for (cat, lab), f in freq.items():
        per_label[lab][cat] = (f, float(f"{cover[(cat, lab)]:f}"))
    stats = [
        (n, names[n], float(f"{sum(c for _, c in per.values()):f}"), SYNS.get(names[n], ()), per)
        for n, per in sorted(per_label.items())
    ]
    table = assign_codes([Category(name, kind) for name, kind in BRODEN_CATEGORIES], stats)

    def write_csv(name: str, header: list[str], body: list[list]) -> None:
        with open(out / name, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(header)
            w.writerows(body)

    write_csv("index.csv", ["image", "split", "ih", "iw", "sh", "sw", *cats], [r for _, r in rows])
    write_csv("label.csv", ["number", "name", "category", "frequency", "coverage", "syns"], [
        [lab.number, lab.name, lab.category_field(), lab.frequency, f"{lab.coverage:f}", ";".join(lab.syns)]
        for lab in table.labels
    ])
    write_csv("category.csv", ["name", "first", "last", "count", "frequency"], [
        [r["name"], r["first"], r["last"], r["count"], r["frequency"]] for r in table.category_rows()
    ])
    for cat in cats:
        write_csv(f"c_{cat}.csv", ["code", "number", "name", "frequency", "coverage"], [
            [lab.categories[cat].code, lab.number, lab.name, lab.categories[cat].frequency,
             f"{lab.categories[cat].coverage:f}"]
            for lab in table.in_category(cat)
        ])
    with open(out / "syns.txt", "w") as f:
        for lab in table.labels:
            f.write(f"name: {lab.name}\n")
            for cat, m in lab.categories.items():
                f.write(f"fixture/{cat}#{lab.number}: {m.frequency}, ({';'.join((lab.name, *lab.syns))})\n")
            f.write("\n")
    (out / "README.txt").write_text(
        f"broden1_{size}: a synthetic Broden fixture in the original layout ({num_images} images, seed {seed}).\n"
        f"Images are {size}x{size}; label maps are {seg}x{seg} RGB PNGs with label = R + 256*G.\n"
        "index.csv lists each image with its split, sizes and one column per category.\n"
    )
    return out
