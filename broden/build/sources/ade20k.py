"""ADE20K, the 2016 full release (``ADE20K_2016_07_26``) Broden was built from: ``object``, ``part``, ``scene``.

Layout (``ROOT/ade20k/``)::

    ADE20K_2016_07_26/index_ade20k.mat      MATLAB v5 struct ``index``: filename, folder, scene, objectnames, ...
    <folder>/<stem>.jpg                     folder as in the index: ADE20K_2016_07_26/images/training/a/abbey
    <folder>/<stem>_seg.png                 RGB: class = (R // 10) * 256 + G, 1-based into objectnames (0 = none)
    <folder>/<stem>_parts_<N>.png           N = 1, 2, ...: part levels, same encoding and class list

Raw object/part codes are the 1-based class values; their names are ``objectnames[k-1]`` split on commas (class 1
is ``-``, i.e. unlabeled). Scenes get raw codes by sorted scene string; their names turn ``" - "`` and ``/`` into
``-`` and add the ``-s`` suffix (``airport/airport`` -> ``airport-airport-s``); scenes starting with ``~`` (``~not
labeled``) are no label. Part levels are found by probing N = 1, 2, ... until a file is missing, as NetDissect does.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from broden.build.sources.base import Source, SourceImage, fail, fetch_and_unpack, read_label_png

VERSION = "ADE20K_2016_07_26"
URLS = (f"http://groups.csail.mit.edu/vision/datasets/ADE20K/{VERSION}.zip",)
REQUEST_PAGE = "https://ade20k.csail.mit.edu/request_data/"


def home(root: Path) -> Path:
    return Path(root) / "ade20k"


def decode_classes(rgb: np.ndarray) -> np.ndarray:
    """ADE class map of a ``_seg.png``/``_parts_N.png`` array: (R // 10) * 256 + G."""
    return (rgb[..., 0].astype(np.int32) // 10) * 256 + rgb[..., 1].astype(np.int32)


def scene_names(scene: str) -> list[str]:
    """Broden's scene label name: ``"a - b/c"`` -> ``["a-b-c-s"]``."""
    return [scene.replace(" - ", "-").replace("/", "-") + "-s"]


def _strings(value: object) -> list[str]:
    """A MATLAB cell of strings as loaded with ``squeeze_me``: a lone string for one element, an empty array for ''."""
    return ["" if isinstance(v, np.ndarray) else str(v) for v in np.atleast_1d(value)]


@lru_cache(maxsize=2)
def read_index(path: Path) -> tuple[list[str], list[str], list[str], list[str]]:
    """``(filename, folder, scene, objectnames)`` lists from ``index_ade20k.mat``."""
    from scipy.io import loadmat

    try:
        index = loadmat(str(path), squeeze_me=True, variable_names=["index"])["index"]
        fields = [_strings(index[f][()]) for f in ("filename", "folder", "scene", "objectnames")]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise fail("ade20k", path, f"not a readable ADE20K index ({exc})") from None
    if not len(fields[0]) == len(fields[1]) == len(fields[2]):
        raise fail("ade20k", path, "filename, folder and scene lists differ in length")
    return fields[0], fields[1], fields[2], fields[3]


class ADE20K(Source):
    name = "ade20k"

    def index_file(self, root: Path) -> Path:
        return home(root) / VERSION / "index_ade20k.mat"

    def required_files(self, root: Path) -> list[Path]:
        return [self.index_file(root)]

    def obtain(self, root: Path) -> str:
        return (
            f"run with --download, or get {VERSION}.zip ({URLS[0]}; if it is no longer served, request it at "
            f"{REQUEST_PAGE}), put it in {home(root)} and run with --download to verify and unpack it"
        )

    def download(self, root: Path) -> None:
        fetch_and_unpack(self.name, URLS, home(root), VERSION, home(root) / VERSION)

    def _scene_codes(self, root: Path) -> dict[str, int]:
        scenes = read_index(self.index_file(root))[2]
        real = sorted({s for s in scenes if s and not s.startswith("~")})
        return {s: i for i, s in enumerate(real, start=1)}

    def items(self, root: Path) -> list[tuple[str, str, int]]:
        filenames, folders, scenes, _ = read_index(self.index_file(root))
        codes = self._scene_codes(root)
        return [(folder, fn, codes.get(scene, 0)) for fn, folder, scene in zip(filenames, folders, scenes)]

    def label_names(self, root: Path) -> dict[str, dict[int, list[str]]]:
        objectnames = read_index(self.index_file(root))[3]
        classes = {k: re.split(r",\s*", name) for k, name in enumerate(objectnames, start=1)}
        scenes = {code: scene_names(s) for s, code in self._scene_codes(root).items()}
        return {"object": classes, "part": classes, "scene": scenes}

    def load(self, root: Path, item: tuple[str, str, int]) -> SourceImage:
        folder, filename, scene = item
        photo = home(root) / folder / filename
        stem = photo.with_suffix("")
        objects = decode_classes(read_label_png(self.name, Path(f"{stem}_seg.png")))
        parts = []
        while (level := Path(f"{stem}_parts_{len(parts) + 1}.png")).is_file():
            parts.append(decode_classes(read_label_png(self.name, level)))
        return SourceImage(
            name=filename,
            photo=photo,
            pixel={"object": [objects], "part": parts},
            image={"scene": [scene] if scene else []},
        )
