"""`leaderboard` commands under hostile input: the site's output directory and the submissions directory follow
the one output policy (one `error:` line, nothing touched), and a second submit waits for no one: it is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

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
