"""The benchmark command: figures are printed, not asserted (the machine is noisy), so these
tests check that every figure is there and sane, not how fast anything is."""

from __future__ import annotations

import json

import pytest

from cifar_core import benchmark
from cifar_core.cli import main
from cifar_core.commands.bench import table
from cifar_core.config import TrainConfig


@pytest.mark.slow  # times Lite0 in both phases (~50 s)
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
    shown = table([result], ["float32"])
    assert "efficientnet_lite0 @32" in shown and "  phase 2" in shown


def test_the_command_measures_each_model_in_its_own_process(capsys):
    argv = ["benchmark", "--models", "baseline_cnn", "--steps", "1", "--precisions", "float32", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (row,) = out["models"]
    assert row["model"] == "baseline_cnn" and row["params"] == 356_810
    assert row["train"]["float32"]["images_per_s"] > 0 and "train_phase2" not in row
    assert out["fast_time_to_accuracy"] == []  # no fast run in this artifacts folder


def test_profile_times_every_layer_and_settings_reach_the_model(capsys, tmp_path):
    argv = [
        "benchmark", "--models", "fast", "--steps", "1", "--precisions", "float32", "--profile",
        "--epochs", "10", "--artifacts-dir", str(tmp_path),
        "--set", "model_args.widths=[8,16,16]", "--set", "batch_size=32", "--set", "model_args.kernels=keras",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "settings: model_args.widths=[8,16,16] batch_size=32 model_args.kernels=keras" in out
    assert "fast: 10 epochs of 45,000 images: training float32" in out and "six-view TTA" in out
    rows = [line.split() for line in out.splitlines() if line.startswith(("g0_", "g2_", "whiten", "head"))]
    names = {row[0]: row for row in rows}
    assert {"whiten", "g0_conv0", "g2_bn1", "head"} <= set(names)
    assert names["g2_bn1"][1] == "BatchNormalization"  # kernels=keras: Keras' own layer
    assert names["g0_conv0"][2] == "31x31x8" and float(names["g0_conv0"][3]) > 0
    assert "measured full train step" in out
    parts = {
        line[:50].strip(): float(line[50:])
        for line in out.splitlines()
        if line[50:].strip().replace(".", "").isdigit()
    }
    assert parts["gradients (forward, loss, backward)"] > 0 and parts["optimizer update"] > 0
    assert parts["fit, per step (input pipeline, callbacks)"] > 0
    epoch = [line for line in out.splitlines() if line.startswith("an epoch of 45,000 images: 1407 steps")]
    assert epoch and "+ validation" in epoch[0]


def test_a_bad_setting_is_refused_before_anything_is_measured(capsys):
    assert main(["benchmark", "--models", "fast", "--set", "no_such_field=1"]) == 2
    assert "not a config field" in capsys.readouterr().err


def test_a_recipe_with_small_crops_is_timed_on_whole_images_and_says_so():
    from cifar_core.benchmark import preset

    assert TrainConfig.from_preset("fast").augment.small_crop == 24  # the best recipe has them
    timed = preset("fast")
    assert timed.augment.small_crop == 0 and timed.augment.small_crop_epochs == 0
    assert timed.epochs == 10 and timed.optimizer == "muon"  # the rest is the recipe's


def test_saliency_speed_is_timed_for_every_run(capsys, dash_root):
    assert main(["benchmark", "--saliency", "--artifacts-dir", str(dash_root)]) == 0
    out = capsys.readouterr().out
    assert "heatmaps of one photo for all 3 models:" in out and "after warm-up" in out


def test_inference_speed_is_timed_for_every_zoo_run_through_the_predictor(capsys, dash_root):
    assert main(["benchmark", "--inference", "--artifacts-dir", str(dash_root), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and all(r["latency_ms_batch1"] > 0 and r["load_s"] > 0 for r in rows)
    assert main(["benchmark", "--inference", "--artifacts-dir", str(dash_root)]) == 0
    assert "3 models: batch-1 latencies sum to" in capsys.readouterr().out


@pytest.mark.slow  # ~33 s; the recorder itself is tested in test_tracking.py
def test_the_recorder_benchmark_times_plain_and_recorded_fits_and_finish(capsys, image_folder):
    argv = [
        "benchmark",
        "--recorder",
        "--data-dir",
        str(image_folder),
        "--train-limit",
        "200",
        "--epochs",
        "1",
    ]
    assert main([*argv, "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["model"] == "cnn_bn" and 0 < r["images"] <= 200 and r["epochs"] == 1
    assert all(s > 0 for s in r["plain_s"]) and r["recorded_s"] > 0 and r["finish_s"] > 0
    assert r["overhead"] == r["recorded_s"] / (sum(r["plain_s"]) / 2) - 1


def test_the_default_precisions_leave_out_bfloat16_where_the_cpu_would_emulate_it():
    from cifar_core.commands.bench import default_precisions

    assert default_precisions("none") == "float32"  # AVX2, or AVX-512 without BF16
    assert default_precisions("avx512_bf16") == "float32,mixed_bfloat16"
    assert default_precisions("amx_bf16") == "float32,mixed_bfloat16"


def test_xla_pairs_alternate_steps_with_xla_off_and_on(capsys):
    # baseline_cnn: XLA compiles it in seconds (fast's step under XLA is test_fitting's).
    argv = [
        "benchmark", "--models", "baseline_cnn", "--xla-pairs", "2", "--precisions", "float32",
        "--set", "batch_size=32",
    ]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "baseline_cnn, float32, batch 32: seconds per training step, XLA off / on, in turn" in out
    pairs = [line.split() for line in out.splitlines() if line.strip().startswith("pair ")]
    assert len(pairs) == 2 and all(float(p[2]) > 0 and float(p[4]) > 0 for p in pairs)
    assert "median on/off" in out and "XLA takes" in out


def test_xla_pairs_refuse_an_unknown_model_before_building_anything(capsys):
    assert main(["benchmark", "--models", "no_such_net", "--xla-pairs", "2"]) == 2
    assert "no_such_net" in capsys.readouterr().err
