"""The report and comparison pages in a real headless Chromium from file://: every image decodes, no console
errors, no failed requests, the sort and filter controls work, and a hostile model name stays text."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.html.compare import build_compare
from benchmark.html.report import build_report
from tests.helpers.browser import broken_images, browser_page
from tests.helpers.results_data import AFTER, BEFORE, make_dataset, results_doc, unit_doc, write, write_scored

pytestmark = pytest.mark.browser
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def pages(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("browser")
    dataset = make_dataset(root / "ds")
    report, _ = build_report(write_scored(root / "run", dataset, name=HOSTILE))
    middle = [unit_doc(u["unit"], {u["category"]: (u["label"], u["iou"])}) for u in AFTER[:3]] + BEFORE[3:]
    series = [
        write(root / f"epoch{i}.json", results_doc("net", {"conv5": u})) for i, u in enumerate([BEFORE, middle, AFTER])
    ]
    other = write(root / "other.json", results_doc("resnet", {"layer4": AFTER[:3]}))
    return {
        "index": report / "index.html",
        "conv5": report / "layer-conv5.html",
        "fc": report / "layer-fc_6_a.html",
        "units": build_compare([series[0], series[2]], out=root / "units", names=[HOSTILE, "after"]).path / "index.html",
        "checkpoints": build_compare(series, out=root / "series").path / "index.html",
        "models": build_compare([series[0], other], out=root / "models").path / "index.html",
    }


def all_images_loaded(page) -> list[str]:
    """broken_images after asking lazy images to load now (a headless viewport never scrolls to them)."""
    page.eval_on_selector_all("img[loading=lazy]", "els => els.forEach(e => { e.loading = 'eager'; })")
    page.wait_for_function("Array.from(document.images).every(e => e.complete)")
    return broken_images(page)


def test_pages_load_cleanly_with_every_image(pages) -> None:
    with browser_page(pages["index"].as_uri()) as (page, log):
        for name, path in pages.items():
            page.goto(path.as_uri(), wait_until="load")
            assert (page.locator("img").count() == 0) == (name == "units"), name  # the unit table has no chart
            assert all_images_loaded(page) == [], name
            assert log.console_errors == [] and log.failed_requests == [], name
        page.goto(pages["index"].as_uri())
        page.click("text=conv5")
        assert page.url == pages["conv5"].as_uri()


def test_sort_and_filter_controls_reorder_the_gallery(pages) -> None:
    with browser_page(pages["conv5"].as_uri()) as (page, log):
        def order() -> list[str]:
            return page.eval_on_selector_all("#gallery .unit:not([hidden])", "els => els.map(e => e.dataset.unit)")

        assert order() == ["1", "0", "2", "3"]  # by IoU
        page.select_option("#sort", "unit")
        assert order() == ["0", "1", "2", "3"]
        page.select_option("#sort", "label")
        assert order() == ["1", "0", "3", "2"]  # dog, dog (higher IoU first), red-c, street-s
        page.select_option("#category", "object")
        assert order() == ["1", "0"] and page.inner_text("#shown") == "2 of 4 units"
        page.select_option("#category", "")
        page.check("#detectors-only")
        assert sorted(order()) == ["0", "1", "2"]
        assert log.console_errors == []


def test_hostile_model_name_renders_as_text(pages) -> None:
    with browser_page(pages["index"].as_uri()) as (page, log):
        for name, scripts in (("index", 0), ("conv5", 1), ("units", 1)):
            page.goto(pages[name].as_uri())
            assert HOSTILE in page.title()
            assert HOSTILE in (page.inner_text("header nav") if name == "conv5" else page.inner_text("h1"))
            assert page.locator("script").count() == scripts  # only our own inline script
        assert log.console_errors == []


def test_convention_switch_shows_one_chart_at_a_time(pages) -> None:
    with browser_page(pages["checkpoints"].as_uri()) as (page, log):
        per_cat, top = page.locator("img.per-category"), page.locator("img.top-label")
        assert per_cat.is_visible() and not top.is_visible()
        page.check("input[value=top-label]")
        assert top.is_visible() and not per_cat.is_visible()
        page.select_option("#status", "gained")
        visible = page.eval_on_selector_all(
            "table.changes tbody tr:not([hidden])", "rows => rows.map(r => r.dataset.status)"
        )
        assert visible == ["gained"]
        assert log.console_errors == []
