"""Pascal-Part (Chen et al., CVPR 2014) and the ``pascal`` source: VOC2010 photos with Context objects and parts.

Layout (``ROOT/pascal/``)::

    VOC2010/JPEGImages/<id>.jpg             the photos (VOCtrainval_03-May-2010.tar, VOCdevkit/ moved up)
    context/...                             Pascal-Context, see :mod:`broden.build.sources.pascal_context`
    part/part2ind.m                         MATLAB: pimap{class}('short') = index;  % long name
    part/Annotations_Part/<id>.mat          MATLAB v5 struct anno: imname, objects(1xK){class, class_ind, mask,
                                            parts(1xM){part_name, mask}}

Images are the sorted ``Annotations_Part`` files. ``object`` is the Pascal-Context LabelMap (Pascal-Part's own
object masks are not used); ``part`` paints every instance's part masks in order, later ones on top.

Part names, as NetDissect derived them from ``part2ind.m`` (reproduced on purpose): the ``%`` comment if the line
has one (loop comments like "multiple engines" describe the loop, not the part), else the short code (without the
``_%d`` loop suffix), expanded by a fixed table where the code has no comment; then the words left, right, front,
back, upper, lower and side are deleted. So ``lear`` -> "left ear" -> ``ear``, and bus/car sides become the empty
name (unlabeled). MATLAB ``remove(...)`` lines are ignored as in the original, so the horse keeps the cow's horns;
any other line the parser does not recognise stops the build.

Raw part labels are *(VOC class, part name)* pairs, as in NetDissect's builder: person-head and horse-head are two
raw labels, both named ``head``. Merging by name (:mod:`broden.build.unify`) then makes them one label whose
frequency and coverage are the sums of theirs, so an image with the heads of two classes counts twice.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from broden.build.sources.base import Source, SourceImage, fail, fetch_and_unpack
from broden.build.sources import pascal_context

VOC_URLS = ("http://host.robots.ox.ac.uk/pascal/VOC/voc2010/VOCtrainval_03-May-2010.tar",)
VOC_MD5 = "da459979d0c395079b5c75ee67908abb"
PART_URLS = (
    "https://roozbehm.info/pascal-parts/trainval.tar.gz",
    "http://www.stat.ucla.edu/~xianjie.chen/pascal_part_dataset/trainval.tar.gz",
)

#: Short codes without a comment in part2ind.m, spelled out (the documented table).
EXPANSIONS = {
    "fwheel": "front wheel",
    "bwheel": "back wheel",
    "lfho": "left front hoof",
    "rfho": "right front hoof",
    "lbho": "left back hoof",
    "rbho": "right back hoof",
    "frontside": "front side",
    "backside": "back side",
    "leftside": "left side",
    "rightside": "right side",
    "roofside": "roof side",
    "leftmirror": "left mirror",
    "rightmirror": "right mirror",
}
DELETED_WORDS = frozenset({"left", "right", "front", "back", "upper", "lower", "side"})

_COMMENT = r"(?:\s*%\s*(?P<comment>.*?))?\s*"
_PATTERNS = {
    "assign": re.compile(r"\s*pimap\{(?P<cls>\d+)\}\('(?P<code>[^']+)'\)\s*=\s*[^;]+;" + _COMMENT + "$"),
    "loop_assign": re.compile(
        r"\s*pimap\{(?P<cls>\d+)\}\(sprintf\('(?P<code>[^'%]+)_%d',\s*ii\)\)\s*=\s*[^;]+;" + _COMMENT + "$"
    ),
    "copy": re.compile(r"\s*pimap\{(?P<cls>\d+)\}\s*=\s*containers\.Map\(keySet,\s*valueSet\);" + _COMMENT + "$"),
    "keys": re.compile(r"\s*(?:keySet|valueSet)\s*=\s*(?:keys|values)\(pimap\{(?P<cls>\d+)\}\);" + _COMMENT + "$"),
    "for": re.compile(r"\s*for\s+ii\s*=\s*1:(?P<n>\d+)" + _COMMENT + "$"),
    "ignored": re.compile(
        r"\s*(?:%.*|end|function\s+pimap\s*=\s*part2ind\(\)|pimap\s*=\s*cell\(\d+,\s*1\);|"
        r"pimap\{ii\}\s*=\s*containers\.Map\(.*\);|remove\(pimap\{\d+\},.*\);)?" + _COMMENT + "$"
    ),
}


def home(root: Path) -> Path:
    return Path(root) / "pascal"


def readable_part_name(code: str, comment: str | None) -> str:
    """Broden's part name for a short code and its part2ind.m comment: ``('lear', 'left ear')`` -> ``'ear'``."""
    text = comment if comment else EXPANSIONS.get(code, code)
    return " ".join(w for w in text.split() if w not in DELETED_WORDS)


@lru_cache(maxsize=2)
def read_part2ind(path: Path) -> dict[int, dict[str, str]]:
    """``part2ind.m`` as VOC class index (1..20) -> {part_name as in the annotations: Broden part name}."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise fail("pascal", path, f"unreadable ({exc})") from None
    pimap: dict[int, dict[str, str]] = {}
    copy_from: int | None = None
    loop = 0
    for number, line in enumerate(lines, start=1):
        kind, match = next(((k, m) for k, p in _PATTERNS.items() if (m := p.fullmatch(line))), (None, None))
        if match is None:
            raise fail("pascal", path, f"line {number} is not understood: {line.strip()!r}")
        if kind == "assign":
            name = readable_part_name(match["code"], match["comment"])
            pimap.setdefault(int(match["cls"]), {})[match["code"]] = name
        elif kind == "loop_assign":
            comment = match["comment"]
            name = readable_part_name(match["code"], None if not comment or comment.startswith("multiple") else comment)
            for i in range(1, loop + 1):
                pimap.setdefault(int(match["cls"]), {})[f"{match['code']}_{i}"] = name
        elif kind == "for":
            loop = int(match["n"])
        elif kind == "keys":
            copy_from = int(match["cls"])
        elif kind == "copy":
            if copy_from is None:
                raise fail("pascal", path, f"line {number} copies a part map before keys(...)")
            pimap[int(match["cls"])] = dict(pimap.get(copy_from, {}))
    return pimap


def part_codes(pimap: dict[int, dict[str, str]]) -> dict[tuple[int, str], int]:
    """Raw part codes, one per (VOC class, part name) pair: 1 + index in the sorted set of pairs whose name is not
    empty. Pairs with the empty name (bus/car sides) have no code: their pixels stay 0 (unlabeled)."""
    pairs = sorted({(cls, n) for cls, parts in pimap.items() for n in parts.values() if n})
    return {pair: i for i, pair in enumerate(pairs, start=1)}


def _field(struct: np.ndarray, name: str) -> np.ndarray:
    return struct[name] if struct.dtype.names and name in struct.dtype.names else np.zeros((0, 0))


class Pascal(Source):
    name = "pascal"

    def part2ind(self, root: Path) -> Path:
        return home(root) / "part" / "part2ind.m"

    def context_labels(self, root: Path) -> Path:
        return pascal_context.home(root) / "labels.txt"

    def required_files(self, root: Path) -> list[Path]:
        return [self.context_labels(root), self.part2ind(root)]

    def check(self, root: Path) -> None:
        super().check(root)
        for folder in (home(root) / "VOC2010" / "JPEGImages", home(root) / "part" / "Annotations_Part"):
            if not folder.is_dir():
                raise fail(self.name, folder, f"folder is missing; {self.obtain(root)}")

    def obtain(self, root: Path) -> str:
        return (
            f"run with --download, or put {VOC_URLS[0]} in {home(root)}, Pascal-Context's {pascal_context.URLS[0]} "
            f"in {home(root) / 'context-archive'} and Pascal-Part's {PART_URLS[0]} in {home(root) / 'part-archive'}, "
            "then run with --download to verify and unpack them"
        )

    def download(self, root: Path) -> None:
        fetch_and_unpack(self.name, VOC_URLS, home(root), "VOCdevkit/VOC2010", home(root) / "VOC2010", md5=VOC_MD5)
        context = pascal_context.home(root)
        fetch_and_unpack(self.name, pascal_context.URLS, home(root) / "context-archive", None, context)
        fetch_and_unpack(self.name, PART_URLS, home(root) / "part-archive", None, home(root) / "part")

    def items(self, root: Path) -> list[str]:
        return sorted(p.stem for p in (home(root) / "part" / "Annotations_Part").glob("*.mat"))

    def label_names(self, root: Path) -> dict[str, dict[int, list[str]]]:
        codes = part_codes(read_part2ind(self.part2ind(root)))
        return {
            "object": pascal_context.read_labels(self.context_labels(root)),
            "part": {code: [name] for (_cls, name), code in codes.items()},
        }

    def load(self, root: Path, item: str) -> SourceImage:
        objects = pascal_context.read_label_map(pascal_context.home(root) / "trainval" / f"{item}.mat")
        return SourceImage(
            name=f"{item}.jpg",
            photo=home(root) / "VOC2010" / "JPEGImages" / f"{item}.jpg",
            pixel={"object": [objects], "part": [self.part_map(root, item, objects.shape)]},
        )

    def part_map(self, root: Path, item: str, shape: tuple[int, ...]) -> np.ndarray:
        """Every instance's parts painted in annotation order (later parts overwrite earlier ones)."""
        from scipy.io import loadmat

        path = home(root) / "part" / "Annotations_Part" / f"{item}.mat"
        pimap = read_part2ind(self.part2ind(root))
        codes = part_codes(pimap)
        out = np.zeros(shape, np.int32)
        try:
            anno = loadmat(str(path), variable_names=["anno"])["anno"][0, 0]
            for obj in np.ravel(_field(anno, "objects")):
                cls = int(np.ravel(obj["class_ind"])[0])
                for part in np.ravel(_field(obj, "parts")):
                    code = str(np.ravel(part["part_name"])[0])
                    if code not in pimap.get(cls, {}):
                        raise fail(self.name, path, f"part {code!r} of class {cls} is not listed in part2ind.m")
                    mask = np.asarray(part["mask"]).astype(bool)
                    if mask.shape != out.shape:
                        raise fail(self.name, path, f"part mask {mask.shape} differs from LabelMap {out.shape}")
                    out[mask] = codes.get((cls, pimap[cls][code]), 0)
        except FileNotFoundError:
            raise fail(self.name, path, "file is missing") from None
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise fail(self.name, path, f"is not a Pascal-Part annotation ({exc})") from None
        return out
