"""Concept image sets from Broden's labels, in the layout TCAV (captum's ``Concept``/``TCAV`` tutorial, the original
tcav package) reads: one folder of images per concept, plus random negatives, and a manifest.

    OUT/<concept>/<image>.jpg    images showing the concept (all of its categories: ``wall`` as object and part)
    OUT/random/<image>.jpg       with ``negatives`` > 0: images of the split showing none of the concepts
    OUT/manifest.json            dataset and fingerprint, options, and per concept its label number, categories and
                                 images (file, id, coverage)

An image is a positive for a concept when the concept's label covers at least ``min_coverage`` of it (pixel
categories: the union of its masks over every layer, as a share of the mask's pixels; image-level categories such
as scene and texture cover the whole image). Files are the dataset's JPEG bytes unchanged, or with ``crop`` the
bounding box of the concept's region at image resolution with the pixels outside the region set to grey (128), so
the set shows the concept and little else. Negatives are drawn with ``seed`` from the rest of the split.
"""

from __future__ import annotations

import difflib
import io
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from broden.dataset import Broden, open_image
from broden.errors import BrodenError
from broden.masks import decode_binary
from broden.utils import atomic
from broden.utils.filenames import distinct_names, safe_name
from broden.utils.progress import track

MANIFEST = "manifest.json"
NEGATIVES = "random"
GREY = 128


def resolve_labels(ds: Broden, names: Sequence[str]) -> list[int]:
    """Label numbers of ``names`` (label names, or numbers written as digits); an unknown one is a one-line error."""
    by_name = {lab.name: lab.number for lab in ds.labels.labels}
    out = []
    for name in names:
        if name in by_name:
            out.append(by_name[name])
        elif name.isdigit() and int(name) in ds.labels:
            out.append(int(name))
        else:
            near = difflib.get_close_matches(name, by_name, n=4, cutoff=0.6)
            hint = f" (did you mean {', '.join(near)}?)" if near else "; 'broden info' lists the labels"
            raise BrodenError(f"concept {name!r}: no such label in {ds.path}{hint}")
    if len(set(out)) != len(out):
        raise BrodenError("concepts: a label is given twice; name each concept once")
    return out


def _region(row: dict[str, Any], number: int, image_categories: Sequence[str]) -> np.ndarray | None:
    """The (seg_h, seg_w) bool region of label ``number`` in ``row``; all True for an image-level label."""
    sh, sw = int(row["seg_height"]), int(row["seg_width"])
    if any(number in row[c] for c in image_categories):
        return np.ones((sh, sw), bool)
    masks = row["masks"]
    rles = [r for r, lab in zip(masks["rle"], masks["label"]) if lab == number]
    return decode_binary(rles, sh, sw).any(axis=0) if rles else None


def _crop(data: bytes, rid: str, region: np.ndarray) -> bytes:
    """JPEG of the bounding box of ``region`` (upsampled to the image) with the outside set to grey."""
    from PIL import Image

    img = open_image(data, rid)
    mask = np.asarray(Image.fromarray(region.astype(np.uint8) * 255).resize(img.size, Image.NEAREST)) > 0
    ys, xs = np.nonzero(mask)
    pixels = np.asarray(img).copy()
    pixels[~mask] = GREY
    box = pixels[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
    buf = io.BytesIO()
    Image.fromarray(box).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def export_concepts(
    dataset: Broden,
    concepts: Sequence[str],
    out: str | Path,
    *,
    split: str | None = "train",
    min_coverage: float = 0.0,
    crop: bool = False,
    negatives: int = 0,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the concept folders of ``concepts`` (label names or numbers) from ``split`` (None: both) of
    ``dataset`` to ``out`` (replaced only when complete) as described in the module docstring; returns the
    manifest."""
    if not 0.0 <= min_coverage <= 1.0:
        raise BrodenError(f"--min-coverage {min_coverage}: give a share of the image between 0 and 1")
    if negatives < 0:
        raise BrodenError(f"--negatives {negatives}: give a number of images >= 0")
    numbers = resolve_labels(dataset, concepts)
    folders = distinct_names([dataset.labels.name(n) for n in numbers] + [NEGATIVES], default="concept")
    splits = dataset.rows["split"]
    indices = [i for i, s in enumerate(splits) if split is None or s == split]
    if not indices:
        raise BrodenError(f"--split {split}: {dataset.path} has no images in that split")
    positives: dict[int, list[dict[str, Any]]] = {n: [] for n in numbers}
    others: list[int] = []
    out = Path(out)
    with atomic.atomic_path(out, is_dir=True) as tmp:
        for n in numbers:
            (tmp / folders[dataset.labels.name(n)]).mkdir(parents=True)
        rows = dataset.iter_rows(indices=indices)
        for index, row in zip(indices, track(rows, f"concepts from {dataset.path.name}", total=len(indices))):
            hit = False
            for n in numbers:
                region = _region(row, n, dataset.image_categories)
                coverage = float(region.mean()) if region is not None else 0.0
                if coverage <= 0.0 or coverage < min_coverage:
                    continue
                hit = True
                data = row["image"]["bytes"]
                name = safe_name(row["id"].replace("/", "__"))
                folder = folders[dataset.labels.name(n)]
                (tmp / folder / name).write_bytes(_crop(data, row["id"], region) if crop else data)
                positives[n].append({"file": f"{folder}/{name}", "id": row["id"], "coverage": round(coverage, 6)})
            if not hit:
                others.append(index)
        chosen = sorted(random.Random(seed).sample(others, min(negatives, len(others))))
        negative_files = []
        if chosen:
            (tmp / folders[NEGATIVES]).mkdir()
            for row in dataset.iter_rows(indices=chosen):
                name = safe_name(row["id"].replace("/", "__"))
                (tmp / folders[NEGATIVES] / name).write_bytes(row["image"]["bytes"])
                negative_files.append({"file": f"{folders[NEGATIVES]}/{name}", "id": row["id"]})
        manifest = {
            "dataset": str(dataset.path),
            "fingerprint": dataset.fingerprint,
            "split": split or "all",
            "min_coverage": min_coverage,
            "crop": crop,
            "seed": seed,
            "concepts": [
                {"name": dataset.labels.name(n), "folder": folders[dataset.labels.name(n)], "number": n,
                 "categories": sorted(dataset.labels[n].categories), "images": positives[n]}
                for n in numbers
            ],
            "negatives": {"folder": folders[NEGATIVES], "requested": negatives, "images": negative_files},
        }
        atomic.write_json(tmp / MANIFEST, manifest)
    return manifest
