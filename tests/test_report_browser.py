"""The HTML report in a real browser: headless Chromium (the system's), driven by Playwright.

A report must load without a console error, render every picture, fit its tables into a 1280-px-wide
window, link only to what is there, and stay usable — the same page, scrollable to its end — with
5,000 images per attack. Playwright never downloads a browser here: it is given the system's Chromium
(``apt-get install chromium``, or ``$PHYSADV_CHROMIUM``), and without one these tests skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from physadv.report import GalleryItem, ReportData
from physadv.report.content import build_report
from physadv.report.html import render_html
from test_lab import synthetic_run
from test_report import artificial_rows, gallery, make_row, photo_rows, typed

pytestmark = pytest.mark.slow

VIEWPORT = {"width": 1280, "height": 800}
LOAD_TIMEOUT_MS = 60_000  # a bound on "it loads at all", not a speed target
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str | None:
    explicit = os.environ.get("PHYSADV_CHROMIUM")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return next((found for found in map(shutil.which, CHROMIUM_NAMES) if found), None)


CHROMIUM = chromium_binary()
if CHROMIUM is None:
    pytest.skip("no Chromium installed (apt-get install chromium, or set PHYSADV_CHROMIUM): "
                "the report's browser tests need one", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        # Chromium refuses to run as root inside its sandbox; tests in containers often run as root.
        arguments = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=arguments)
        yield browser
        browser.close()


class Opened:
    """A report opened in a fresh page, with every console error, page error and failed request."""

    def __init__(self, browser, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []
        self.page = browser.new_page(viewport=VIEWPORT)
        self.page.on("console", lambda message: message.type == "error" and self.problems.append(
            f"console: {message.text}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"page error: {error}"))
        self.page.on("requestfailed", lambda request: self.problems.append(f"request failed: {request.url}"))
        self.page.goto(path.resolve().as_uri(), wait_until="load", timeout=LOAD_TIMEOUT_MS)

    def evaluate(self, script: str):
        return self.page.evaluate(script)

    def close(self) -> None:
        self.page.close()


def html_report(data: ReportData, folder: Path) -> Path:
    """The report's HTML page alone (its PDF is test_report.py's business)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.html").write_text(render_html(build_report(data)), encoding="utf-8")
    return folder / "report.html"


def check_usable(report: Opened) -> dict:
    """The checks every report must pass; returns the figures they measured."""
    page = report.page
    assert report.problems == []
    images = report.evaluate("""() => [...document.images].map(img => ({
        alt: img.alt, complete: img.complete, width: img.naturalWidth, height: img.naturalHeight}))""")
    html_images = report.path.read_text(encoding="utf-8").count("<img ")
    assert len(images) == html_images
    broken = [image["alt"] for image in images if not (image["complete"] and image["width"] > 0 and image["height"] > 0)]
    assert broken == [], f"pictures not rendered: {broken}"

    layout = report.evaluate("""() => ({
        viewport: window.innerWidth,
        page: document.documentElement.scrollWidth,
        tables: [...document.querySelectorAll('table')].map(t => ({
            caption: t.caption ? t.caption.textContent : '', right: t.getBoundingClientRect().right})),
        elements: document.getElementsByTagName('*').length,
        height: document.documentElement.scrollHeight})""")
    assert layout["viewport"] == VIEWPORT["width"]
    assert layout["page"] <= layout["viewport"], "the page scrolls sideways at 1280 px"
    too_wide = [t["caption"] for t in layout["tables"] if t["right"] > layout["viewport"]]
    assert too_wide == [], f"tables wider than the window: {too_wide}"

    for href in report.evaluate("() => [...document.links].map(a => a.getAttribute('href'))"):
        target = (report.path.parent / unquote(urlparse(href).path)).resolve()
        assert urlparse(href).scheme == "" and target.exists(), f"the report links to {href}, which is not there"

    # Scrollable to its end: the last section comes into view.
    page.evaluate("() => window.scrollTo(0, document.documentElement.scrollHeight)")
    if layout["height"] > VIEWPORT["height"]:
        assert page.evaluate("() => window.scrollY") >= layout["height"] - VIEWPORT["height"] - 1
    assert page.locator("section").last.is_visible()
    last = page.evaluate("() => document.querySelector('section:last-of-type').getBoundingClientRect().bottom")
    assert last <= VIEWPORT["height"] + 1
    return layout


def test_full_report_renders_in_chromium(browser, tmp_path):
    """Every kind of table, the plots, and a gallery with a missing picture and a photo crop."""
    data = ReportData("physadv run abc123", "digits", "2025-01-02 03:04",
                      [typed(row) for row in photo_rows() + artificial_rows()],
                      gallery(tmp_path / "pictures"), {"images": 6, "photos": 8, "rejected": 1},
                      ["machine: test"], photo_clean={"n": 24, "top1": 8 / 24, "top5": 21 / 24})
    report = Opened(browser, html_report(data, tmp_path / "report"))
    try:
        layout = check_usable(report)
        assert len(layout["tables"]) >= 6
        plots = report.evaluate("() => [...document.querySelectorAll('figure > img')].map(i => i.naturalWidth)")
        assert len(plots) >= 4 and min(plots) > 100
    finally:
        report.close()


def test_long_names_and_corruption_tables_fit_1280px(browser, tmp_path):
    """What real runs bring: a deep weights path, an image id without a space, a long class name, an EOT
    profile path, and ImageNet-C's tables. Nothing may widen the page beyond the window."""
    rows = photo_rows() + artificial_rows()
    profile = "profile:/home/someone/experiments/2025/printers/canon_mf644/my_very_own_phone_profile.toml"
    for corruption in ("imagenet-c:elastic_transform", "imagenet-c:jpeg_compression", "imagenet-c:gaussian_noise"):
        for severity in range(1, 6):
            rows.append(make_row("none", 0.0, corruption, float(severity), "average", 20, (18, 20), (18, 20),
                                 (10, 20), ((0, 0), (0, 0))))
            rows.append(make_row("bim+eot", 16.0, corruption, float(severity), "average", 20, (18, 20), (3, 19),
                                 (8, 20), ((5, 15), (1, 1)), eot=profile))
    cards = gallery(tmp_path / "pictures")
    cards.append(GalleryItem("n01440764_" + "x" * 60 + "_tench_photographed_in_the_lab_session.JPEG",
                             "a_class_name_without_spaces_that_goes_on_and_on_and_on_and_on", "bim+eot", 16.0,
                             cards[0].clean_png, cards[0].adversarial_png, cards[0].crop_png,
                             "tench 0.93", "goldfish 0.50", "tench 0.40", False))
    weights = "/home/someone/projects/robustness_evaluation/.venv/lib/python3.11/site_packages/" + "w" * 80 + ".pth"
    data = ReportData("physadv run session_2025_12_01_canon_mf644_pixel_7", "timm:convnext_tiny.fb_in22k_ft_in1k_384",
                      "2025-01-02 03:04", [typed(row) for row in rows], cards, {"images": 6, "photos": 8, "rejected": 1},
                      [f"weights: {weights} (sha256 0123456789abcdef…)"],
                      photo_clean={"n": 24, "top1": 8 / 24, "top5": 21 / 24})
    report = Opened(browser, html_report(data, tmp_path / "report"))
    try:
        layout = check_usable(report)
        assert len(layout["tables"]) >= 6 + 2 + 3  # the summaries, ImageNet-C's two, one appendix table each
    finally:
        report.close()


def test_report_of_5000_images_stays_the_same_usable_page(browser, tmp_path):
    """A store of 2 attacks × 5,000 images gives the page that 30 images give: sampled, not longer."""
    from physadv.lab.reporting import build_report as report_of_run

    layouts, texts = {}, {}
    for images in (30, 5000):
        files = report_of_run(synthetic_run(tmp_path / str(images), images))
        report = Opened(browser, files.html)
        try:
            layouts[images] = check_usable(report)
            texts[images] = report.page.inner_text("body")
            assert report.evaluate("() => document.querySelectorAll('.card').length") == 2 * 2 * 3
        finally:
            report.close()
    assert "fgsm-eps8, fooled in the photo: 3 of 1667" in texts[5000]
    assert layouts[5000]["elements"] == layouts[30]["elements"]
    assert abs(layouts[5000]["height"] - layouts[30]["height"]) <= 2 * 22  # a line or two of longer counts


def test_model_comparison_report_renders_in_chromium(browser, tmp_path):
    """physadv compare-models' report: one wide table of models with their weight files, and a verdict."""
    from physadv.lab.model_comparison import write_comparison
    from physadv.lab.session import SessionConfig

    weights = "/home/someone/checkpoints/2025_12_01/digits_adversarially_trained_with_pgd_3_steps_eps_16.pt"
    rows = [{"model": label, "weights": weights, "attack": "bim", "eps": eps, "n": 60, "clean": 0.98,
             "white_box": white, "transfer": transfer, "photo_clean": 0.97, "photo_adv": 0.77, "destruction": 0.1,
             "destruction_n": 10, "masking_flag": transfer is not None and white - transfer > 0.3}
            for label, white, transfer in (("digits", 0.53, None), (f"digits@{weights}", 0.85, 0.48))
            for eps in (16.0, 32.0)]
    write_comparison(tmp_path, rows, SessionConfig())
    report = Opened(browser, tmp_path / "report" / "comparison.html")
    try:
        layout = check_usable(report)
        assert len(layout["tables"]) == 1
        assert "Gradient masking suspected" in report.page.inner_text("body")
    finally:
        report.close()
