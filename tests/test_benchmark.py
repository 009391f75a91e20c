"""The benchmark command: figures are printed, not asserted (the machine is noisy), so these
tests check that every figure is there and sane, not how fast anything is."""

from __future__ import annotations

import json

from cifar_core import benchmark
from cifar_core.cli import main


def test_a_transfer_model_gets_a_phase_two_row_with_its_own_trainable_params():
    result = benchmark.measure("efficientnet_lite0", steps=1, precisions=["float32"], input_size=32)
    assert result["input_size"] == 32
    one, two = result["train"]["float32"], result["train_phase2"]["float32"]
    assert one["images_per_s"] > 0 and two["images_per_s"] > 0
    assert 0 <= one["data_wait_share"] < 1
    # phase 1 trains the head only; phase 2 also blocks 5-15 of the backbone
    assert one["trainable_params"] < two["trainable_params"] < result["params"]
    assert two["batch_size"] == 64 and one["batch_size"] == 256
    assert result["latency_ms_batch1"] > 0 and result["peak_memory_mb"] > 0
    table = benchmark._table([result], ["float32"])
    assert "efficientnet_lite0 @32" in table and "  phase 2" in table


def test_the_command_measures_each_model_in_its_own_process(capsys):
    argv = ["benchmark", "--models", "baseline_cnn", "--steps", "1", "--precisions", "float32", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = out["models"]
    assert row["model"] == "baseline_cnn" and row["params"] == 356_810
    assert row["train"]["float32"]["images_per_s"] > 0 and "train_phase2" not in row
    assert out["fast_time_to_accuracy"] == []  # no fast run in this artifacts folder
