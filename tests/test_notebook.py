"""The Python API in a real Jupyter kernel (nbclient runs the notebook, as `jupyter execute`
does): the run trains, its progress bar is a live widget (rich draws it in an ipywidgets
Output) and its closing table is HTML in the cell's output."""

import json
import re

import nbformat
import pytest
from conftest import SHARED_DATA
from nbclient import NotebookClient

CELL = """
import numpy as np
import dlrun

x = np.random.default_rng(0).normal(size=(600, 5)).astype(np.float32)
y = (x[:, 0] > 0).astype(np.int64)
run = dlrun.train(["epochs=2", "model.hidden=[8]"], data=(x, y), out="nb_run")
print(run.summary["status"], run.summary["epochs_run"])
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory, monkeypatch_module):
    folder = tmp_path_factory.mktemp("notebook")
    monkeypatch_module.setenv("DLRUN_DATA_DIR", str(SHARED_DATA))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    ).execute()
    return notebook, folder


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _texts(outputs) -> list[str]:
    """Each output's plain text, rich's colour codes taken out."""
    texts = [output.get("text") or output.get("data", {}).get("text/plain", "") for output in outputs]
    return [ANSI.sub("", text) for text in texts]


def test_the_run_trains_in_the_kernel_and_its_table_is_html(executed):
    notebook, folder = executed
    outputs = notebook.cells[0].outputs
    assert not [output for output in outputs if output.output_type == "error"]
    assert "completed 2\n" in _texts(outputs)
    tables = [o.data["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert any("run completed" in table and "best_val_accuracy" in table for table in tables)
    assert json.loads((folder / "nb_run" / "summary.json").read_text())["status"] == "completed"


def test_the_progress_bar_is_a_live_widget(executed):
    notebook, _ = executed
    views = [
        o.data["application/vnd.jupyter.widget-view+json"]["model_id"]
        for o in notebook.cells[0].outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    drawn = [_texts(state[view]["state"]["outputs"]) for view in views if view in state]
    bars = [text for texts in drawn for text in texts if re.search(r"mlp .*━+.* \d+/2", text)]
    assert bars, drawn
