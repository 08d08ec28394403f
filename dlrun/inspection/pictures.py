"""The PNGs of `dlrun inspect`, with matplotlib (no display needed), written atomically."""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on a headless CI machine and over ssh
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from dlrun import results  # noqa: E402

# Channels drawn per image and layer in the feature-map figures: a 4x4 block stays legible.
MAX_CHANNELS = 16
# Grid columns of the image grids (misclassified, Grad-CAM, filters).
COLUMNS = 8
# Examples shown per confused pair.
PAIR_EXAMPLES = 6
# How opaque the heatmap is over the image: the digit must still show through.
HEATMAP_ALPHA = 0.5


def save(figure, path: Path) -> Path:
    """Write the figure as a PNG atomically, so an interrupted inspect leaves no half image."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    plt.close(figure)
    results.atomic_write_bytes(path, buffer.getvalue())
    return path


def displayable(image: np.ndarray) -> np.ndarray:
    """An example [H, W, C] as matplotlib shows it: gray [H, W] or RGB in [0, 1]."""
    if image.dtype == np.uint8:
        image = image / 255.0
    else:  # scaled or standardised values: each image stretched to its own range
        image = np.asarray(image, np.float64)
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return image[..., 0] if image.shape[-1] == 1 else image[..., :3]


def _grid(count: int, columns: int = COLUMNS, size: float = 1.4):
    columns = max(1, min(columns, count))
    rows = max(1, math.ceil(count / columns))
    figure, axes = plt.subplots(
        rows, columns, figsize=(size * columns, size * rows + 0.3), squeeze=False, layout="constrained"
    )
    for axis in axes.flat:
        axis.axis("off")
    return figure, list(axes.flat)


def _show(axis, image) -> None:
    shown = displayable(image)
    axis.imshow(shown, cmap="gray" if shown.ndim == 2 else None, interpolation="nearest")


def confusion_png(matrix: np.ndarray, names, path: Path) -> Path:
    """The matrix as a heat table, counts written in the cells."""
    side = max(4.0, 0.55 * len(names) + 1.5)
    figure, axis = plt.subplots(figsize=(side, side))
    axis.imshow(np.log1p(matrix), cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            light = np.log1p(count) > 0.6 * np.log1p(matrix.max())
            axis.text(
                col,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if light else "black",
            )
    ticks = range(len(names))
    axis.set_xticks(ticks, list(names), rotation=90)
    axis.set_yticks(ticks, list(names))
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(f"test set: {int(matrix.sum())} examples")
    return save(figure, path)


def labelled_grid(images, titles: list[str], path: Path, heading: str) -> Path:
    """Images in a grid, each with its title (true/predicted labels and confidence)."""
    figure, axes = _grid(len(images))
    for axis, image, title in zip(axes, images, titles):
        _show(axis, image)
        axis.set_title(title, fontsize=7)
    figure.suptitle(heading, fontsize=9)
    return save(figure, path)


def pairs_png(pairs: list, examples: list, names, path: Path) -> Path:
    """A row per confused pair: up to PAIR_EXAMPLES of its test images."""
    figure, axes = plt.subplots(
        len(pairs), PAIR_EXAMPLES, figsize=(1.3 * PAIR_EXAMPLES, 1.45 * len(pairs)), squeeze=False
    )
    for row, (pair, images) in enumerate(zip(pairs, examples)):
        for col, axis in enumerate(axes[row]):
            axis.axis("off")
            if col < len(images):
                _show(axis, images[col])
        axes[row][0].set_title(
            f"{names[pair.true]} → {names[pair.pred]}: {pair.count}", fontsize=8, loc="left"
        )
    return save(figure, path)


def filters_png(kernels: np.ndarray, layer: str, path: Path) -> Path:
    """A conv layer's filters [filters, kh, kw, channels in], each scaled to its own range;
    RGB where it reads three channels, else the mean over its input channels."""
    figure, axes = _grid(len(kernels), size=1.0)
    for index, (axis, kernel) in enumerate(zip(axes, kernels)):
        image = kernel if kernel.shape[-1] == 3 else kernel.mean(axis=-1, keepdims=True)
        low, high = image.min(), image.max()
        image = (image - low) / (high - low) if high > low else np.zeros_like(image)
        axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", interpolation="nearest")
        axis.set_title(str(index), fontsize=7)
    figure.suptitle(f"{layer}: {len(kernels)} filters {kernels.shape[1]}x{kernels.shape[2]}", fontsize=9)
    return save(figure, path)


def feature_maps_png(images, maps: np.ndarray, layer: str, path: Path) -> Path:
    """A row per image: the image, then its first MAX_CHANNELS maps at `layer`."""
    channels = min(MAX_CHANNELS, maps.shape[-1])
    figure, axes = plt.subplots(
        len(images), channels + 1, figsize=(0.9 * (channels + 1), 1.0 * len(images) + 0.4), squeeze=False
    )
    for row, image in enumerate(images):
        for axis in axes[row]:
            axis.axis("off")
        _show(axes[row][0], image)
        for channel in range(channels):
            axes[row][channel + 1].imshow(maps[row, :, :, channel], cmap="viridis", interpolation="nearest")
            if row == 0:
                axes[row][channel + 1].set_title(str(channel), fontsize=7)
    shown = f"first {channels} of {maps.shape[-1]}" if channels < maps.shape[-1] else f"{channels}"
    figure.suptitle(f"{layer}: {shown} maps, {maps.shape[1]}x{maps.shape[2]}", fontsize=9)
    return save(figure, path)


def gradcam_png(images, heatmaps: np.ndarray, titles: list[str], layer: str, path: Path) -> Path:
    """Each image with its Grad-CAM heatmap over it (each heatmap scaled to its own maximum)."""
    figure, axes = _grid(len(images))
    for axis, image, heatmap, title in zip(axes, images, heatmaps, titles):
        _show(axis, image)
        peak = heatmap.max()
        axis.imshow(heatmap / peak if peak > 0 else heatmap, cmap="jet", alpha=HEATMAP_ALPHA, vmin=0, vmax=1)
        axis.set_title(title, fontsize=7)
    figure.suptitle(f"Grad-CAM at {layer} for the predicted class", fontsize=9)
    return save(figure, path)


def reconstructions_png(rows: list, path: Path, heading: str) -> Path:
    """Rows of images, one row per kind (input, noisy input, output), each image under its
    title: `rows` is [(kind, images, titles)]; past COLUMNS images the rows wrap in blocks."""
    count = len(rows[0][1])
    columns = max(1, min(COLUMNS, count))
    blocks = math.ceil(count / columns)
    figure, axes = plt.subplots(
        blocks * len(rows),
        columns,
        figsize=(1.4 * columns + 0.6, 1.5 * blocks * len(rows) + 0.3),
        squeeze=False,
        layout="constrained",
    )
    for axis in axes.flat:
        axis.axis("off")
    for kind_row, (kind, images, titles) in enumerate(rows):
        for k, (image, title) in enumerate(zip(images, titles)):
            axis = axes[(k // columns) * len(rows) + kind_row][k % columns]
            _show(axis, image)
            axis.set_title(title, fontsize=7)
            if k % columns == 0:
                axis.text(-0.08, 0.5, kind, transform=axis.transAxes, ha="right", va="center", fontsize=8)
    figure.suptitle(heading, fontsize=9)
    return save(figure, path)
