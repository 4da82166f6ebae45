"""Tabular views of a results file: the summary per layer and rule, and each unit's best label.

CSV headers are part of the interface (scripts and papers consume them):
``layer,rule,all,object,part,scene,material,texture,color`` with rules ``detectors``, ``unique_per_category`` and
``unique_top_label``; and ``layer,unit,category,label,iou`` (unit numbered from 0, the unit's overall best label).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from benchmark.protocol import CATEGORY_ORDER, ordered_categories
from benchmark.summary import RULES
from broden.utils.text import csv_cell, for_terminal

UNIT_COLUMNS = ("layer", "unit", "category", "label", "iou")


def summary_columns(results: dict[str, Any]) -> list[str]:
    """The six standard categories, then any other category of the protocol."""
    extra = [c for c in results["protocol"]["categories"] if c not in CATEGORY_ORDER]
    return ["all", *CATEGORY_ORDER, *extra]


def summary_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (layer, rule); a rule the file does not carry (reported entries) is left out."""
    columns = summary_columns(results)
    rows = []
    for layer in results["layers"]:
        for rule in RULES:
            counts = layer["summary"].get(rule)
            if counts is not None:
                rows.append({"layer": layer["name"], "rule": rule, **{c: counts.get(c, "") for c in columns}})
    return rows


def unit_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"layer": layer["name"], "unit": u["unit"], "category": u["category"], "label": u["label"], "iou": u["iou"]}
        for layer in results["layers"]
        for u in layer.get("units", [])
    ]


def to_csv(rows: list[dict[str, Any]], columns: list[str] | tuple[str, ...]) -> str:
    """CSV text; text cells are cleaned and formula-like ones quoted (:func:`broden.utils.text.csv_cell`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: csv_cell(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


def summary_json(results: dict[str, Any]) -> str:
    return json.dumps({layer["name"]: layer["summary"] for layer in results["layers"]}, indent=1)


def with_interval(value: Any, interval: list[Any] | None) -> str:
    """``347 [331, 362]``: a count with its confidence interval, or the count alone when it has none."""
    return str(value) if interval is None else f"{value} [{interval[0]}, {interval[1]}]"


def print_summary_table(results: dict[str, Any]) -> None:
    """One table per layer: each rule's counts per category, with the 95% interval where the file has one, and the
    held-out protocol's rows (labels chosen on train, IoU on val) where it has them."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    columns = [c for c in summary_columns(results) if c == "all" or c in results["protocol"]["categories"]]
    console = Console(width=max(Console().width, 160 if any("intervals" in la for la in results["layers"]) else 110))  # category names must not be cut off in pipes and logs
    for layer in results["layers"]:
        s = layer["summary"]
        intervals = layer.get("intervals") or {}
        caption = escape("[low, high]: 95% bootstrap interval over image folds") if intervals else None
        table = Table(
            title=f"{for_terminal(results['name'])} · {for_terminal(layer['name'])}: "
            f"{s['detectors']['all']}/{s['units']} detector units "
            f"({100 * s['detector_fraction']:.1f}%), IoU > {results['protocol']['iou_threshold']}",
            caption=caption,
        )
        table.add_column("rule", no_wrap=True)
        for c in columns:
            table.add_column(for_terminal(c), justify="right", no_wrap=True)
        for rule in RULES:
            if rule in s:
                table.add_row(rule.replace("_", "-"), *(
                    escape(with_interval(s[rule].get(c, ""), (intervals.get(rule) or {}).get(c))) for c in columns))
        held = (layer.get("held_out") or {}).get("summary")
        for rule in RULES if held else ():
            table.add_row(f"{rule.replace('_', '-')} (held-out)", *(str(held[rule].get(c, "")) for c in columns),
                          style="dim")
        console.print(table)


def print_units_table(results: dict[str, Any], limit: int | None = None) -> None:
    from rich.console import Console
    from rich.table import Table

    thr = results["protocol"]["iou_threshold"]
    console = Console()
    for layer in results["layers"]:
        units = sorted(layer.get("units", []), key=lambda u: -u["iou"])[:limit]
        table = Table(title=f"{for_terminal(results['name'])} · {for_terminal(layer['name'])} (sorted by IoU)")
        for col in ("unit", "category", "label", "iou"):
            table.add_column(col, justify="right" if col in ("unit", "iou") else "left")
        for u in units:
            style = None if u["iou"] > thr else "dim"
            table.add_row(str(u["unit"]), for_terminal(u["category"]), for_terminal(u["label"]), f"{u['iou']:.4f}",
                          style=style)
        console.print(table)


__all__ = [
    "UNIT_COLUMNS",
    "ordered_categories",
    "print_summary_table",
    "print_units_table",
    "summary_columns",
    "summary_json",
    "summary_rows",
    "to_csv",
    "unit_rows",
    "with_interval",
]
