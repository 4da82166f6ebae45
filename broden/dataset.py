"""Broden as a Hugging Face ``datasets`` dataset: the row schema, the writer, the loader and fast mask decoding.

On disk a Broden dataset is a directory written by ``Dataset.save_to_disk`` plus three files of ours:
``labels.json`` (the label table), ``broden.json`` (format, sizes, provenance and the content fingerprint) and
``README.md`` (the dataset card). One row per image::

    id          legacy relative path, e.g. "ade20k/ADE_train_00000001.jpg" (stable, unique)
    image       the original JPEG bytes, never re-encoded
    split       "train" | "val"
    source      source dataset ("ade20k", "pascal", "opensurfaces", "dtd", ...)
    height, width, seg_height, seg_width
    <category>  for each image-level category (scene, texture): list of global label numbers
    layers      {pixel category: number of label-map layers} (0 = no map for that category)
    masks       {category, layer, label, rle}: parallel lists, one COCO RLE per (category, layer, label)
"""

from __future__ import annotations

import hashlib
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
from broden.labels import LabelTable
from broden.masks import decode_label_maps, encode_label_map
from broden.utils import atomic
from broden.version import __version__

DATASET_FORMAT = "broden-hf/1"
SPLITS = ("train", "val")
#: Image sizes of the Broden releases (broden1_224, broden1_227, broden1_384); masks are half the image size.
IMAGE_SIZES = (224, 227, 384)
META_FILE = "broden.json"
LABELS_FILE = "labels.json"
CARD_FILE = "README.md"


def row_features(labels: LabelTable):
    """The ``datasets.Features`` of a Broden row for this label table's categories."""
    from datasets import Features, Image, List, Value

    cols: dict[str, Any] = {
        "id": Value("string"),
        "image": Image(),
        "split": Value("string"),
        "source": Value("string"),
        "height": Value("int32"),
        "width": Value("int32"),
        "seg_height": Value("int32"),
        "seg_width": Value("int32"),
    }
    for c in labels.categories:
        if c.kind == "image":
            cols[c.name] = List(Value("int32"))
    cols["layers"] = {c.name: Value("int8") for c in labels.categories if c.kind == "pixel"}
    cols["masks"] = {
        "category": List(Value("string")),
        "layer": List(Value("int8")),
        "label": List(Value("int32")),
        "rle": List(Value("string")),
    }
    return Features(cols)


def _row_digest_payload(row: dict[str, Any], image_categories: Sequence[str]) -> bytes:
    image = row["image"]
    img_bytes = image["bytes"] if isinstance(image, dict) else image
    payload = {
        "id": row["id"],
        "split": row["split"],
        "source": row["source"],
        "size": [row["height"], row["width"], row["seg_height"], row["seg_width"]],
        "image_sha256": hashlib.sha256(img_bytes).hexdigest(),
        "image_labels": {c: list(row[c]) for c in image_categories},
        "layers": dict(sorted(row["layers"].items())),
        "masks": {k: list(row["masks"][k]) for k in ("category", "layer", "label", "rle")},
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")


class Fingerprinter:
    """Streaming sha256 over the label table and the rows in order: names exactly the data a result was scored on."""

    def __init__(self, labels: LabelTable) -> None:
        self._h = hashlib.sha256(labels.canonical_bytes())
        self._image_categories = [c.name for c in labels.categories if c.kind == "image"]

    def add(self, row: dict[str, Any]) -> None:
        payload = _row_digest_payload(row, self._image_categories)
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


def write_dataset(
    out: str | os.PathLike[str],
    rows: Iterable[dict[str, Any]],
    labels: LabelTable,
    *,
    meta: dict[str, Any] | None = None,
    max_shard_size: str = "500MB",
) -> "Broden":
    """Write ``rows`` (dicts in the row schema; ``image`` may be raw bytes) as a Broden dataset at ``out``.

    The directory appears only when complete (atomic rename). Returns the loaded result.
    """
    from datasets import Dataset, disable_progress_bars
    from datasets.arrow_writer import ArrowWriter

    disable_progress_bars()  # ours are the progress bars users see

    features = row_features(labels)
    fp = Fingerprinter(labels)
    sizes: set[tuple[int, int, int, int]] = set()
    seen: set[str] = set()
    counts = {s: 0 for s in SPLITS}
    sources: Counter[str] = Counter()
    with atomic.atomic_path(out, is_dir=True) as tmp, atomic.temp_dir(out) as scratch_dir:
        tmp.mkdir(parents=True, exist_ok=True)
        scratch = Path(scratch_dir) / "rows.arrow"
        with ArrowWriter(features=features, path=str(scratch), writer_batch_size=256) as writer:
            for row in rows:
                if not isinstance(row["image"], dict):
                    row = {**row, "image": {"bytes": row["image"], "path": None}}
                if row["id"] in seen:
                    raise BrodenError(f"row {row['id']}: duplicate image id; each image may appear once")
                seen.add(row["id"])
                if row["split"] not in counts:
                    raise BrodenError(f"row {row['id']}: split {row['split']!r} is not one of {SPLITS}")
                counts[row["split"]] += 1
                sources[row["source"]] += 1
                sizes.add((row["height"], row["width"], row["seg_height"], row["seg_width"]))
                fp.add(row)
                writer.write(row)
            writer.finalize()
        if not seen:
            raise BrodenError(f"{out}: no images to write; check the input")
        ds = Dataset.from_file(str(scratch))
        ds.save_to_disk(str(tmp), max_shard_size=max_shard_size)
        del ds
        atomic.write_json(tmp / LABELS_FILE, labels.to_json())
        size = sorted(sizes)[0]
        full_meta = {
            "format": DATASET_FORMAT,
            "fingerprint": fp.hexdigest(),
            "num_images": len(seen),
            "splits": counts,
            "image_size": [size[0], size[1]] if len(sizes) == 1 else None,
            "seg_size": [size[2], size[3]] if len(sizes) == 1 else None,
            "categories": [{"name": c.name, "kind": c.kind} for c in labels.categories],
            "num_labels": len(labels),
            "created_by": _created_by(),
        }
        full_meta.update(meta or {})
        atomic.write_json(tmp / META_FILE, full_meta)
        card = dataset_card(name=Path(out).name, meta=full_meta, labels=labels, sources=sources)
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


def decode_row(row: dict[str, Any], pixel_categories: Sequence[str], image_categories: Sequence[str]) -> Example:
    """Decode a raw row (as returned by ``Broden.rows[i]``) into label maps; vectorised per image."""
    sh, sw = int(row["seg_height"]), int(row["seg_width"])
    masks = row["masks"]
    cats = np.asarray(masks["category"], dtype=object)
    layers = np.asarray(masks["layer"], dtype=np.int64)
    labs = np.asarray(masks["label"], dtype=np.int64)
    rles = masks["rle"]
    pixel: dict[str, np.ndarray] = {}
    for c in pixel_categories:
        n = int(row["layers"].get(c) or 0)
        sel = np.flatnonzero(cats == c) if len(rles) else np.zeros(0, np.int64)
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


class Broden:
    """A Broden dataset on disk: ``rows`` (a ``datasets.Dataset``), ``labels`` and ``meta``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from datasets import Image, load_from_disk

        self.path = Path(path)
        if not (self.path / META_FILE).is_file() or not (self.path / LABELS_FILE).is_file():
            raise BrodenError(
                f"{self.path}: not a Broden dataset (missing {META_FILE} or {LABELS_FILE}); create one with "
                "'broden sample', 'broden download', 'broden convert' or 'broden build'"
            )
        try:
            self.meta: dict[str, Any] = json.loads((self.path / META_FILE).read_text(encoding="utf-8"))
            labels_obj = json.loads((self.path / LABELS_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BrodenError(f"{self.path}: unreadable dataset metadata ({exc}); rebuild the dataset") from None
        if not isinstance(self.meta, dict) or not isinstance(labels_obj, dict):
            raise BrodenError(f"{self.path}: {META_FILE} and {LABELS_FILE} must each hold a JSON object; rebuild "
                              "the dataset")
        if not isinstance(self.meta.get("fingerprint"), str):
            raise BrodenError(f"{self.path}: {META_FILE} has no fingerprint; rebuild or re-convert the dataset")
        if self.meta.get("format") != DATASET_FORMAT:
            raise BrodenError(f"{self.path}: dataset format {self.meta.get('format')!r} is not {DATASET_FORMAT}")
        self.labels = LabelTable.from_json(labels_obj, str(self.path / LABELS_FILE))
        try:
            rows = load_from_disk(str(self.path))
        except Exception as exc:  # datasets raises several types for a damaged directory
            raise BrodenError(f"{self.path}: the dataset's Arrow files do not load ({exc}); rebuild it") from exc
        self.rows = rows.cast_column("image", Image(decode=False))
        self.pixel_categories = [c.name for c in self.labels.categories if c.kind == "pixel"]
        self.image_categories = [c.name for c in self.labels.categories if c.kind == "image"]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"Broden({str(self.path)!r}, images={len(self)}, labels={len(self.labels)})"

    @property
    def fingerprint(self) -> str:
        return str(self.meta["fingerprint"])

    @property
    def ids(self) -> list[str]:
        return self.rows["id"]

    def __getitem__(self, index: int) -> Example:
        return self.decode(self.rows[int(index)])

    def decode(self, row: dict[str, Any]) -> Example:
        return decode_row(row, self.pixel_categories, self.image_categories)

    def iter_rows(self, batch_size: int = 64, indices: Sequence[int] | None = None) -> Iterator[dict[str, Any]]:
        """Raw rows in order (or in ``indices`` order), read from Arrow in batches for speed."""
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


def load(path: str | os.PathLike[str]) -> Broden:
    """Open a Broden dataset directory (memory-mapped; nothing is read until used)."""
    return Broden(path)
