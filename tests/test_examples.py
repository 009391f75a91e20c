"""The examples a user starts from run: the notebook in a real Jupyter kernel (nbclient,
ipykernel), the builder file through the command line (test_builderfile.py)."""

from __future__ import annotations

import os

import nbformat
from conftest import ROOT
from nbclient import NotebookClient

from cifar_core import artifacts

NOTEBOOK = ROOT / "examples" / "your_own_model.ipynb"


def test_the_notebook_records_its_own_fit_as_a_run_beside_the_zoo(tmp_path, image_folder, monkeypatch):
    root = tmp_path / "artifacts"
    monkeypatch.setenv("CIFAR_DATA_DIR", str(image_folder))
    monkeypatch.setenv("CIFAR_ARTIFACTS", str(root))
    monkeypatch.setenv("TRAIN_LIMIT", "200")
    monkeypatch.setenv("EPOCHS", "2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    (run_id,) = artifacts.list_runs(root)
    run = artifacts.read_run(root, run_id)
    assert run_id.startswith("notebook-cnn-") and run.manifest["family"] == "recorded"
    assert run.metrics["epochs_run"] == 2 and len(run.history) == 2
    assert run.manifest["description"] == "small CNN from examples/your_own_model.ipynb"
    last = notebook.cells[-1].outputs[0]["data"]["text/plain"]
    assert run.label in last and "test_acc" in last  # the comparison table, printed
