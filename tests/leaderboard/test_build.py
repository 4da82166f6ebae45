"""The static site build: ranking, escaping, rejected submissions, charts and model pages, and output safety."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from broden.utils.outputs import MARKER
from tests.helpers.submissions import (
    SEED,
    SUBMISSIONS,
    XSS,
    build,
    rejected_files,
    write_submissions,
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("leaderboard")
    expected = write_submissions(root / "submissions")
    code, out, err = build(root / "submissions", root / "site")
    return {"root": root, "out": root / "site", "code": code, "stdout": out, "stderr": err, **expected}


def rows(html: str) -> list[str]:
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return re.findall(r"<tr[^>]*>.*?</tr>", body, re.S)


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
    uniques = [int(re.findall(r'<td data-sort="(\d+)"><b>', r)[0]) for r in rows(html)]
    assert ranks == ["1", "2", "3", "4", "", ""]
    assert uniques[:4] == sorted(uniques[:4], reverse=True) and uniques[0] == 203  # VGG-16 Places365, as published
    assert all("other protocol" in r for r in rows(html)[4:])
    two_layer = next(r for r in rows(html) if "Two-layer net" in r)
    assert "<td>conv5</td>" in two_layer and "example.org/weights.pth" in two_layer  # the last layer is the row


def test_markup_in_submissions_renders_as_text(site: dict[str, Any]) -> None:
    pages = [site["out"] / "index.html", *(site["out"] / "models").glob("*.html")]
    for page in pages:
        html = page.read_text()
        body = html.split("<body>", 1)[1].rsplit("<script>", 1)[0]  # everything but the site's own sorting script
        assert "<script" not in body and "<img src=x" not in body and 'href="javascript:' not in body, page
    hostile = (site["out"] / "models" / "hostile.html").read_text()
    assert escape(XSS[0]) in hostile and escape(XSS[1]) in hostile


def test_model_pages_have_charts_and_best_units(site: dict[str, Any]) -> None:
    models = site["out"] / "models"
    assert sorted(p.stem for p in models.glob("*.html")) == sorted(
        [Path(n).stem for n in SEED] + ["hostile", "two-layer", "wrong-fingerprint"])
    page = (models / "two-layer.html").read_text()
    charts = re.findall(r'<img[^>]*src="\.\./(charts/[^"]+)"', page)
    assert charts == ["charts/two-layer-layers.svg", "charts/two-layer-layer0.svg", "charts/two-layer-layer1.svg"]
    for chart in charts:
        assert (site["out"] / chart).read_text().lstrip().startswith("<?xml")
    assert page.count('class="sortable best-units"') == 2 and "not comparable" in page
    reported = (models / f"{Path(SEED[1]).stem}.html").read_text()
    assert "best-units" not in reported and "unique (top-label)" not in reported  # no per-unit data published
    assert (site["out"] / "charts" / "unique-detectors.svg").stat().st_size > 1000


def test_site_loads_nothing_from_elsewhere(site: dict[str, Any]) -> None:
    for page in [site["out"] / "index.html", *(site["out"] / "models").glob("*.html")]:
        html = page.read_text()
        assert not re.search(r'(src|href)="(https?:)?//', html.replace('href="https://', "")), page
        assert "<link" not in html and "<script src" not in html


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
    assert "ResNet-152 Places365" in first and '<td data-sort="347"><b>347</b></td>' in first
    assert len(list((tmp_path / "site" / "models").glob("*.html"))) == 28
