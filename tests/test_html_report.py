"""html.py in a real browser: headless Chromium (Debian's package; .ci/run installs it) opens the
report of a real tiny sweep from disk, offline, and a reader's clicks sort the table and open a
label's evidence. Playwright only drives that Chromium: it never downloads a browser."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from dlrun.cli import app

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps calling Google's services, which on a
# closed network is a flood of failed requests and a slow start.
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
SECTIONS = ["What was run", "Best trials", "Sensitivity", "All curves", "Runs", "Per-run curves"]
LRS = ["0.1", "0.01", "0.001"]
SWEEP = ["data=moons", "model.hidden=[8]", "epochs=3", f"lr={','.join(LRS)}", "seed=0,1"]


@contextmanager
def chromium(width: int = 1200):
    """A headless Chromium with a fresh profile, as a Playwright browser context."""
    assert Path(CHROMIUM).exists(), f"no {CHROMIUM}: install Debian's chromium (.ci/run does)"
    with sync_playwright() as driver, tempfile.TemporaryDirectory() as profile:
        context = driver.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


def screenshot(page_file: Path, png: Path, width: int = 1200, height: int | None = None) -> None:
    """Save what a reader sees of the report at `width` pixels: the whole page, or its top `height`."""
    with chromium(width) as context:
        page = context.new_page()
        page.goto(page_file.resolve().as_uri())
        clip = {"x": 0, "y": 0, "width": width, "height": height} if height else None
        page.screenshot(path=str(png), full_page=True, clip=clip)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The HTML report of a real 3 lr x 2 seed sweep, as `dlrun report --format html` writes it."""
    root = tmp_path_factory.mktemp("html-report")
    # a process of its own, as a user runs it: sweep.yaml records the command from its argv
    swept = subprocess.run(
        [sys.executable, "-m", "dlrun", "sweep", *SWEEP, "--out", str(root / "sweep")],
        capture_output=True,
        text=True,
    )
    assert swept.returncode == 0, swept.stderr
    page = root / "report.html"
    reported = CliRunner().invoke(app, ["report", str(root / "sweep"), "--format", "html", "-o", str(page)])
    assert reported.exit_code == 0, reported.output
    return page


@pytest.fixture(scope="module")
def browser():
    with chromium() as context:
        yield context


@pytest.fixture
def opened(browser, report):
    """(page, problems): the report loaded from disk, and every console error, uncaught script
    error and failed request seen while loading it."""
    page = browser.new_page()
    problems = []
    page.on(
        "console",
        lambda message: (
            problems.append(f"console {message.type}: {message.text}")
            if message.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed request: {request.url}"))
    page.on(
        "request",
        lambda request: (
            problems.append(f"network request: {request.url}")
            if not request.url.startswith(("file:", "data:"))
            else None
        ),
    )
    page.goto(report.as_uri(), wait_until="load")
    yield page, problems
    page.close()


def _column(page, header: str) -> list[str]:
    """The cells of one column of the run table, top to bottom, as the reader sees them."""
    headers = page.locator("table.runs thead th").all_inner_texts()
    index = [text.strip(" ▲▼") for text in headers].index(header)
    cells = page.locator(f"table.runs tbody tr td:nth-child({index + 1})")
    return [text.strip() for text in cells.all_inner_texts()]


def test_the_report_loads_offline_with_no_error_and_a_screenshot_is_saved(opened, report, tmp_path):
    page, problems = opened
    png = tmp_path / "report.png"
    page.screenshot(path=str(png), full_page=True)
    assert problems == []
    assert png.read_bytes().startswith(b"\x89PNG") and page.locator("svg").count() == 3
    assert report.stat().st_size < 500_000  # six runs: one small file to mail, not a folder


def test_sections_come_in_the_order_a_reader_needs_them(opened):
    page, _ = opened
    assert page.locator("h2").all_inner_texts() == SECTIONS
    opening = page.locator("#run").inner_text()
    assert f"dlrun sweep {' '.join(SWEEP)}" in opening and "6 completed" in opening


def test_every_swept_value_is_shown_whole_in_the_table_and_on_the_sensitivity_axis(opened):
    page, _ = opened
    assert sorted(set(_column(page, "lr")), key=float) == sorted(LRS, key=float)
    assert set(_column(page, "seed")) == {"0", "1"}
    ticks = page.locator("#sensitivity svg text").all_text_contents()
    assert set(LRS) <= {tick.strip() for tick in ticks}
    epoch_ticks = {tick.strip() for tick in page.locator("#curves svg text").all_text_contents()}
    assert {"1", "2", "3"} <= epoch_ticks and not {"1.5", "2.5"} & epoch_ticks  # whole epochs only


def test_a_click_on_a_header_sorts_the_table_and_a_second_click_reverses_it(opened):
    page, _ = opened
    rows = set(zip(_column(page, "run"), _column(page, "val loss")))
    page.locator("table.runs thead th", has_text="val loss").click()
    ascending = _column(page, "val loss")
    assert ascending == sorted(ascending, key=float) and set(zip(_column(page, "run"), ascending)) == rows
    page.locator("table.runs thead th", has_text="val loss").click()
    assert _column(page, "val loss") == ascending[::-1]
    assert _column(page, "run")[0] == max(rows, key=lambda row: float(row[1]))[0]
    page.locator("table.runs thead th", has_text="lr").click()
    assert [float(lr) for lr in _column(page, "lr")] == sorted(float(lr) for lr in _column(page, "lr"))


def test_a_label_opens_on_its_evidence_and_advice(opened):
    page, _ = opened
    details = page.locator("table.runs details").first
    assert not details.locator("p").first.is_visible()
    details.locator("summary").click()
    assert details.get_attribute("open") is not None
    assert "advice:" in details.inner_text() and details.locator("p").first.is_visible()
