"""OpenSurfaces (Bell et al., SIGGRAPH 2013): surface substances, Broden's ``material`` category.

Layout (``ROOT/opensurfaces/``, what the release's ``process_opensurfaces_release_0.py`` produces)::

    photos.csv                      photo_id,scene_category_name,...  (every row is one Broden image)
    label-substance-colors.csv      substance_id,substance_name,red_color
    photos/<photo_id>.jpg           the photo
    photos-labels/<photo_id>.png    RGB label image, 1024 high (not the photo's size): R = substance code

Raw material codes are the red values; names split ``/`` alternatives and turn ``" - "`` into ``-``, lower-cased:
``Carpet/rug`` -> ``carpet``, ``rug``; ``Wood - painted`` -> ``wood-painted``. As in Broden, unlabeled photos are
kept.

The release zip holds only Django JSON dumps (``photos.photo.json``, ``shapes.materialshape.json``, ...); its helper
script writes the CSVs, downloads the photos and renders the label images. :func:`prepare_release` does the same
from the JSON found anywhere under ``ROOT/opensurfaces/`` (reproducing the helper's rules on purpose: photos with a
correct scene category and not synthetic, sorted by vertex count, scene correctness and its score, descending;
shapes not synthetic and of high quality, drawn by descending vertex count, each triangle filled with PIL's
polygon; substance, name and scene codes 1.. in alphabetical order of name), and ``--download`` fetches the photos.
"""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from broden.build.sources.base import Source, SourceImage, fail, fetch_and_unpack, read_label_png
from broden.download.fetch import fetch
from broden.utils import atomic
from broden.utils.progress import track

RELEASE_URL = "http://labelmaterial.s3.amazonaws.com/release/opensurfaces-release-0.zip"
STATIC_URL_ROOT = "http://labelmaterial.s3.amazonaws.com"  # photos: <root>/<photo image_orig>
LABELS_HEIGHT = 1024  # the helper's PHOTO_LABELS_HEIGHT
PHOTOS_CSV_HEADER = ("photo_id", "scene_category_name", "scene_category_score", "whitebalanced", "whitebalanced_score",
                     "fov", "flickr_url", "license_name", "license_is_creative_commons")


def home(root: Path) -> Path:
    return Path(root) / "opensurfaces"


def substance_names(name: str) -> list[str]:
    """``'Carpet/rug'`` -> ``['carpet', 'rug']``; ``'Wood - painted'`` -> ``['wood-painted']``."""
    return [part.replace(" - ", "-").strip().lower() for part in name.split("/")]


@lru_cache(maxsize=4)
def read_csv(path: Path, *columns: str) -> tuple[tuple[str, ...], ...]:
    """The given columns of a CSV with a header, as tuples; missing columns are a one-line error."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in columns if c not in (reader.fieldnames or ())]
            if missing:
                raise fail("opensurfaces", path, f"has no column {missing[0]!r}")
            return tuple(tuple(row[c] for c in columns) for row in reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise fail("opensurfaces", path, f"unreadable ({exc})") from None


RELEASE_DIRS = ("", "opensurfaces", "release", "release/opensurfaces")  # where an unzipped release may keep its JSON


def release_file(home_dir: Path, name: str) -> Path | None:
    return next((p for d in RELEASE_DIRS if (p := Path(home_dir) / d / name).is_file()), None)


def _release_json(home_dir: Path, name: str) -> list[dict[str, Any]]:
    """One Django dump of the release as records with ``pk`` merged into ``fields``."""
    path = release_file(home_dir, name)
    if path is None:
        raise fail("opensurfaces", Path(home_dir) / name, "release file is missing")
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        return [{**item["fields"], "pk": item["pk"]} for item in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise fail("opensurfaces", path, f"not a Django JSON dump ({exc})") from None


def _codes(records: list[dict[str, Any]]) -> list[tuple[Any, str, int]]:
    """``(pk, name, code)`` with codes 1.. in alphabetical order of name (the helper's color encoding)."""
    ordered = sorted(((r["pk"], r["name"]) for r in records if not r.get("fail")), key=lambda pn: pn[1])
    return [(pk, name, code) for code, (pk, name) in enumerate(ordered, start=1)]


def release_photos(home_dir: Path) -> list[dict[str, Any]]:
    """The photos the helper keeps, in its order."""
    photos = _release_json(home_dir, "photos.photo.json")
    photos = [p for p in photos if p.get("scene_category_correct") and not p.get("special")]
    photos.sort(key=lambda p: (p.get("num_vertices", 0), p.get("scene_category_correct"),
                               p.get("scene_category_correct_score") or 0), reverse=True)
    return photos


def render_labels(photo: dict[str, Any], shapes: list[dict[str, Any]], red: dict, green: dict, blue: dict):
    """One ``photos-labels`` image: LABELS_HEIGHT high, R = substance, G = name, B = scene code."""
    from PIL import Image, ImageDraw

    w, h = int(LABELS_HEIGHT * float(photo["aspect_ratio"])), LABELS_HEIGHT
    scene = blue.get(photo.get("scene_category"), 0)
    img = Image.new("RGB", (w, h), (0, 0, scene))
    draw = ImageDraw.Draw(img)
    for shape in shapes:
        color = (red.get(shape["substance"], 0), green.get(shape.get("name"), 0), scene)
        xy = [float(t) for t in shape["vertices"].split(",")]
        points = [(int(x * w), int(y * h)) for x, y in zip(xy[::2], xy[1::2])]
        tri = [int(t) for t in shape["triangles"].split(",")]
        for a, b, c in zip(tri[::3], tri[1::3], tri[2::3]):
            draw.polygon([points[a], points[b], points[c]], fill=color)
    return img


def prepare_release(home_dir: Path) -> None:
    """Write the CSVs and render ``photos-labels/`` from the release JSON (``photos.csv`` last: it marks completion)."""
    home_dir = Path(home_dir)
    try:
        substances = _codes(_release_json(home_dir, "shapes.shapesubstance.json"))
        names = _codes(_release_json(home_dir, "shapes.shapename.json"))
        scenes = _codes(_release_json(home_dir, "photos.photoscenecategory.json"))
        photos = release_photos(home_dir)
        shapes = _release_json(home_dir, "shapes.materialshape.json")
        shapes = [s for s in shapes if not s.get("special") and s.get("high_quality")]
        shapes.sort(key=lambda s: s.get("num_vertices", 0), reverse=True)
        by_photo: dict[Any, list[dict[str, Any]]] = {p["pk"]: [] for p in photos}
        for shape in shapes:
            by_photo.get(shape["photo"], []).append(shape)
        red, green, blue = ({pk: code for pk, _, code in table} for table in (substances, names, scenes))
        for fname, header, table in (
            ("label-substance-colors.csv", ("substance_id", "substance_name", "red_color"), substances),
            ("label-name-colors.csv", ("name_id", "name_name", "green_color"), names),
            ("label-scene-colors.csv", ("scene_category_id", "scene_category_name", "blue_color"), scenes),
        ):
            atomic.write_text(home_dir / fname, _csv_text([header, *table]))
        for photo in track(photos, "opensurfaces: rendering labels"):
            dest = home_dir / "photos-labels" / f"{photo['pk']}.png"
            if not dest.is_file():
                buf = io.BytesIO()
                render_labels(photo, by_photo[photo["pk"]], red, green, blue).save(buf, format="PNG")
                atomic.write_bytes(dest, buf.getvalue())
        users = {u["pk"]: u.get("username") for u in _release_json(home_dir, "photos.flickruser.json")}
        licenses = {lic["pk"]: lic for lic in _release_json(home_dir, "licenses.license.json")}
    except (KeyError, ValueError, TypeError, IndexError) as exc:
        raise fail("opensurfaces", home_dir, f"release metadata is not as expected ({exc!r})") from None
    scene_names = {pk: name for pk, name, _ in scenes}
    rows = []
    for p in photos:
        user, lic = users.get(p.get("flickr_user")), licenses.get(p.get("license"))
        rows.append((p["pk"], scene_names.get(p.get("scene_category")), p.get("scene_category_correct_score"),
                     p.get("whitebalanced"), p.get("whitebalanced_score"), p.get("fov"),
                     f"http://www.flickr.com/photos/{user}/{p.get('flickr_id')}/" if user else None,
                     lic.get("name") if lic else "All Rights Reserved", bool(lic and lic.get("creative_commons"))))
    atomic.write_text(home_dir / "photos.csv", _csv_text([PHOTOS_CSV_HEADER, *rows]))


def _csv_text(rows: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def fetch_photos(home_dir: Path) -> None:
    """Download every kept photo from the OpenSurfaces server (each verified complete; finished ones are skipped)."""

    for photo in track(release_photos(home_dir), "opensurfaces: photos"):
        dest = Path(home_dir) / "photos" / f"{photo['pk']}.jpg"
        if not dest.is_file():
            fetch([f"{STATIC_URL_ROOT}/{photo['image_orig']}"], dest, description=f"opensurfaces: {dest.name}")


class OpenSurfaces(Source):
    name = "opensurfaces"

    def required_files(self, root: Path) -> list[Path]:
        return [home(root) / "photos.csv", home(root) / "label-substance-colors.csv"]

    def obtain(self, root: Path) -> str:
        return (
            f"run with --download, or put {RELEASE_URL} in {home(root)} and run with --download to verify and "
            "unpack it (labels are rendered from it and the photos fetched)"
        )

    def check(self, root: Path) -> None:
        """Render the label images first when only the release's JSON is there."""
        if not (home(root) / "photos.csv").is_file() and release_file(home(root), "photos.photo.json"):
            prepare_release(home(root))
        super().check(root)
        if not (home(root) / "photos").is_dir():
            raise fail(self.name, home(root) / "photos", "folder is missing (run with --download to fetch the photos)")

    def download(self, root: Path) -> None:
        if release_file(home(root), "photos.photo.json") is None:
            fetch_and_unpack(self.name, (RELEASE_URL,), home(root), None, home(root) / "release")
        prepare_release(home(root))
        fetch_photos(home(root))

    def items(self, root: Path) -> list[str]:
        return [photo_id for (photo_id,) in read_csv(home(root) / "photos.csv", "photo_id")]

    def label_names(self, root: Path) -> dict[str, dict[int, list[str]]]:
        path = home(root) / "label-substance-colors.csv"
        rows = read_csv(path, "substance_name", "red_color")
        try:
            return {"material": {int(red): substance_names(name) for name, red in rows}}
        except ValueError as exc:
            raise fail(self.name, path, f"red_color is not a number ({exc})") from None

    def load(self, root: Path, item: str) -> SourceImage:
        labels = read_label_png(self.name, home(root) / "photos-labels" / f"{item}.png")
        return SourceImage(
            name=f"{item}.jpg",
            photo=home(root) / "photos" / f"{item}.jpg",
            pixel={"material": [labels[..., 0].astype("int32")]},
        )
