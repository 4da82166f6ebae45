"""What a Broden dataset holds: images per source and split, labels and images per category, top labels.

Read from the Arrow columns and the label table only (no image or mask decoding), so it is quick even on the full
63,305-image Broden.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from broden.dataset import SPLITS, Broden, load


def dataset_info(dataset: Path | Broden, top: int = 20) -> dict[str, Any]:
    """A JSON-ready summary. ``images`` per category counts the rows with data in it: a label-map layer for a pixel
    category, a non-zero label for an image-level one (a lone ``0`` marks a filtered-out label)."""
    ds = dataset if isinstance(dataset, Broden) else load(dataset)
    cols = ds.rows.select_columns(["source", "split", "layers", *ds.image_categories]).to_dict()
    with_data: Counter = Counter()
    for layers in cols["layers"]:
        with_data.update(c for c, n in (layers or {}).items() if n)
    for cat in ds.image_categories:
        with_data[cat] = sum(1 for labs in cols[cat] if any(labs or []))
    by_source: dict[str, Counter] = {}
    for source, split in zip(cols["source"], cols["split"]):
        by_source.setdefault(source, Counter())[split] += 1
    categories = []
    for row in ds.labels.category_rows():
        categories.append({
            "name": row["name"],
            "kind": ds.labels.category(row["name"]).kind,
            "labels": row["count"],
            "images": with_data.get(row["name"], 0),
            "label_frequency": row["frequency"],
        })
    top_labels = sorted(ds.labels.labels, key=lambda lab: (-lab.frequency, -lab.coverage, lab.number))[:top]
    return {
        "path": str(ds.path),
        "name": ds.meta.get("name", ds.path.name),
        "fingerprint": ds.fingerprint,
        "images": len(ds),
        "labels": len(ds.labels),
        "image_size": ds.meta.get("image_size"),
        "seg_size": ds.meta.get("seg_size"),
        "splits": {s: sum(c[s] for c in by_source.values()) for s in SPLITS},
        "sources": [
            {"name": s, "images": sum(c.values()), **{sp: c[sp] for sp in SPLITS}} for s, c in sorted(by_source.items())
        ],
        "categories": categories,
        "top_labels": [
            {
                "number": lab.number,
                "name": lab.name,
                "categories": lab.category_field(),
                "frequency": lab.frequency,
                "coverage": lab.coverage,
            }
            for lab in top_labels
        ],
    }


def render(info: dict[str, Any], console=None) -> None:
    """Print ``info`` as rich tables."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    size = info["image_size"] or ["mixed", "mixed"]
    seg = info["seg_size"] or ["mixed", "mixed"]
    console.print(
        f"[bold]{info['name']}[/bold] ({info['path']}): {info['images']} images "
        f"({', '.join(f'{s} {n}' for s, n in info['splits'].items())}), {info['labels']} labels, "
        f"image {size[0]}x{size[1]}, seg {seg[0]}x{seg[1]}\nfingerprint {info['fingerprint']}"
    )
    t = Table(title="categories")
    for col in ("category", "kind", "labels", "images with data", "label frequency"):
        t.add_column(col, justify="left" if col in ("category", "kind") else "right")
    for c in info["categories"]:
        t.add_row(c["name"], c["kind"], str(c["labels"]), str(c["images"]), str(c["label_frequency"]))
    console.print(t)
    t = Table(title="sources")
    for col in ("source", "images", *SPLITS):
        t.add_column(col, justify="left" if col == "source" else "right")
    for s in info["sources"]:
        t.add_row(s["name"], str(s["images"]), *(str(s[sp]) for sp in SPLITS))
    console.print(t)
    t = Table(title=f"top {len(info['top_labels'])} labels by frequency")
    for col in ("number", "name", "categories", "frequency", "coverage"):
        t.add_column(col, justify="left" if col in ("name", "categories") else "right")
    for lab in info["top_labels"]:
        t.add_row(str(lab["number"]), lab["name"], lab["categories"], str(lab["frequency"]), f"{lab['coverage']:.2f}")
    console.print(t)
