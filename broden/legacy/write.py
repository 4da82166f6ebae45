"""Write a Broden dataset back in the original release layout, for tools that read ``broden1_224/`` directly.

Output: ``index.csv`` (``image,split,ih,iw,sh,sw`` then the categories in ``category.csv`` order), ``label.csv``,
``category.csv``, ``c_<category>.csv``, ``README.txt`` and ``images/`` with the JPEG bytes unchanged and one RGB
label PNG (label = R + 256*G) per category layer: ``<stem>_<cat>.png`` for one layer, ``<stem>_<cat>_<k>.png``
(k from 1) for several. Converting the result back gives a dataset with the same fingerprint.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from broden.dataset import Broden, decode_row, load
from broden.errors import BrodenError
from broden.labels import LabelTable
from broden.masks import label_map_to_rgb
from broden.utils import atomic
from broden.utils.parallel import choose_workers, chunked, ordered_map
from broden.utils.progress import track

CHUNK_ROWS = 32


def _float(x: float) -> str:
    """``%f`` as the original files print it, unless that loses precision (then the shortest exact form)."""
    text = f"{x:f}"
    return text if float(text) == x else repr(x)


def _write_csv(path: Path, header: list[str], rows: Iterator[list[Any]] | list[list[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    atomic.write_text(path, buf.getvalue())


def write_label_files(labels: LabelTable, out: Path) -> None:
    """label.csv, category.csv and one c_<category>.csv per category, in the original columns."""
    _write_csv(out / "label.csv", ["number", "name", "category", "frequency", "coverage", "syns"], [
        [lab.number, lab.name, lab.category_field(), lab.frequency, _float(lab.coverage), ";".join(lab.syns)]
        for lab in sorted(labels.labels, key=lambda lab: lab.number)
    ])
    _write_csv(out / "category.csv", ["name", "first", "last", "count", "frequency"], [
        [r["name"], r["first"], r["last"], r["count"], r["frequency"]] for r in labels.category_rows()
    ])
    for cat in labels.category_names:
        _write_csv(out / f"c_{cat}.csv", ["code", "number", "name", "frequency", "coverage"], [
            [lab.categories[cat].code, lab.number, lab.name, lab.categories[cat].frequency,
             _float(lab.categories[cat].coverage)]
            for lab in labels.in_category(cat)
        ])


def _safe_stem(row_id: str) -> PurePosixPath:
    path = PurePosixPath(row_id)
    if not row_id or path.is_absolute() or ".." in path.parts:
        raise BrodenError(f"row {row_id!r}: id is not a relative path like 'ade20k/x.jpg'; cannot export it")
    return path.with_suffix("")


@dataclass
class _Chunk:
    images: Path
    rows: list[dict[str, Any]]
    categories: list[str]
    pixel: list[str]
    image: list[str]


def _export_chunk(chunk: _Chunk) -> list[list[Any]]:
    """Worker: write the JPEG and label PNGs of each row; return its index.csv row."""
    from PIL import Image

    out = []
    for row in chunk.rows:
        sample = decode_row(row, chunk.pixel, chunk.pixel, chunk.image)
        stem = _safe_stem(sample.id)
        (chunk.images / stem.parent).mkdir(parents=True, exist_ok=True)
        (chunk.images / sample.id).write_bytes(sample.image_bytes)
        cells = {}
        for cat in chunk.pixel:
            maps = sample.pixel[cat]
            if len(maps) == 1:
                names = [f"{stem}_{cat}.png"]
            else:
                names = [f"{stem}_{cat}_{k}.png" for k in range(1, len(maps) + 1)]
            for name, label_map in zip(names, maps):
                Image.fromarray(label_map_to_rgb(label_map)).save(chunk.images / name, format="PNG")
            cells[cat] = ";".join(names)
        for cat in chunk.image:
            cells[cat] = ";".join(str(n) for n in sample.image_labels[cat])
        out.append([sample.id, sample.split, sample.height, sample.width, sample.seg_height, sample.seg_width]
                   + [cells[c] for c in chunk.categories])
    return out


def _readme(ds: Broden) -> str:
    text = ds.meta.get("legacy_readme")
    if text:
        return text
    return (
        f"{ds.meta.get('name', ds.path.name)}: Broden in the original NetDissect layout, exported by "
        f"{ds.meta.get('created_by', 'broden')} from a dataset with fingerprint {ds.fingerprint}.\n"
        "index.csv: image,split,ih,iw,sh,sw and one column per category (PNG paths relative to images/, or label\n"
        "numbers for image-level categories). Label PNGs encode label = R + 256*G. label.csv, category.csv and\n"
        "c_<category>.csv describe the labels.\n"
    )


def export_legacy(dataset: Path | Broden, out: Path, *, workers: int | None = None) -> Path:
    """Write ``dataset`` (a path or a loaded :class:`Broden`) in the legacy layout at ``out``; returns ``out``."""
    ds = dataset if isinstance(dataset, Broden) else load(dataset)
    out = Path(out)
    categories = ds.labels.category_names
    workers = choose_workers(workers, len(ds), min_items=200) if len(ds) > CHUNK_ROWS else 1
    with atomic.atomic_path(out, is_dir=True) as tmp:
        images = tmp / "images"
        images.mkdir(parents=True)
        chunks = (
            _Chunk(images, rows, categories, ds.pixel_categories, ds.image_categories)
            for rows in chunked(ds.iter_rows(), CHUNK_ROWS)
        )
        index_rows = []
        results = ordered_map(_export_chunk, chunks, workers=workers)
        for result in track(results, f"export {out.name}", total=len(ds), advance_by=len):
            index_rows.extend(result)
        _write_csv(tmp / "index.csv", ["image", "split", "ih", "iw", "sh", "sw", *categories], index_rows)
        write_label_files(ds.labels, tmp)
        atomic.write_text(tmp / "README.txt", _readme(ds))
    return out
