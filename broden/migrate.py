"""Convert a dataset folder of the first ``broden`` format (``Dataset.save_to_disk`` Arrow files, ``labels.json``,
``broden.json`` with format ``broden-hf/1``) to the Hub repository layout, row for row.

The rows are read in their stored order (the canonical order), so the new folder has the same fingerprint; the
provenance in ``broden.json`` (name, source, conversion notes) is kept and the old format is recorded under
``migrated_from``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from broden.dataset import SAVE_TO_DISK_FORMAT, Broden, write_dataset
from broden.errors import BrodenError
from broden.labels import LabelTable

#: broden.json keys that the writer derives from the rows; every other key is provenance and is carried over.
DERIVED = ("format", "fingerprint", "num_images", "splits", "image_size", "seg_size", "categories", "num_labels",
           "created_by")


def migrate(old: str | Path, new: str | Path) -> tuple[Broden, str]:
    """Write the old-format folder ``old`` as a Hub-layout dataset at ``new`` (replaced only when complete).

    Returns the new dataset and the fingerprint the old ``broden.json`` recorded (equal to the new one unless the
    old folder had been edited after it was written).
    """
    from datasets import Image, load_from_disk

    old, new = Path(old), Path(new)
    try:
        meta = json.loads((old / "broden.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BrodenError(f"{old}: not an old-format Broden folder (broden.json: {exc})") from exc
    if not isinstance(meta, dict) or meta.get("format") != SAVE_TO_DISK_FORMAT:
        raise BrodenError(f"{old}: format {meta.get('format') if isinstance(meta, dict) else None!r} is not the old "
                          f"{SAVE_TO_DISK_FORMAT}; nothing to migrate")
    try:
        labels_obj = json.loads((old / "labels.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BrodenError(f"{old}: the old folder's labels.json does not read ({exc}); it is damaged") from exc
    if new.resolve() == old.resolve():
        raise BrodenError(f"{new}: write the migrated dataset to a new folder, not over the old one")
    labels = LabelTable.from_json(labels_obj, str(old / "labels.json"))
    try:
        rows = load_from_disk(str(old)).cast_column("image", Image(decode=False))
    except Exception as exc:  # datasets raises several types for a damaged folder
        raise BrodenError(f"{old}: the Arrow files do not load ({exc}); the old folder is damaged") from exc

    def stream() -> Iterator[dict[str, Any]]:
        for batch in rows.iter(batch_size=64):
            for i in range(len(batch["id"])):
                yield {k: batch[k][i] for k in batch}

    keep = {k: v for k, v in meta.items() if k not in DERIVED}
    keep["migrated_from"] = {"format": SAVE_TO_DISK_FORMAT, "created_by": meta.get("created_by")}
    return write_dataset(new, stream(), labels, meta=keep), str(meta.get("fingerprint"))
