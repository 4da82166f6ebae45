"""Pascal-Context (Mottaghi et al., CVPR 2014): whole-scene labels of the VOC2010 photos, Broden's Pascal ``object``.

Layout (``ROOT/pascal/context/``)::

    labels.txt              "<index>: <name>" per line, indices 1..459
    trainval/<id>.mat       MATLAB v5, variable LabelMap: (H, W) uint16 label indices (0 = none)

The label ``unknown`` is unlabeled in Broden (NetDissect renames it ``-``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from broden.build.sources.base import fail

URLS = (
    "https://roozbehm.info/pascal-context/trainval.tar.gz",
    "http://www.cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
)


def home(root: Path) -> Path:
    return Path(root) / "pascal" / "context"


@lru_cache(maxsize=2)
def read_labels(path: Path) -> dict[int, list[str]]:
    """``labels.txt`` as raw code -> names; ``unknown`` becomes ``-`` (unlabeled)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail("pascal", path, f"unreadable ({exc})") from None
    out: dict[int, list[str]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        index, sep, name = line.partition(":")
        if not sep or not index.strip().isdigit():
            raise fail("pascal", path, f"line {number} is not '<index>: <name>'")
        name = name.strip()
        out[int(index)] = ["-" if name == "unknown" else name]
    return out


def read_label_map(path: Path) -> np.ndarray:
    """The (H, W) ``LabelMap`` of one ``trainval/<id>.mat``."""
    from scipy.io import loadmat

    try:
        return np.asarray(loadmat(str(path), variable_names=["LabelMap"])["LabelMap"], dtype=np.int32)
    except FileNotFoundError:
        raise fail("pascal", path, "file is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail("pascal", path, f"has no readable LabelMap ({exc})") from None
