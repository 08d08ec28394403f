"""`dlrun report FOLDER --format html -o PAGE --watch` beside a real sweep: the page is
rewritten while the sweep trains and reloads itself in headless Chromium (no server: file://),
then written a last time, complete and without the reload, and the command exits 0."""

import re
import subprocess
import sys
import time

import pytest
from test_html_report import chromium
from test_watch import SWEEP

REFRESH = re.compile(r"<meta http-equiv='refresh' content='(\d+)'>")


def dlrun(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "dlrun", *args], **kwargs)


@pytest.mark.slow
def test_the_page_reloads_itself_while_the_sweep_trains_and_ends_complete(tmp_path):
    log = open(tmp_path / "sweep.log", "w")
    # epochs three times as long as the terminal watch's sweep: a page every 5 s sees it train
    longer = [*SWEEP, "data.n_samples=60000"]
    sweep = dlrun("sweep", *longer, "--out", "study", cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    page = tmp_path / "page.html"
    watch = dlrun(
        "report", "study", "--format", "html", "-o", str(page), "--watch",
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not page.exists() and time.monotonic() < deadline:  # its first write: live
            time.sleep(0.1)
        live = page.read_text()
        assert REFRESH.search(live) and "reloads every 5 s until study ends" in live
        errors, loads = [], []
        with chromium() as context:
            browser_page = context.new_page()
            browser_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            browser_page.on("load", lambda: loads.append(time.monotonic()))
            browser_page.goto(page.resolve().as_uri())
            while len(loads) < 2 and time.monotonic() < loads[0] + 15:
                browser_page.wait_for_timeout(200)
        assert len(loads) >= 2, "the page did not reload itself"
        assert not errors
        _, stderr = watch.communicate(timeout=300)
        assert watch.returncode == 0, stderr
        assert sweep.wait(timeout=300) == 0
    finally:
        sweep.kill()
        watch.kill()
    final = page.read_text()
    assert not REFRESH.search(final) and "live:" not in final
    assert final.count("trial-00") >= 6  # every trial's row, finished
    assert f"wrote {page}" in stderr
