"""Read the original Broden release layout (``broden1_224/`` etc.) and convert it, losslessly, to a Broden dataset.

The legacy layout (see docs/broden-format.md §2): ``index.csv`` with one row per
image (``image,split,ih,iw,sh,sw`` then one column per category, in any order, read by name); a category cell is
empty, a ``;``-joined list of label PNGs (one per layer, label = R + 256*G) or a ``;``-joined list of global label
numbers (scene, texture; a literal ``0`` marks a label the builder filtered out and is kept). ``label.csv``,
``category.csv`` and ``c_<category>.csv`` give the label table. JPEG bytes are kept as they are; each label map
becomes one RLE per (category, layer, label).

PNG decoding and RLE encoding run in a process pool over chunks of rows; rows are written in ``index.csv`` order by
the main process.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from broden.dataset import Broden, decode_image, encode_row, write_dataset
from broden.errors import BrodenError
from broden.labels import BRODEN_CATEGORIES, Category, Label, LabelTable, Membership
from broden.masks import label_map_from_rgb
from broden.utils.parallel import choose_workers, chunked, ordered_map
from broden.utils.progress import track
from broden.version import __version__

INDEX_FIXED = ("image", "split", "ih", "iw", "sh", "sw")
CHUNK_ROWS = 32
RE_EXTRACT = "re-extract the Broden release"
_CATEGORY_CELL = re.compile(r"^\s*([^()]+?)\s*\((\d+)\)\s*$")


def _read_csv(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, fields) rows of a legacy CSV; every row must have the header's field count."""
    if not path.is_file():
        raise BrodenError(f"{path}: missing; a legacy Broden directory has index.csv, label.csv, category.csv, c_*.csv")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise BrodenError(f"{path} line {line}: not UTF-8 text (byte "
                          f"{raw[exc.start]:#04x}); the release's CSVs are UTF-8: re-extract it or convert the file "
                          "to UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise BrodenError(f"{path}: empty file; re-download or re-extract the Broden release")
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise BrodenError(f"{path}: header lacks column {missing[0]!r} (has {','.join(header)})")
    rows = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise BrodenError(
                f"{path} line {reader.line_num}: {len(row)} fields, the header has {len(header)}; "
                "the file is damaged, re-extract it"
            )
        rows.append((reader.line_num, row))
    return header, rows


def _number(path: Path, line: int, column: str, text: str, kind=int):
    try:
        return kind(text)
    except ValueError:
        raise BrodenError(f"{path} line {line}: column {column!r} is {text!r}, expected a number") from None


def read_label_table(src: Path, kinds: dict[str, str]) -> LabelTable:
    """The label table of a legacy directory: category.csv (order), label.csv (labels), c_<cat>.csv (codes, stats).

    ``kinds`` maps category name to ``pixel``/``image`` (inferred from index.csv cells); a category without any
    data keeps its Broden kind (``pixel`` if it is not a Broden category).
    """
    cat_path = src / "category.csv"
    header, rows = _read_csv(cat_path, ("name",))
    names = [row[header.index("name")] for _, row in rows]
    defaults = dict(BRODEN_CATEGORIES)
    categories = [Category(n, kinds.get(n) or defaults.get(n, "pixel")) for n in names]  # type: ignore[arg-type]

    label_path = src / "label.csv"
    header, rows = _read_csv(label_path, ("number", "name", "category", "frequency", "coverage"))
    col = {h: i for i, h in enumerate(header)}
    base: dict[int, dict[str, Any]] = {}
    for line, row in rows:
        number = _number(label_path, line, "number", row[col["number"]])
        if number in base:
            raise BrodenError(f"{label_path} line {line}: label {number} is listed twice (also line "
                              f"{base[number]['line']}); each label number may appear once")
        cell = {}
        for piece in filter(None, row[col["category"]].split(";")):
            m = _CATEGORY_CELL.match(piece)
            if not m:
                raise BrodenError(
                    f"{label_path} line {line}: category cell {row[col['category']]!r} is not cat(count);..."
                )
            cell[m.group(1)] = int(m.group(2))
        base[number] = {
            "line": line,
            "name": row[col["name"]],
            "frequency": _number(label_path, line, "frequency", row[col["frequency"]]),
            "coverage": _number(label_path, line, "coverage", row[col["coverage"]], float),
            "syns": tuple(filter(None, row[col["syns"]].split(";"))) if "syns" in col else (),
            "cell": cell,
            "members": {},
        }

    for cat in names:
        c_path = src / f"c_{cat}.csv"
        header, rows = _read_csv(c_path, ("code", "number", "frequency", "coverage"))
        col = {h: i for i, h in enumerate(header)}
        for line, row in rows:
            number = _number(c_path, line, "number", row[col["number"]])
            if number not in base:
                raise BrodenError(f"{c_path} line {line}: label {number} is not in label.csv")
            if cat in base[number]["members"]:
                raise BrodenError(f"{c_path} line {line}: label {number} is listed twice; each label may appear "
                                  "once per category")
            base[number]["members"][cat] = Membership(
                _number(c_path, line, "code", row[col["code"]]),
                _number(c_path, line, "frequency", row[col["frequency"]]),
                _number(c_path, line, "coverage", row[col["coverage"]], float),
            )

    labels = []
    for number, b in base.items():
        counts = {c: m.frequency for c, m in b["members"].items()}
        if counts != b["cell"]:
            raise BrodenError(
                f"{label_path} line {b['line']}: label {number} ({b['name']}) has categories {b['cell']} but the "
                f"c_*.csv files list {counts}; the release is inconsistent"
            )
        labels.append(Label(number, b["name"], b["frequency"], b["coverage"], b["members"], b["syns"]))
    return LabelTable(categories, labels)


@dataclass
class IndexRow:
    line: int
    image: str
    split: str
    sizes: tuple[int, int, int, int]  # ih, iw, sh, sw
    cells: dict[str, list[str]]  # category -> non-empty ';' pieces


def read_index(src: Path) -> tuple[list[str], list[IndexRow], dict[str, str]]:
    """Category columns, rows, and the kind of each category with data (``image`` if its cells hold numbers,
    ``pixel`` if they hold PNG paths)."""
    path = src / "index.csv"
    header, rows = _read_csv(path, INDEX_FIXED)
    cats = [h for h in header if h not in INDEX_FIXED]
    col = {h: i for i, h in enumerate(header)}
    out = []
    seen_kind: dict[str, tuple[str, int]] = {}
    for line, row in rows:
        cells = {}
        for c in cats:
            pieces = [p.strip() for p in row[col[c]].split(";") if p.strip()]
            if not pieces:
                continue
            kind = "image" if all(p.isdigit() for p in pieces) else "pixel"
            if kind == "pixel" and any(p.isdigit() for p in pieces):
                raise BrodenError(f"{path} line {line}: column {c!r} mixes label numbers and PNG paths")
            prev = seen_kind.setdefault(c, (kind, line))
            if prev[0] != kind:
                raise BrodenError(
                    f"{path} line {line}: column {c!r} holds {'numbers' if kind == 'image' else 'PNG paths'} "
                    f"but line {prev[1]} holds {'numbers' if prev[0] == 'image' else 'PNG paths'}"
                )
            cells[c] = pieces
        ih, iw, sh, sw = (_number(path, line, k, row[col[k]]) for k in ("ih", "iw", "sh", "sw"))
        out.append(IndexRow(line, row[col["image"]].strip(), row[col["split"]].strip(), (ih, iw, sh, sw), cells))
    return cats, out, {c: kind for c, (kind, _) in seen_kind.items()}


@dataclass
class _Chunk:
    images: Path
    index: Path
    rows: list[IndexRow]
    pixel: list[str]
    image: list[str]
    known: frozenset[int]


def _read_label_png(path: Path, where: str, shape: tuple[int, int]) -> np.ndarray:
    if not path.is_file():
        raise BrodenError(f"{where}: label map {path} is missing; re-extract the Broden release")
    arr = np.asarray(decode_image(path.read_bytes(), f"{where}: label map {path}", RE_EXTRACT))
    label_map = label_map_from_rgb(arr)
    if label_map.shape != shape:
        raise BrodenError(f"{where}: label map {path} is {label_map.shape[0]}x{label_map.shape[1]}, "
                          f"index.csv says sh,sw = {shape[0]},{shape[1]}")
    return label_map


def _convert_chunk(chunk: _Chunk) -> list[dict[str, Any]]:
    """Worker: read the JPEG bytes and label PNGs of a chunk of index rows; return rows in the dataset schema.

    Every image is decoded in full (the bytes are kept unchanged), so a truncated JPEG is refused here rather
    than found by the first command that reads the dataset."""
    out = []
    for r in chunk.rows:
        where = f"{chunk.index} line {r.line} ({r.image})"
        ih, iw, sh, sw = r.sizes
        image_path = chunk.images / r.image
        if not image_path.is_file():
            raise BrodenError(f"{where}: image {image_path} is missing; re-extract the Broden release")
        data = image_path.read_bytes()
        size = decode_image(data, f"{where}: image {image_path}", RE_EXTRACT).size
        if size != (iw, ih):
            raise BrodenError(f"{where}: image is {size[1]}x{size[0]}, index.csv says ih,iw = {ih},{iw}")
        label_maps = {cat: [_read_label_png(chunk.images / rel, where, (sh, sw)) for rel in r.cells.get(cat, [])]
                      for cat in chunk.pixel}
        image_labels = {cat: [int(p) for p in r.cells.get(cat, [])] for cat in chunk.image}
        for cat, nums in image_labels.items():
            unknown = [n for n in nums if n != 0 and n not in chunk.known]
            if unknown:
                raise BrodenError(f"{where}: column {cat!r} holds label {unknown[0]}, which label.csv lacks")
        row = encode_row(
            id=r.image, image={"bytes": data, "path": None}, split=r.split, source=r.image.split("/", 1)[0],
            size=(ih, iw), seg_size=(sh, sw), label_maps=label_maps, image_labels=image_labels,
        )
        masks = row["masks"]
        for cat, layer, label in zip(masks["category"], masks["layer"], masks["label"]):
            if label not in chunk.known:
                rel = r.cells[cat][layer]
                raise BrodenError(f"{where}: label map {rel} holds label {label}, which label.csv lacks")
        out.append(row)
    return out


#: The converter's name in a dataset's provenance (with the package version).
CONVERTER = "broden.legacy"


def convert_legacy(src: Path, out: Path, *, workers: int | None = None,
                   archive: dict[str, Any] | None = None) -> Broden:
    """Convert the legacy Broden directory ``src`` (holding index.csv) to a Broden dataset at ``out``.

    Lossless: JPEG bytes unchanged, every label map as RLE masks, image-level labels including a literal 0, the
    label table, and index.csv's row order. ``out`` appears only when complete.

    The dataset's metadata records its ``provenance``: the ``archive`` it was unpacked from when the caller knows it
    (``{"name", "bytes", "sha256", "md5"}``, as ``broden download`` passes it) and the converter (this function and
    the package version), so every result scored on it says where its data came from.
    """
    src = Path(src)
    if not (src / "index.csv").is_file():
        hint = [p.parent.name for p in src.glob("*/index.csv")]
        more = f" (did you mean {src / hint[0]}?)" if hint else ""
        raise BrodenError(f"{src}: no index.csv here; pass the legacy Broden directory, e.g. broden1_224/{more}")
    cats, rows, kinds = read_index(src)
    table = read_label_table(src, kinds)
    unknown = [c for c in cats if c not in table.category_names]
    if unknown:
        raise BrodenError(f"{src / 'index.csv'}: column {unknown[0]!r} is not a category of category.csv")
    pixel = [c.name for c in table.categories if c.kind == "pixel"]
    image = [c.name for c in table.categories if c.kind == "image"]
    known = frozenset(lab.number for lab in table.labels)
    chunks = (
        _Chunk(src / "images", src / "index.csv", part, pixel, image, known) for part in chunked(rows, CHUNK_ROWS)
    )
    workers = choose_workers(workers, len(rows), min_items=500) if len(rows) > CHUNK_ROWS else 1

    def converted() -> Iterator[dict[str, Any]]:
        for result in ordered_map(_convert_chunk, chunks, workers=workers):
            yield from result

    readme = src / "README.txt"
    # the original builder counted label statistics on full-resolution source masks (see broden.validate)
    meta = {"name": src.name, "converted_from": "legacy Broden layout", "label_statistics": "source-resolution",
            "provenance": {"archive": archive, "converter": {"name": CONVERTER, "version": __version__}}}
    if readme.is_file():
        meta["legacy_readme"] = readme.read_text(encoding="utf-8", errors="replace")
    return write_dataset(out, track(converted(), f"convert {src.name}", total=len(rows)), table, meta=meta)
