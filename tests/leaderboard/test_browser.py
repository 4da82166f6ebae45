"""The built leaderboard in a real headless Chromium: rows, sorting, filtering, category toggles, anchors,
downloads, hostile text, model pages, the 1280 px layout, clean loads and no request to anywhere else."""

from __future__ import annotations

import functools
import html
import json
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import broken_images, browser_page
from tests.helpers.submissions import HOSTILE, XSS, build, write_submissions

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("leaderboard-browser")
    expected = write_submissions(root / "submissions")
    code, _, err = build(root / "submissions", root / "site")
    assert code == 0, err
    return {"root": root, "out": root / "site", **expected}


def column(page: Any, index: int) -> list[str]:
    return page.eval_on_selector_all(
        "#leaderboard > tbody > tr", f"rows => rows.map(r => r.cells[{index}].textContent.trim())")


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
        assert page.locator("#leaderboard > tbody > tr").count() == site["valid"]
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
    return [html.unescape(n) for n in re.findall(r'<td class="model"><a href="models/[^"]+">(.*?)</a>', page)]


def test_model_pages_load_with_their_charts(site: dict[str, Any]) -> None:
    url = (site["out"] / "index.html").as_uri()
    with browser_page(url) as (page, log):
        page.click("text=Two-layer net")
        page.wait_for_load_state("load")
        assert page.url.endswith("/models/two-layer-net/index.html")
        assert page.locator("img").count() == 5 and broken_images(page) == []
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert min(widths) > 100
        assert page.locator("table.best-units tbody tr").count() == 8 + 4
        dialogs = load_clean(page, (site["out"] / "models" / HOSTILE / "index.html").as_uri())
        assert page.inner_text("h1").startswith(XSS[0])
        assert XSS[0] + "0" in page.inner_text("table.best-units")
        assert page.locator("main a[href^='javascript']").count() == 0
        assert broken_images(page) == []
    assert dialogs == []
    assert (log.console_errors, log.failed_requests) == ([], [])


@pytest.fixture(scope="module")
def served(site: dict[str, Any]) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1 (downloads need a real origin); yields its base URL."""
    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site["out"])))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def visible_names(page: Any) -> list[str]:
    return page.eval_on_selector_all(
        "#leaderboard > tbody > tr:not([hidden]) td.model a", "links => links.map(a => a.textContent.trim())")


def fits(page: Any) -> bool:
    """Nothing sticks out of the viewport sideways: no horizontal scrolling, no cell beyond the right edge."""
    return page.evaluate("""() => document.documentElement.scrollWidth <= window.innerWidth &&
        Array.from(document.querySelectorAll('th, td')).every(c => c.getBoundingClientRect().right <= window.innerWidth)""")


def test_filter_toggles_anchors_and_downloads(site: dict[str, Any], served: str, tmp_path: Path) -> None:
    submitted = {p.name: json.loads(p.read_text()) for p in (site["out"] / "submissions").glob("*.json")}
    with browser_page(served + "index.html", width=1280) as (page, log):
        assert fits(page)
        assert page.inner_text("#shown") == f"{site['valid']} of {site['valid']} models shown"
        page.fill("#filter", "Places365")
        expected = sorted(r["name"] for r in submitted.values() if "places365" in json.dumps(
            [r["name"], r["model"].get("architecture"), r["model"].get("training_data")]).lower())
        assert sorted(visible_names(page)) == expected and len(expected) == 2
        page.fill("#filter", "two layer3")  # every term must match: the name and a non-ranked layer
        assert visible_names(page) == ["Two-layer net"]
        page.fill("#filter", "")
        assert len(visible_names(page)) == site["valid"]

        vgg = next(r for r in submitted.values() if r["name"] == "VGG-16 Places365")["layers"][-1]["summary"]
        page.uncheck("input[data-category=scene]")
        assert not page.is_visible("#leaderboard th[data-category=scene]")
        assert page.inner_text("#vgg-16-places365 td.unique") == str(
            vgg["unique_per_category"]["all"] - vgg["unique_per_category"]["scene"])
        unique = header_index(page, "Unique")
        page.click(f"#leaderboard thead th:nth-child({unique + 1})")
        values = [int(v) for v in column(page, unique)]
        assert values == sorted(values, reverse=True)
        page.check("input[data-category=scene]")
        assert page.inner_text("#vgg-16-places365 td.unique") == str(vgg["unique_per_category"]["all"])

        with page.expect_download() as download:
            page.click("#download-csv")
        assert Path(download.value.path()).read_bytes() == (site["out"] / "leaderboard.csv").read_bytes()

        page.goto(served + "index.html#two-layer-net", wait_until="load")
        assert page.evaluate("document.querySelector(':target').id") == "two-layer-net"
        assert page.evaluate("document.getElementById('two-layer-net').getBoundingClientRect().top") < 900
        page.click("#two-layer-net details summary")  # the row's other layers
        assert page.is_visible("#two-layer-net table.layer-list")
        page.click("#two-layer-net td.model a")
        page.wait_for_load_state("load")
        assert page.url == served + "models/two-layer-net/index.html"
        assert fits(page)
        with page.expect_download() as download:
            page.click("#download-json")
        assert Path(download.value.path()).read_bytes() == (site["root"] / "submissions" / "two-layer.json").read_bytes()
        page.click("text=← all models")
        page.wait_for_load_state("load")
        assert page.url == served + "index.html#two-layer-net"
    assert (log.console_errors, log.failed_requests) == ([], [])
    assert log.requests and all(url.startswith(served) for url in log.requests), log.requests
