"""Broden's color names (w2color lookup) and its md5 70/30 train/val split."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from broden.colors import COLOR_NAMES, color_index_map, color_label_name, w2color
from broden.split import assign_split, split_hash


@pytest.mark.parametrize(
    "rgb, name",
    [((0, 0, 0), "black"), ((255, 255, 255), "white"), ((255, 0, 0), "red"), ((255, 128, 0), "orange"),
     ((255, 150, 200), "pink")],
)
def test_known_colors(rgb, name):
    img = np.zeros((2, 3, 3), np.uint8)
    img[:] = rgb
    idx = color_index_map(img)
    assert idx.shape == (2, 3)
    assert {COLOR_NAMES[i] for i in idx.ravel()} == {name}


def test_label_names_have_the_c_suffix():
    assert color_label_name(COLOR_NAMES.index("red")) == "red-c"
    assert [color_label_name(i) for i in range(11)][:3] == ["black-c", "blue-c", "brown-c"]


def test_grayscale_is_expanded_to_three_equal_channels():
    gray = np.array([[0, 128, 255], [30, 200, 90]], np.uint8)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert (color_index_map(gray) == color_index_map(rgb)).all()
    assert COLOR_NAMES[color_index_map(gray)[0, 0]] == "black"
    assert COLOR_NAMES[color_index_map(gray)[0, 2]] == "white"
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    assert (color_index_map(rgba) == color_index_map(rgb)).all()  # alpha is ignored


def test_lookup_uses_the_top_five_bits():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    expect = w2color()[img[..., 0] // 8, img[..., 1] // 8, img[..., 2] // 8]
    assert (color_index_map(img) == expect).all()
    assert (color_index_map(img | 7) == expect).all()  # low bits never matter


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError):
        color_index_map(np.zeros((4, 4, 2), np.uint8))


#: sha256 of NetDissect's w2color.npy (MIT; see broden/data/README.md), taken from the authors' file
W2COLOR_SHA256 = "4bc6a1da263e156807acc6adff5e387cef64b05be17808f3fcbde2b2fdd23c13"


def test_shipped_table_is_the_published_one():
    from importlib.resources import files

    data = files("broden").joinpath("data", "w2color.npy").read_bytes()
    assert hashlib.sha256(data).hexdigest() == W2COLOR_SHA256
    assert w2color().shape == (32, 32, 32)
    assert w2color().max() == len(COLOR_NAMES) - 1


def test_split_hash_of_a_known_broden_path():
    h = split_hash("opensurfaces/10933.jpg")
    assert h == pytest.approx(0.70334, abs=5e-5)
    assert assign_split("opensurfaces/10933.jpg") == "val"
    digest = hashlib.md5(b"opensurfaces/10933.jpg").digest()
    assert h == int.from_bytes(digest[:8], "big") / 2**64


def test_split_is_about_70_30_and_threshold_inclusive():
    ids = [f"ade20k/ADE_train_{i:08d}.jpg" for i in range(4000)]
    train = sum(assign_split(i) == "train" for i in ids)
    assert 0.67 < train / len(ids) < 0.73
    some = ids[0]
    assert assign_split(some, train_fraction=split_hash(some)) == "train"  # h <= fraction is train
    assert assign_split(some, train_fraction=split_hash(some) - 1e-12) == "val"
    assert all(0 <= split_hash(i) < 1 for i in ids[:100])
