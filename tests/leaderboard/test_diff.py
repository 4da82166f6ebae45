"""``leaderboard diff``: added, changed and removed lines, rank moves, rejected files, and escaped submitted text."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from benchmark.summary import summarize_layer
from leaderboard.cli import main
from leaderboard.diff import escape
from tests.helpers.submissions import tiny


def entry(name: str, detectors: int) -> dict:
    """``tiny()`` named ``name`` with 2, 1 or 0 of its detectors (dog, sky: distinct labels) left as detectors."""
    r = tiny()
    r["name"] = name
    layer = r["layers"][0]
    for u in [layer["units"][2], layer["units"][0]][: 2 - detectors]:
        best = u["categories"][u["category"]]
        best.update(intersection=2, activation=100, truth=2, iou=0.02)  # below the 0.04 threshold
        u["iou"] = best["iou"]
    layer["summary"] = summarize_layer(layer["units"], r["protocol"]["categories"], 0.04)
    return r


def diff(tmp_path: Path, base: dict[str, object], head: dict[str, object]) -> str:
    for side, files in (("base", base), ("head", head)):
        (tmp_path / side).mkdir()
        for name, obj in files.items():
            (tmp_path / side / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["diff", str(tmp_path / "base"), str(tmp_path / "head")]) == 0
    return out.getvalue()


def test_diff_lists_added_changed_removed_and_moved_lines(tmp_path: Path) -> None:
    a, b, c = entry("Alpha", 1), entry("Beta", 0), entry("Gone", 0)  # ranks 1, 2, 2
    b2 = entry("Beta", 2)  # re-scored: two detectors now
    report = diff(tmp_path, {"a.json": a, "b.json": b, "c.json": c},
                  {"a.json": a, "b-v2.json": b2, "new.json": entry("<b>New</b> | x", 2), "bad.json": "{"})
    lines = report.splitlines()
    assert "main: 3 entries; this pull request: 3 entries." in lines
    assert "| added | &lt;b&gt;New&lt;/b&gt; \\| x | conv5 | 2 | 2 | – → 1 | new.json | leaderboard |" in lines
    assert "| changed | Beta | conv5 | 2 (was 0) | 2 (was 0) | 2 → 1 | b\\-v2.json | leaderboard |" in lines
    assert "| removed | Gone | conv5 | 0 | 0 | 2 → – | c.json | leaderboard |" in lines
    assert "| Alpha | conv5 | 1 → 3 |" in lines  # unchanged, but pushed down by the two tied above it
    assert lines[-1].startswith("- bad.json: $: not valid JSON")


def test_diff_without_changes_says_so(tmp_path: Path) -> None:
    a = entry("Alpha", 1)
    report = diff(tmp_path, {"a.json": a}, {"renamed.json": a})
    assert "No leaderboard line is added, changed or removed." in report and "Rank changes" not in report


def test_escape_neutralises_markup_and_newlines() -> None:
    assert escape("[x](javascript:alert(1))\n| `y` *z* <img>") == \
        "\\[x\\]\\(javascript:alert\\(1\\)\\) \\| \\`y\\` \\*z\\* &lt;img&gt;"
