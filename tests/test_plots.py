"""plots.py: real PNG files from real-looking curves, one per figure the report promises."""

import numpy as np
import pandas as pd

from dlrun.report import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _curves(scale: float) -> pd.DataFrame:
    epochs = np.arange(1, 6, dtype=float)
    return pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": scale / epochs,
            "val_loss": scale / epochs + 0.1,
            "train_accuracy": 1 - 0.1 / epochs,
            "val_accuracy": 0.95 - 0.1 / epochs,
        }
    )


def test_write_plots_draws_curves_per_run_the_sweep_and_the_sensitivity_as_png(tmp_path):
    frame = pd.DataFrame(
        {
            "run": ["a", "b", "c"],
            "lr": [0.001, 0.01, 0.1],
            "best_epoch": [5.0, 4.0, 3.0],
            "best_val_accuracy": [0.9, 0.93, 0.8],
            "best_val_loss": [0.3, 0.2, 0.5],
            "diagnosis": ["good_fit"] * 3,
            "folder": ["runs/a", "runs/b", "runs/c"],
        }
    )
    curves = {"runs/a": _curves(1.0), "runs/b": _curves(2.0)}  # c's metrics were unreadable
    written = plots.write_plots(frame, ["lr"], tmp_path / "report", curves)
    assert sorted(p.name for p in written) == [
        "curves_a.png",
        "curves_b.png",
        "sensitivity_lr.png",
        "sweep_curves.png",
    ]
    for path in written:
        assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == sorted(p.name for p in written)


def test_no_varying_setting_means_only_the_per_run_curves(tmp_path):
    frame = pd.DataFrame(
        {
            "run": ["a"],
            "best_epoch": [float("nan")],
            "best_val_accuracy": [float("nan")],
            "best_val_loss": [0.3],
            "diagnosis": ["good_fit"],
            "folder": ["runs/a"],
        }
    )
    written = plots.write_plots(frame, [], tmp_path, {"runs/a": _curves(1.0)})
    assert [p.name for p in written] == ["curves_a.png"]
