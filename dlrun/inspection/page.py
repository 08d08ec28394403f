"""`inspect/index.html`: one offline page over what `dlrun inspect` drew, the images linked by
relative paths beside it (the folder can be moved or copied whole)."""

from __future__ import annotations

import html
from pathlib import Path

from dlrun import results
from dlrun.inspection.confusion import pairs_lines
from dlrun.inspection.reconstructions import CHECKERBOARD_JSON, measure_lines

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em 2em 4em;max-width:1100px;color:#222}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}table{border-collapse:collapse;font-size:13px}
th,td{padding:2px 7px;border-bottom:1px solid #e4e4e4;text-align:right}td.d{font-weight:bold;color:#060}
img{max-width:100%}.hint{color:#666;font-size:13px}
"""
# Each picture's heading and what it shows, by the start of its file name.
SECTIONS = (
    ("confusion.png", "Confusion matrix", "Rows true, columns predicted; the counts are confusion.csv."),
    ("confused_pairs.png", "Most confused pairs", "Test images of each pair, true → predicted."),
    (
        "misclassified.png",
        "Misclassified",
        "true→predicted and the model's confidence, most confident first.",
    ),
    ("filters_", "First-layer filters", "Each filter scaled to its own range."),
    ("feature_maps_", "Feature maps", "The layer's output (before batch norm and the activation)."),
    ("gradcam.png", "Grad-CAM", "Where the predicted class's evidence lies; the numbers are gradcam.npz."),
    (
        "reconstructions.png",
        "Reconstructions",
        "Rows: the clean test image, the noisy input (denoise), the model's output; each "
        "image's PSNR against the clean one.",
    ),
)


def _matrix(frame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join(
        f"<tr><th>{html.escape(str(name))}</th>"
        + "".join(f"<td{' class=d' if j == i else ''}>{v}</td>" for j, v in enumerate(row))
        + "</tr>"
        for i, (name, row) in enumerate(zip(frame.index, frame.to_numpy()))
    )
    return f"<table><tr><th>true \\ predicted</th>{head}</tr>{rows}</table>"


def _classifier(run, done) -> list[str]:
    return [
        f"<p>model {html.escape(run.cfg.model.name)} on {html.escape(run.spec.name)}, best checkpoint: "
        f"test accuracy {done.accuracy:.2%} on {len(run.y_test)} examples.</p>",
        *(f"<p class=hint>{html.escape(note)}</p>" for note in done.notes),
        "<h2>Confusions</h2>",
        _matrix(done.confusion),
        "<ul>"
        + "".join(
            f"<li>{html.escape(line)}</li>"
            for line in pairs_lines(done.pairs, done.confusion.to_numpy(), run.class_names)
        )
        + "</ul>",
    ]


def _autoencoder(run, done) -> list[str]:
    lines = measure_lines(done.psnr, done.checkerboard)
    parts = [
        f"<p>model {html.escape(run.cfg.model.name)} (upsample={html.escape(str(run.cfg.model.upsample))}) "
        f"on {html.escape(run.spec.name)}, task={html.escape(run.task)}, best checkpoint, "
        f"{len(run.y_test)} test images.</p>",
        *(f"<p class=hint>{html.escape(note)}</p>" for note in done.notes),
        "<h2>Measures</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>",
    ]
    if done.checkerboard is not None:
        parts.append(
            "<p class=hint>The checkerboard is the output for a flat image (every pixel the test "
            "images' mean): the share of its variance in a pattern repeating every 2 pixels; "
            f"the numbers are {CHECKERBOARD_JSON}.</p>"
        )
    return parts


def page_text(run, done) -> str:
    """The page: the run and its measures (a classifier's matrix and worst pairs, an
    autoencoder's PSNRs and checkerboard), then every picture written."""
    names = [path.name for path in done.files]
    title = f"inspect {run.folder}"
    parts = [f"<h1>{html.escape(title)}</h1>"]
    parts += _classifier(run, done) if done.confusion is not None else _autoencoder(run, done)
    for start, heading, hint in SECTIONS:
        shown = [name for name in names if name.startswith(start) and name.endswith(".png")]
        if shown:
            parts.append(f"<h2>{heading}</h2><p class=hint>{html.escape(hint)}</p>")
            parts += [f"<p><img src='{html.escape(name)}' alt='{html.escape(name)}'></p>" for name in shown]
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )


def write_page(path: Path, run, done) -> Path:
    results.atomic_write_text(path, page_text(run, done))
    return path
