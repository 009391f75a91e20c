"""The phase plan: what each phase trains and where it gets its inputs (cache or pixels)."""

from __future__ import annotations

import dataclasses

import pytest

from cifar_core.config import TrainConfig, same_config
from cifar_core.phases import PhaseRecord, plan

BACKBONE_LAYERS = 120


def _config(**overrides) -> TrainConfig:
    values = {
        "epochs": 2,
        "fine_tune_epochs": 1,
        "fine_tune_layers": 38,
        "augment": {"flip": True, "translate": 0},
        "fine_tune_augment": {"flip": True, "translate": 0},
        **overrides,
    }
    return TrainConfig.from_preset("efficientnet_lite0", **values)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, {1: 38, 2: 38}),  # flip-only in both phases: one cache below the unfrozen top
        ({"fine_tune_augment": {"flip": True, "translate": 2}}, {1: 0, 2: None}),
        ({"fine_tune_layers": BACKBONE_LAYERS}, {1: 0, 2: None}),  # whole backbone: nothing to cache
        ({"fine_tune_epochs": 0}, {1: 0}),  # no phase 2: cache the whole frozen backbone
        ({"augment": {"flip": True, "translate": 2}}, {1: None, 2: None}),
        ({"cache_features": False}, {1: None, 2: None}),
        (  # small crops change the pixels too: phase 2 on pixels
            {"fine_tune_augment": {"flip": True, "translate": 0, "small_crop": 24, "small_crop_epochs": 1}},
            {1: 0, 2: None},
        ),
    ],
)
def test_each_phase_caches_only_what_its_augmentation_leaves_unchanged(overrides, expected):
    cuts = {phase.number: phase.cache_cut for phase in plan(_config(**overrides), BACKBONE_LAYERS)}
    assert cuts == expected


def test_scratch_models_have_one_phase_on_pixels_with_every_layer_trained():
    config = TrainConfig.from_preset("baseline_cnn")
    (phase,) = plan(config)
    assert (phase.number, phase.cache_cut, phase.unfrozen) == (1, None, None)
    assert phase.config is config and phase.epochs == config.epochs


def test_phase_two_has_its_own_epochs_learning_rate_augmentation_batch_size_and_top():
    config = _config(fine_tune_augment={"flip": True, "translate": 4}, fine_tune_batch_size=48)
    one, two = plan(config, BACKBONE_LAYERS)
    assert one.config is config and one.unfrozen == 0  # the head on a frozen backbone
    assert (two.config.augment.translate, two.config.batch_size) == (4, 48)
    assert two.epochs == config.fine_tune_epochs and two.unfrozen == config.fine_tune_layers
    assert two.learning_rate == pytest.approx(config.learning_rate * config.fine_tune_lr_factor)
    assert (config.augment.translate, config.batch_size) == (0, config.batch_size)
    preset = TrainConfig.from_preset("efficientnet_lite0")
    plain = dataclasses.replace(preset, fine_tune_augment=None, fine_tune_batch_size=0)
    two = plan(plain)[1].config
    assert two.augment == plain.augment and two.batch_size == plain.batch_size
    assert len(plan(TrainConfig.from_preset("efficientnet_lite0_frozen"))) == 1  # no fine-tuning


def test_a_phase_record_reads_back_what_an_older_version_stored():
    record = PhaseRecord.from_dict({"phase": 2, "time_s": 30.0, "trainable_params": 7, "no_longer": 1})
    assert (record.phase, record.trainable_params, record.cache_time_s, record.total_s) == (2, 7, 0.0, 30.0)
    record.cache_time_s = 5.0
    assert record.total_s == 35.0 and PhaseRecord.from_dict(record.to_dict()) == record


def test_run_ids_hash_only_what_differs_from_the_defaults():
    config = TrainConfig(model="baseline_cnn", epochs=3)
    assert config.non_default() == {"model": "baseline_cnn", "epochs": 3}
    saved = config.to_dict()
    del saved["fine_tune_augment"]  # written before the field existed
    assert same_config(saved, config)
    assert not same_config({**saved, "epochs": 4}, config)
    assert not same_config({**saved, "no_such_field": 1}, config)
    assert TrainConfig(model="baseline_cnn", epochs=3).fingerprint() == config.fingerprint()
    assert TrainConfig(model="baseline_cnn", epochs=4).fingerprint() != config.fingerprint()


def test_xla_compiles_the_same_training_step_and_is_off_by_default_on_a_cpu():
    """``xla``: on compiles fast's step (Muon, fused kernels) with XLA and computes the same
    loss and weights as without; auto leaves Keras' choice (off on a CPU) and the run id."""
    import keras
    import numpy as np
    import tensorflow as tf

    from cifar_core.config import ConfigError
    from cifar_core.training.fitting import build_model, compile_for

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    y = keras.utils.to_categorical(rng.integers(0, 10, 64), 10)
    results = {}
    for xla in ("auto", "on"):
        config = TrainConfig.from_preset("fast", batch_size=32, model_args={"widths": [8, 16, 16]}, xla=xla)
        keras.utils.set_random_seed(0)
        model = build_model(config, tf.distribute.get_strategy(), x)
        compile_for(model, plan(config)[0], tf.distribute.get_strategy(), 10)
        losses = [float(model.train_on_batch(x[i : i + 32], y[i : i + 32])[0]) for i in (0, 32)]
        results[xla] = (model.jit_compile, losses, model.get_layer("head").kernel.numpy())
    assert results["auto"][0] is False and results["on"][0] is True
    np.testing.assert_allclose(results["on"][1], results["auto"][1], rtol=1e-4)
    np.testing.assert_allclose(results["on"][2], results["auto"][2], atol=1e-4)
    default = TrainConfig.from_preset("fast")
    assert TrainConfig.from_preset("fast", xla="auto").fingerprint() == default.fingerprint()
    assert TrainConfig.from_preset("fast", xla="on").fingerprint() != default.fingerprint()
    with pytest.raises(ConfigError, match="xla must be one of"):
        TrainConfig.from_preset("fast", xla="yes")
