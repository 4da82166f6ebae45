"""`benchmark` commands under hostile input and faults: each refusal is one `error:` line with exit != 0, no
traceback, no partial output, and every file that was there before is untouched.

Covers the output policy (report/compare/import-netdissect/score refusing outputs that are not theirs or that hold
their input), the lock (a second run refused naming the first), stale temporaries of killed runs removed by the
rerun (and only those), and the error boundary (a closed stdout, a read-only output).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main
from broden.utils import atomic
from broden.utils.outputs import MARKER
from tests.helpers.hostile import (
    assert_one_error,
    bomb_png,
    killed_while_writing,
    lock_held,
    run_command,
    run_in_process,
    snapshot,
    tmpfs,
)
from tests.helpers.models import write_tiny_model
from tests.helpers.paths import REPO
from tests.helpers.results_data import AFTER, BEFORE, make_dataset, results_doc, write, write_scored


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
    return write_tiny_model(tmp_path / "tiny.py", 'tiny hostile')


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


# -- arguments ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra, expected", [
    (["--cache-budget", "nan"], "--cache-budget nan: give a finite number >= 0"),
    (["--cache-budget", "inf"], "--cache-budget inf: give a finite number >= 0"),
    (["--cache-budget", "-1"], "--cache-budget -1.0: give a finite number >= 0"),
    (["--device", "bogus"], "--device bogus: not a torch device"),
    (["--device", "meta"], "--device meta: meta tensors cannot be dissected here"),
    (["--device", "mps"], "--device mps: mps is not available here"),
    (["--workers", "-1"], "--workers -1: give 0"),
    (["--checkpoint-every", "nan"], "--checkpoint-every nan: give a number >= 0"),
])
def test_score_arguments_are_checked(small, tiny_file, tmp_path, capsys, extra, expected) -> None:
    import torch

    if "mps" in extra and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        pytest.skip("MPS is available here")
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["score", tiny_file, "--dataset", small, "--out", out, *extra], capsys)
    assert_one_error(code, err, expected=expected)
    assert not out.exists()


# -- model failures ----------------------------------------------------------------------------------------------
FLAKY = """
import torch
from torch import nn

NAME = "flaky"
LAYERS = ["conv"]
FAIL_AT = {fail_at}  # forward call number: 1 is the shape probe


class Flaky(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls == FAIL_AT:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied (2x4 and 3x4)")
        return self.conv(x)


def build_model():
    torch.manual_seed(0)
    return Flaky()
"""


@pytest.mark.parametrize("fail_at, images", [(1, "0..0"), (4, "4..5")])
def test_a_failing_forward_pass_names_the_images(small, tmp_path, capsys, fail_at, images) -> None:
    model = tmp_path / "flaky.py"
    model.write_text(FLAKY.format(fail_at=fail_at))
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["score", model, "--dataset", small, "--out", out, "--batch-size", "2",
                                         "--workers", "0"], capsys)
    assert_one_error(code, err, expected=f"flaky: forward pass failed on images {images} (")
    assert "RuntimeError: mat1 and mat2 shapes cannot be multiplied" in err
    assert not (out / "results.json").exists()


def test_a_damaged_dataset_is_named_before_a_model_that_fails_on_it(tmp_path, capsys) -> None:
    """The dataset is checked while the model is set up (its shape probe): when both fail, the dataset's error is
    the one reported, and nothing is written."""
    from broden.dataset import write_dataset

    rows, table = _damaged_rows("layer-out-of-range")
    ds = write_dataset(tmp_path / "ds", rows, table)
    model = tmp_path / "flaky.py"
    model.write_text(FLAKY.format(fail_at=1))
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["score", model, "--dataset", ds.path, "--out", out, "--workers", "0"], capsys)
    assert_one_error(code, err, expected="[layer] mask 0 (object, label 2): layer 3 but layers[object] = 1")
    assert not out.exists()


# -- --activations -----------------------------------------------------------------------------------------------
def _npz(path: Path, ids: list[str], **arrays) -> Path:
    import numpy as np

    np.savez(path, image=np.array(ids), **arrays)
    return path


def _lying_header(path: Path, ids: list[str]) -> Path:
    """An uncompressed npz of 6 rows whose 'activations' header claims 9 (the same number of header bytes)."""
    import numpy as np

    assert len(ids) == 6
    _npz(path, ids, activations=np.zeros((6, 2, 3, 3), np.float32))
    data = path.read_bytes()
    assert data.count(b"'shape': (6, 2, 3, 3)") == 1
    path.write_bytes(data.replace(b"'shape': (6, 2, 3, 3)", b"'shape': (9, 2, 3, 3)"))
    return path


@pytest.mark.parametrize("case, expected", [
    ("str", "holds <U1 values; it must be a real numeric array"),
    ("complex", "holds complex64 values"),
    ("bool", "holds bool values"),
    ("zero-spatial", "no units or an empty spatial map"),
    ("lying-header", "claims shape (9, 2, 3, 3)"),
    ("npy", "a single array, not an .npz archive"),
    ("directory", "activations file not found"),
    ("garbage", "not a readable .npz file"),
])
def test_activation_files_are_checked_before_use(small, tmp_path, capsys, case, expected) -> None:
    import numpy as np

    from broden.dataset import load

    ids = list(load(small).ids)[:6]
    path = tmp_path / "acts.npz"
    shape = (len(ids), 2, 3, 3)
    if case == "str":
        _npz(path, ids, activations=np.full(shape, "x"))
    elif case == "complex":
        _npz(path, ids, activations=np.ones(shape, np.complex64))
    elif case == "bool":
        _npz(path, ids, activations=np.ones(shape, bool))
    elif case == "zero-spatial":
        _npz(path, ids, activations=np.ones((len(ids), 2, 0, 3), np.float32))
    elif case == "lying-header":
        _lying_header(path, ids)
    elif case == "npy":
        np.save(tmp_path / "acts.npy", np.ones(shape, np.float32))
        (tmp_path / "acts.npy").rename(path)
    elif case == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"PK\x03\x04 not really a zip")
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["score", "--activations", path, "--dataset", small, "--out", out], capsys)
    assert_one_error(code, err, expected=expected)
    assert not out.exists()


# -- datasets: refused before pass 1 -------------------------------------------------------------------------------
def _damaged_rows(case: str):
    import numpy as np

    from broden.labels import Label, LabelTable, Membership
    from broden.masks import encode_label_map
    from tests.helpers.hostile import tiny_rows

    rows, table = tiny_rows()
    masks = rows[2]["masks"]
    if case == "rle-larger-than-mask":
        masks["rle"][0] = encode_label_map(np.ones((20, 16), np.int32))[0][1]
    elif case == "layer-out-of-range":
        masks["layer"][0] = 3
    elif case == "mask-lists-differ":
        masks["label"].append(2)
    elif case == "negative-label":
        masks["label"][0] = -1
    elif case == "category-not-in-table":
        masks["category"][0] = "animal"
    elif case == "mixed-seg-sizes":
        small_rows, _ = tiny_rows(n=1, size=16)
        rows.append({**small_rows[0], "id": "tiny/small.jpg"})
    elif case == "huge-label-number":
        huge = Label(10**9, "huge", 1, 1.0, {"object": Membership(3, 1, 1.0)})
        table = LabelTable(table.categories, [*table.labels, huge])
    elif case == "bomb-image":
        rows[3]["image"] = bomb_png()
    else:
        raise AssertionError(case)
    return rows, table


@pytest.mark.parametrize("case, expected", [
    ("category-not-in-table", "tiny/img2.jpg: does not fit the dataset's schema"),
    ("huge-label-number", "label number 1000000000 is over 1,000,000"),
])
def test_the_typed_writer_refuses_what_its_features_cannot_hold(tmp_path, case, expected) -> None:
    from broden.dataset import write_dataset
    from broden.errors import BrodenError

    rows, table = _damaged_rows(case)
    with pytest.raises(BrodenError, match=re.escape(expected)):
        write_dataset(tmp_path / "ds", rows, table)
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize("case, expected", [
    ("rle-larger-than-mask", "[mask-size] mask 0 (object, label 2) covers 320 pixels, not seg 16x16 = 256"),
    ("layer-out-of-range", "[layer] mask 0 (object, label 2): layer 3 but layers[object] = 1"),
    ("mask-lists-differ", "[masks] the masks' category, layer, label and rle lists differ in length"),
    ("negative-label", "[label-unknown] mask 0: object label -1 is not in the label table"),
    ("mixed-seg-sizes", "segmentations come in 2 sizes"),
    ("bomb-image", "tiny/img3.jpg: image is too large to decode safely"),
])
def test_score_refuses_a_damaged_dataset(tiny_file, tmp_path, capsys, case, expected) -> None:
    from broden.dataset import write_dataset

    rows, table = _damaged_rows(case)
    ds = write_dataset(tmp_path / "ds", rows, table)
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["score", tiny_file, "--dataset", ds.path, "--out", out, "--workers", "0",
                                         "--batch-size", "2"], capsys)
    assert_one_error(code, err, expected=expected)
    assert not (out / "results.json").exists()
    if case != "bomb-image":  # images are decoded in pass 1; everything else is refused before it starts
        assert not out.exists()


@pytest.mark.parametrize("case", ["rle-larger-than-mask", "layer-out-of-range", "mixed-seg-sizes"])
def test_preflight_in_workers_finds_what_it_finds_in_process(tmp_path, monkeypatch, case) -> None:
    """Large datasets are checked by worker processes, span by span: the same first violation and count."""
    import broden.validate
    from broden.dataset import load, write_dataset
    from broden.errors import BrodenError

    rows, table = _damaged_rows(case)
    ds = load(write_dataset(tmp_path / "ds", rows, table).path)
    monkeypatch.setattr(broden.validate, "PREFLIGHT_SPAN", 2)  # several tasks for a handful of rows
    monkeypatch.setattr(broden.validate, "PREFLIGHT_MIN_ROWS", 1)
    messages = []
    for workers in (1, 2):
        with pytest.raises(BrodenError) as err:
            broden.validate.preflight(ds, workers=workers)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "broden validate" in messages[0]


def test_the_python_api_scores_from_a_script_without_a_main_guard(tiny_file, tmp_path) -> None:
    """``benchmark.score`` called at the top level of a script: the preflight of a large dataset must not start
    worker processes there (forkserver imports ``__main__`` again, which would run the script from the top)."""
    import subprocess
    import sys
    import textwrap

    from broden.dataset import write_dataset
    from tests.helpers.hostile import tiny_rows
    from tests.helpers.paths import REPO

    ds = write_dataset(tmp_path / "ds", *tiny_rows(n=6))
    script = tmp_path / "unguarded.py"
    script.write_text(textwrap.dedent(f"""
        import broden.validate, benchmark
        broden.validate.PREFLIGHT_MIN_ROWS, broden.validate.PREFLIGHT_SPAN = 1, 2  # "large": workers if allowed
        results = benchmark.score({str(tiny_file)!r}, {str(ds.path)!r}, out={str(tmp_path / "out")!r},
                                  workers=0, batch_size=2, quiet=True)
        print("scored", len(results.data["layers"]))
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("scored") == 1


@pytest.mark.parametrize("case, expected", [
    ("list", "not a JSON object"),
    ("no-fingerprint", "has no fingerprint"),
    ("not-utf8", "broden.json: unreadable"),
    ("image-size-text", "image_size is '224'; it must be [height, width]"),
    ("image-size-float", "image_size is [32.5, 32]"),
])
def test_score_refuses_damaged_metadata(tiny_file, tmp_path, capsys, case, expected) -> None:
    from broden.dataset import write_dataset
    from tests.helpers.hostile import tiny_rows

    ds = write_dataset(tmp_path / "ds", *tiny_rows(n=2))
    meta_path = ds.path / "broden.json"
    meta = json.loads(meta_path.read_text())
    if case == "list":
        meta_path.write_text("[]")
    elif case == "no-fingerprint":
        del meta["fingerprint"]
        meta_path.write_text(json.dumps(meta))
    elif case == "not-utf8":
        meta_path.write_bytes(json.dumps(meta).replace('"train"', '"tr\\u00e4in"').encode().replace(b"\\u00e4", b"\xe4"))
    else:
        meta["image_size"] = "224" if case == "image-size-text" else [32.5, 32]
        meta_path.write_text(json.dumps(meta))
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["score", tiny_file, "--dataset", ds.path, "--out", out], capsys)
    assert_one_error(code, err, expected=expected)
    assert not out.exists()
    from broden.cli import main as broden_main

    code, printed, err = run_in_process(broden_main, ["validate", ds.path], capsys)
    assert code != 0 and "Traceback" not in err  # validate says so too, as a violation or one error line


# -- results files -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case, expected", [
    ("directory", "not a regular file"),
    ("fifo", "not a regular file"),
    ("duplicate-layer", "$.layers[1].name: layer 'conv5' appears twice"),
    ("unit-out-of-range", "$.layers[0].units[1].unit: 9 is not below num_units 5"),
    ("created-yesterday", "$.created: 'yesterday' is not a 'date-time'"),
    ("huge-count", "$.layers[0].num_units: 5e+298 is greater than the maximum of 1048576"),
])
def test_results_files_are_checked_by_every_reader(tmp_path, capsys, case, expected) -> None:
    path = tmp_path / "results.json"
    doc = copy.deepcopy(results_doc("net", {"conv5": BEFORE}))
    if case == "directory":
        path.mkdir()
    elif case == "fifo":
        os.mkfifo(path)
    else:
        if case == "duplicate-layer":
            doc["layers"].append(doc["layers"][0])
        elif case == "unit-out-of-range":
            doc["layers"][0]["units"][1]["unit"] = 9
        elif case == "created-yesterday":
            doc["created"] = "yesterday"
        else:
            doc["layers"][0]["num_units"] = 5e298
        write(path, doc)
    for command in (["summary", path], ["units", path], ["report", path, "--out", tmp_path / "rep"]):
        code, _, err = run_in_process(main, command, capsys)
        assert_one_error(code, err, expected=expected)
    assert not (tmp_path / "rep").exists()


# -- untrusted text ------------------------------------------------------------------------------------------------
EVIL = "[/bold]evil\x1b[31m red\x1b]0;pwned\x07 \u202ecod.exe\x07"


@pytest.fixture()
def evil_results(tmp_path) -> Path:
    from tests.helpers.results_data import unit_doc

    units = [unit_doc(0, {"object": ('=HYPERLINK("http://x","y")', 0.2)}), unit_doc(1, {"scene": (EVIL, 0.1)}),
             unit_doc(2, {"color": ("+1", 0.05)})]
    return write(tmp_path / "results.json", results_doc(EVIL, {f"layer {EVIL}": units}))


def _no_escapes(text: str) -> None:
    for bad in ("\x1b", "\x07", "\u202e", "\x9b"):
        assert bad not in text, repr(text)


def test_names_reach_the_terminal_as_plain_text(evil_results, capsys) -> None:
    for command in (["summary", evil_results], ["units", evil_results]):
        code, out, err = run_in_process(main, command, capsys)
        assert code == 0, err
        _no_escapes(out)
        assert "[/bold]evil" in out  # rich markup is shown as written, not interpreted (nor a MarkupError)


def test_csv_cells_cannot_start_a_formula(evil_results, capsys) -> None:
    import csv
    import io

    code, out, _ = run_in_process(main, ["units", evil_results, "--format", "csv"], capsys)
    assert code == 0
    _no_escapes(out)
    labels = [row["label"] for row in csv.DictReader(io.StringIO(out))]
    assert labels[0] == "'=HYPERLINK(\"http://x\",\"y\")" and labels[2] == "'+1"
    assert labels[1].startswith("[/bold]evil")


@pytest.mark.filterwarnings("error::UserWarning")  # matplotlib would warn, quoting the raw character
def test_report_pages_and_charts_are_clean_and_parse(evil_results, tmp_path, capsys) -> None:
    from xml.etree import ElementTree

    out = tmp_path / "rep"
    code, _, err = run_in_process(main, ["report", evil_results, "--out", out], capsys)
    assert code == 0, err
    svgs = list(out.rglob("*.svg"))
    assert svgs
    for path in [*svgs, *out.glob("*.html")]:
        text = path.read_text(encoding="utf-8")
        _no_escapes(text)
        if path.suffix == ".svg":
            ElementTree.fromstring(text)


def test_an_activation_cache_that_does_not_fit_falls_back_to_recomputing(small, tiny_file, tmp_path, capsys,
                                                                         monkeypatch) -> None:
    from benchmark import scorer

    monkeypatch.setattr(scorer, "free_bytes", lambda path: 1000)  # a nearly full disk, seen before pass 1
    out = tmp_path / "out"
    code, _, err = run_in_process(main, ["score", tiny_file, "--dataset", small, "--out", out, "--workers", "0"],
                                  capsys)
    assert code == 0, err
    assert "note: the activation cache needs" in err and "pass 2 recomputes the forward pass instead" in err
    assert (out / "results.json").is_file() and not (out / "cache").exists()
