"""Broden's color labels: the 11 basic color names of van de Weijer et al. (TIP 2009) for every pixel.

The lookup table ships in ``broden/data/w2color.npy`` (see ``broden/data/README.md`` for its licence): its entry
``[R//8, G//8, B//8]`` is the most probable color name of that RGB bin. Broden applies it on the full-resolution
image, before any resizing, and names the labels with the ``-c`` suffix (``red-c``).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources

import numpy as np

from broden.errors import BrodenError

COLOR_NAMES = ("black", "blue", "brown", "grey", "green", "orange", "pink", "purple", "red", "white", "yellow")
W2COLOR_SHA256 = "4bc6a1da263e156807acc6adff5e387cef64b05be17808f3fcbde2b2fdd23c13"


def color_label_name(index: int) -> str:
    """Broden's label name of color ``index`` (0-based into COLOR_NAMES), e.g. ``red-c``."""
    return f"{COLOR_NAMES[index]}-c"


@lru_cache(maxsize=1)
def w2color() -> np.ndarray:
    """The verified (32, 32, 32) uint8 lookup table."""
    data = resources.files("broden").joinpath("data/w2color.npy").read_bytes()
    if hashlib.sha256(data).hexdigest() != W2COLOR_SHA256:
        raise BrodenError("broden/data/w2color.npy is damaged (checksum mismatch); reinstall the broden package")
    import io

    table = np.load(io.BytesIO(data))
    if table.shape != (32, 32, 32) or table.dtype != np.uint8:
        raise BrodenError("broden/data/w2color.npy has an unexpected shape; reinstall the broden package")
    return table


def color_index_map(image: np.ndarray) -> np.ndarray:
    """Per-pixel color index 0..10 of an (H, W, 3) or (H, W) uint8 image; grayscale is expanded to 3 channels."""
    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) or (H, W) image, got shape {img.shape}")
    q = img.astype(np.uint8) >> 3
    return w2color()[q[..., 0], q[..., 1], q[..., 2]]
