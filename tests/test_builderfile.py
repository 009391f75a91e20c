"""Your own model from your own file: ``--model FILE.py:FUNCTION`` through train, run,
tune and benchmark; every fault in the file is one line naming it, and nothing is written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

from cifar_core import artifacts
from cifar_core.cli import main
from cifar_core.serving.inference import load_model

EXAMPLES = ROOT / "examples" / "my_nets.py"
GOOD = """
import keras
from keras import layers

def net(num_classes=10, width=8):
    inputs = keras.Input((32, 32, 3))
    x = layers.Conv2D(width, 3, activation="relu")(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x))
"""

FLAT = """
import keras

def net(num_classes=10):
    inputs = keras.Input((784,))
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(inputs))
"""

# (what the file holds, the function named, what the one line must say)
FAULTS = {
    "missing file": (None, "net", "no such file"),
    "syntax error": ("def net(:\n    pass\n", "net", ":1: syntax error"),
    "fails on import": (
        "raise RuntimeError('no GPU here')\n",
        "net",
        "running it failed: RuntimeError: no GPU",
    ),
    "no such function": (GOOD, "other", "no function 'other' (it defines: net)"),
    "not a model": ("def net(num_classes=10):\n    return 42\n", "net", "returned int, not a keras.Model"),
    "builder raises": (
        "def net(num_classes=10):\n    raise ValueError('bad width')\n",
        "net",
        "failed: ValueError",
    ),
    "wrong output": (
        GOOD.replace("Dense(num_classes", "Dense(5"),
        "net",
        "output shape (None, 5), expected (None, 10)",
    ),
    "not an image": (FLAT, "net", "is not an image batch"),
    "logits": (GOOD.replace('activation="softmax"', "activation=None"), "net", "not probabilities"),
}


@pytest.mark.parametrize("case", FAULTS)
def test_each_fault_in_a_builder_file_is_one_line_naming_it_and_nothing_is_written(
    case, tmp_path, image_folder, capsys
):
    source, function, expected = FAULTS[case]
    file = tmp_path / "mine.py"
    if source is not None:
        file.write_text(source)
    root = tmp_path / "artifacts"
    argv = [
        "train",
        "--model",
        f"{file}:{function}",
        "--data-dir",
        str(image_folder),
        "--artifacts-dir",
        str(root),
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(file) in err[0], err
    assert expected in err[0], err[0]
    assert not root.exists()  # nothing written: no run, no work folder


def test_a_builder_file_trains_a_run_that_keeps_its_source_and_takes_raw_pixels(tmp_path, image_folder):
    mine = tmp_path / "my_nets.py"
    mine.write_text(EXAMPLES.read_text())
    root = tmp_path / "artifacts"
    argv = [
        "train",
        "--model",
        f"{mine}:small_cnn",
        "--data-dir",
        str(image_folder),
        "--artifacts-dir",
        str(root),
    ]
    argv += ["--epochs", "1", "--val-size", "50", "--precision", "float32", "--set", "model_args.width=8"]
    argv += ["--no-export"]
    assert main(argv) == 0
    (run_id,) = artifacts.list_runs(root)
    run = artifacts.read_run(root, run_id)
    assert run_id.startswith("small_cnn-")
    source = run.manifest["source"]
    assert source["kind"] == "builder_file" and source["function"] == "small_cnn"
    assert (run.path / artifacts.SOURCE / "my_nets.py").read_bytes() == mine.read_bytes()
    import hashlib

    assert source["sha256"] == hashlib.sha256(mine.read_bytes()).hexdigest()
    assert run.label == "small_cnn (my_nets.py)" and run.manifest["family"] == "custom"
    model = load_model(run.model_path)  # safe mode: only standard layers
    assert model.inputs[0].dtype == "uint8"  # wrapped: raw pixels in, scaled inside
    probs = np.asarray(model(np.zeros((2, 32, 32, 3), np.uint8)))
    assert probs.shape == (2, 10) and np.allclose(probs.sum(1), 1, atol=1e-4)

    # The same command again finds the run; an edited file is another run.
    assert main([*argv, "--run-id", run_id]) == 2
    mine.write_text(mine.read_text() + "\n# edited\n")
    assert main(argv) == 0
    assert len(artifacts.list_runs(root)) == 2


def test_the_example_builders_work_in_tune_and_benchmark(tmp_path, image_folder, capsys):
    root = tmp_path / "artifacts"
    model = f"{EXAMPLES}:tiny_resnet"
    argv = ["benchmark", "--models", model, "--steps", "1", "--precisions", "float32", "--json"]
    assert main([*argv, "--set", "model_args.width=8", "--artifacts-dir", str(root)]) == 0
    (row,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["models"]
    assert "error" not in row and row["train"]["float32"]["images_per_s"] > 0
    argv = ["tune", "--model", model, "--trials", "1", "--epochs", "1", "--val-size", "50"]
    argv += ["--set", "model_args.width=8", "--data-dir", str(image_folder), "--artifacts-dir", str(root)]
    assert main(argv) == 0
    assert "study tiny_resnet-tune: 1 finished trials" in capsys.readouterr().out
