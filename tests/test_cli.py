import json
import os

import numpy as np
import pytest
from conftest import synthetic_images, write_image_folder
from PIL import Image

from cifar_core import artifacts
from cifar_core.cli import build_parser, main
from cifar_core.models import list_models


@pytest.mark.slow  # builds every model of the zoo (~50 s)
def test_list_models_shows_every_model_with_its_parameters(capsys):
    assert main(["list-models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert name in out
    assert "356,810" in out  # baseline_cnn


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--model", "resnet2O"], "unknown model 'resnet2O'. Did you mean resnet20"),
        (
            ["train", "--model", "cnn_bn", "--data-dir", "/no/such/dir"],
            "/no/such/dir: data source does not exist",
        ),
        (["train", "--model", "cnn_bn", "--epochs", "0", "--data-dir", "/tmp"], "epochs must be >= 1"),
        (["predict", "--run", "../../etc", "x.png"], "invalid run id"),
        (["evaluate", "--run", "nothing-here", "--data-dir", "/tmp"], "no such run"),
        (["run"], "say which models"),
        (["predict", "--run", "nothing-here", "x.png"], "no such run"),
    ],
)
def test_bad_input_gives_one_error_line_and_exit_code_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1


def test_every_subcommand_has_help_for_every_flag():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, subparser in sub.choices.items():
        for action in subparser._actions:
            if action.dest not in ("help", "single"):
                assert action.help, f"{name} {action.dest} has no help"


def test_run_trains_then_skips_finished_runs_and_predict_evaluate_report_use_it(
    tmp_path, image_folder, capsys
):
    root = tmp_path / "art"
    argv = [
        "run",
        "--models",
        "baseline_cnn",
        "--epochs",
        "1",
        "--val-size",
        "50",
        "--data-dir",
        str(image_folder),
        "--artifacts-dir",
        str(root),
    ]
    assert main([*argv, "--dry-run"]) == 0
    assert "baseline_cnn: would train run baseline_cnn-" in capsys.readouterr().out
    assert artifacts.list_runs(root) == []  # a dry run trains and writes nothing
    assert main(argv) == 0
    (run_id,) = artifacts.list_runs(root)
    assert main(argv) == 0
    assert f"finished run {run_id} kept" in capsys.readouterr().out
    # A run written before a config field existed is still found (by its config, not its id).
    renamed = root / "runs" / "baseline_cnn-0000aaaa"
    (root / "runs" / run_id).rename(renamed)
    manifest = json.loads((renamed / "manifest.json").read_text())
    for later_field in ("fine_tune_augment", "fine_tune_batch_size"):
        del manifest["config"][later_field]
    (renamed / "manifest.json").write_text(json.dumps(manifest))
    assert main([*argv, "--dry-run"]) == 0
    assert "finished run baseline_cnn-0000aaaa kept" in capsys.readouterr().out
    assert main([*argv, "--dry-run", "--epochs", "2"]) == 0  # another config: not that run
    assert "baseline_cnn: would train run" in capsys.readouterr().out
    renamed.rename(root / "runs" / run_id)

    x, _ = synthetic_images(2, seed=5)
    good = tmp_path / "photo.png"
    Image.fromarray(x[0]).resize((200, 150)).save(good)
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    assert main(["predict", "--run", run_id, str(good), str(bad), "--artifacts-dir", str(root)]) == 2
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{good}: ") and lines[0].count("%") == 3
    assert lines[1] == f"{bad}: error: notes.jpg: not a readable image (UnidentifiedImageError)"

    assert (
        main(
            [
                "evaluate",
                "--run",
                run_id,
                "--data-dir",
                str(image_folder / "test"),
                "--name",
                "holdout",
                "--artifacts-dir",
                str(root),
            ]
        )
        == 0
    )
    assert "accuracy" in capsys.readouterr().out
    saved = json.loads((root / "runs" / run_id / "evaluations" / "holdout.json").read_text())
    assert saved["n_images"] == 50 and 0 <= saved["accuracy"] <= 1
    assert artifacts.read_run(root, run_id).evaluations["holdout"]["n_images"] == 50

    assert main(["report", "--markdown", "--artifacts-dir", str(root)]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| Model | Family | Params | Test acc")
    run = artifacts.read_run(root, run_id)
    assert f"{run.metrics['test']['accuracy']:.2%}" in table
    assert np.isclose(run.metrics["test"]["accuracy"], run.confusion.trace() / run.confusion.sum())


def test_an_impossible_validation_split_fails_before_writing_anything(tmp_path, image_folder, capsys):
    root = tmp_path / "art"
    argv = [
        "train",
        "--model",
        "baseline_cnn",
        "--val-size",
        "99999",
        "--data-dir",
        str(image_folder),
        "--artifacts-dir",
        str(root),
    ]
    assert main(argv) == 2
    assert "val_size must be between 1 and" in capsys.readouterr().err
    assert not root.exists() or not any(root.rglob("*"))


def test_a_small_folder_trains_with_the_default_validation_split(tmp_path, capsys):
    """400 train images: the automatic split takes 10% (40, four per class), stratified."""
    folder = write_image_folder(tmp_path / "small", n_train=400, n_test=50)
    root = tmp_path / "art"
    argv = ["train", "--model", "baseline_cnn", "--epochs", "1", "--precision", "float32", "--no-export"]
    assert main([*argv, "--data-dir", str(folder), "--artifacts-dir", str(root)]) == 0
    (run_id,) = artifacts.list_runs(root)
    run = artifacts.read_run(root, run_id)
    assert (run.manifest["data"]["n_train"], run.manifest["data"]["n_val"]) == (360, 40)
    assert run.manifest["config"]["val_size"] is None  # recorded as automatic

    # a class with a single image cannot be split: a clear error, and nothing is written
    lonely = sorted((folder / "train" / "cat").iterdir())
    for extra in lonely[1:]:
        extra.unlink()
    other = tmp_path / "art2"
    assert main([*argv, "--data-dir", str(folder), "--artifacts-dir", str(other)]) == 2
    err = capsys.readouterr().err
    assert "class 'cat' (1)" in err and "at least 2" in err and len(err.strip().splitlines()) == 1
    assert not other.exists() or not any(other.rglob("*"))


def test_the_command_line_prints_no_tensorflow_start_up_chatter(tmp_path):
    """A fresh process: TensorFlow's absl/CUDA/CPU lines are filtered, the error line stays."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    argv = [sys.executable, "-m", "cifar_core", "predict", "--run", "nothing-here", "x.png"]
    done = subprocess.run(
        [*argv, "--artifacts-dir", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [f"error: {tmp_path / 'runs' / 'nothing-here'}: no such run"]
    assert done.stdout == ""
