"""The built documentation site, read from disk: internal links resolve, nothing is fetched
from the network, and in headless Chromium the pages load without console errors, the
formulas render and the search finds a function.

The site is built by ``sphinx-build -W -n docs docs/_build/html`` (``.ci/run`` does it before
the tests and sets ``PYATTRIB_REQUIRE_DOCS=1``, so a missing site fails there; elsewhere these
tests skip, saying so).
"""

from __future__ import annotations

import os
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = Path(os.environ.get("PYATTRIB_DOCS_HTML", ROOT / "docs" / "_build" / "html"))


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").exists():
        if os.environ.get("PYATTRIB_REQUIRE_DOCS"):
            pytest.fail(f"no built site at {SITE}: build it with sphinx-build -W -n docs docs/_build/html")
        pytest.skip(f"no built site at {SITE} (build it: see README, Documentation)")
    return SITE


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("name"):
            self.ids.add(a["name"])
        for key in ("href", "src"):
            if a.get(key):
                self.links.append((tag, a[key]))


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_internal_links_resolve_and_nothing_is_fetched(site):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 100, "the API reference should give a page per public name"
    parsed = {page: _parse(page) for page in pages}
    broken, remote = [], []
    for page, links in parsed.items():
        for tag, link in links.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https") or link.startswith("//"):
                if tag != "a":  # a script, style sheet, image or font from the network
                    remote.append(f"{page.relative_to(site)}: {link}")
                continue
            if parts.scheme in ("mailto", "javascript", "data"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)}: {link}")
            elif parts.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)}: {link} (no such anchor)")
    assert not remote, f"pages load from the network: {remote[:10]}"
    # reStructuredText that docutils could not parse is rendered as a "problematic" span, not an error
    problematic = [str(p.relative_to(site)) for p in pages if 'class="problematic"' in p.read_text(encoding="utf-8")]
    assert not problematic, f"markup errors on {problematic[:10]}"
    assert not broken, f"{len(broken)} broken internal links, e.g. {broken[:10]}"


def test_every_public_name_has_a_page(site):
    import importlib
    import sys

    sys.path.insert(0, str(ROOT / "docs"))
    pages = importlib.import_module("_build_pages")
    missing = [
        f"{package}.{name}"
        for package in pages.PACKAGES
        for name in pages.public_names(package)
        if not (site / "api" / "generated" / f"{package}.{name}.html").exists()
    ]
    assert not missing, missing


def _console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _open(driver, page: Path) -> None:
    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(page.as_uri())


def test_pages_in_chromium(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _open(browser, site / "index.html")
    assert "pyattrib" in browser.title
    assert browser.find_elements(By.CSS_SELECTOR, "a[href*='api/index.html']")
    assert _console_errors(browser) == []

    # the API page of integrated_gradients: its formula rendered by the local MathJax (SVG)
    _open(browser, site / "api" / "generated" / "pyattrib.integrated_gradients.html")
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "mjx-container svg"))
    formulas = browser.find_elements(By.CSS_SELECTOR, "mjx-container svg")
    assert formulas and formulas[0].size["width"] > 50
    assert not browser.find_elements(By.CSS_SELECTOR, "mjx-merror"), "a formula failed to typeset"
    assert "Args" in browser.page_source or "Parameters" in browser.page_source
    assert _console_errors(browser) == []

    # a gallery page: the example ran during the build, its figure and printed output are there
    _open(browser, site / "gallery" / "digits.html")
    images = browser.find_elements(By.CSS_SELECTOR, "img.sphx-glr-single-img, img.sphx-glr-multi-img")
    assert images and all(browser.execute_script("return arguments[0].naturalWidth", i) > 100 for i in images)
    output = browser.find_element(By.CSS_SELECTOR, ".sphx-glr-script-out").text
    assert re.search(r"accuracy", output), output[:500]
    assert _console_errors(browser) == []

    # the search page, from disk
    browser.get((site / "search.html").as_uri() + "?q=integrated_gradients")
    deadline = time.monotonic() + 30
    hits: list = []
    while time.monotonic() < deadline and not hits:
        hits = browser.find_elements(By.CSS_SELECTOR, "#search-results li a, ul.search li a")
        time.sleep(0.2)
    assert any("integrated_gradients" in h.get_attribute("href") for h in hits), [h.text for h in hits][:10]
    assert _console_errors(browser) == []
