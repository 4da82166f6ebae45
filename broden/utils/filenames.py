"""File and directory names derived from user-supplied text (model names, layer names, submission files).

Names come from untrusted input, so only a safe character set survives; two rules are used: ``safe_name`` keeps
case, dots and underscores (readable paths like ``layer4.2.conv3``) and ``slug`` is lower-case with dashes (stable,
URL-friendly canonical names).
"""

from __future__ import annotations

import re
from collections.abc import Sequence


def safe_name(text: str, default: str = "unnamed") -> str:
    """``text`` with every run of characters outside ``A-Za-z0-9._-`` turned into ``_`` (no leading dots)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or default


def slug(text: str, limit: int = 60, default: str = "model") -> str:
    """Lower-case ASCII letters, digits and dashes, at most ``limit`` characters."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or default


def distinct_names(texts: Sequence[str], default: str = "unnamed") -> dict[str, str]:
    """A ``safe_name`` per text, made distinct (also on case-insensitive file systems) with ``-2``, ``-3``..."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for text in texts:
        base = safe_name(text, default)
        name, n = base, 2
        while name.lower() in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name.lower())
        out[text] = name
    return out
