"""`dlrun inspect RUN`: a classifier's confusions, mistakes, filters, feature maps and Grad-CAM
heatmaps, or an autoencoder's reconstructions and checkerboard, as files in `RUN/inspect/`,
from its best checkpoint (nothing retrains).

Every request is checked (the run, the parts, the layer, the examples) before anything is
computed or written, so bad input is one line and an untouched folder.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.inspection import confusion, page, pictures, probes, reconstructions
from dlrun.inspection.loaded import LoadedRun, load_run, predict
from dlrun.results import INSPECT_DIR, INSPECT_PAGE

CLASSIFIER_PARTS = ("confusions", "misclassified", "filters", "feature_maps", "gradcam")
AUTOENCODER_PARTS = ("reconstructions", "checkerboard")  # the runs of an image task
PARTS = CLASSIFIER_PARTS + AUTOENCODER_PARTS
IMAGE_PARTS = CLASSIFIER_PARTS[1:]  # the parts that draw a classifier's inputs
CONV_PARTS = ("filters", "feature_maps", "gradcam")  # the parts that read a conv layer
# Grad-CAM examples by default: a grid that shows a pattern and stays one cheap call.
EXAMPLES = 16
# Test images in the feature-map figures: each is a row of MAX_CHANNELS maps per layer.
FEATURE_IMAGES = 4
# Mistakes drawn in the misclassified grid, the most confident first.
MISCLASSIFIED = 32
CONFUSION_CSV, GRADCAM_NPZ, PAGE = "confusion.csv", "gradcam.npz", INSPECT_PAGE


@dataclass(frozen=True)
class InspectRequest:
    """What to inspect. `parts` empty: every part that applies to the run; `index`: the test
    examples for Grad-CAM and the feature maps (default: the misclassified first)."""

    parts: tuple = ()
    layer: str | None = None
    examples: int = EXAMPLES
    index: tuple | None = None


@dataclass
class Inspection:
    """What `inspect_run` found and wrote: `folder` is RUN/inspect. A classifier's run fills
    `accuracy`, `confusion` and `pairs`; an autoencoder's `psnr` and `checkerboard`."""

    folder: Path
    accuracy: float | None = None
    confusion: pd.DataFrame | None = None
    pairs: list = field(default_factory=list)
    layer: str | None = None
    files: list = field(default_factory=list)
    notes: list = field(default_factory=list)  # the parts left out and why
    gradcam: dict | None = None  # what gradcam.npz holds
    psnr: dict | None = None  # test PSNR in dB: {"output": ..., "noisy_input": ... (denoise)}
    checkerboard: dict | None = None  # what checkerboard.json holds


def _check_parts(request: InspectRequest) -> None:
    unknown = [part for part in request.parts if part not in PARTS]
    if unknown:
        raise ConfigError(f"unknown inspect part '{unknown[0]}' (choose from: {', '.join(PARTS)})")
    if request.examples < 1:
        raise ConfigError(f"--examples {request.examples}: give 1 or more examples")


def _plan(run: LoadedRun, request: InspectRequest) -> tuple[list, list, str | None, list]:
    """(the parts to make, the notes on those left out, the probed layer, the conv layers)."""
    mine = AUTOENCODER_PARTS if run.outputs_images() else CLASSIFIER_PARTS
    foreign = [part for part in request.parts if part not in mine]
    if foreign:
        kind = f"a task={run.task} run" if run.outputs_images() else "a classifier's run"
        raise ConfigError(
            f"inspect {foreign[0]}: not a part of {kind} (model {run.cfg.model.name}); "
            f"its parts: {', '.join(mine)}"
        )
    asked, parts = bool(request.parts), list(request.parts or mine)
    notes, layers, model = [], [], run.cfg.model.name
    if run.outputs_images():
        return parts, notes, None, layers
    if not run.is_image() and any(part in IMAGE_PARTS for part in parts):
        why = f"data {run.spec.name} has inputs of shape {tuple(run.spec.input_shape)}, not images (H, W, C)"
        if asked:
            raise ConfigError(f"inspect {' and '.join(p for p in parts if p in IMAGE_PARTS)}: {why}")
        notes.append(f"only the confusions: {why}")
        parts = ["confusions"]
    if any(part in CONV_PARTS for part in parts):
        layers = probes.conv_layers(run.model, run.variables, run.spec.input_shape)
        if not layers and not asked:
            notes.append(f"no filters, feature maps or Grad-CAM: model {model} has no conv layer")
            parts = [part for part in parts if part not in CONV_PARTS]
    layer = probes.check_layer(request.layer, layers, model) if any(p in CONV_PARTS for p in parts) else None
    return parts, notes, layer, layers


def _examples(run: LoadedRun, request: InspectRequest, first: np.ndarray) -> np.ndarray:
    """The test indices to show: `index`, or those `first` marks (the misclassified), then the
    rest, in test order."""
    count = len(run.y_test)
    if request.index is not None:
        bad = [i for i in request.index if not 0 <= i < count]
        if bad:
            raise ConfigError(f"--index {bad[0]}: the test split has {count} examples (give 0..{count - 1})")
        return np.asarray(request.index, np.int64)
    order = np.concatenate([np.flatnonzero(first), np.flatnonzero(~first)])
    return order[: request.examples]


def _title(names, label: int, pred: int, confidence: float | None = None) -> str:
    text = f"{names[label]}→{names[pred]}" if label != pred else f"{names[label]}"
    return text if confidence is None else f"{text} {confidence:.0%}"


def _write_npz(path: Path, **arrays) -> Path:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    results.atomic_write_bytes(path, buffer.getvalue())
    return path


def _confusions(run, out: Path, done: Inspection, matrix, probs, preds) -> None:
    names = run.class_names
    text = done.confusion.to_csv()
    results.atomic_write_text(out / CONFUSION_CSV, text)
    done.files += [out / CONFUSION_CSV, pictures.confusion_png(matrix, names, out / "confusion.png")]
    if run.is_image() and done.pairs:
        examples = [
            run.x_test[(run.y_test == pair.true) & (preds == pair.pred)][: pictures.PAIR_EXAMPLES]
            for pair in done.pairs
        ]
        done.files.append(pictures.pairs_png(done.pairs, examples, names, out / "confused_pairs.png"))


def _misclassified(run, out: Path, done: Inspection, probs, preds) -> None:
    wrong = np.flatnonzero(preds != run.y_test)
    shown = wrong[np.argsort(-probs[wrong, preds[wrong]], kind="stable")][:MISCLASSIFIED]
    titles = [_title(run.class_names, run.y_test[i], preds[i], probs[i, preds[i]]) for i in shown]
    heading = f"{len(wrong)} of {len(preds)} test images misclassified; the {len(shown)} most confident"
    if len(shown):
        done.files.append(
            pictures.labelled_grid(run.x_test[shown], titles, out / "misclassified.png", heading)
        )
    else:
        done.notes.append("no misclassified grid: every test image is classified right")


def _gradcam(run, out: Path, done: Inspection, chosen: np.ndarray, preds, probs) -> None:
    heatmaps, _ = probes.gradcam(
        run.model, run.variables, run.inputs(run.x_test[chosen]), preds[chosen], done.layer
    )
    labels = run.y_test[chosen]
    done.gradcam = {"heatmaps": heatmaps, "index": chosen, "label": labels, "pred": preds[chosen]}
    done.files.append(_write_npz(out / GRADCAM_NPZ, layer=np.asarray(done.layer), **done.gradcam))
    titles = [
        f"#{i} {_title(run.class_names, labels[k], preds[i], probs[i, preds[i]])}"
        for k, i in enumerate(chosen)
    ]
    done.files.append(
        pictures.gradcam_png(run.x_test[chosen], heatmaps, titles, done.layer, out / "gradcam.png")
    )


def inspect_run(folder, request: InspectRequest = InspectRequest()) -> Inspection:
    """Inspect the run in `folder` and write RUN/inspect/; ConfigError in one line for bad input."""
    _check_parts(request)
    run = load_run(folder)
    parts, notes, layer, layers = _plan(run, request)
    out = Path(folder) / INSPECT_DIR
    if run.outputs_images():
        chosen = _examples(run, request, np.zeros(len(run.y_test), bool))
        out.mkdir(exist_ok=True)
        done = Inspection(out, notes=notes)
        _autoencoder(run, out, done, parts, chosen)
    else:
        done = _classifier(run, request, out, parts, notes, layer, layers)
    done.files.append(page.write_page(out / PAGE, run, done))
    return done


def _classifier(run, request: InspectRequest, out: Path, parts, notes, layer, layers) -> Inspection:
    probs = predict(run)
    preds = probs.argmax(axis=1)
    chosen = _examples(run, request, preds != run.y_test)
    out.mkdir(exist_ok=True)
    matrix = confusion.confusion_matrix(run.y_test, preds, len(run.class_names))
    done = Inspection(
        out,
        float(np.mean(preds == run.y_test)),
        confusion.confusion_frame(matrix, run.class_names),
        confusion.worst_pairs(matrix),
        layer,
        notes=notes,
    )
    if "confusions" in parts:
        _confusions(run, out, done, matrix, probs, preds)
    if "misclassified" in parts:
        _misclassified(run, out, done, probs, preds)
    if "filters" in parts:
        kernels = probes.first_filters(run.variables, layers[0])
        done.files.append(pictures.filters_png(kernels, layers[0], out / f"filters_{layers[0]}.png"))
    if "feature_maps" in parts:
        shown = chosen[:FEATURE_IMAGES]
        wanted = [request.layer] if request.layer else layers
        maps = probes.feature_maps(run.model, run.variables, run.inputs(run.x_test[shown]), wanted)
        for name in wanted:
            path = out / f"feature_maps_{name}.png"
            done.files.append(pictures.feature_maps_png(run.x_test[shown], maps[name], name, path))
    if "gradcam" in parts:
        _gradcam(run, out, done, chosen, preds, probs)
    return done


def _autoencoder(run, out: Path, done: Inspection, parts, chosen: np.ndarray) -> None:
    """The test PSNRs always (one pass), the grid and the checkerboard as asked."""
    passed = reconstructions.reconstruct_test_split(run)
    done.psnr = {"output": reconstructions.split_psnr(run, passed.outputs, passed.clean)}
    if run.task == "denoise":
        done.psnr["noisy_input"] = reconstructions.split_psnr(run, passed.inputs, passed.clean)
    if "reconstructions" in parts:
        done.files.append(_reconstructions_png(run, out, passed, chosen))
    if "checkerboard" in parts:
        done.checkerboard = reconstructions.checkerboard(run)
        path = out / reconstructions.CHECKERBOARD_JSON
        done.files.append(reconstructions.write_checkerboard(path, done.checkerboard))


def _reconstructions_png(run, out: Path, passed, chosen: np.ndarray) -> Path:
    clean = passed.clean[chosen]
    kinds = [("input", passed.clean)]
    if run.task == "denoise":
        kinds.append(("noisy input", passed.inputs))
    kinds.append(("output", passed.outputs))
    rows = []
    for kind, images in kinds:
        shown = images[chosen]
        db = reconstructions.pixel_psnr(run, shown, clean)
        titles = [f"#{i}" if kind == "input" else f"{v:.1f} dB" for i, v in zip(chosen, db)]
        rows.append((kind, reconstructions.as_pixels(run, shown), titles))
    heading = f"task={run.task}: test images, PSNR against the clean input"
    return pictures.reconstructions_png(rows, out / "reconstructions.png", heading)


def parse_index(text: str | None) -> tuple | None:
    """`--index 3,17,42` as test indices; ConfigError naming the bad item."""
    if text is None:
        return None
    try:
        return tuple(int(item) for item in text.split(","))
    except ValueError:
        raise ConfigError(f"--index {text}: give test indices joined by commas, e.g. 3,17,42") from None


def show(done: Inspection, console) -> None:
    """What was measured and where the files are, for the terminal: a classifier's matrix and
    worst pairs, an autoencoder's PSNRs and checkerboard."""
    if done.confusion is not None:
        _show_classifier(done, console)
    if done.psnr is not None:
        for line in reconstructions.measure_lines(done.psnr, done.checkerboard):
            console.print(line, highlight=False, markup=False)
    for note in done.notes:
        console.print(f"note: {note}", highlight=False, markup=False)
    console.print(
        f"wrote {len(done.files)} files to {done.folder} (open {done.folder / PAGE})",
        markup=False,
        soft_wrap=True,
    )


def _show_classifier(done: Inspection, console) -> None:
    names = list(done.confusion.columns)
    matrix = done.confusion.to_numpy()
    console.print(confusion.matrix_table(matrix, names))
    console.print(
        f"test accuracy {done.accuracy:.2%} of {int(matrix.sum())}; most confused:", highlight=False
    )
    for line in confusion.pairs_lines(done.pairs, matrix, names):
        console.print(f"  {line}", highlight=False, markup=False)
