"""The issue's acceptance runs: the default configs on full MNIST (slow: minutes on a 2-core CPU)."""

import json

import pytest
from conftest import needs_mnist
from typer.testing import CliRunner

from dlrun.cli import app


@pytest.mark.slow
@needs_mnist
@pytest.mark.parametrize("model, accuracy", [("lenet", 0.990), ("mlp", 0.980)])
def test_default_config_reaches_the_target_test_accuracy(model, accuracy, tmp_path):
    result = CliRunner().invoke(app, ["train", f"model={model}", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["test_accuracy"] >= accuracy
