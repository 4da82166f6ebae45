"""Headless Chromium for tests: Debian's /usr/bin/chromium driven by Playwright (never a downloaded browser).

``browser_page(url)`` opens a page and records console errors, failed requests and every requested URL, so a test
can assert the page loaded cleanly and fetched nothing from elsewhere. Without Chromium the test is skipped locally and fails in CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class PageLog:
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL the page asked for, in order


def require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run must install Debian's chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")


@contextlib.contextmanager
def browser_page(url: str, *, width: int = 1280, height: int = 900) -> Iterator[tuple[Any, PageLog]]:
    """Yield ``(page, log)`` for ``url`` after the load event; the browser closes on exit."""
    require_chromium()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    log = PageLog()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport={"width": width, "height": height}
            )
            try:
                page = browser.new_page()
                page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: log.console_errors.append(str(e)))
                page.on("request", lambda r: log.requests.append(r.url))
                page.on("requestfailed", lambda r: log.failed_requests.append(f"{r.url} {r.failure}"))
                page.on(
                    "response",
                    lambda r: log.failed_requests.append(f"{r.url} HTTP {r.status}") if r.status >= 400 else None,
                )
                page.goto(url, wait_until="load")
                yield page, log
            finally:
                browser.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def broken_images(page: Any) -> list[str]:
    """Sources of <img> elements that did not decode (naturalWidth 0) after the page settled."""
    page.wait_for_load_state("networkidle")
    return page.eval_on_selector_all(
        "img", "els => els.filter(e => !(e.complete && e.naturalWidth > 0)).map(e => e.getAttribute('src'))"
    )
