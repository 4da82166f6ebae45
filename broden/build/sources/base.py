"""What every source adapter provides (:class:`Source`), the per-image record it yields, and shared helpers."""


from __future__ import annotations

import os
import shutil
from urllib.parse import urlparse
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from broden.download.extract import extract
from broden.download.fetch import fetch
from broden.errors import BrodenError


@dataclass
class SourceImage:
    """One image of a source: where its photo is and its raw annotations (source label codes, 0 = none)."""

    name: str  # output file name, e.g. "ADE_train_00000001.jpg" (the original's basename)
    photo: Path
    pixel: dict[str, list[np.ndarray]] = field(default_factory=dict)  # category -> layers of (H, W) raw codes
    image: dict[str, list[int]] = field(default_factory=dict)  # category -> raw codes (image-level categories)


class Source:
    """Base class of the adapters; subclasses set ``name`` and implement the methods."""

    name: str = ""

    def check(self, root: Path) -> None:
        """Raise a one-line BrodenError naming the missing or unreadable file, and where to get it."""
        for path in self.required_files(root):
            if not path.is_file():
                raise BrodenError(f"{self.name}: missing {path}; {self.obtain(root)}")

    def required_files(self, root: Path) -> list[Path]:
        raise NotImplementedError

    def obtain(self, root: Path) -> str:
        """How to get the source in place (download command or manual instructions)."""
        raise NotImplementedError

    def download(self, root: Path) -> None:
        """Fetch and unpack the source into ``root`` (verified); BrodenError where it cannot be fetched."""
        raise NotImplementedError

    def items(self, root: Path) -> list[Hashable]:
        """Small picklable descriptors of the images, in the original builder's order."""
        raise NotImplementedError

    def label_names(self, root: Path) -> dict[str, dict[int, list[str]]]:
        """Per category, raw code -> the source's names for that label (before lower-casing and synonyms)."""
        raise NotImplementedError

    def load(self, root: Path, item: Hashable) -> SourceImage:
        raise NotImplementedError


def fail(source: str, path: Path | str, problem: str) -> BrodenError:
    """The one-line error for a bad source file."""
    return BrodenError(f"{source}: {path}: {problem}; re-download or re-extract this source")


def read_label_png(source: str, path: Path) -> np.ndarray:
    """An annotation PNG as an (H, W, C) uint8 array; a missing or corrupt file is a one-line error."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise fail(source, path, "file is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise fail(source, path, f"does not decode ({exc})") from None


def fetch_and_unpack(
    source: str,
    urls: Sequence[str],
    into: Path,
    top: str | None,
    final: Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    size: int | None = None,
) -> None:
    """Download an archive into ``into`` (resumable, verified), unpack it and move it to ``final``.

    ``top`` is the archive's top-level folder that becomes ``final`` (``None``: the archive's root is ``final``).
    The archive is kept so an interrupted unpack restarts without downloading again.
    """
    if final.exists():
        return
    archive = Path(into) / Path(urlparse(urls[0]).path).name
    fetch(urls, archive, md5=md5, sha256=sha256, size=size, description=f"{source}: {archive.name}")
    staging = Path(into) / f".{archive.name}.unpacked"
    shutil.rmtree(staging, ignore_errors=True)
    extract(archive, staging)
    unpacked = staging / top if top else staging
    if not unpacked.is_dir():
        raise fail(source, archive, f"has no top-level {top}/ folder")
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(unpacked, final)
    shutil.rmtree(staging, ignore_errors=True)
