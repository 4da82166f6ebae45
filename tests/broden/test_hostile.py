"""`broden` commands under hostile input and faults: each refusal is one `error:` line with exit != 0, no
traceback, no partial output, and every file that was there before is untouched.

Covers the output policy (convert/export-legacy/sample/build refusing outputs that are not theirs or that hold
their input), a full and a read-only disk (a small tmpfs), and the lock.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from broden.cli import main
from tests.helpers.archives import make_zip
from tests.helpers.hostile import assert_one_error, lock_held, run_in_process, snapshot, tmpfs


def _refused(args: list, capsys, watched: Path, expected: str) -> None:
    before = snapshot(watched)
    code, _, err = run_in_process(main, args, capsys)
    assert_one_error(code, err, expected=expected)
    assert snapshot(watched) == before


@pytest.fixture()
def legacy(tmp_path) -> Path:
    """A directory that looks like a legacy release to the output policy (the policy refuses before reading it)."""
    root = tmp_path / "broden1_224"
    (root / "images").mkdir(parents=True)
    (root / "index.csv").write_text("image,split,ih,iw,sh,sw,object\n")
    return root


@pytest.fixture()
def thesis(tmp_path) -> Path:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    return mine


def test_convert_onto_its_own_input_is_refused(legacy, capsys) -> None:
    _refused(["convert", legacy, legacy], capsys, legacy, "input")
    _refused(["convert", legacy, legacy, "--force"], capsys, legacy, "input")
    _refused(["convert", legacy, legacy / "images"], capsys, legacy, "inside the input")


def test_convert_onto_a_users_directory_keeps_their_files(legacy, thesis, capsys) -> None:
    _refused(["convert", legacy, thesis], capsys, thesis, "thesis.tex")
    assert (thesis / "thesis.tex").read_text() == "years of work"


def test_export_legacy_onto_its_own_dataset_is_refused(sample_dataset, thesis, capsys) -> None:
    _refused(["export-legacy", sample_dataset, sample_dataset], capsys, sample_dataset, "input")
    _refused(["export-legacy", sample_dataset, sample_dataset.parent, "--force"], capsys, sample_dataset, "input")
    _refused(["export-legacy", sample_dataset, thesis], capsys, thesis, "thesis.tex")


def test_build_onto_its_sources_or_a_users_directory(tmp_path, thesis, capsys) -> None:
    sources = tmp_path / "sources"
    sources.mkdir()
    _refused(["build", "--sources", sources, "--out", sources / "out"], capsys, sources, "inside the input")
    _refused(["build", "--sources", sources, "--out", thesis], capsys, thesis, "thesis.tex")


def test_sample_into_a_file_or_a_locked_output(tmp_path, capsys) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("keep me")
    _refused(["sample", note, "--force"], capsys, note, "not a directory")
    out = tmp_path / "out"
    with lock_held(out, "broden sample") as pid:
        _refused(["sample", out, "--images", "4"], capsys, tmp_path / "out", f"in use by pid {pid}")


def test_sample_on_a_full_disk_is_one_line_naming_the_output_and_leaves_nothing(tmp_path, capsys) -> None:
    with tmpfs(tmp_path / "small", "200k") as small:
        code, _, err = run_in_process(main, ["sample", small / "ds", "--images", "40"], capsys)
        assert_one_error(code, err, expected="no space left on the device")
        assert str(small) in err
        assert list(small.iterdir()) == []


def test_download_into_a_read_only_destination_is_one_line(tmp_path, capsys) -> None:
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        code, _, err = run_in_process(main, ["download", "--dest", ro / "data", "--url", "file:///nowhere.zip"], capsys)
        assert_one_error(code, err, expected="read-only")


# -- legacy conversion -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def legacy_release(tmp_path_factory) -> Path:
    from tests.helpers.legacy_fixture import write_legacy_fixture

    return write_legacy_fixture(tmp_path_factory.mktemp("legacy"), size=64, num_images=4)


def _damage(src: Path, case: str) -> None:
    import csv

    from tests.helpers.hostile import bomb_jpeg, bomb_png

    index = list(csv.DictReader((src / "index.csv").open()))
    first_image = src / "images" / index[0]["image"]
    first_png = next(src.rglob("*.png"))
    if case == "label-csv-not-utf8":
        data = (src / "label.csv").read_bytes().splitlines(keepends=True)
        data[2] = data[2].replace(b",", b"\xff,", 1)
        (src / "label.csv").write_bytes(b"".join(data))
    elif case == "duplicate-label-number":
        lines = (src / "label.csv").read_text().splitlines(keepends=True)
        (src / "label.csv").write_text("".join([*lines, lines[1]]))
    elif case == "truncated-jpeg":
        data = first_image.read_bytes()
        first_image.write_bytes(data[: len(data) // 2])
    elif case == "jpeg-bomb":
        first_image.write_bytes(bomb_jpeg())
    elif case == "png-bomb":
        first_png.write_bytes(bomb_png())
    else:
        raise AssertionError(case)


@pytest.mark.parametrize("case, expected", [
    ("label-csv-not-utf8", "label.csv line 3: not UTF-8 text (byte 0xff)"),
    ("duplicate-label-number", "is listed twice (also line 2)"),
    ("truncated-jpeg", "does not decode (image file is truncated"),
    ("jpeg-bomb", "image is too large to decode safely"),
    ("png-bomb", "image is too large to decode safely"),
])
def test_convert_refuses_a_damaged_release(legacy_release, tmp_path, capsys, case, expected) -> None:
    import shutil

    src = tmp_path / "broden1_64"
    shutil.copytree(legacy_release, src)
    _damage(src, case)
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["convert", src, out, "--workers", "1"], capsys)
    assert_one_error(code, err, expected=expected)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["broden1_64"]


# -- downloads -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-1", "nan"])
def test_download_timeouts_that_cannot_work_are_refused(tmp_path, capsys, value) -> None:
    code, _, err = run_in_process(main, ["download", "--dest", tmp_path / "d", "--timeout", value], capsys)
    assert_one_error(code, err, expected=f"--timeout {float(value)}: give a finite number > 0")
    assert not (tmp_path / "d").exists()


def test_a_server_dripping_bytes_is_given_up_on(http_server, tmp_path, capsys, monkeypatch) -> None:
    from broden.download import fetch
    from tests.helpers.http_fixture import Reply

    monkeypatch.setattr(fetch, "SLOW_WINDOW", 0.3)  # 20 B/s for 0.3 s is under the 1 kB/s minimum
    url = http_server.serve("/broden1_224.zip", b"PK\x03\x04" + bytes(100_000),
                            replies=[Reply(drip=0.05), Reply(drip=0.05)])
    dest = tmp_path / "d"
    code, _, err = run_in_process(main, ["download", "--dest", dest, "--url", url, "--retries", "1"], capsys)
    assert_one_error(code, err, expected="too slow", progress_lines=True)
    assert "gave up after 2 tries" in err
    assert not (dest / "downloads" / "broden1_224.zip").exists()


def test_a_short_content_length_is_not_kept_as_the_finished_zip(http_server, tmp_path, capsys) -> None:
    from tests.helpers.http_fixture import Reply

    data = make_zip({"broden1_224/index.csv": b"image,split\n" * 5000}, zipfile.ZIP_DEFLATED)
    url = http_server.serve("/broden1_224.zip", data, replies=[Reply(body=data[: len(data) // 2])] * 3)
    dest = tmp_path / "d"
    code, _, err = run_in_process(main, ["download", "--dest", dest, "--url", url], capsys)
    assert_one_error(code, err, expected="the zip is truncated or damaged", progress_lines=True)
    assert not list((dest / "downloads").glob("broden1_224.zip*"))  # neither kept nor left to resume


def test_a_zip_bomb_is_refused_before_extraction_and_the_advice_works(tmp_path, capsys) -> None:
    import hashlib

    bomb = tmp_path / "broden1_224.zip"
    bomb.write_bytes(make_zip({"broden1_224/index.csv": b"", "broden1_224/zeros.bin": bytes(20_000_000)},
                              zipfile.ZIP_DEFLATED))
    dest = tmp_path / "d"
    pin = ["--sha256", hashlib.sha256(bomb.read_bytes()).hexdigest()]
    code, _, err = run_in_process(main, ["download", "--dest", dest, "--url", bomb.as_uri(), *pin], capsys)
    assert_one_error(code, err, expected="a zip bomb or a damaged archive; nothing was extracted", progress_lines=True)
    downloads = dest / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == ["broden1_224.zip"]  # no .unpacked, no partial tree
    (downloads / "broden1_224.zip").unlink()  # the advice: delete it and download it again
    # another archive: gets past extraction
    bomb.write_bytes(make_zip({"readme.txt": b"not broden"}, zipfile.ZIP_DEFLATED))
    pin = ["--sha256", hashlib.sha256(bomb.read_bytes()).hexdigest()]
    code, _, err = run_in_process(main, ["download", "--dest", dest, "--url", bomb.as_uri(), *pin], capsys)
    assert_one_error(code, err, expected="no index.csv", progress_lines=True)
    assert sorted(p.name for p in downloads.iterdir()) == ["broden1_224.zip"]  # its unpacked tree is removed
