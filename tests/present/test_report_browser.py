"""The report in a real headless browser (Debian's chromium + chromedriver, driven by selenium; nothing is
downloaded): every image loads, the console shows no error, the sections come in order, nothing overflows
the page's width, and a screenshot is taken. Skips only when chromium, chromedriver or selenium is absent
(scripts/setup.sh installs them)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1280,1000")


@pytest.fixture(scope="module")
def browser():
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("chromium and chromium-driver (Debian) are not installed: scripts/setup.sh installs them")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra) is not installed")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_report_renders_in_chromium(browser, paper_run, tmp_path):
    page = paper_run / "report" / "index.html"
    browser.get(page.resolve().as_uri())
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])")
    pngs = sorted(p.stem for p in (paper_run / "figures").glob("*.png"))
    assert sorted(alt for alt, *_ in images) == pngs and len(pngs) == 5
    for alt, complete, width, height in images:
        assert complete and width > 300 and height > 200, (alt, width, height)
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    tops = browser.execute_script(
        "return ['summary', 'figures', 'tables', 'loop', 'provenance'].map(id => "
        "document.getElementById(id).getBoundingClientRect().top + window.scrollY)")
    assert tops == sorted(tops) and tops[0] < 400  # the summary is on the first screen
    width = browser.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], width  # no horizontal scrolling
    height = browser.execute_script("return document.documentElement.scrollHeight")
    assert 2000 < height < 9000, height  # five figures and compact tables; raw data collapsed
    closed = browser.execute_script("return Array.from(document.querySelectorAll('details')).filter(d => d.open).length")
    assert closed == 0
    browser.set_window_size(1280, height + 100)
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
