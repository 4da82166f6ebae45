"""The Network Dissection protocol's defaults: one home for every number and name that defines a standard run.

Bau et al. (CVPR 2017), section 3.1: a unit's active region is where its activation exceeds the level that only
the top 0.5% of its activations (over every spatial position of every image) exceed, so ``QUANTILE = 0.005``; a
unit is a detector of a concept when its IoU with the concept's masks exceeds 0.04, so ``IOU_THRESHOLD = 0.04``
(strict: see ``docs/algorithm.md`` §6.1). The paper's own code gates a unit's activation count per category by
whether an image has any label of that category (``compat="netdissect"``); NetDissect-Lite gates more narrowly
(``compat="netdissect-lite"``): ``benchmark/tally.py`` states both exactly.

Categories are shown in the paper's order, ``CATEGORY_ORDER``; a dataset's own storage order (``category.csv``)
is ``broden.labels.BRODEN_CATEGORIES`` and is a fact of the data, not of the protocol. The CLI defaults, the
scorer's ``Settings``, the NetDissect importer and the leaderboard's ranking rule all read these names.
"""

from __future__ import annotations

from collections.abc import Sequence

#: Top fraction of each unit's activations that forms its active region (0.005 = top 0.5%).
QUANTILE = 0.005
#: A unit detects a concept when IoU > IOU_THRESHOLD.
IOU_THRESHOLD = 0.04
#: Category-gate conventions: the paper's code (default) and NetDissect-Lite's.
COMPAT_MODES = ("netdissect", "netdissect-lite")
DEFAULT_COMPAT = COMPAT_MODES[0]
#: The paper's display order of Broden's six categories (figures, summaries, tables, the leaderboard).
CATEGORY_ORDER = ("object", "part", "scene", "material", "texture", "color")


def ordered_categories(categories: Sequence[str]) -> list[str]:
    """``categories`` in the paper's display order, unknown ones appended in their given order."""
    known = [c for c in CATEGORY_ORDER if c in categories]
    return known + [c for c in categories if c not in CATEGORY_ORDER]
