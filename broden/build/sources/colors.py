"""Colors: the 11 van de Weijer color names for every pixel of every image (Broden's ``color`` category).

Not a downloaded dataset: the label map is computed from the photo itself, at full resolution and before any
resizing, with the w2color lookup shipped in :mod:`broden.colors` (grayscale photos are expanded to 3 channels).
Raw codes are 1 + the color's index in ``COLOR_NAMES``, named with the ``-c`` suffix (``red-c``), as in NetDissect;
like there, every source supplies its own ``color`` category and the names merge them.
"""

from __future__ import annotations

import numpy as np

from broden.colors import COLOR_NAMES, color_index_map, color_label_name

CATEGORY = "color"


def label_names() -> dict[int, list[str]]:
    """Raw code -> names: ``{1: ['black-c'], ..., 11: ['yellow-c']}``."""
    return {i + 1: [color_label_name(i)] for i in range(len(COLOR_NAMES))}


def color_codes(rgb: np.ndarray) -> np.ndarray:
    """(H, W) uint8 raw color codes 1..11 of an (H, W, 3) or (H, W) uint8 photo."""
    return color_index_map(rgb) + 1
