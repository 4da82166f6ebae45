"""The static site build: ranking, escaping, rejected submissions, charts and model pages, and output safety."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from broden.utils.outputs import MARKER
from leaderboard.cli import main
from tests.helpers.submissions import (
    HOSTILE,
    SEED,
    SUBMISSIONS,
    XSS,
    build,
    rejected_files,
    tiny,
    two_layer_measured,
    write_submissions,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("leaderboard")
    expected = write_submissions(root / "submissions")
    code, out, err = build(root / "submissions", root / "site")
    return {"root": root, "out": root / "site", "code": code, "stdout": out, "stderr": err, **expected}


def rows(html: str) -> list[str]:
    """The leaderboard table's rows (a row may hold a nested layer table)."""
    body = html.split("<tbody>", 1)[1].split("\n</tbody>", 1)[0]
    return ["<tr id=" + r for r in body.split("\n<tr id=")[1:]]


def test_build_succeeds_and_reports_every_rejected_file(site: dict[str, Any]) -> None:
    assert site["code"] == 0, site["stderr"]
    assert "6 entries (4 ranked, 2 other protocol), 7 rejected" in site["stdout"]
    html = (site["out"] / "index.html").read_text()
    rejected = html.split('id="rejected"', 1)[1]
    reported = dict(re.findall(r"^rejected: (.*?\.json): (.*)$", site["stderr"], re.M))
    listed = dict(re.findall(r"<li><code>(.*?)</code>: (.*?)</li>", rejected))
    for name, (_, reason) in {**rejected_files(), "huge.json": ("", "$: 52,428,800 bytes is over")}.items():
        assert reason in reported[name], reported
        assert escape(reason) in listed[escape(name)], listed
    assert len(rows(html)) == site["valid"]


def escape(text: str) -> str:
    import markupsafe

    return str(markupsafe.escape(text))


def test_rows_are_ranked_by_unique_detectors_other_protocol_last(site: dict[str, Any]) -> None:
    html = (site["out"] / "index.html").read_text()
    ranks = [re.search(r'<td data-sort="(\d*)">', r).group(1) for r in rows(html)]
    uniques = [int(re.findall(r'<td class="unique" data-sort="(\d+)"', r)[0]) for r in rows(html)]
    assert ranks == ["1", "2", "3", "4", "", ""]
    assert uniques[:4] == sorted(uniques[:4], reverse=True) and uniques[0] == 203  # VGG-16 Places365, as published
    assert all("other protocol" in r for r in rows(html)[4:])
    two_layer = next(r for r in rows(html) if "Two-layer net" in r)
    assert '<summary>conv5 <span class="more">+1 layer</span>' in two_layer  # the last layer is the row's
    assert "<td>layer3</td><td>8</td>" in two_layer and "example.org/weights.pth" in two_layer  # the other: listed


def test_markup_in_submissions_renders_as_text(site: dict[str, Any]) -> None:
    pages = [site["out"] / "index.html", *(site["out"] / "models").glob("**/index.html")]
    for page in pages:
        html = page.read_text()
        body = html.split("<body>", 1)[1].split("<script>", 1)[0]  # everything but the site's own scripts
        assert "<script" not in body and "<img src=x" not in body and 'href="javascript:' not in body, page
    hostile = (site["out"] / "models" / HOSTILE / "index.html").read_text()
    assert escape(XSS[0]) in hostile and escape(XSS[1]) in hostile


def test_model_pages_have_charts_and_best_units(site: dict[str, Any]) -> None:
    models = site["out"] / "models"
    assert sorted(p.parent.name for p in models.glob("*/index.html")) == sorted(
        ["alexnet-places365", "vgg-16-places365", "alexnet-random-weights", HOSTILE, "two-layer-net",
         "unknown-data-net"])
    assert not list(models.glob("*/*/index.html"))  # one version of each line: no older versions
    page = (models / "two-layer-net" / "index.html").read_text()
    charts = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert charts == ["layers.svg", "layer0-detectors.svg", "layer0-unique.svg", "layer1-detectors.svg",
                      "layer1-unique.svg"]  # detectors and unique detectors on separate axes
    for chart in charts:
        assert (models / "two-layer-net" / chart).read_text().lstrip().startswith("<?xml")
    assert page.count('class="sortable best-units"') == 2 and "not comparable" in page
    reported = (models / "vgg-16-places365" / "index.html").read_text()
    assert "best-units" not in reported and "unique (top-label)" not in reported  # no per-unit data published
    assert (site["out"] / "charts" / "unique-detectors.svg").stat().st_size > 1000


def test_site_loads_nothing_from_elsewhere(site: dict[str, Any]) -> None:
    for page in [site["out"] / "index.html", *(site["out"] / "models").glob("**/index.html")]:
        html = page.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', html.replace('href="https://', "")), page
        assert "<script src" not in html
        assert re.findall(r"<link[^>]*>", html) == ['<link rel="icon" href="data:,">']  # no favicon request


def test_build_with_no_valid_entry_fails_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "bad.json").write_text("{")
    code, _, err = build(tmp_path / "subs", tmp_path / "site")
    assert code == 1 and "no valid submissions (1 rejected)" in err
    assert not (tmp_path / "site").exists()


def test_build_never_replaces_a_directory_it_did_not_build(site: dict[str, Any], tmp_path: Path) -> None:
    precious = tmp_path / "home"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    code, _, err = build(site["root"] / "submissions", precious)
    assert code == 2 and "holds files not written by 'leaderboard build'" in err
    assert [p.name for p in precious.iterdir()] == ["thesis.tex"]
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(site["out"], rebuilt)
    (rebuilt / "stale.html").write_text("old")
    small = tmp_path / "small"
    small.mkdir()
    shutil.copy(SUBMISSIONS / SEED[2], small / SEED[2])
    assert build(small, rebuilt)[0] == 0  # a previous build is replaced whole
    assert (rebuilt / MARKER).exists() and not (rebuilt / "stale.html").exists()
    assert len(rows((rebuilt / "index.html").read_text())) == 1


def test_the_seed_submissions_build(tmp_path: Path) -> None:
    code, out, err = build(SUBMISSIONS, tmp_path / "site")
    assert (code, err) == (0, "")
    assert "28 entries (27 ranked, 1 other protocol), 0 rejected" in out
    html = (tmp_path / "site" / "index.html").read_text()
    assert len(rows(html)) == 28 and 'id="rejected"' not in html
    first = rows(html)[0]
    assert "ResNet-152 Places365" in first and 'data-sort="347" data-all="347"><b>347</b></td>' in first
    assert first.startswith('<tr id="resnet-152-places365"')
    assert len(list((tmp_path / "site" / "models").glob("*/index.html"))) == 28


def test_the_csv_has_one_row_per_model_and_layer(site: dict[str, Any]) -> None:
    import csv

    with open(site["out"] / "leaderboard.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 7  # six lines, the two-layer one twice
    html = (site["out"] / "index.html").read_text()
    shown_ranks = [re.search(r'<td data-sort="(\d*)">', r).group(1) for r in rows(html)]
    assert [r["rank"] for r in table if r["ranked_layer"] == "1"] == shown_ranks
    for row in table:
        submitted = json.loads((site["root"] / "submissions" / row["file"]).read_text())
        layer = next(layer for layer in submitted["layers"] if layer["name"] == row["layer"])
        assert (row["model"], int(row["unique"]), int(row["detectors"])) == (
            submitted["name"], layer["summary"]["unique_per_category"]["all"], layer["summary"]["detectors"]["all"])
        assert (site["out"] / "submissions" / row["file"]).read_bytes() == (
            site["root"] / "submissions" / row["file"]).read_bytes()  # the raw JSON, byte for byte
        assert (site["out"] / row["page"]).is_file()


def test_a_rescored_model_keeps_its_permalink_and_older_versions_their_pages(tmp_path: Path) -> None:
    import hashlib

    new, old = two_layer_measured(), two_layer_measured()
    new["created"], old["created"] = "2026-06-01T00:00:00Z", "2026-01-01T00:00:00+00:00"
    old["model"]["training_data"] = "an older training run"
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "a-new.json").write_text(json.dumps(new))  # file names in the opposite order to dates
    (tmp_path / "subs" / "z-old.json").write_text(json.dumps(old))
    code, out, err = build(tmp_path / "subs", tmp_path / "site")
    assert code == 0 and "1 entries" in out, err
    index = (tmp_path / "site" / "index.html").read_text()
    assert len(rows(index)) == 1 and 'href="models/two-layer-net/index.html"' in index
    line = tmp_path / "site" / "models" / "two-layer-net"
    version = hashlib.sha256((tmp_path / "subs" / "z-old.json").read_bytes()).hexdigest()[:12]
    latest, older = (line / "index.html").read_text(), (line / version / "index.html").read_text()
    assert "an older training run" not in latest and f'href="../../models/two-layer-net/{version}/index.html"' in latest
    assert "an older training run" in older and "earlier version" in older
    assert 'href="../../../models/two-layer-net/index.html"' in older  # points back to the permalink
    assert 'href="../../../submissions/z-old.json"' in older and (tmp_path / "site" / "submissions" / "z-old.json").exists()


def test_a_release_is_a_complete_snapshot_written_once(tmp_path: Path) -> None:
    import hashlib

    from broden import __version__

    subs = tmp_path / "subs"
    subs.mkdir()
    for name in SEED[:2]:
        shutil.copy(SUBMISSIONS / name, subs / name)
    old, new = two_layer_measured(), two_layer_measured()
    old["created"], new["created"] = "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"
    new["environment"] = {"broden_version": "0.0.9"}
    (subs / "old.json").write_text(json.dumps(old))
    (subs / "new.json").write_text(json.dumps(new))
    releases = tmp_path / "releases"
    args = ["build", str(subs), "--out", str(releases), "--release", "v1"]
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(args) == 0
    assert f"{releases / 'v1' / 'release.json'} lists 4 files" in stdout.getvalue()

    release = json.loads((releases / "v1" / "release.json").read_text())
    assert (release["release"], release["harness_version"]) == ("v1", __version__)
    listed = {e["file"]: e for e in release["entries"]}
    assert sorted(listed) == sorted(p.name for p in subs.iterdir())
    for name, e in listed.items():
        submitted = json.loads((subs / name).read_text())
        assert e["sha256"] == hashlib.sha256((subs / name).read_bytes()).hexdigest()
        assert e["dataset"] == {k: submitted["dataset"][k] for k in ("name", "fingerprint")}
        assert (releases / "v1" / e["page"] / "index.html").is_file()
    assert listed["new.json"]["harness_version"] == "0.0.9" and listed["new.json"]["latest"]
    assert not listed["old.json"]["latest"] and listed[SEED[0]]["harness_version"] is None
    index = (releases / "v1" / "index.html").read_text()
    assert "release v1" in index and 'href="release.json"' in index
    files = [p for p in (releases / "v1").rglob("*") if p.is_file()]
    assert files and all(p.stat().st_mode & 0o222 == 0 for p in files)  # read-only

    before = {p: p.read_bytes() for p in files}
    (subs / "new.json").write_text(json.dumps(old | {"name": "Changed"}))
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(args) == 1
        assert main([*args[:-1], "latest"]) == 2
    assert "release v1 exists and releases never change" in stderr.getvalue()
    assert "name releases v1, v2, ..." in stderr.getvalue()
    assert {p: p.read_bytes() for p in files} == before and sorted(p.name for p in releases.iterdir()) == ["v1"]



def test_confidence_intervals_are_shown_where_the_results_carry_them(tmp_path: Path) -> None:
    import csv

    from leaderboard.site import load, write_site

    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "two-layer.json").write_text(json.dumps(two_layer_measured()))
    (tmp_path / "subs" / SEED[0]).write_text((SUBMISSIONS / SEED[0]).read_text())
    site = load(tmp_path / "subs")
    with_ci = next(e for e in site.entries if e.file == "two-layer.json")
    # the shape of results that carry bootstrap intervals (schema version 2): layer.intervals[key][category]
    with_ci.results["protocol"]["bootstrap"] = {"folds": 10, "replicates": 200, "seed": 0, "confidence": 0.95}
    with_ci.layer["intervals"] = {"unique_per_category": {"all": [1, 4], "object": [0, 2]}}
    write_site(site, tmp_path / "subs", tmp_path / "site")

    index = (tmp_path / "site" / "index.html").read_text()
    row = next(r for r in rows(index) if "Two-layer net" in r)
    assert '<span class="ci" title="95% bootstrap confidence interval">1–4</span></td>' in row
    assert all('class="ci"' not in r for r in rows(index) if "Two-layer net" not in r)  # none invented
    page = (tmp_path / "site" / "models" / "two-layer-net" / "index.html").read_text()
    assert page.count('<tr class="ci-row">') == 1 and ">0–2</span>" in page  # the last layer's, per category
    with open(tmp_path / "site" / "leaderboard.csv", newline="") as f:
        table = {(r["model"], r["layer"]): r for r in csv.DictReader(f)}
    assert (table[("Two-layer net", "conv5")]["unique_low"], table[("Two-layer net", "conv5")]["unique_high"]) == ("1", "4")
    assert table[("Two-layer net", "layer3")]["unique_low"] == ""


def test_submitted_text_cannot_become_a_formula_in_the_csv(tmp_path: Path) -> None:
    import csv

    entry = tiny()
    entry["name"] = '=HYPERLINK("http://evil.example","click")'
    entry["model"]["architecture"] = "@SUM(A1:A9)"
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "entry.json").write_text(json.dumps(entry))
    code, _, err = build(tmp_path / "subs", tmp_path / "site")
    assert code == 0, err
    with open(tmp_path / "site" / "leaderboard.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["model"] == "'" + entry["name"] and row["architecture"] == "'@SUM(A1:A9)"
