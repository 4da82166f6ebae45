"""Source adapters on format-faithful fixtures, the synonym/unification rules and the resizing rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from broden.build.sources import get_sources, registry
from broden.build.sources.ade20k import decode_classes, read_index, scene_names
from broden.build.sources.colors import color_codes
from broden.build.sources.opensurfaces import substance_names
from broden.build.sources.pascal_part import read_part2ind, readable_part_name
from broden.build.synonyms import synonyms
from broden.build.unify import RawStats, clean_names, merge_names, unify
from broden.errors import BrodenError
from tests.helpers import source_fixtures as sf


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return sf.write_all(tmp_path_factory.mktemp("sources"))


def loaded(root: Path, source: str) -> dict:
    src = registry()[source]
    src.check(root)
    return {img.name: img for img in (src.load(root, item) for item in src.items(root))}


# -- ADE20K ---------------------------------------------------------------------------------------------------------


def test_ade20k_index_seg_encoding_and_part_levels(root):
    filenames, folders, scenes, objectnames = read_index(root / "ade20k" / sf.ADE_VERSION / "index_ade20k.mat")
    assert filenames[0] == "ADE_train_00000001.jpg" and folders[0].startswith("ADE20K_2016_07_26/images/training/")
    assert scenes[-1] == "~not labeled" and objectnames[0] == "-" and len(objectnames) == 300
    imgs = loaded(root, "ade20k")
    first = imgs["ADE_train_00000001.jpg"]
    assert first.photo.is_file()
    obj = first.pixel["object"][0]
    assert obj.shape == (40, 60)
    assert obj[0, 0] == 7 and obj[39, 59] == 300 and obj[10, 10] == 2 and obj[30, 10] == 3  # 300 needs G's high byte
    assert len(first.pixel["part"]) == 2 and first.pixel["part"][1][23, 9] == 6  # two part levels (parts of parts)
    assert imgs["ADE_val_00000001.jpg"].pixel["part"] == []  # no _parts_N.png
    assert imgs["ADE_val_00000002.jpg"].image["scene"] == []  # "~not labeled" is no scene
    names = registry()["ade20k"].label_names(root)
    assert names["object"][3][:2] == ["person", "individual"] and names["part"] == names["object"]
    airport = first.image["scene"][0]
    assert names["scene"][airport] == ["airport-airport-s"]


def test_ade20k_class_decoding_and_scene_names():
    rgb = np.array([[[10, 44, 7], [0, 2, 200], [0, 0, 0]]], np.uint8)
    assert decode_classes(rgb).tolist() == [[300, 2, 0]]
    assert scene_names("street - urban/canyon") == ["street-urban-canyon-s"]


# -- Pascal ---------------------------------------------------------------------------------------------------------


def test_part2ind_names_copies_and_removes(root):
    pimap = read_part2ind(root / "pascal" / "part" / "part2ind.m")
    assert pimap[15] == {"head": "head", "lear": "ear", "hair": "hair", "llarm": "arm", "luarm": "arm"}
    assert pimap[1]["lwing"] == "wing" and pimap[1]["engine_10"] == "engine"  # loop comment describes the loop
    assert pimap[6]["frontside"] == "" and pimap[6]["roofside"] == "roof" and pimap[6]["leftmirror"] == "mirror"
    assert pimap[6]["fliplate"] == "license plate" and pimap[6]["wheel_3"] == "wheel"
    assert pimap[7] == pimap[6]  # car copies bus
    assert pimap[13]["lhorn"] == "horn" and pimap[13]["lfho"] == "hoof"  # remove(...) ignored, as the original
    assert pimap[19]["cfrontside_2"] == "coach"
    assert readable_part_name("lfuleg", "left front upper leg") == "leg"


def test_part2ind_unknown_line_is_a_one_line_error(tmp_path):
    path = tmp_path / "part2ind.m"
    path.write_text("pimap{1}('body') = 1;\nx = containers.Map();\n")
    with pytest.raises(BrodenError, match=r"pascal: .*part2ind.m: line 2 is not understood"):
        read_part2ind(path)


def test_pascal_context_objects_and_painted_parts(root):
    src = registry()["pascal"]
    names = src.label_names(root)
    assert names["object"][431] == ["-"] and names["object"][284] == ["person"]  # unknown is unlabeled
    part_names = {code: n[0] for code, n in names["part"].items()}
    imgs = loaded(root, "pascal")
    person = imgs["2008_000002.jpg"]
    obj, part = person.pixel["object"][0], person.pixel["part"][0]
    assert obj[5, 5] == 284 and obj[35, 5] == 431 and obj[5, 30] == 360
    assert part_names[part[3, 5]] == "ear"  # painted after (on top of) the head
    assert part_names[part[0, 5]] == "head" and part_names[part[15, 1]] == "arm" and part[30, 30] == 0
    bus = imgs["2008_000007.jpg"].pixel["part"][0]
    assert bus[10, 10] == 0 and part_names[bus[1, 10]] == "roof" and part_names[bus[17, 2]] == "wheel"
    assert part_names[bus[31, 31]] == "horn"  # the horse keeps the cow's horns
    person_head, horse_head = bus[21, 13], bus[37, 21]  # one raw label per (class, part), both named head
    assert person_head != horse_head and part_names[person_head] == part_names[horse_head] == "head"
    assert person_head == part[0, 5]  # the same class's head has one code in every image


# -- OpenSurfaces -----------------------------------------------------------------------------------------------------


def test_opensurfaces_red_channel_of_a_differently_sized_label_image(root):
    names = registry()["opensurfaces"].label_names(root)["material"]
    assert names[3] == ["carpet", "rug"] and names[45] == ["wood-painted"] and names[28] == ["plastic-clear"]
    imgs = loaded(root, "opensurfaces")
    first = imgs["10933.jpg"]
    assert first.pixel["material"][0].shape == (64, 96)
    assert Image.open(first.photo).size == (60, 40)
    assert set(np.unique(first.pixel["material"][0])) == {3, 26, 43}
    assert not imgs["10935.jpg"].pixel["material"][0].any()  # unlabeled photos are kept
    assert substance_names("Paper towel/tissue") == ["paper towel", "tissue"]


# -- DTD and colors ----------------------------------------------------------------------------------------------------


def test_dtd_multi_labels_with_trailing_space(root):
    text = (root / "dtd" / "dtd-r1.0.1" / "labels" / "labels_joint_anno.txt").read_text()
    assert text.splitlines()[1] == "banded/banded_0004.jpg banded striped "
    src = registry()["dtd"]
    assert src.label_names(root)["texture"] == {1: ["banded"], 2: ["lined"], 3: ["striped"], 4: ["zigzagged"]}
    imgs = loaded(root, "dtd")
    assert imgs["striped_0001.jpg"].image["texture"] == [3, 1, 2]  # the line's order
    assert Image.open(imgs["banded_0004.jpg"].photo).mode == "L"


def test_color_codes_expand_grayscale():
    gray = np.array([[0, 128, 255]], np.uint8)
    assert color_codes(gray).tolist() == color_codes(np.repeat(gray[..., None], 3, axis=2)).tolist()
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    assert color_codes(rgb).tolist() == [[1, 10, 9]]  # black, white, red: 1 + index into COLOR_NAMES


# -- errors ------------------------------------------------------------------------------------------------------------


def test_missing_and_corrupt_source_files_are_one_line_errors(tmp_path):
    with pytest.raises(BrodenError, match=r"^ade20k: missing .*index_ade20k.mat; .*--download"):
        registry()["ade20k"].check(tmp_path)
    sf.write_opensurfaces(tmp_path)
    (tmp_path / "opensurfaces" / "photos-labels" / "10934.png").write_bytes(b"not a png")
    with pytest.raises(BrodenError, match=r"^opensurfaces: .*10934.png: does not decode") as err:
        registry()["opensurfaces"].load(tmp_path, "10934")
    assert "\n" not in str(err.value)
    with pytest.raises(BrodenError, match="unknown source 'coco'"):
        get_sources(["coco"])


# -- synonyms and unification ------------------------------------------------------------------------------------------


def test_synonyms_prepend_common_and_drop_confusing_names():
    assert synonyms(["person head"]) == ["head"]
    assert synonyms(["car", "auto", "machine"]) == ["car", "auto"]
    assert synonyms(["fabric", "cloth"]) == ["fabric", "cloth", "textile"]
    assert synonyms(["toilet", "can", "throne", "commode"]) == ["toilet", "commode"]
    assert clean_names(["Aeroplane", "-", ""]) == ["airplane", "aeroplane"]


def test_claim_by_frequency_and_mean_coverage_tie_break():
    stats = {
        ("ade20k", "object", 1): RawStats(50, 10.0),  # claims "glass", "drinking glass"
        ("ade20k", "object", 2): RawStats(40, 30.0),  # claims "window", "pane"
        ("ade20k", "object", 3): RawStats(5, 0.3),  # "glass", "pane": both claimed; mean 0.06 is closer to glass
        ("pascal", "object", 9): RawStats(5, 3.5),  # "pane", "glass": mean 0.7 is closer to window's 0.75
        ("ade20k", "part", 4): RawStats(7, 1.0),  # "window" only: merges into window, listed as a part too
        ("dtd", "texture", 1): RawStats(3, 3.0),  # below the frequency threshold
        ("pascal", "object", 7): RawStats(99, 9.0),  # no usable name: unlabeled
    }
    names = {
        ("ade20k", "object", 1): ["glass", "drinking glass"],
        ("ade20k", "object", 2): ["windowpane", "window", "pane"],
        ("ade20k", "object", 3): ["glass", "pane"],
        ("pascal", "object", 9): ["pane", "glass"],
        ("ade20k", "part", 4): ["window"],
        ("dtd", "texture", 1): ["dotted"],
        ("pascal", "object", 7): ["-"],
    }
    final, syns = merge_names(stats, names)
    assert final[("ade20k", "object", 3)] == "glass" and final[("pascal", "object", 9)] == "windowpane"
    assert syns["windowpane"] == ["window", "pane"]
    vocab = unify(stats, names, min_frequency=10, min_coverage=0.5)
    table = vocab.labels
    assert [(lab.number, lab.name, lab.frequency) for lab in table.labels] == [(1, "glass", 55), (2, "windowpane", 52)]
    assert table[2].category_field() == "object(45);part(7)" and table[2].coverage == pytest.approx(34.5)
    assert vocab.translation[("dtd", "texture", 1)] == 0 and vocab.translation[("pascal", "object", 7)] == 0
    assert vocab.lookup("ade20k", "part").tolist() == [0, 0, 0, 0, 2]
    strict = unify(stats, names, min_frequency=10, min_coverage=20.0)
    assert [lab.name for lab in strict.labels.labels] == ["windowpane"]


def test_opensurfaces_labels_rendered_from_the_release_metadata(tmp_path, http_server, monkeypatch):
    import broden.build.sources.opensurfaces as osurf

    sf.write_opensurfaces_release(tmp_path)
    home = tmp_path / "opensurfaces"
    with pytest.raises(BrodenError, match=r"opensurfaces: .*photos: folder is missing \(run with --download"):
        registry()["opensurfaces"].check(tmp_path)  # renders, then asks for the photos
    assert (home / "photos.csv").read_text().splitlines()[1:] == [
        "101,kitchen,0.9,True,0.5,55.0,http://www.flickr.com/photos/someone/42/,CC BY 2.0,True",
        "100,kitchen,0.9,True,0.5,55.0,http://www.flickr.com/photos/someone/42/,CC BY 2.0,True",
    ]
    assert (home / "label-substance-colors.csv").read_text().splitlines() == [
        "substance_id,substance_name,red_color", "9,Brick,1", "7,Carpet/rug,2", "5,Wood,3"]
    label = np.asarray(Image.open(home / "photos-labels" / "100.png"))
    assert label.shape == (1024, 1536, 3)  # 1024 high, width from the aspect ratio
    assert label[1000, 10].tolist() == [3, 2, 2]  # Wood (red 3), Wall (green: Floor 1, Wall 2), kitchen (blue 2)
    assert label[300, 400, 0] == 2 and label[256, 384, 0] == 2 and label[512, 768, 0] == 2  # boundary-inclusive
    assert label[255, 384, 0] == 3 and label[513, 768, 0] == 3
    empty = np.asarray(Image.open(home / "photos-labels" / "101.png"))
    assert empty.shape == (1024, 768, 3) and not empty[..., :2].any() and (empty[..., 2] == 2).all()

    jpeg = (tmp_path / "p.jpg")
    sf.write_jpeg(jpeg, sf.photo_array(1, 20, 30))
    for pk in (100, 101):
        http_server.serve(f"/photos/orig/{pk}.jpg", jpeg.read_bytes())
    monkeypatch.setattr(osurf, "STATIC_URL_ROOT", http_server.base_url)
    osurf.fetch_photos(home)
    registry()["opensurfaces"].check(tmp_path)
    names = registry()["opensurfaces"].label_names(tmp_path)["material"]
    assert names == {1: ["brick"], 2: ["carpet", "rug"], 3: ["wood"]}
    assert [img.name for img in loaded(tmp_path, "opensurfaces").values()] == ["101.jpg", "100.jpg"]
