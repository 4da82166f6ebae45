"""The built leaderboard in a real headless Chromium: rows, sorting, hostile text, model pages, clean loads."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import broken_images, browser_page
from tests.helpers.submissions import XSS, build, write_submissions

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("leaderboard-browser")
    expected = write_submissions(root / "submissions")
    code, _, err = build(root / "submissions", root / "site")
    assert code == 0, err
    return {"out": root / "site", **expected}


def column(page: Any, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#leaderboard tbody tr", f"rows => rows.map(r => r.cells[{index}].textContent.trim())")


def header_index(page: Any, title: str) -> int:
    titles = page.eval_on_selector_all("#leaderboard thead th", "ths => ths.map(t => t.textContent.trim())")
    return titles.index(title)


def load_clean(page: Any, url: str) -> list[str]:
    """Reload ``url`` with a dialog listener attached from the start; returns the messages of any dialogs."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url, wait_until="load")
    return dialogs


def test_index_lists_every_entry_sorts_and_shows_markup_as_text(site: dict[str, Any], tmp_path: Path) -> None:
    url = (site["out"] / "index.html").as_uri()
    with browser_page(url) as (page, log):
        dialogs = load_clean(page, url)
        assert page.locator("#leaderboard tbody tr").count() == site["valid"]
        assert column(page, 0)[: site["ranked"] + 1] == ["1", "2", "3", "4", "–"]

        model = header_index(page, "Model")
        page.click(f"#leaderboard thead th:nth-child({model + 1})")
        names = column(page, model)
        assert names == sorted(names, key=str.lower) and names != column_before(site)
        units = header_index(page, "Units")
        page.click(f"#leaderboard thead th:nth-child({units + 1})")
        values = [int(v) for v in column(page, units)]
        assert values == sorted(values, reverse=True) and values[0] == 512  # VGG-16 first
        page.click(f"#leaderboard thead th:nth-child({units + 1})")
        assert [int(v) for v in column(page, units)] == sorted(values)
        assert page.get_attribute(f"#leaderboard thead th:nth-child({units + 1})", "aria-sort") == "ascending"

        assert XSS[0] in names  # the hostile name is shown literally, as text
        assert page.locator("#leaderboard script, img[src=x]").count() == 0
        assert XSS[1] in page.inner_text("#rejected")
        assert page.locator("#leaderboard .badge-other").count() == site["valid"] - site["ranked"]
        assert broken_images(page) == []
        page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
        assert (tmp_path / "leaderboard.png").stat().st_size > 10_000
    assert dialogs == []
    assert (log.console_errors, log.failed_requests) == ([], [])


def column_before(site: dict[str, Any]) -> list[str]:
    """Model names in the built (rank) order, read from the static HTML."""
    page = (site["out"] / "index.html").read_text()
    return [html.unescape(n) for n in re.findall(r'<td><a href="models/[^"]+">(.*?)</a>', page)]


def test_model_pages_load_with_their_charts(site: dict[str, Any]) -> None:
    url = (site["out"] / "index.html").as_uri()
    with browser_page(url) as (page, log):
        page.click("text=Two-layer net")
        page.wait_for_load_state("load")
        assert page.url.endswith("/models/two-layer.html")
        assert page.locator("img").count() == 3 and broken_images(page) == []
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert min(widths) > 100
        assert page.locator("table.best-units tbody tr").count() == 8 + 4
        dialogs = load_clean(page, (site["out"] / "models" / "hostile.html").as_uri())
        assert page.inner_text("h1").startswith(XSS[0])
        assert XSS[0] + "0" in page.inner_text("table.best-units")
        assert page.locator("main a[href^='javascript']").count() == 0
        assert broken_images(page) == []
    assert dialogs == []
    assert (log.console_errors, log.failed_requests) == ([], [])
