"""DTD, the Describable Textures Dataset (Cimpoi et al., CVPR 2014): Broden's ``texture`` category.

Layout (``ROOT/dtd/dtd-r1.0.1/``, the extracted ``dtd/`` folder renamed as NetDissect does)::

    images/<class>/<class>_NNNN.jpg         47 classes x 120 photos
    labels/labels_joint_anno.txt            "<class>/<file>.jpg <label1> [<label2> ...] \\n" (note the trailing space)

Every line is one image with one or more texture labels (first = folder class). Raw codes are 1 + the index of the
label in the sorted set of all labels in the file, in the order the line lists them, as in the original builder.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from broden.build.sources.base import Source, SourceImage, fail, fetch_and_unpack

URLS = ("https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz",)
MD5 = "fff73e5086ae6bdbea199a49dfb8a4c1"
SHA256 = "e42855a52a4950a3b59612834602aa253914755c95b0cff9ead6d07395f8e205"
SIZE = 625_239_812


def home(root: Path) -> Path:
    return Path(root) / "dtd" / "dtd-r1.0.1"


@lru_cache(maxsize=4)
def read_joint_annotations(path: Path) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``labels_joint_anno.txt`` as ``((relpath, (label, ...)), ...)`` in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise fail("dtd", path, f"unreadable ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or not fields[0].endswith(".jpg"):
            raise fail("dtd", path, f"line {number} is not '<class>/<file>.jpg <label> ...'")
        rows.append((fields[0], tuple(fields[1:])))
    return tuple(rows)


class DTD(Source):
    name = "dtd"

    def annotations(self, root: Path) -> Path:
        return home(root) / "labels" / "labels_joint_anno.txt"

    def required_files(self, root: Path) -> list[Path]:
        return [self.annotations(root)]

    def obtain(self, root: Path) -> str:
        return (
            f"run with --download, or put dtd-r1.0.1.tar.gz ({URLS[0]}) in {Path(root) / 'dtd'} and run with "
            "--download to verify and unpack it"
        )

    def download(self, root: Path) -> None:
        fetch_and_unpack(self.name, URLS, root / "dtd", "dtd", home(root), md5=MD5, sha256=SHA256, size=SIZE)

    def _codes(self, root: Path) -> dict[str, int]:
        rows = read_joint_annotations(self.annotations(root))
        return {lab: i for i, lab in enumerate(sorted({lab for _, labs in rows for lab in labs}), start=1)}

    def items(self, root: Path) -> list[tuple[str, tuple[str, ...]]]:
        return list(read_joint_annotations(self.annotations(root)))

    def label_names(self, root: Path) -> dict[str, dict[int, list[str]]]:
        return {"texture": {code: [lab] for lab, code in self._codes(root).items()}}

    def load(self, root: Path, item: tuple[str, tuple[str, ...]]) -> SourceImage:
        relpath, labels = item
        codes = self._codes(root)
        return SourceImage(
            name=Path(relpath).name,
            photo=home(root) / "images" / relpath,
            image={"texture": [codes[lab] for lab in labels]},
        )
