"""Merge the raw labels of all sources into Broden's one global vocabulary.

The original builder's phases 2-3 (``docs/broden-sources.md`` §3.3-3.4), reproduced on purpose:

1. Raw labels ``(source, category, raw code)`` are visited by descending image frequency, ties broken by the
   ``(source, category, code)`` tuple order.
2. A raw label's names are its source names, lower-cased, without ``''`` and ``'-'``, passed through
   :func:`broden.build.synonyms.synonyms`.
3. It claims every one of its names nobody has claimed yet; its final name is the first name it claimed. A raw label
   that claims nothing joins the label owning its name; with several owners, the owner whose mean coverage per
   image is closest to its own (ties: the more frequent owner). A raw label without names is unlabeled (``-``).
   Merging is purely by name, across sources and categories (ADE object ``wall`` and ADE part ``wall`` become one
   label listed in both categories).
4. Per merged name, frequency and coverage are the sums over its raw labels (an image holding two raw labels that
   merged is counted twice, as in the original). Names with frequency >= ``min_frequency`` and coverage >=
   ``min_coverage`` are kept and numbered 1..N by (frequency desc, coverage desc); every other raw label maps to 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from broden.labels import BRODEN_CATEGORIES, Category, LabelTable, assign_codes
from broden.build.synonyms import synonyms

RawKey = tuple[str, str, int]  # (source, category, raw label code as stored in the source's annotation)
UNLABELED = "-"
MIN_FREQUENCY = 10
MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class RawStats:
    """Phase-1 statistics of one raw label: images containing it, and the sum of covered fractions."""

    frequency: int
    coverage: float


@dataclass(frozen=True)
class Vocabulary:
    """The unified label table and the translation of every raw label to its global number (0 = dropped)."""

    labels: LabelTable
    translation: dict[RawKey, int]
    aliases: dict[str, list[RawKey]]  # merged name -> raw labels merged into it (the original ``syns.txt``)

    def lookup(self, source: str, category: str) -> np.ndarray:
        """A raw-code -> global-number array for one (source, category); codes never seen map to 0."""
        codes = {raw: n for (s, c, raw), n in self.translation.items() if s == source and c == category}
        table = np.zeros(max(codes, default=0) + 1, np.int32)
        for raw, number in codes.items():
            table[raw] = number
        return table


def clean_names(names: Sequence[str]) -> list[str]:
    """Step 2: lower-cased names without the empty and ``-`` placeholders, through the synonym tables."""
    lowered = [n.strip().lower() for n in names]
    return synonyms(n for n in lowered if n not in ("", UNLABELED))


def merge_names(
    stats: Mapping[RawKey, RawStats], names: Mapping[RawKey, Sequence[str]]
) -> tuple[dict[RawKey, str], dict[str, list[str]]]:
    """Steps 1-3: each raw label's merged name (``-`` for none) and each merged name's other claimed names."""
    owner: dict[str, RawKey] = {}  # claimed name -> raw label that claimed it
    final: dict[RawKey, str] = {}
    syns: dict[str, list[str]] = {}
    for key in sorted(stats, key=lambda k: (-stats[k].frequency, k)):
        cands = clean_names(names.get(key, ()))
        claimed = [n for n in cands if n not in owner]
        for n in claimed:
            owner[n] = key
        if claimed:
            final[key] = claimed[0]
            syns.setdefault(claimed[0], []).extend(claimed[1:])
        elif not cands:
            final[key] = UNLABELED
        else:
            mean = stats[key].coverage / max(stats[key].frequency, 1)
            owners = sorted({owner[n] for n in cands})
            best = min(
                owners,
                key=lambda o: (abs(stats[o].coverage / max(stats[o].frequency, 1) - mean), -stats[o].frequency, o),
            )
            final[key] = final[best]
    return final, {k: list(dict.fromkeys(v)) for k, v in syns.items()}


def unify(
    stats: Mapping[RawKey, RawStats],
    names: Mapping[RawKey, Sequence[str]],
    *,
    min_frequency: int = MIN_FREQUENCY,
    min_coverage: float = MIN_COVERAGE,
    categories: Sequence[Category] = tuple(Category(n, k) for n, k in BRODEN_CATEGORIES),
) -> Vocabulary:
    """Name, merge, filter and number all raw labels; ``names`` gives each raw label's source names."""
    final, syns = merge_names(stats, names)
    per: dict[str, dict[str, list[float]]] = {}  # merged name -> category -> [frequency, coverage]
    aliases: dict[str, list[RawKey]] = {}
    for key, name in final.items():
        if name == UNLABELED:
            continue
        acc = per.setdefault(name, {}).setdefault(key[1], [0, 0.0])
        acc[0] += stats[key].frequency
        acc[1] += stats[key].coverage
        aliases.setdefault(name, []).append(key)
    totals = {name: (sum(f for f, _ in cats.values()), sum(c for _, c in cats.values())) for name, cats in per.items()}
    kept = [n for n, (f, c) in totals.items() if f >= min_frequency and c >= min_coverage]
    kept.sort(key=lambda n: (-totals[n][0], -totals[n][1], n))
    number = {name: i for i, name in enumerate(kept, start=1)}
    labels = assign_codes(
        categories,
        (
            (number[n], n, totals[n][1], syns.get(n, []), {c: (int(f), cov) for c, (f, cov) in per[n].items()})
            for n in kept
        ),
    )
    translation = {key: number.get(name, 0) for key, name in final.items()}
    return Vocabulary(labels, translation, {n: aliases[n] for n in kept})
