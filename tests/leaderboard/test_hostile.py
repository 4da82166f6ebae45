"""`leaderboard` commands under hostile input: the site's output directory and the submissions directory follow
the one output policy (one `error:` line, nothing touched), and a second submit waits for no one: it is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from leaderboard.cli import main
from tests.helpers.hostile import assert_one_error, lock_held, run_in_process, snapshot
from tests.helpers.submissions import SEED, SUBMISSIONS, tiny, write


def _refused(args: list, capsys, watched: Path, expected: str) -> None:
    before = snapshot(watched)
    code, _, err = run_in_process(main, args, capsys)
    assert_one_error(code, err, expected=expected)
    assert snapshot(watched) == before


def test_build_into_a_file_or_its_submissions(tmp_path, capsys) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / SEED[0], subs / SEED[0])
    note = tmp_path / "notes.txt"
    note.write_text("keep")
    _refused(["build", subs, "--out", note], capsys, note, "not a directory")
    _refused(["build", subs, "--out", subs / "site"], capsys, subs, "inside the input")
    _refused(["build", subs, "--out", tmp_path, "--force"], capsys, tmp_path, "input")


def test_submit_while_another_submit_holds_the_directory(tmp_path, capsys) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    entry = write(tmp_path, tiny())
    with lock_held(subs, "leaderboard submit") as pid:
        _refused(["submit", entry, "--dir", subs], capsys, subs, f"in use by pid {pid}")
    code, out, _ = run_in_process(main, ["submit", entry, "--dir", subs], capsys)
    assert code == 0 and "stored:" in out


def _reported(count: float) -> dict:
    """A reported entry (summary only) whose layer claims ``count`` units, detectors and unique detectors."""
    entry = tiny("reported")
    layer = entry["layers"][0]
    del layer["units"]
    layer["num_units"] = count
    summary = layer["summary"]
    summary["units"] = count
    for key in ("detectors", "detectors_top_label", "unique_per_category", "unique_top_label"):
        if key in summary:
            summary[key] = {**{c: 0 for c in summary[key]}, "object": count, "all": count}
    summary["detector_fraction"] = 1.0
    return entry


@pytest.mark.parametrize("case, expected", [
    ("huge claim", "$.layers[0].num_units: 5e+298 units, at most 16384 per layer"),
    ("created yesterday", "$.created: 'yesterday' is not a 'date-time'"),
    ("duplicate layer", "$.layers[1].name: layer 'conv5' appears twice"),
])
def test_one_bad_submission_never_breaks_the_build(tmp_path, capsys, case, expected) -> None:
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / SEED[0], subs / SEED[0])
    if case == "huge claim":
        bad = _reported(5e298)
    elif case == "created yesterday":
        bad = {**tiny(), "created": "yesterday"}
    else:
        bad = tiny()
        bad["layers"].append(bad["layers"][0])
    write(subs, bad, "bad.json")
    code, _, err = run_in_process(main, ["validate", subs / "bad.json"], capsys)
    assert code != 0 and expected in err and "Traceback" not in err
    code, out, err = run_in_process(main, ["build", subs, "--out", tmp_path / "site"], capsys)
    assert code == 0 and "1 entries (1 ranked, 0 other protocol), 1 rejected" in out, err
    assert f"rejected: bad.json: {expected}" in err and "Traceback" not in err


def test_a_directory_or_a_fifo_given_as_a_submission(tmp_path, capsys) -> None:
    import os

    folder = tmp_path / "folder.json"
    folder.mkdir()
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for path in (folder, fifo):
        code, _, err = run_in_process(main, ["validate", path], capsys)  # a FIFO must not block the read
        assert code != 0 and "not a regular file" in err and "Traceback" not in err


@pytest.mark.filterwarnings("error::UserWarning")
def test_names_with_escapes_and_bidi_overrides_render_cleanly(tmp_path, capsys) -> None:
    from xml.etree import ElementTree

    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(SUBMISSIONS / SEED[0], subs / SEED[0])
    evil = tiny()
    evil["name"] = "Evil \u202egnp.exe\x1b]0;pwned\x07 [/bold]"
    write(subs, evil, "evil.json")
    site = tmp_path / "site"
    code, out, err = run_in_process(main, ["build", subs, "--out", site], capsys)
    assert code == 0 and "2 entries" in out, err
    for path in site.rglob("*"):
        if path.suffix in (".html", ".svg"):
            text = path.read_text(encoding="utf-8")
            assert "\u202e" not in text and "\x1b" not in text and "\x07" not in text, path
            if path.suffix == ".svg":
                ElementTree.fromstring(text)
    assert "Evil gnp.exe" in (site / "index.html").read_text(encoding="utf-8")
