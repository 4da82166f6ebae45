"""Format-faithful miniature copies of Broden's six sources, in NetDissect's ``dataset/`` layout.

Each writer produces the same file formats as the real release (MATLAB v5 ``.mat`` structs written with
``scipy.io.savemat`` in the documented shapes, ADE ``_seg.png`` with class = R/10*256 + G, DTD's
``labels_joint_anno.txt`` with its trailing space, OpenSurfaces red-channel label PNGs of another size than the
photo, a ``part2ind.m`` made of real-style lines). Masks are rectangles so tests can predict every statistic.
``repeat`` > 1 multiplies the images (with new ids) for benchmarks; ``photo`` sets the photo size.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

# -- helpers ----------------------------------------------------------------------------------------------------


def photo_array(seed: int, h: int, w: int) -> np.ndarray:
    """A photo of four flat color quadrants (so its color labels are predictable) plus mild noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    for ys in (slice(0, h // 2), slice(h // 2, h)):
        for xs in (slice(0, w // 2), slice(w // 2, w)):
            img[ys, xs] = rng.integers(0, 256, 3)
    return img


def write_jpeg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="JPEG", quality=95)


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format="PNG")


def cell(strings: list[str]) -> np.ndarray:
    """A MATLAB 1xN cell array of strings."""
    out = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        out[0, i] = s
    return out


def struct_array(records: list[dict]) -> np.ndarray:
    """A MATLAB 1xN struct array (N may be 0) with the given fields."""
    fields = list(records[0]) if records else ["part_name", "mask"]
    out = np.empty((1, len(records)), dtype=[(f, object) for f in fields])
    for i, rec in enumerate(records):
        for f in fields:
            out[0, i][f] = rec[f]
    return out


def rect(shape: tuple[int, int], boxes: list[tuple[int, int, int, int, int]], dtype=np.int32) -> np.ndarray:
    """A label map with ``(value, y0, y1, x0, x1)`` rectangles painted in order."""
    out = np.zeros(shape, dtype)
    for value, y0, y1, x0, x1 in boxes:
        out[y0:y1, x0:x1] = value
    return out


# -- ADE20K 2016 --------------------------------------------------------------------------------------------------

ADE_VERSION = "ADE20K_2016_07_26"
#: 1-based class list: class 1 is '-', class 300 needs the G channel's high byte.
ADE_OBJECTNAMES = [
    "-", "wall", "person, individual, someone, somebody, mortal, soul", "head", "windowpane, window", "door", "unicorn",
    "car, auto, automobile, machine, motorcar", *(f"filler {i}" for i in range(9, 300)), "sky",
]
ADE_IMAGES = [  # (filename, folder under images/, scene, seg boxes, part levels)
    ("ADE_train_00000001.jpg", "training/a/airport/airport", "airport/airport",
     [(2, 0, 20, 0, 60), (3, 20, 40, 0, 30), (300, 20, 40, 30, 60), (7, 0, 2, 0, 2)],
     [[(4, 20, 26, 5, 15)], [(6, 22, 24, 8, 10)]]),
    ("ADE_train_00000002.jpg", "training/b/bathroom", "bathroom",
     [(2, 0, 40, 0, 30), (6, 0, 40, 30, 45), (8, 0, 40, 45, 60)],
     [[(2, 10, 20, 50, 55), (4, 0, 5, 0, 5)]]),
    ("ADE_val_00000001.jpg", "validation/b/bathroom", "bathroom",
     [(2, 0, 10, 0, 60), (3, 10, 40, 0, 20), (8, 10, 40, 20, 60)],
     []),
    ("ADE_val_00000002.jpg", "validation/u/unlabeled", "~not labeled",
     [(1, 0, 40, 0, 60), (2, 0, 10, 0, 60)],
     []),
]


def encode_ade(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ADE's RGB class encoding: R = class // 256 * 10, G = class % 256, B = an instance id."""
    rgb = np.zeros(classes.shape + (3,), np.uint8)
    rgb[..., 0] = (classes // 256) * 10
    rgb[..., 1] = classes % 256
    rgb[..., 2] = np.where(classes > 0, rng.integers(1, 255), 0)
    return rgb


def write_ade20k(root: Path, repeat: int = 1, photo: tuple[int, int] = (40, 60)) -> list[str]:
    """``root/ade20k/ADE20K_2016_07_26/...``; returns the image file names."""
    home = Path(root) / "ade20k"
    rng = np.random.default_rng(0)
    filenames, folders, scenes = [], [], []
    h, w = photo
    sy, sx = h / 40, w / 60
    for r in range(repeat):
        for k, (fn, folder, scene, seg, parts) in enumerate(ADE_IMAGES):
            if r:
                fn = fn.replace("_0000000", f"_{r:03d}0000")
            rel = f"{ADE_VERSION}/images/{folder}"
            def scale(boxes):
                return [(v, int(y0 * sy), int(y1 * sy), int(x0 * sx), int(x1 * sx)) for v, y0, y1, x0, x1 in boxes]

            stem = home / rel / fn[:-4]
            write_jpeg(home / rel / fn, photo_array(100 * r + k, h, w))
            write_png(Path(f"{stem}_seg.png"), encode_ade(rect((h, w), scale(seg)), rng))
            for level, boxes in enumerate(parts, start=1):
                write_png(Path(f"{stem}_parts_{level}.png"), encode_ade(rect((h, w), scale(boxes)), rng))
            (Path(f"{stem}_atr.txt")).write_text("001 # 0 # 0 # wall # wall # \"\"\n")
            filenames.append(fn)
            folders.append(rel)
            scenes.append(scene)
    n = len(filenames)
    fields = ("filename", "folder", "typeset", "scene", "objectnames", "objectcounts")
    index = np.empty((1, 1), dtype=[(f, object) for f in fields])
    index[0, 0]["filename"] = cell(filenames)
    index[0, 0]["folder"] = cell(folders)
    index[0, 0]["typeset"] = np.array([[1 if "train" in f else 2] for f in filenames], np.uint8).reshape(n, 1)
    index[0, 0]["scene"] = cell(scenes)
    index[0, 0]["objectnames"] = cell(ADE_OBJECTNAMES)
    index[0, 0]["objectcounts"] = np.ones((len(ADE_OBJECTNAMES), 1), np.float32)
    (home / ADE_VERSION).mkdir(parents=True, exist_ok=True)
    savemat(str(home / ADE_VERSION / "index_ade20k.mat"), {"index": index})
    return filenames


# -- Pascal VOC2010 + Pascal-Context + Pascal-Part ------------------------------------------------------------------

PASCAL_LABELS = {1: "accordion", 2: "aeroplane", 259: "wall", 284: "person", 360: "sky", 431: "unknown", 459: "wool"}

#: A verbatim-style excerpt of the real part2ind.m: its line forms (comments, loops, copies, remove) all occur.
PART2IND = """function pimap = part2ind()
% Define the part index of each objects.
% One can merge different parts by using the same index for the
% parts that are desired to be merged.

pimap = cell(20, 1);
% Will define part index map for the 20 PASCAL VOC object classes in ascending
% alphabetical order (the standard PASCAL VOC order).
for ii = 1:20
    pimap{ii} = containers.Map('KeyType','char','ValueType','int32');
end

% [aeroplane]
pimap{1}('body')        = 1;
pimap{1}('stern')       = 2;
pimap{1}('lwing')       = 3;                % left wing
pimap{1}('rwing')       = 4;                % right wing
pimap{1}('tail')        = 5;
for ii = 1:10
    pimap{1}(sprintf('engine_%d', ii)) = 10+ii; % multiple engines
end

% [boat]
% only has silhouette mask

% [bus]
pimap{6}('frontside')   = 1;
pimap{6}('leftside')    = 2;
pimap{6}('roofside')    = 5;
pimap{6}('leftmirror')  = 6;
pimap{6}('fliplate')    = 8;                % front license plate
for ii = 1:10
    pimap{6}(sprintf('wheel_%d',ii)) = 20 + ii;
end

% [car]
keySet = keys(pimap{6});
valueSet = values(pimap{6});
pimap{7} = containers.Map(keySet, valueSet);         % car has the same set of parts with bus

% [cow]
pimap{10}('head')       = 1;
pimap{10}('lhorn')      = 7;                % left horn
pimap{10}('lfuleg')     = 11;               % left front upper leg

% [horse]
keySet = keys(pimap{10});
valueSet = values(pimap{10});
pimap{13} = containers.Map(keySet, valueSet);        \t% horse has the same set of parts with cow,
                                                        % except it has hoof instead of horn
remove(pimap{13}, {'lhorn', 'rhorn'});
pimap{13}('lfho') = 30;

% [person]
pimap{15}('head')       = 1;
pimap{15}('lear')       = 4;                    % left ear
pimap{15}('hair')       = 10;
pimap{15}('llarm')      = 13;                   % left lower arm
pimap{15}('luarm')      = 14;                   % left upper arm

% [train]
for ii = 1:10
    pimap{19}(sprintf('cfrontside_%d', ii)) = 30 + ii;   % coach front side
end
"""

PASCAL_IMAGES = [  # (id, LabelMap boxes, objects: (class, class_ind, [(part_name, box)]))
    ("2008_000002", [(284, 0, 30, 0, 20), (360, 0, 30, 20, 40), (431, 30, 40, 0, 40)],
     [("person", 15, [("head", (0, 8, 5, 15)), ("lear", (2, 4, 4, 6)), ("llarm", (10, 20, 0, 4)),
                      ("luarm", (10, 20, 16, 20))])]),
    ("2008_000003", [(2, 0, 40, 0, 40), (1, 0, 2, 0, 2)],
     [("aeroplane", 1, [("body", (10, 30, 10, 30)), ("lwing", (15, 20, 0, 10)), ("engine_1", (25, 28, 0, 4)),
                        ("engine_2", (25, 28, 30, 34))])]),
    ("2008_000007", [(259, 0, 40, 0, 40), (284, 10, 40, 10, 20)],
     [("bus", 6, [("frontside", (0, 20, 0, 20)), ("wheel_1", (15, 20, 0, 5)), ("roofside", (0, 3, 0, 20))]),
      ("person", 15, [("head", (20, 24, 12, 16))]),  # heads of two classes in one image: two raw labels
      ("horse", 13, [("lhorn", (30, 32, 30, 32)), ("lfho", (35, 40, 35, 40)), ("head", (36, 40, 20, 24))])]),
]


def write_pascal(root: Path, repeat: int = 1, photo: tuple[int, int] = (40, 40)) -> list[str]:
    """``root/pascal/{VOC2010,context,part}``; returns the image ids."""
    home = Path(root) / "pascal"
    (home / "context" / "trainval").mkdir(parents=True, exist_ok=True)
    (home / "part" / "Annotations_Part").mkdir(parents=True, exist_ok=True)
    (home / "context" / "labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in sorted(PASCAL_LABELS.items())))
    (home / "part" / "part2ind.m").write_text(PART2IND)
    h, w = photo
    sy, sx = h / 40, w / 40
    ids = []
    for r in range(repeat):
        for k, (image_id, labelmap, objects) in enumerate(PASCAL_IMAGES):
            if r:
                image_id = f"{2008 + r}_{image_id[5:]}"
            scale = lambda b: (int(b[0] * sy), int(b[1] * sy), int(b[2] * sx), int(b[3] * sx))
            write_jpeg(home / "VOC2010" / "JPEGImages" / f"{image_id}.jpg", photo_array(500 + 100 * r + k, h, w))
            lm = rect((h, w), [(v, *scale(b)) for v, *b in labelmap], np.uint16)
            savemat(str(home / "context" / "trainval" / f"{image_id}.mat"), {"LabelMap": lm})
            objs = []
            for cls, cls_ind, parts in objects:
                obj_mask = np.zeros((h, w), np.uint8)
                part_records = []
                for name, box in parts:
                    m = rect((h, w), [(1, *scale(box))], np.uint8)
                    obj_mask |= m
                    part_records.append({"part_name": np.array([name]), "mask": m})
                objs.append({"class": np.array([cls]), "class_ind": np.array([[cls_ind]], np.uint8),
                             "mask": obj_mask, "parts": struct_array(part_records)})
            anno = np.empty((1, 1), dtype=[("imname", object), ("objects", object)])
            anno[0, 0]["imname"] = np.array([image_id])
            anno[0, 0]["objects"] = struct_array(objs)
            savemat(str(home / "part" / "Annotations_Part" / f"{image_id}.mat"), {"anno": anno})
            ids.append(image_id)
    return ids


# -- OpenSurfaces ---------------------------------------------------------------------------------------------------

SUBSTANCES = ["Brick", "Cardboard", "Carpet/rug", "Ceramic", "Chalkboard/blackboard", "Concrete", "Cork/corkboard",
              "Dirt", "Fabric/cloth", "Fire", "Foliage", "Food", "Fur", "Glass", "Granite", "Granite/marble", "Hair",
              "Laminate", "Leather", "Linoleum", "Marble", "Metal", "Mirror", "Painted", "Paper towel/tissue",
              "Paper/tissue", "Plaster", "Plastic - clear", "Plastic - opaque", "Rubber/latex", "Skin", "Sky",
              "Sponge", "Stone", "Styrofoam", "Tile", "Wallboard - painted", "Wallboard - unpainted", "Wallpaper",
              "Water", "Wax", "Wicker", "Wood", "Wood - natural color", "Wood - painted"]
OS_IMAGES = [  # (photo id, label boxes on the 64 x 96 label image: red code)
    ("10933", [(43, 0, 32, 0, 96), (3, 32, 64, 0, 48), (26, 32, 64, 48, 96)]),
    ("10934", [(43, 0, 64, 0, 50), (45, 0, 64, 50, 96), (9, 0, 1, 0, 1)]),
    ("10935", []),  # an unlabeled photo: kept, as in Broden
]


def write_opensurfaces(root: Path, repeat: int = 1, photo: tuple[int, int] = (40, 60)) -> list[str]:
    """``root/opensurfaces/`` as the release helper leaves it; label images are 64 x 96, photos ``photo``."""
    home = Path(root) / "opensurfaces"
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "label-substance-colors.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["substance_id", "substance_name", "red_color"])
        for red, name in enumerate(SUBSTANCES, start=1):
            wr.writerow([100 + red, name, red])
    with open(home / "label-name-colors.csv", "w", newline="") as f:
        csv.writer(f).writerows([["name_id", "name_name", "green_color"], [1, "Wall", 1], [2, "Floor", 2]])
    ids = []
    rows = []
    for r in range(repeat):
        for k, (photo_id, boxes) in enumerate(OS_IMAGES):
            photo_id = str(int(photo_id) + 1000 * r)
            write_jpeg(home / "photos" / f"{photo_id}.jpg", photo_array(900 + 100 * r + k, *photo))
            label = np.zeros((64, 96, 3), np.uint8)
            label[..., 0] = rect((64, 96), boxes, np.uint8)
            label[..., 1] = np.where(label[..., 0] > 0, 1, 0)  # object-name code: not used by Broden
            write_png(home / "photos-labels" / f"{photo_id}.png", label)
            rows.append([photo_id, "kitchen", 0.9, True, 0.8, 60.0, f"http://flickr.com/{photo_id}", "CC BY 2.0", True])
            ids.append(photo_id)
    with open(home / "photos.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["photo_id", "scene_category_name", "scene_category_score", "whitebalanced", "whitebalanced_score",
                     "fov", "flickr_url", "license_name", "license_is_creative_commons"])
        wr.writerows(rows)
    return ids


# -- DTD ------------------------------------------------------------------------------------------------------------

DTD_IMAGES = [  # (class/file, labels); banded_0004 is grayscale
    ("banded/banded_0002.jpg", ["banded"]),
    ("banded/banded_0004.jpg", ["banded", "striped"]),
    ("striped/striped_0001.jpg", ["striped", "banded", "lined"]),
    ("zigzagged/zigzagged_0001.jpg", ["zigzagged"]),
]


def write_dtd(root: Path, repeat: int = 1, photo: tuple[int, int] = (50, 50)) -> list[str]:
    """``root/dtd/dtd-r1.0.1/``; returns the relative image paths."""
    home = Path(root) / "dtd" / "dtd-r1.0.1"
    lines, paths = [], []
    for r in range(repeat):
        for k, (rel, labels) in enumerate(DTD_IMAGES):
            if r:
                rel = rel.replace("_0", f"_{r}")
            img = photo_array(1300 + 100 * r + k, *photo)
            if "banded_0004" in rel or (r and k == 1):
                img = img[..., 0]  # a grayscale JPEG, as a few real DTD images are
            write_jpeg(home / "images" / rel, img)
            lines.append(f"{rel} {' '.join(labels)} \n")  # the real file's trailing space
            paths.append(rel)
    (home / "images" / "waffled").mkdir(parents=True, exist_ok=True)
    (home / "images" / "waffled" / ".directory").write_text("[Dolphin]\nTimestamp=2013,5,1\n")
    (home / "labels").mkdir(parents=True, exist_ok=True)
    (home / "labels" / "labels_joint_anno.txt").write_text("".join(lines))
    return paths


def write_all(root: Path, repeat: int = 1) -> Path:
    """Every source under ``root`` (NetDissect's ``dataset/`` layout)."""
    write_ade20k(root, repeat)
    write_pascal(root, repeat)
    write_opensurfaces(root, repeat)
    write_dtd(root, repeat)
    return Path(root)


# -- OpenSurfaces release metadata (what opensurfaces-release-0.zip holds) ---------------------------------------------


def _dump(model: str, records: dict[int, dict]) -> str:
    import json

    return json.dumps([{"model": model, "pk": pk, "fields": fields} for pk, fields in records.items()])


RELEASE_SQUARE = "0.25,0.25,0.5,0.25,0.5,0.5,0.25,0.5"


def write_opensurfaces_release(root: Path) -> Path:
    """``root/opensurfaces/opensurfaces/*.json``: Django dumps as in the release zip (photos not included).

    Kept photos: 101 (20 vertices) then 100 (8); 102 has a wrong scene category, 103 is synthetic. On photo 100 a
    full-frame Wood shape (5 vertices) is drawn first, then a Carpet/rug square (4 vertices) on top; a low-quality
    Brick shape is left out.
    """
    rel = Path(root) / "opensurfaces" / "opensurfaces"
    rel.mkdir(parents=True, exist_ok=True)
    photo = dict(scene_category=1, scene_category_correct=True, scene_category_correct_score=0.9, special=False,
                 whitebalanced=True, whitebalanced_score=0.5, fov=55.0, flickr_user=1, flickr_id="42", license=1)
    files = {
        "photos.photo.json": _dump("photos.photo", {
            100: {**photo, "aspect_ratio": 1.5, "num_vertices": 8, "image_orig": "photos/orig/100.jpg"},
            101: {**photo, "aspect_ratio": 0.75, "num_vertices": 20, "image_orig": "photos/orig/101.jpg"},
            102: {**photo, "aspect_ratio": 1.0, "num_vertices": 30, "scene_category_correct": False, "image_orig": "x"},
            103: {**photo, "aspect_ratio": 1.0, "num_vertices": 30, "special": True, "image_orig": "y"},
        }),
        "photos.photoscenecategory.json": _dump(
            "photos.photoscenecategory", {1: {"name": "kitchen"}, 2: {"name": "bedroom"}}),
        "photos.flickruser.json": _dump("photos.flickruser", {1: {"username": "someone"}}),
        "licenses.license.json": _dump("licenses.license", {1: {"name": "CC BY 2.0", "creative_commons": True}}),
        "shapes.shapesubstance.json": _dump("shapes.shapesubstance", {
            5: {"name": "Wood", "fail": False}, 7: {"name": "Carpet/rug", "fail": False},
            9: {"name": "Brick", "fail": False}, 11: {"name": "Bad", "fail": True}}),
        "shapes.shapename.json": _dump(
            "shapes.shapename", {1: {"name": "Wall", "fail": False}, 2: {"name": "Floor", "fail": False}}),
        "shapes.materialshape.json": _dump("shapes.materialshape", {
            1: {"photo": 100, "substance": 7, "name": 2, "special": False, "high_quality": True, "num_vertices": 4,
                "vertices": RELEASE_SQUARE, "triangles": "0,1,2,0,2,3"},
            2: {"photo": 100, "substance": 5, "name": 1, "special": False, "high_quality": True, "num_vertices": 5,
                "vertices": "0,0,1,0,1,1,0,1", "triangles": "0,1,2,0,2,3"},
            3: {"photo": 100, "substance": 9, "name": 1, "special": False, "high_quality": False, "num_vertices": 9,
                "vertices": "0,0,1,0,1,1", "triangles": "0,1,2"},
        }),
    }
    for name, text in files.items():
        (rel / name).write_text(text)
    return rel
