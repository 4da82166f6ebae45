"""The registry of Broden's source datasets and what every source adapter provides.

A source adapter reads one original dataset in the layout NetDissect's ``dataset/`` folder uses (``ROOT`` below is
the ``--sources`` directory) and yields, per image, the photo's path and its raw annotations: full-resolution label
maps (one or more layers) per pixel category and raw codes per image-level category, plus a table of raw label
names. Naming, merging, filtering, numbering and resizing happen elsewhere (:mod:`broden.build.unify`,
:mod:`broden.build.pipeline`); colors are computed for every image by :mod:`broden.build.sources.colors`.

Sources, in the order Broden lists them: ``ade20k`` (object, part, scene), ``pascal`` (Pascal-Context objects,
Pascal-Part parts, on VOC2010 photos), ``opensurfaces`` (material), ``dtd`` (texture).
"""

from __future__ import annotations

from collections.abc import Sequence

from broden.build.sources.ade20k import ADE20K
from broden.build.sources.base import Source, SourceImage, fail
from broden.build.sources.dtd import DTD
from broden.build.sources.opensurfaces import OpenSurfaces
from broden.build.sources.pascal_part import Pascal
from broden.errors import BrodenError

__all__ = ["SOURCE_NAMES", "Source", "SourceImage", "fail", "get_sources", "registry"]


def registry() -> dict[str, Source]:
    """All sources by name, in Broden's order."""
    return {s.name: s for s in (ADE20K(), Pascal(), OpenSurfaces(), DTD())}


SOURCE_NAMES: Sequence[str] = ("ade20k", "pascal", "opensurfaces", "dtd")


def get_sources(names: Sequence[str] | None = None) -> list[Source]:
    """The selected sources in Broden's order; an unknown name is a one-line error."""
    reg = registry()
    if names is None:
        return list(reg.values())
    unknown = [n for n in names if n not in reg]
    if unknown:
        raise BrodenError(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCE_NAMES)}")
    return [s for n, s in reg.items() if n in names]
