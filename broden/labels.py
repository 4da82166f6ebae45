"""Broden's label table: global label numbers, names, and per-category statistics.

Label numbers are global (as in the legacy ``label.csv``); number 0 means "unlabeled" and is never listed. A label
can belong to several categories (``wall`` is an object and a part); each membership carries the label's dense
per-category ``code`` and its per-category ``frequency`` (images) and ``coverage`` (sum over images of the covered
fraction, in "whole images"), exactly the columns of the legacy ``c_<category>.csv`` files.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from broden.errors import BrodenError

LABELS_FORMAT = "broden-labels/1"
#: Highest label number a table may use: tallies keep counts per (unit, label number), and the label ClassLabels
#: of a dataset name every number up to the highest
MAX_LABEL_NUMBER = 1_000_000
CategoryKind = Literal["pixel", "image"]

#: The six Broden categories in the legacy ``category.csv`` order (ordered by first label number).
BRODEN_CATEGORIES: tuple[tuple[str, CategoryKind], ...] = (
    ("color", "pixel"),
    ("object", "pixel"),
    ("part", "pixel"),
    ("material", "pixel"),
    ("scene", "image"),
    ("texture", "image"),
)


@dataclass(frozen=True)
class Category:
    name: str
    kind: CategoryKind  # "pixel": masks; "image": the label covers the whole image (scene, texture)


@dataclass(frozen=True)
class Membership:
    """A label's statistics inside one category (one row of ``c_<category>.csv``)."""

    code: int
    frequency: int
    coverage: float


@dataclass(frozen=True)
class Label:
    number: int
    name: str
    frequency: int
    coverage: float
    categories: dict[str, Membership]
    syns: tuple[str, ...] = ()

    def category_field(self) -> str:
        """The legacy ``label.csv`` category cell: ``object(15553);part(29)``, largest count first."""
        items = sorted(self.categories.items(), key=lambda kv: -kv[1].frequency)
        return ";".join(f"{c}({m.frequency})" for c, m in items)


@dataclass
class LabelTable:
    categories: list[Category]
    labels: list[Label]
    _by_number: dict[int, Label] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_number = {lab.number: lab for lab in self.labels}
        if len(self._by_number) != len(self.labels):
            raise BrodenError("label table lists a label number twice; rebuild the dataset")
        names = {c.name for c in self.categories}
        for lab in self.labels:
            if lab.number <= 0:
                raise BrodenError(f"label table: label number {lab.number} ({lab.name!r}) must be >= 1")
            unknown = set(lab.categories) - names
            if unknown:
                raise BrodenError(f"label table: label {lab.number} ({lab.name!r}) names unknown category {sorted(unknown)[0]!r}")

    # -- lookups -------------------------------------------------------------------------------------------------
    @property
    def category_names(self) -> list[str]:
        return [c.name for c in self.categories]

    def category(self, name: str) -> Category:
        for c in self.categories:
            if c.name == name:
                return c
        raise BrodenError(f"unknown category {name!r}; this dataset has {', '.join(self.category_names)}")

    def __getitem__(self, number: int) -> Label:
        return self._by_number[number]

    def __contains__(self, number: object) -> bool:
        return number in self._by_number

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def max_number(self) -> int:
        return max(self._by_number, default=0)

    def name(self, number: int) -> str:
        """Label name, ``''`` for 0 or an unknown number (as the original readers do)."""
        lab = self._by_number.get(number)
        return lab.name if lab else ""

    def in_category(self, category: str) -> list[Label]:
        """Labels of ``category`` ordered by their per-category code (the ``c_<category>.csv`` order)."""
        labs = [lab for lab in self.labels if category in lab.categories]
        return sorted(labs, key=lambda lab: lab.categories[category].code)

    def primary_categories(self, selected: Sequence[str] | None = None) -> dict[int, str]:
        """Each label's primary category among ``selected``: the one where its coverage is largest.

        Ties go to the category that comes last in ``category.csv`` order, as in the original code
        (``max((coverage, category_index))``). Labels in none of the selected categories are left out: unlike
        NetDissect-Lite we do not assign them a fallback category.
        """
        order = {c: i for i, c in enumerate(self.category_names)}
        chosen = set(self.category_names if selected is None else selected)
        out: dict[int, str] = {}
        for lab in self.labels:
            cands = [(m.coverage, order[c], c) for c, m in lab.categories.items() if c in chosen]
            if cands:
                out[lab.number] = max(cands)[2]
        return out

    def category_rows(self) -> list[dict[str, Any]]:
        """Rows of the legacy ``category.csv``: name, first, last, count, frequency (sum of per-category freq)."""
        rows = []
        for c in self.categories:
            labs = [lab for lab in self.labels if c.name in lab.categories]
            nums = [lab.number for lab in labs]
            rows.append(
                {
                    "name": c.name,
                    "first": min(nums, default=0),
                    "last": max(nums, default=0),
                    "count": len(labs),
                    "frequency": sum(lab.categories[c.name].frequency for lab in labs),
                }
            )
        return rows

    # -- serialisation -------------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": LABELS_FORMAT,
            "categories": [{"name": c.name, "kind": c.kind} for c in self.categories],
            "labels": [
                {
                    "number": lab.number,
                    "name": lab.name,
                    "frequency": lab.frequency,
                    "coverage": lab.coverage,
                    "syns": list(lab.syns),
                    "categories": {
                        c: {"code": m.code, "frequency": m.frequency, "coverage": m.coverage}
                        for c, m in lab.categories.items()
                    },
                }
                for lab in sorted(self.labels, key=lambda lab: lab.number)
            ],
        }

    def canonical_bytes(self) -> bytes:
        """A stable byte form, used in the dataset fingerprint."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode("utf-8")

    def records(self) -> list[dict[str, Any]]:
        """The table as rows of the ``labels`` config (one per label, by number; see :func:`label_features`)."""
        return [
            {**{k: v for k, v in d.items() if k != "categories"},
             "categories": [{"category": c, **m} for c, m in d["categories"].items()]}
            for d in self.to_json()["labels"]
        ]

    @classmethod
    def from_records(
        cls, categories: Sequence[dict[str, Any]], records: Iterable[dict[str, Any]], where: str
    ) -> "LabelTable":
        """The inverse of :meth:`records`, given the categories (``[{"name", "kind"}]``, in order)."""
        try:
            labels = [
                {**{k: v for k, v in r.items() if k != "categories"},
                 "categories": {m["category"]: {k: v for k, v in m.items() if k != "category"}
                                for m in r["categories"]}}
                for r in records
            ]
        except (KeyError, TypeError) as exc:
            raise BrodenError(f"{where}: malformed label table ({exc}); rebuild or re-convert the dataset") from exc
        return cls.from_json({"format": LABELS_FORMAT, "categories": list(categories), "labels": labels}, where)

    def class_names(self) -> list[str]:
        """Names of label numbers 0..max_number, the ``ClassLabel`` names of every label column.

        0 is ``-`` (unlabeled, as in the legacy readers), a number the table lacks is ``unused-<n>``, and a name
        that is already taken (two labels of one name) gets `` (<n>)`` appended, so ClassLabel index == label number.
        A number over :data:`MAX_LABEL_NUMBER` is a one-line error.
        """
        if self.max_number > MAX_LABEL_NUMBER:
            raise BrodenError(f"label number {self.max_number} is over {MAX_LABEL_NUMBER:,}: counts are kept per "
                              "label number, so number the labels 1..N")
        names = ["-"]
        taken = {"-"}
        for n in range(1, self.max_number + 1):
            lab = self._by_number.get(n)
            name = lab.name if lab else f"unused-{n}"
            if name in taken:
                name = f"{name} ({n})"
            taken.add(name)
            names.append(name)
        return names

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "labels.json") -> "LabelTable":
        if not isinstance(obj, dict) or obj.get("format") != LABELS_FORMAT:
            raise BrodenError(f"{where}: not a {LABELS_FORMAT} label table; rebuild or re-convert the dataset")
        try:
            cats = [Category(c["name"], c["kind"]) for c in obj["categories"]]
            labels = [
                Label(
                    number=int(d["number"]),
                    name=str(d["name"]),
                    frequency=int(d["frequency"]),
                    coverage=float(d["coverage"]),
                    syns=tuple(d.get("syns", ())),
                    categories={
                        c: Membership(int(m["code"]), int(m["frequency"]), float(m["coverage"]))
                        for c, m in d["categories"].items()
                    },
                )
                for d in obj["labels"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise BrodenError(f"{where}: malformed label table ({exc}); rebuild or re-convert the dataset") from exc
        return cls(cats, labels)


def label_features():
    """The ``datasets.Features`` of the ``labels`` config: one row per label, its categories as a list."""
    from datasets import Features, List, Value

    return Features({
        "number": Value("int32"),
        "name": Value("string"),
        "frequency": Value("int64"),
        "coverage": Value("float64"),
        "syns": List(Value("string")),
        "categories": List({"category": Value("string"), "code": Value("int32"), "frequency": Value("int64"),
                            "coverage": Value("float64")}),
    })


def assign_codes(
    categories: Sequence[Category],
    stats: Iterable[tuple[int, str, float, Sequence[str], dict[str, tuple[int, float]]]],
) -> LabelTable:
    """Build a table from ``(number, name, coverage, syns, {category: (frequency, coverage)})`` tuples.

    Per-category codes are dense 1..K ordered by (-frequency, -coverage, number), as in the original builder; the
    label's total frequency is the sum of its per-category frequencies.
    """
    rows = list(stats)
    codes: dict[tuple[str, int], int] = {}
    for cat in categories:
        members = [(n, per[cat.name]) for n, _, _, _, per in rows if cat.name in per]
        members.sort(key=lambda nm: (-nm[1][0], -nm[1][1], nm[0]))
        for code, (n, _) in enumerate(members, start=1):
            codes[(cat.name, n)] = code
    labels = [
        Label(
            number=n,
            name=name,
            frequency=sum(f for f, _ in per.values()),
            coverage=cov,
            syns=tuple(syns),
            categories={c: Membership(codes[(c, n)], f, cv) for c, (f, cv) in per.items()},
        )
        for n, name, cov, syns, per in rows
    ]
    return LabelTable(list(categories), labels)
