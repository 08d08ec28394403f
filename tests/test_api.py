"""The Python API (dlrun/api.py): train, sweep and runs on a little of MNIST, a Python NNX module
with arrays as its data, and bad input as ConfigError with a one-line message."""

import functools
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import numpy as np
import pandas as pd
import pytest
import yaml
from flax import nnx

import dlrun
from dlrun import results

SMALL_MNIST = ["data.subset=500", "data.val_size=500", "epochs=1", "model.hidden=[16]"]


class Probe(nnx.Module):
    """One hidden layer; dlrun passes outputs, input_shape and rngs."""

    def __init__(self, width, outputs, input_shape, rngs):
        self.hidden = nnx.Linear(int(np.prod(input_shape)), width, rngs=rngs)
        self.output = nnx.Linear(width, outputs, rngs=rngs)

    def __call__(self, x):
        return self.output(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))


class LinenProbe(nn.Module):
    width: int
    outputs: int
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.width, name="hidden")(x.reshape(x.shape[0], -1))
        return nn.Dense(self.outputs, name="output")(getattr(nn, self.activation)(x))


def _arrays(n=600, features=5):
    x = np.random.default_rng(0).normal(size=(n, features)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run and one two-trial sweep on MNIST, and a Probe trained on arrays: shared."""
    root = tmp_path_factory.mktemp("api")
    run = dlrun.train(SMALL_MNIST, out=root / "run")
    frame = dlrun.sweep([*SMALL_MNIST, "lr=0.1,0.01"], out=root / "sweep")
    probe = dlrun.train(["+model.width=8", "epochs=2"], model=Probe, data=_arrays(), out=root / "probe")
    return run, frame, probe


def test_train_returns_the_run_with_its_epochs(trained):
    run, _, _ = trained
    assert run.summary == json.loads((run.folder / results.SUMMARY_FILE).read_text())
    assert run.summary["status"] == "completed" and run.summary["epochs_run"] == 1
    assert list(run.epochs.epoch) == [1]
    pd.testing.assert_frame_equal(run.epochs, results.read_metrics(run.folder))
    # 784 -> 16 -> 10, weights and biases
    assert run.summary["params"] == 784 * 16 + 16 + 16 * 10 + 10


def test_sweep_returns_one_diagnosed_row_per_trial(trained):
    _, frame, _ = trained
    assert len(frame) == 2
    assert sorted(frame["lr"]) == [0.01, 0.1]
    assert frame["diagnosis"].notna().all() and set(frame["status"]) == {"completed"}
    assert (frame.attrs["folder"] / "sweep.yaml").is_file()


def test_runs_is_what_the_report_reads(trained):
    _, frame, _ = trained
    folder = frame.attrs["folder"]
    report = subprocess.run(
        [sys.executable, "-m", "dlrun", "report", str(folder), "--format", "csv"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = dlrun.runs(folder)
    pd.testing.assert_frame_equal(rows, frame)
    shown = rows.assign(flags=rows["flags"].map(";".join))
    expected = pd.read_csv(io.StringIO(report.stdout))
    pd.testing.assert_frame_equal(pd.read_csv(io.StringIO(shown.to_csv(index=False))), expected)


def test_a_python_module_trains_on_arrays_through_the_npz_checks(trained):
    _, _, probe = trained
    assert probe.summary["status"] == "completed" and len(probe.epochs) == 2
    assert probe.summary["params"] == 5 * 8 + 8 + 8 * 2 + 2
    source = probe.summary["data_source"]
    assert source["sha256"] == hashlib.sha256(open(source["path"], "rb").read()).hexdigest()
    config = results.read_config(probe.folder)
    assert config["model"]["_target_"] == f"{__name__}.Probe" and config["data"]["name"] == "npz"


def test_the_same_call_again_returns_the_finished_run(trained, capsys):
    _, _, probe = trained
    again = dlrun.train(["+model.width=8", "epochs=2"], model=Probe, data=_arrays(), out=probe.folder)
    assert again.summary == probe.summary
    assert "already holds this run" in capsys.readouterr().err


def _one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(dlrun.ConfigError) as raised:
        call(*args, **kwargs)
    message = str(raised.value)
    assert "\n" not in message and message
    return message


def test_bad_input_raises_config_error_in_one_line(tmp_path):
    out = tmp_path / "never"
    assert "lr=abc" in _one_line_error(dlrun.train, ["lr=abc"], out=out)
    assert "choose from" in _one_line_error(dlrun.sweep, ["lr=0.1,0.01"], out=out, trails=4)
    assert "parameters are drawn already" in _one_line_error(
        dlrun.train, model=nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    )
    assert "give one" in _one_line_error(dlrun.train, ["model=mlp"], model=Probe, out=out)
    assert "no array 'z'" in _one_line_error(dlrun.train, data={"x": [[1.0]], "z": [0]}, out=out)
    x, y = _arrays()
    x[3, 1] = np.nan  # the .npz checks' own message, about the arrays' file
    assert "NaN or inf at example 3" in _one_line_error(dlrun.train, data=(x, y), out=out)
    assert not out.exists()


def test_a_module_workers_cannot_import_is_refused(tmp_path):
    class Local(Probe):  # defined in a function: no worker process could import it by name
        pass

    message = _one_line_error(dlrun.sweep, ["lr=0.1,0.01"], model=Local, jobs=2, out=tmp_path / "s")
    assert "a worker process (jobs=2) cannot import" in message
    assert not (tmp_path / "s").exists()


def test_the_python_api_page_runs(tmp_path, monkeypatch):
    page = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text()
    code = page.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)  # its runs/ folders
    namespace = {"__name__": "__main__"}  # as a notebook runs it: its class is __main__.Probe
    exec(compile(code, "docs/python-api.md", "exec"), namespace)
    assert len(namespace["trials"]) == 2 and namespace["run"].summary["status"] == "completed"
    assert results.read_config(tmp_path / "runs" / "probe")["model"]["_target_"] == "__main__.Probe"


def test_a_class_redefined_under_its_name_is_checked_again(tmp_path):
    def defined(outputs_added):  # as a notebook cell run twice defines it: same name, new class
        class Cell(nnx.Module):
            def __init__(self, outputs, input_shape, rngs):
                self.output = nnx.Linear(int(np.prod(input_shape)), outputs + outputs_added, rngs=rngs)

            def __call__(self, x):
                return self.output(x.reshape(x.shape[0], -1))

        return Cell

    assert dlrun.sweep(["lr=0.1,0.01"], model=defined(0), data=_arrays(), dry_run=True).empty
    message = _one_line_error(dlrun.sweep, ["lr=0.1,0.01"], model=defined(1), data=_arrays(), dry_run=True)
    assert "returns shape (2, 3)" in message


@pytest.mark.parametrize(
    "model, width, activation",
    [
        (functools.partial(Probe, width=6), 6, None),
        (LinenProbe(width=7, outputs=99, activation="tanh"), 7, "tanh"),
    ],
    ids=["nnx-partial", "linen-object"],
)
def test_a_module_comes_with_its_arguments_recorded_as_overrides(tmp_path, model, width, activation):
    run = dlrun.train(["epochs=1"], model=model, data=_arrays(), out=tmp_path / "run")
    assert run.summary["status"] == "completed"
    # the arguments as config.yaml records them; outputs is dlrun's to size (2 classes, not 99)
    recorded = yaml.safe_load((run.folder / "config.yaml").read_text())["model"]
    assert recorded["width"] == width and recorded.get("activation") == activation
    assert "outputs" not in recorded
    assert run.summary["params"] == 5 * width + width + width * 2 + 2


def test_module_objects_it_cannot_record_are_refused_in_one_line(tmp_path):
    out = tmp_path / "never"
    drawn = Probe(4, outputs=2, input_shape=(5,), rngs=nnx.Rngs(0))
    assert "parameters are drawn already" in _one_line_error(
        dlrun.train, model=drawn, data=_arrays(), out=out
    )
    odd = functools.partial(Probe, width=object())
    assert "config.yaml cannot record" in _one_line_error(dlrun.train, model=odd, data=_arrays(), out=out)
    both = functools.partial(Probe, width=4)
    assert "both say" in _one_line_error(dlrun.train, ["+model.width=3"], model=both, data=_arrays(), out=out)
    assert not out.exists()
