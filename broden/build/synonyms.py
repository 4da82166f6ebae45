"""Synonym tables used when Broden merges label names across sources.

NetDissect's builder passes each raw label's name list through a hand-made synonym table before names are claimed
(see :mod:`broden.build.unify`). The mechanism is reproduced exactly:

* ``COMMON_NAMES``: when a name occurs, its preferred names are prepended to the list (``person head`` gets
  ``head`` in front, so the part merges with every other ``head``);
* ``CONFUSING_NAMES``: when a name occurs (after the prepending), the overly general or misleading names listed for
  it are removed from the list (a ``car`` is not a ``machine``).

The original tables are longer than what is documented about them; ``docs/broden-sources.md`` §3.3 describes them only
by examples, so these tables hold exactly the documented entries and nothing invented. A build from the real
sources therefore merges the documented cases the way the original did; undocumented original entries are absent.
"""

from __future__ import annotations

from collections.abc import Iterable

#: name -> preferred names put in front of the list (documented entries of the original table).
COMMON_NAMES: dict[str, tuple[str, ...]] = {
    "person head": ("head",),
    "left arm": ("arm",),
    "aeroplane": ("airplane",),
    "windopane": ("window",),
    "spigot": ("faucet",),
    "shrub": ("bush",),
    "airport-airport-s": ("airport-s",),
    "fabric": ("fabric", "cloth", "textile"),
}

#: name -> names dropped from the list when this name is present (documented entries of the original table).
CONFUSING_NAMES: dict[str, frozenset[str]] = {
    "car": frozenset({"machine"}),
    "toilet": frozenset({"throne", "can"}),
    "bicycle": frozenset({"wheel"}),
    "steering wheel": frozenset({"wheel"}),
    "paper": frozenset({"tissue"}),
    "handbag": frozenset({"bag"}),
    "head": frozenset({"person head"}),
    "arm": frozenset({"left arm"}),
}


def synonyms(names: Iterable[str]) -> list[str]:
    """Preferred names first, confusing names removed, duplicates dropped (first occurrence kept)."""
    names = list(names)
    full: list[str] = []
    for name in names:
        full.extend(COMMON_NAMES.get(name, ()))
    full.extend(names)
    omit: set[str] = set()
    for name in full:
        omit |= CONFUSING_NAMES.get(name, frozenset())
    out: list[str] = []
    for name in full:
        if name not in omit and name not in out:
            out.append(name)
    return out
