"""`benchmark` commands under hostile input and faults: each refusal is one `error:` line with exit != 0, no
traceback, no partial output, and every file that was there before is untouched.

Covers the output policy (report/compare/import-netdissect/score refusing outputs that are not theirs or that hold
their input), the lock (a second run refused naming the first), stale temporaries of killed runs removed by the
rerun (and only those), and the error boundary (a closed stdout, a read-only output).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.cli import main
from broden.utils import atomic
from broden.utils.outputs import MARKER
from tests.helpers.hostile import (
    assert_one_error,
    killed_while_writing,
    lock_held,
    run_command,
    run_in_process,
    snapshot,
    tmpfs,
)
from tests.helpers.paths import REPO
from tests.helpers.results_data import AFTER, BEFORE, make_dataset, results_doc, write, write_scored

TINY = """
from collections import OrderedDict
import torch
from torch import nn

NAME = "tiny hostile"
LAYERS = ["head"]

def build_model():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU()),
        head=nn.Sequential(nn.Conv2d(8, 6, 3, stride=2, padding=1), nn.ReLU()),
    ))
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ds") / "fake-broden")


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    from broden.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("small") / "ds", num_images=12, size=64).path


@pytest.fixture()
def scored(tmp_path, dataset) -> Path:
    return write_scored(tmp_path / "run", dataset)


@pytest.fixture()
def tiny_file(tmp_path) -> Path:
    path = tmp_path / "tiny.py"
    path.write_text(textwrap.dedent(TINY))
    return path


def _refused(args: list, capsys, watched: Path, expected: str) -> None:
    before = snapshot(watched)
    code, _, err = run_in_process(main, args, capsys)
    assert_one_error(code, err, expected=expected)
    assert snapshot(watched) == before


# -- the output policy -------------------------------------------------------------------------------------------
def test_report_into_the_results_directory_keeps_the_results(scored, capsys) -> None:
    _refused(["report", scored, "--out", scored.parent], capsys, scored.parent, "holding the input")
    _refused(["report", scored, "--out", scored.parent, "--force"], capsys, scored.parent, "holding the input")


def test_report_into_a_file_or_a_foreign_directory(scored, tmp_path, capsys) -> None:
    note = tmp_path / "notes.txt"
    note.write_text("keep")
    _refused(["report", scored, "--out", note], capsys, note, "not a directory")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    _refused(["report", scored, "--out", mine], capsys, mine, "thesis.tex")


def test_report_replaces_its_own_report_and_force_replaces_a_foreign_one(scored, tmp_path, capsys) -> None:
    out = tmp_path / "rep"
    assert run_in_process(main, ["report", scored, "--out", out], capsys)[0] == 0
    (out / "extra.txt").write_text("x")  # its own report, even with a file added, is replaced without --force
    assert run_in_process(main, ["report", scored, "--out", out], capsys)[0] == 0
    assert not (out / "extra.txt").exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    assert run_in_process(main, ["report", scored, "--out", mine, "--force"], capsys)[0] == 0
    assert (mine / "index.html").is_file() and not (mine / "thesis.tex").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no lock or temporary left beside


def test_compare_into_the_current_directory_is_refused(tmp_path, monkeypatch, capsys) -> None:
    a = write(tmp_path / "a.json", results_doc("net", {"conv5": BEFORE}))
    b = write(tmp_path / "b.json", results_doc("net", {"conv5": AFTER}))
    monkeypatch.chdir(tmp_path)
    _refused(["compare", a, b, "--out", "."], capsys, tmp_path, "holding the input")
    _refused(["compare", "a.json", "b.json", "--out", ".", "--force"], capsys, tmp_path, "holding the input")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    _refused(["compare", a, b, "--out", mine], capsys, mine, "thesis.tex")


def test_import_netdissect_never_replaces_a_directory_or_a_foreign_file(tmp_path, capsys) -> None:
    csv = tmp_path / "tally.csv"
    csv.write_text("unit,category,label,score\n1,object,dog,0.1\n")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    _refused(["import-netdissect", csv, "--layer", "l", "--out", folder], capsys, folder, "is a directory")
    other = tmp_path / "other.json"
    other.write_text('{"mine": true}')
    _refused(["import-netdissect", csv, "--layer", "l", "--out", other], capsys, other, "--force")
    _refused(["import-netdissect", csv, "--layer", "l", "--out", csv], capsys, csv, "inside")


def test_score_refuses_a_foreign_output_a_file_and_an_output_holding_its_dataset(small, tiny_file, tmp_path,
                                                                                  capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    common = ["score", tiny_file, "--dataset", small, "--workers", "0"]
    _refused([*common, "--out", mine], capsys, mine, "thesis.tex")
    _refused([*common, "--out", tiny_file], capsys, tiny_file, "not a directory")
    _refused([*common, "--out", small.parent], capsys, small.parent, "input")
    _refused([*common, "--out", small / "results"], capsys, small, "inside the input")


# -- locks and stale temporaries ---------------------------------------------------------------------------------
def test_a_second_run_into_a_locked_output_is_refused_naming_the_first(small, tiny_file, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    with lock_held(out, "benchmark score") as pid:
        code, _, err = run_in_process(main, ["score", tiny_file, "--dataset", small, "--out", out], capsys)
        assert_one_error(code, err, expected=f"in use by pid {pid} on ")
        assert "'benchmark score'" in err
        assert not out.exists()
    assert run_in_process(main, ["score", tiny_file, "--dataset", small, "--out", out, "--workers", "0"],
                          capsys)[0] == 0


def test_rerun_after_sigkill_removes_the_dead_runs_temporaries_and_only_those(small, tiny_file, tmp_path,
                                                                             capsys) -> None:
    out = tmp_path / "out"
    common = ["score", tiny_file, "--dataset", small, "--out", out, "--workers", "0", "--batch-size", "4"]
    killed = run_command("benchmark.cli", [*common, "--checkpoint-every", "0"],
                         env={"BRODEN_TEST_INTERRUPT_AFTER": "4:kill"})
    assert killed.returncode == -9
    killed_while_writing(out / "top_maps.npz")  # a crash while writing the top maps, inside the output
    killed_while_writing(out)  # and while replacing the whole output (scratch and partial beside it)
    live = atomic.temp_dir(tmp_path / "other")  # a live process's temporary (this one's) beside it stays
    junk = [p for p in [*out.iterdir(), *tmp_path.iterdir()] if p.name.startswith(".")]
    assert len(junk) >= 4
    assert run_in_process(main, common, capsys)[0] == 0
    left = sorted(p.name for p in [*out.rglob(".*"), *tmp_path.glob(".*")] if p.name != MARKER)
    assert left == [Path(live.name).name]
    live.cleanup()
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "results.json", "top_maps.npz"]


# -- the error boundary ------------------------------------------------------------------------------------------
def test_summary_into_a_closed_pipe_exits_quietly(scored) -> None:
    shell = f"{sys.executable} -m benchmark.cli summary {scored} | head -c 10"
    done = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, cwd=REPO, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert len(done.stdout) == 10 and done.stderr == "", done.stderr


def test_a_full_or_read_only_disk_is_one_line(scored, tmp_path, capsys) -> None:
    with tmpfs(tmp_path / "small", "64k") as small:
        code, _, err = run_in_process(main, ["report", scored, "--out", small / "rep"], capsys)
        assert_one_error(code, err, expected="no space left on the device")
        assert str(small) in err
        assert not list(small.iterdir())
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as ro:
        code, _, err = run_in_process(main, ["report", scored, "--out", ro / "rep"], capsys)
        assert_one_error(code, err, expected="read-only")
    assert json.loads(scored.read_text())["name"] == "tinynet"
