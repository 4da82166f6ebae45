"""The repository is self-contained: nothing in it reads the development machine's reference folder beside it.

A user clones the repository alone; data the package or the tests need is vendored (``reference/``,
``broden/data/``). The forbidden strings are assembled here so that this file does not match itself.
"""

from __future__ import annotations

import subprocess

from tests.helpers.paths import REPO

FORBIDDEN = ("../sha" + "red", "sha" + "red/reference", "/work/sha" + "red")


def tracked_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [name for name in out.decode().split("\0") if name]


def test_no_tracked_file_reads_outside_the_repository() -> None:
    offenders = []
    for name in tracked_files():
        path = REPO / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary: weights tables, images
            continue
        text = data.decode("utf-8", "replace")
        offenders += [f"{name}: {needle}" for needle in FORBIDDEN if needle in text]
    assert offenders == []


def test_the_vendored_reference_data_is_complete_and_attributed() -> None:
    ref = REPO / "reference" / "netdissect-cvpr2017"
    expected = {"README.md", "LICENSE", "summary.csv", "ResNet-152-model_imagenet.csv",
                "ResNet-152-model_places365.csv", "caffe_reference_imagenet.csv", "caffe_reference_places205.csv",
                "caffe_reference_places365.csv"}
    assert expected <= {p.name for p in ref.iterdir()}
    assert "MIT" in (ref / "LICENSE").read_text() and "David Bau" in (ref / "README.md").read_text()
