"""The HTML report of 200 run folders (target: under 20 s on a 2-core CPU).

    python benchmarks/bench_html_report.py [--runs 200]

The same folders as bench_report.py (one real 20-epoch run copied, lr and seed varied), then
times what `dlrun report --format html` does in this process, after a warm-up import: read,
diagnose, draw every figure as SVG, write the page. Prints the page's size too: it must stay
one file a browser opens at once.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_report import make_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    from dlrun.report.build import build_report, select
    from dlrun.report.html import report_html

    with tempfile.TemporaryDirectory() as scratch:
        runs = make_runs(Path(scratch), args.runs)
        start = time.perf_counter()
        built = build_report([runs])
        page = report_html(built, select(built), [runs], built.constant)
        (Path(scratch) / "report.html").write_text(page)
        seconds = time.perf_counter() - start
    assert page.count("<svg") == 3, page.count("<svg")  # sensitivity to lr, the overlay, the grid
    print(
        f"HTML report of {args.runs} run folders in {seconds:.2f} s, {len(page.encode()) / 1e6:.1f} MB; "
        f"target < 20 s: {'met' if seconds < 20 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
