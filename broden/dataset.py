"""Broden as a Hugging Face dataset repository: the row schema, the writer, the loader and fast mask decoding.

On disk a Broden dataset is a folder laid out as a Hub dataset repository (docs/broden-format.md §1)::

    README.md                         dataset card: YAML with configs, dataset_info (features, splits), licence
    broden.json                       format, sizes, provenance and the content fingerprint
    data/train-00000-of-00001.parquet one or more shards per split (<= 500 MB each)
    data/val-00000-of-00001.parquet
    labels/labels.parquet             the label table, the ``labels`` config

so ``datasets.load_dataset(DIR)`` gives ``DatasetDict(train, val)`` (streaming too) and ``load_dataset(DIR,
"labels")`` the label table. One row per image::

    index       position in the dataset's canonical order, 0..N-1 across both splits (the scoring order and the
                order the fingerprint hashes; the rows of each split are stored in increasing index)
    id          legacy relative path, e.g. "ade20k/ADE_train_00000001.jpg" (stable, unique)
    image       the original JPEG bytes, never re-encoded
    source      source dataset ("ade20k", "pascal", "opensurfaces", "dtd", ...)
    height, width, seg_height, seg_width
    <category>  for each image-level category (scene, texture): list of label numbers, ClassLabel named by the table
    layers      {pixel category: number of label-map layers} (0 = no map for that category)
    masks       {category, layer, label, rle}: parallel lists, one COCO RLE (compressed counts, column-major, of
                seg_height x seg_width) per (category, layer, label); ``category`` is a ClassLabel of the pixel
                categories, ``label`` a ClassLabel whose index is the label number

The split of a row is the split it is stored in; :class:`Broden` puts the rows of both splits back in canonical
order with a ``split`` column, as the fingerprint and the scorer see them.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from broden.card import dataset_card
from broden.errors import BrodenError
from broden.labels import LabelTable, label_features
from broden.masks import decode_label_maps, encode_label_map
from broden.utils import atomic
from broden.version import __version__

DATASET_FORMAT = "broden-hub/1"
#: The format of the first releases of this package: one ``save_to_disk`` folder, read by ``broden migrate``.
SAVE_TO_DISK_FORMAT = "broden-hf/1"
SPLITS = ("train", "val")
#: Ids compared at a time by :meth:`Broden.positions`.
ID_BLOCK = 8192
#: Image sizes of the Broden releases (broden1_224, broden1_227, broden1_384); masks are half the image size.
IMAGE_SIZES = (224, 227, 384)
META_FILE = "broden.json"
LABELS_FILE = "labels/labels.parquet"
CARD_FILE = "README.md"
DATA_DIR = "data"
#: Rows per parquet row group: a streaming reader holds one group at a time (the Hub uses 100 for image data).
ROW_GROUP_ROWS = 100
MAX_SHARD_BYTES = 500 * 10**6


def row_features(labels: LabelTable):
    """The ``datasets.Features`` of a stored Broden row for this label table (no ``split``: the file says it)."""
    from datasets import ClassLabel, Features, Image, List, Value

    names = labels.class_names()
    pixel = [c.name for c in labels.categories if c.kind == "pixel"]
    cols: dict[str, Any] = {
        "index": Value("int64"),
        "id": Value("string"),
        "image": Image(),
        "source": Value("string"),
        "height": Value("int32"),
        "width": Value("int32"),
        "seg_height": Value("int32"),
        "seg_width": Value("int32"),
    }
    for c in labels.categories:
        if c.kind == "image":
            cols[c.name] = List(ClassLabel(names=names))
    cols["layers"] = {c: Value("int8") for c in pixel}
    cols["masks"] = {
        "category": List(ClassLabel(names=pixel)),
        "layer": List(Value("int8")),
        "label": List(ClassLabel(names=names)),
        "rle": List(Value("string")),
    }
    return Features(cols)


def _row_digest_payload(row: dict[str, Any], image_categories: Sequence[str], mask_categories: Sequence[str]) -> bytes:
    image = row["image"]
    img_bytes = image["bytes"] if isinstance(image, dict) else image
    masks = row["masks"]
    payload = {
        "id": row["id"],
        "split": row["split"],
        "source": row["source"],
        "size": [row["height"], row["width"], row["seg_height"], row["seg_width"]],
        "image_sha256": hashlib.sha256(img_bytes).hexdigest(),
        "image_labels": {c: list(row[c]) for c in image_categories},
        "layers": dict(sorted(row["layers"].items())),
        "masks": {
            "category": [mask_categories[c] for c in masks["category"]],
            **{k: list(masks[k]) for k in ("layer", "label", "rle")},
        },
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Fingerprinter:
    """Streaming sha256 over the label table and the rows in canonical order: names exactly the data a result was
    scored on, whatever the container (the first ``save_to_disk`` format hashes to the same value).

    Rows are given as stored (mask categories as ClassLabel indices) with their ``split``.
    """

    def __init__(self, labels: LabelTable) -> None:
        self._h = hashlib.sha256(labels.canonical_bytes())
        self._image_categories = [c.name for c in labels.categories if c.kind == "image"]
        self._mask_categories = [c.name for c in labels.categories if c.kind == "pixel"]

    def add(self, row: dict[str, Any]) -> None:
        payload = _row_digest_payload(row, self._image_categories, self._mask_categories)
        self._h.update(len(payload).to_bytes(8, "big"))
        self._h.update(payload)

    def hexdigest(self) -> str:
        return "sha256:" + self._h.hexdigest()


def encode_row(
    *,
    id: str,
    image: bytes | dict[str, Any],
    split: str,
    source: str,
    size: tuple[int, int],
    seg_size: tuple[int, int],
    label_maps: Mapping[str, Sequence[np.ndarray]],
    image_labels: Mapping[str, Sequence[int]],
) -> dict[str, Any]:
    """One row of the schema above from an image and its labels: the one encoder of convert, build and sample.

    ``label_maps`` maps each pixel category, in the label table's order, to its label-map layers ((seg_h, seg_w)
    arrays of global label numbers, 0 = unlabeled); each layer becomes one COCO RLE per label present, in
    increasing label order. ``image_labels`` maps each image-level category to its label numbers, kept as given
    (a legacy literal 0 included). ``size`` and ``seg_size`` are (height, width).
    """
    masks: dict[str, list] = {"category": [], "layer": [], "label": [], "rle": []}
    layers: dict[str, int] = {}
    for category, maps in label_maps.items():
        layers[category] = len(maps)
        for k, label_map in enumerate(maps):
            for label, rle in encode_label_map(label_map):
                masks["category"].append(category)
                masks["layer"].append(k)
                masks["label"].append(label)
                masks["rle"].append(rle)
    row: dict[str, Any] = {
        "id": id,
        "image": image,
        "split": split,
        "source": source,
        "height": size[0],
        "width": size[1],
        "seg_height": seg_size[0],
        "seg_width": seg_size[1],
    }
    for category, numbers in image_labels.items():
        row[category] = [int(n) for n in numbers]
    row["layers"] = layers
    row["masks"] = masks
    return row


class _SplitWriter:
    """Parquet shards of one split, ``data/<split>-NNNNN.parquet``, a new one once a shard holds ``max_bytes``."""

    def __init__(self, folder: Path, split: str, features, max_bytes: int) -> None:
        self.folder, self.split, self.features, self.max_bytes = folder, split, features, max_bytes
        self.shards: list[Path] = []
        self.num_examples = self.num_bytes = 0
        self._writer = None
        self._bytes = 0

    def write(self, example: dict[str, Any], approx_bytes: int) -> None:
        from datasets.arrow_writer import ParquetWriter

        if self._writer is None:
            self.shards.append(self.folder / f"{self.split}-{len(self.shards):05d}.parquet")
            self._writer = ParquetWriter(features=self.features, path=str(self.shards[-1]),
                                         writer_batch_size=ROW_GROUP_ROWS)
        self._writer.write(example)
        self._bytes += approx_bytes
        if self._bytes >= self.max_bytes:
            self.close()

    def close(self) -> None:
        if self._writer is not None:
            examples, size = self._writer.finalize()
            self._writer.close()
            self.num_examples += examples
            self.num_bytes += size
            self._writer, self._bytes = None, 0

    def finish(self) -> list[str]:
        """Close and give the shards their Hub names ``<split>-NNNNN-of-MMMMM.parquet``; their repo paths."""
        self.close()
        out = []
        for i, path in enumerate(self.shards):
            final = path.with_name(f"{self.split}-{i:05d}-of-{len(self.shards):05d}.parquet")
            os.replace(path, final)
            out.append(f"{DATA_DIR}/{final.name}")
        return out


def _class_codes(row: dict[str, Any], categories: Mapping[str, int], image_categories: Sequence[str],
                 max_number: int) -> dict[str, Any]:
    """``row`` with its mask categories as ClassLabel indices, every label number checked to fit the label
    ClassLabel (-1..max, as ``datasets`` allows). Done here because ``Features.encode_example`` looks only at the
    first element of a list to decide whether the list needs encoding."""
    masks = row["masks"]
    codes = []
    for c in masks["category"]:
        code = c if isinstance(c, int) and 0 <= c < len(categories) else categories.get(c)
        if code is None:
            raise BrodenError(f"row {row['id']}: does not fit the dataset's schema (mask category {c!r} is not a "
                              f"pixel category of the label table: {', '.join(categories)})")
        codes.append(code)
    for where, numbers in [("masks", masks["label"]), *((c, row[c]) for c in image_categories)]:
        bad = [n for n in numbers if not -1 <= n <= max_number]
        if bad:
            raise BrodenError(f"row {row['id']}: does not fit the dataset's schema ({where} label {bad[0]} is "
                              f"beyond the label table's numbers 1..{max_number})")
    return {**row, "masks": {**masks, "category": codes}}


def _approx_bytes(row: dict[str, Any]) -> int:
    return len(row["image"]["bytes"]) + sum(len(r) for r in row["masks"]["rle"]) + 256


def write_table(path: Path, features, records: Iterable[dict[str, Any]]) -> tuple[int, int]:
    """Write ``records`` (already encoded) as one parquet file with ``features``; (rows, bytes)."""
    from datasets.arrow_writer import ParquetWriter

    path.parent.mkdir(parents=True, exist_ok=True)
    with ParquetWriter(features=features, path=str(path), writer_batch_size=ROW_GROUP_ROWS) as writer:
        for r in records:
            writer.write(features.encode_example(r))
        return writer.finalize()


def write_dataset(
    out: str | os.PathLike[str],
    rows: Iterable[dict[str, Any]],
    labels: LabelTable,
    *,
    meta: dict[str, Any] | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> "Broden":
    """Write ``rows`` (dicts in the row schema with their ``split``; ``image`` may be raw bytes, mask categories
    names or ClassLabel indices) in canonical order as a Broden dataset repository at ``out``.

    Each row's ``index`` is its position in ``rows`` (an ``index`` already in the row is replaced). The folder
    appears only when complete (atomic rename). Returns the loaded result.
    """
    features = row_features(labels)
    categories = {c.name: i for i, c in enumerate(c for c in labels.categories if c.kind == "pixel")}
    image_categories = [c.name for c in labels.categories if c.kind == "image"]
    fp = Fingerprinter(labels)
    sizes: set[tuple[int, int, int, int]] = set()
    seen: set[str] = set()
    sources: Counter[str] = Counter()
    with atomic.atomic_path(out, is_dir=True) as tmp:
        (tmp / DATA_DIR).mkdir(parents=True)
        writers = {s: _SplitWriter(tmp / DATA_DIR, s, features, max_shard_bytes) for s in SPLITS}
        for position, row in enumerate(rows):
            if not isinstance(row["image"], dict):
                row = {**row, "image": {"bytes": row["image"], "path": None}}
            if row["id"] in seen:
                raise BrodenError(f"row {row['id']}: duplicate image id; each image may appear once")
            seen.add(row["id"])
            if row["split"] not in writers:
                raise BrodenError(f"row {row['id']}: split {row['split']!r} is not one of {SPLITS}")
            row = _class_codes(row, categories, image_categories, labels.max_number)
            try:
                stored = features.encode_example({**row, "index": position})
            except (ValueError, TypeError, KeyError) as exc:
                raise BrodenError(f"row {row['id']}: does not fit the dataset's schema ({exc}); "
                                  "check its labels against the label table") from exc
            sources[row["source"]] += 1
            sizes.add((row["height"], row["width"], row["seg_height"], row["seg_width"]))
            fp.add({**stored, "split": row["split"]})
            writers[row["split"]].write(stored, _approx_bytes(row))
        if not seen:
            raise BrodenError(f"{out}: no images to write; check the input")
        shards = {s: w.finish() for s, w in writers.items()}
        splits = {s: {"num_examples": w.num_examples, "num_bytes": w.num_bytes, "files": shards[s]}
                  for s, w in writers.items() if w.num_examples}
        labels_rows, labels_bytes = write_table(tmp / LABELS_FILE, label_features(), labels.records())
        size = sorted(sizes)[0]
        full_meta = {
            "format": DATASET_FORMAT,
            "fingerprint": fp.hexdigest(),
            "num_images": len(seen),
            "splits": {s: w.num_examples for s, w in writers.items()},
            "image_size": [size[0], size[1]] if len(sizes) == 1 else None,
            "seg_size": [size[2], size[3]] if len(sizes) == 1 else None,
            "categories": [{"name": c.name, "kind": c.kind} for c in labels.categories],
            "num_labels": len(labels),
            "created_by": _created_by(),
        }
        full_meta.update(meta or {})
        atomic.write_json(tmp / META_FILE, full_meta)
        card = dataset_card(
            name=Path(out).name, meta=full_meta, labels=labels, sources=sources, features=features,
            splits=splits, label_table={"num_examples": labels_rows, "num_bytes": labels_bytes},
        )
        atomic.write_text(tmp / CARD_FILE, card)
    return load(out)


def _created_by() -> str:
    return f"broden {__version__}"


@dataclass
class Example:
    """One decoded row: image bytes, per-category label-map stacks and image-level labels."""

    id: str
    split: str
    source: str
    height: int
    width: int
    seg_height: int
    seg_width: int
    image_bytes: bytes
    pixel: dict[str, np.ndarray] = field(default_factory=dict)  # category -> (layers, sh, sw) int32
    image_labels: dict[str, list[int]] = field(default_factory=dict)  # category -> label numbers

    def image(self):
        return open_image(self.image_bytes, self.id)


def decode_image(data: bytes, name: str = "image", advice: str = "re-download or rebuild the dataset"):
    """Decode JPEG/PNG bytes fully to a PIL image (its own mode); a truncated or corrupt file, or a decompression
    bomb (more pixels than PIL's ``MAX_IMAGE_PIXELS``, about 89 million), is a one-line error ending in ``advice``."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            img.load()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BrodenError(f"{name}: image is too large to decode safely ({exc}); it is not a Broden image") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BrodenError(f"{name}: image does not decode ({exc}); {advice}") from exc
    return img


def open_image(data: bytes, name: str = "image"):
    """:func:`decode_image` converted to RGB."""
    img = decode_image(data, name)
    return img.convert("RGB") if img.mode != "RGB" else img


def decode_row(
    row: dict[str, Any],
    mask_categories: Sequence[str],
    pixel_categories: Sequence[str],
    image_categories: Sequence[str],
) -> Example:
    """Decode a raw row (as returned by ``Broden.rows[i]``) into label maps of ``pixel_categories``; vectorised.

    ``mask_categories`` are the names of the ``masks.category`` ClassLabel (every pixel category of the dataset, in
    order); ``pixel_categories`` and ``image_categories`` may be subsets of the dataset's.
    """
    sh, sw = int(row["seg_height"]), int(row["seg_width"])
    masks = row["masks"]
    cats = np.asarray(masks["category"], dtype=np.int64)
    layers = np.asarray(masks["layer"], dtype=np.int64)
    labs = np.asarray(masks["label"], dtype=np.int64)
    rles = masks["rle"]
    pixel: dict[str, np.ndarray] = {}
    for c in pixel_categories:
        n = int(row["layers"].get(c) or 0)
        sel = np.flatnonzero(cats == mask_categories.index(c))
        pixel[c] = decode_label_maps(layers[sel], labs[sel], [rles[i] for i in sel], n, sh, sw)
    image = row["image"]
    return Example(
        id=row["id"],
        split=row["split"],
        source=row["source"],
        height=int(row["height"]),
        width=int(row["width"]),
        seg_height=sh,
        seg_width=sw,
        image_bytes=image["bytes"] if isinstance(image, dict) else image,
        pixel=pixel,
        image_labels={c: [int(x) for x in row[c]] for c in image_categories},
    )


def read_meta(path: Path) -> dict[str, Any]:
    """``broden.json`` of the dataset at ``path``; a missing, unreadable or old-format one is a one-line error."""
    if not (path / META_FILE).is_file():
        raise BrodenError(
            f"{path}: not a Broden dataset (no {META_FILE}); create one with 'broden sample', 'broden download', "
            "'broden convert' or 'broden build'"
        )
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BrodenError(f"{path / META_FILE}: unreadable ({exc}); rebuild the dataset") from exc
    if not isinstance(meta, dict):
        raise BrodenError(f"{path / META_FILE}: not a JSON object; rebuild the dataset")
    if meta.get("format") == SAVE_TO_DISK_FORMAT:
        raise BrodenError(
            f"{path}: a Broden dataset in the old save_to_disk format ({SAVE_TO_DISK_FORMAT}); convert it once "
            f"with 'broden migrate {path} NEW' (same content, same fingerprint)"
        )
    if meta.get("format") != DATASET_FORMAT:
        raise BrodenError(f"{path}: dataset format {meta.get('format')!r} is not {DATASET_FORMAT}; rebuild it")
    if not isinstance(meta.get("fingerprint"), str):
        raise BrodenError(f"{path}: {META_FILE} has no fingerprint; rebuild or re-convert the dataset")
    return meta


def read_labels(path: Path, meta: Mapping[str, Any]) -> LabelTable:
    """The label table of the dataset at ``path``: the ``labels`` config's parquet file and broden.json's
    categories."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = path / LABELS_FILE
    if not where.is_file():
        raise BrodenError(f"{where}: missing; the dataset is incomplete, rebuild or re-download it")
    try:
        records = pq.read_table(where).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise BrodenError(f"{where}: does not read as parquet ({exc}); rebuild or re-download the dataset") from exc
    return LabelTable.from_records(meta.get("categories") or [], records, str(where))


def _arrow_cache_dir(path: Path) -> str:
    """Where ``datasets`` keeps the Arrow copy of the folder's shards: keyed by the folder's absolute path and each
    shard's name, size and mtime. (``datasets`` alone keys a local folder's cache by its card and file names, so a
    folder whose shards were rewritten under the same names would be read from a stale copy.)"""
    from datasets import config

    h = hashlib.sha256(str(path.resolve()).encode("utf-8"))
    for f in sorted((path / DATA_DIR).glob("*.parquet")) + [path / CARD_FILE]:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return str(Path(config.HF_DATASETS_CACHE) / "broden" / h.hexdigest()[:20])


def load_splits(path: Path, *, streaming: bool = False):
    """``datasets.load_dataset`` of the default config at ``path`` (a local folder): a ``DatasetDict`` (memory-mapped
    Arrow, prepared once in the ``datasets`` cache) or, with ``streaming``, an ``IterableDatasetDict`` read from the
    parquet shards as they are iterated. Images are left undecoded (JPEG bytes)."""
    from datasets import Image, disable_progress_bars, load_dataset
    from datasets.utils.logging import set_verbosity_error

    disable_progress_bars()  # ours are the progress bars users see
    set_verbosity_error()
    try:
        cache_dir = None if streaming else _arrow_cache_dir(path)
        dd = load_dataset(str(path), name="default", streaming=streaming, cache_dir=cache_dir)
    except Exception as exc:  # datasets raises many types for a damaged folder
        raise BrodenError(f"{path}: the parquet shards do not load ({type(exc).__name__}: {exc}); "
                          "rebuild or re-download the dataset") from exc
    return dd.cast_column("image", Image(decode=False))


class ShardReader:
    """Rows by canonical index read straight from the parquet shards, a row group at a time (nothing converted or
    copied): what ``streaming`` datasets and the scorer's ``--streaming`` read.

    Opening reads only each shard's ``index`` column, to map a canonical index to (shard, row group, offset). The
    last few row groups read are kept, so consecutive batches cost about one row-group read each. Picklable and
    fork-safe (file handles are reopened in each process), so DataLoader workers can share one.
    """

    KEEP_GROUPS = 4

    def __init__(self, files: Sequence[tuple[str, str]], filesystem=None) -> None:
        self.files = list(files)  # (split, path) in split order
        self.filesystem = filesystem
        self._pid = os.getpid()
        self._open: dict[int, Any] = {}
        self._groups: dict[tuple[int, int], Any] = {}
        indexes, group_of, offset_of, self.group_bounds = [], [], [], []
        for f in range(len(self.files)):
            handle = self._file(f)
            indexes.append(handle.read(columns=["index"]).column("index").to_numpy())
            for g in range(handle.metadata.num_row_groups):
                n = handle.metadata.row_group(g).num_rows
                self.group_bounds.append((f, g))
                group_of.append(np.full(n, len(self.group_bounds) - 1, np.int64))
                offset_of.append(np.arange(n, dtype=np.int64))
        index = np.concatenate(indexes) if indexes else np.zeros(0, np.int64)
        order = np.argsort(index, kind="stable")
        if not np.array_equal(index[order], np.arange(len(index))):
            raise BrodenError(f"{self.files[0][1] if self.files else 'the shards'}: the rows' index column is not "
                              f"0..{len(index) - 1} across the splits; rebuild or re-download the dataset")
        self.group = np.concatenate(group_of)[order] if indexes else np.zeros(0, np.int64)
        self.offset = np.concatenate(offset_of)[order] if indexes else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.group)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_open": {}, "_groups": {}}

    def _file(self, f: int):
        import pyarrow.parquet as pq

        if self._pid != os.getpid():  # a forked worker: never share the parent's file positions
            self._pid, self._open, self._groups = os.getpid(), {}, {}
        if f not in self._open:
            path = self.files[f][1]
            self._open[f] = pq.ParquetFile(self.filesystem.open(path, "rb") if self.filesystem else path)
        return self._open[f]

    def _group(self, gid: int, columns: tuple[str, ...]):
        key = (gid, columns)
        if key not in self._groups:
            f, g = self.group_bounds[gid]
            if len(self._groups) >= self.KEEP_GROUPS:
                self._groups.pop(next(iter(self._groups)))
            self._groups[key] = self._file(f).read_row_group(g, columns=list(columns))
        return self._groups[key]

    def read(self, indices: Sequence[int], columns: Sequence[str]) -> dict[str, list]:
        """Columns ``columns`` of the rows ``indices`` (canonical), as ``Dataset[...]`` gives them (a ``split``
        column may be asked for: the split of the shard the row is stored in)."""
        stored = tuple(c for c in columns if c != "split")
        idx = np.asarray(indices, np.int64)
        out: dict[str, list] = {c: [None] * len(idx) for c in columns}
        gids = self.group[idx]
        for gid in np.unique(gids):
            where = np.flatnonzero(gids == gid)
            table = self._group(int(gid), stored).take(self.offset[idx[where]])
            part = table.to_pydict()
            split = self.files[self.group_bounds[int(gid)][0]][0]
            for c in columns:
                values = part[c] if c != "split" else [split] * len(where)
                for j, v in zip(where, values):
                    out[c][j] = v
        return out


def shard_files(path: Path) -> list[tuple[str, str]]:
    """``(split, file)`` of the dataset's parquet shards, train first, each split's shards in name order."""
    return [(s, str(f)) for s in SPLITS for f in sorted((path / DATA_DIR).glob(f"{s}-*.parquet"))]


class Broden:
    """A Broden dataset folder: ``rows`` (a ``datasets.Dataset`` of both splits in canonical order, with a
    ``split`` column), ``splits`` (the ``DatasetDict`` that ``load_dataset`` gives), ``labels`` and ``meta``."""

    def __init__(self, path: str | os.PathLike[str], *, streaming: bool = False, shards: ShardReader | None = None
                 ) -> None:
        """Open the folder ``path``. ``streaming``: read rows from the parquet shards as they are asked for
        (``reader``, a :class:`ShardReader`, over ``shards`` if given, e.g. remote files) instead of through
        ``load_dataset``'s Arrow copy; ``rows`` and ``splits`` are then None."""
        from datasets import concatenate_datasets

        self.path = Path(path)
        self.meta: dict[str, Any] = read_meta(self.path)
        self.labels = read_labels(self.path, self.meta)
        self.pixel_categories = [c.name for c in self.labels.categories if c.kind == "pixel"]
        self.image_categories = [c.name for c in self.labels.categories if c.kind == "image"]
        self.streaming = streaming
        self.reader: ShardReader | None = None
        self.rows = self.splits = None
        if streaming:
            try:
                self.reader = shards or ShardReader(shard_files(self.path))
            except OSError as exc:
                raise BrodenError(f"{self.path}: the parquet shards do not read ({exc}); rebuild or re-download "
                                  "the dataset") from exc
            import pyarrow as pa

            self._id_column = pa.array(self.reader.read(range(len(self.reader)), ["id"])["id"], pa.string())
            self._stored_at = np.arange(len(self._id_column))
            self._canonical = self._stored_at
            return
        self.splits = load_splits(self.path)
        parts = [d.add_column("split", [name] * len(d)) for name, d in self.splits.items()]
        rows = concatenate_datasets(parts) if len(parts) > 1 else parts[0]
        index = rows.data.column("index").to_numpy()
        order = np.argsort(index, kind="stable")
        if not np.array_equal(index[order], np.arange(len(index))):
            raise BrodenError(f"{self.path}: the rows' index column is not 0..{len(index) - 1} across the splits; "
                              "rebuild or re-download the dataset")
        # Ids are looked up in the stored (concatenated) order's Arrow column, zero-copy: no per-id Python map.
        # _canonical[s] is the canonical index of stored row s, _stored_at[i] the stored row of canonical index i.
        self._id_column, self._canonical, self._stored_at = rows.data.column("id"), index, order
        if not np.array_equal(order, np.arange(len(order))):
            rows = rows.select(order, keep_in_memory=True)
        self.rows = rows

    def __len__(self) -> int:
        return len(self.reader) if self.reader is not None else len(self.rows)

    def __repr__(self) -> str:
        return f"Broden({str(self.path)!r}, images={len(self)}, labels={len(self.labels)})"

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    @property
    def ids(self) -> list[str]:
        return self.ids_at(range(len(self)))

    def positions(self, ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """The canonical index of each of ``ids`` (int64; -1 for an id not in the dataset). Ids that are the
        dataset's own in canonical order (a file written from ``ids``) are recognised a block at a time; others
        are looked up in a hash of the id column, in Arrow. At full scale (63,305 ids) a Python map of the ids and
        their list took 20 MB, the Arrow lookup about 6 MB."""
        import pyarrow as pa
        import pyarrow.compute as pc

        if len(ids) == len(self) and all(
                self.ids_at(range(a, min(a + ID_BLOCK, len(ids)))) == [str(x) for x in ids[a:a + ID_BLOCK]]
                for a in range(0, len(ids), ID_BLOCK)):
            return np.arange(len(ids), dtype=np.int64)
        needles = pa.array(ids)  # numpy bytes become binary (trailing NULs dropped), then utf-8 text
        try:
            needles = needles if pa.types.is_string(needles.type) else needles.cast(pa.string())
        except pa.ArrowInvalid as exc:
            raise BrodenError(f"image ids that are not UTF-8 text ({exc}); give the dataset's 'id' strings") from None
        found = pc.index_in(needles, value_set=self._id_column).fill_null(-1).to_numpy()
        return np.where(found >= 0, self._canonical[np.maximum(found, 0)], -1).astype(np.int64)

    def ids_at(self, indices: Sequence[int] | np.ndarray) -> list[str]:
        """The ids of the rows at canonical ``indices``."""
        import pyarrow as pa

        stored = self._stored_at[np.asarray(indices, np.int64)]
        return self._id_column.take(pa.array(stored, pa.int64())).to_pylist()

    @property
    def columns(self) -> list[str]:
        """The columns of a row as :meth:`read` and :meth:`iter_rows` give them (the stored ones and ``split``)."""
        return [*row_features(self.labels), "split"]

    def __getitem__(self, index: int) -> Example:
        if self.reader is not None:
            cols = self.reader.read([int(index)], self.columns)
            return self.decode({k: v[0] for k, v in cols.items()})
        return self.decode(self.rows[int(index)])

    def decode(self, row: dict[str, Any]) -> Example:
        return decode_row(row, self.pixel_categories, self.pixel_categories, self.image_categories)

    def iter_rows(self, batch_size: int = 64, indices: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
        """Raw rows in order (or in ``indices`` order), read from Arrow (or the shards) in batches for speed."""
        if self.reader is not None:
            order = list(range(len(self))) if indices is None else list(indices)
            for start in range(0, len(order), batch_size):
                cols = self.reader.read(order[start:start + batch_size], self.columns)
                for i in range(len(cols["id"])):
                    yield {k: cols[k][i] for k in cols}
            return
        src = self.rows if indices is None else self.rows.select(indices)
        for batch in src.iter(batch_size=batch_size):
            keys = list(batch)
            for i in range(len(batch["id"])):
                yield {k: batch[k][i] for k in keys}

    def __iter__(self) -> Iterator[Example]:
        for row in self.iter_rows():
            yield self.decode(row)

    def compute_fingerprint(self) -> str:
        fp = Fingerprinter(self.labels)
        for row in self.iter_rows():
            fp.add(row)
        return fp.hexdigest()

    def images_with_label(self, number: int) -> list[str]:
        """Ids of the images that contain label ``number`` (any category): "which images show a wheel?"."""
        out = []
        for row in self.iter_rows():
            if number in row["masks"]["label"] or any(number in row[c] for c in self.image_categories):
                out.append(row["id"])
        return out


def stream_rows(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The rows of the dataset at ``path`` in canonical order, read from the parquet shards as they are iterated
    (``load_dataset(..., streaming=True)``), each with its ``split``: the two splits merged by ``index``."""
    path = Path(path)
    splits = load_splits(path, streaming=True)

    def tagged(name: str, part) -> Iterator[tuple[int, str, dict[str, Any]]]:
        for row in part:
            yield row["index"], name, {**row, "split": name}

    for _, _, row in heapq.merge(*(tagged(n, d) for n, d in splits.items()), key=lambda t: t[0]):
        yield row


def load(source: str | os.PathLike[str], *, revision: str | None = None, streaming: bool = False) -> Broden:
    """Open a Broden dataset: a local folder (memory-mapped; nothing is read until used), or a Hub dataset repo
    given as ``hf://ORG/NAME`` (or ``ORG/NAME`` where no such local folder exists), fetched and cached by
    ``huggingface_hub.snapshot_download`` at ``revision`` (default: the main branch). ``streaming``: rows are read
    from the parquet shards as they are used (for a Hub repo, over HTTP: only the card, broden.json and the label
    table are downloaded)."""
    from broden.hub import resolve, shard_reader

    local, provenance = resolve(source, revision=revision, metadata_only=streaming)
    shards = shard_reader(provenance) if streaming and provenance else None
    ds = Broden(local, streaming=streaming, shards=shards)
    if provenance:
        ds.meta["hub"] = provenance
    return ds
