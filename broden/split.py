"""Broden's deterministic 70/30 train/val split, decided by the md5 of the image's output path.

As in the original builder: the first 8 bytes of ``md5(relpath)`` read as a big-endian integer, divided by 2**64;
a value ``<= train_fraction`` is ``train``, anything above is ``val``. Rows are ordered by this value.
"""

from __future__ import annotations

import hashlib


def split_hash(relpath: str) -> float:
    """Position of ``relpath`` (e.g. ``ade20k/ADE_train_00003153.jpg``) in [0, 1)."""
    digest = hashlib.md5(relpath.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(relpath: str, train_fraction: float = 0.7) -> str:
    return "train" if split_hash(relpath) <= train_fraction else "val"
