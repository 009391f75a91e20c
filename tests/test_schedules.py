"""The airbench optimisation tricks: 64x BatchNorm-shift steps and lookahead."""

import keras
import numpy as np
import pytest

from cifar_core.config import ConfigError, TrainConfig
from cifar_core.training.schedules import Lookahead, ScaledBiasSGD


def _bn_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3, name="dense")(inputs)
    x = keras.layers.BatchNormalization(scale=False, name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(x))


def _one_step(optimizer):
    model = _bn_model()
    model.compile(optimizer=optimizer, loss="mse")
    before = {w.path: np.array(w) for w in model.trainable_weights}
    x = np.random.default_rng(1).normal(size=(8, 4)).astype("float32")
    model.train_on_batch(x, np.ones((8, 1), "float32"))
    return {w.path: np.array(w) - before[w.path] for w in model.trainable_weights}


def test_batchnorm_shifts_take_scaled_steps_and_nothing_else_does():
    plain = _one_step(keras.optimizers.SGD(0.01))
    scaled = _one_step(ScaledBiasSGD(0.01, bias_lr_scale=64.0))
    for path, delta in plain.items():
        factor = 64.0 if path.endswith("/beta") else 1.0
        np.testing.assert_allclose(scaled[path], factor * delta, rtol=1e-4, atol=1e-7, err_msg=path)
    assert np.abs(plain["bn/beta"]).max() > 0


def test_bias_lr_scale_needs_sgd():
    with pytest.raises(ConfigError, match="needs optimizer 'sgd'"):
        TrainConfig(model="fast", optimizer="adam", bias_lr_scale=64.0)
    from cifar_core.training.schedules import make_optimizer

    optimizer = make_optimizer(TrainConfig(model="fast", optimizer="sgd", bias_lr_scale=8.0), 10)
    assert isinstance(optimizer, ScaledBiasSGD)


class _FakeOptimizer:
    def __init__(self):
        self.iterations = keras.Variable(0, dtype="int64")


class _FakeModel:
    def __init__(self):
        self.weights = [keras.Variable(np.zeros(3, "float32")), keras.Variable(np.int32(7))]
        self.optimizer = _FakeOptimizer()


def test_lookahead_averages_every_fifth_step_and_ends_on_the_slow_weights():
    model, callback = _FakeModel(), Lookahead(total_steps=20, every=5)
    callback.set_model(model)
    callback.on_train_begin()
    weights, slow = np.zeros(3), None  # the reference computation
    for step in range(1, 21):
        weights = weights + 1.0  # an optimizer step
        model.weights[0].assign(weights.astype("float32"))
        model.optimizer.iterations.assign(step)
        callback.on_train_batch_end(step - 1)
        if slow is None:
            slow = weights.copy()  # taken at the first step
        if step % 5 == 0:
            decay = 1.0 if step == 20 else 0.95**5 * (step / 20) ** 3
            slow = decay * slow + (1 - decay) * weights
            weights = slow.copy()
        np.testing.assert_allclose(np.array(model.weights[0]), weights, rtol=1e-6, err_msg=f"step {step}")
    assert 1.0 < weights[0] < 20.0  # averaged: behind the 20 raw steps
    assert int(model.weights[1]) == 7  # integer state is left alone


def test_lookahead_hands_the_slow_weights_to_validation_at_every_epoch_end():
    model, callback = _FakeModel(), Lookahead(total_steps=100, every=5)
    callback.set_model(model)
    callback.on_train_begin()
    for step in range(1, 8):  # 7 steps of an epoch; the last sync was at step 5
        model.weights[0].assign(np.full(3, float(step), "float32"))
        model.optimizer.iterations.assign(step)
        callback.on_train_batch_end(step - 1)
    assert float(model.weights[0][0]) == 7.0
    callback.on_epoch_end(0)
    slow = np.array(callback.slow[0])
    np.testing.assert_allclose(np.array(model.weights[0]), slow)
    assert 1.0 <= slow[0] <= 5.0  # the average as of step 5, not the raw step-7 weights


def test_one_cycle_starts_and_ends_at_the_configured_fractions_of_the_peak():
    from cifar_core.training.schedules import make_schedule

    config = TrainConfig(
        model="fast",
        lr_schedule="one_cycle",
        learning_rate=1.0,
        epochs=1,
        warmup_fraction=0.25,
        lr_start_factor=0.2,
        lr_end_factor=0.07,
    )
    schedule = make_schedule(config, 100)
    assert float(schedule(0)) == pytest.approx(0.2)
    assert float(schedule(25)) == pytest.approx(1.0)
    assert float(schedule(100)) == pytest.approx(0.07)
    with pytest.raises(ConfigError, match="lr_end_factor"):
        TrainConfig(model="fast", lr_end_factor=0.0)


def test_freeze_after_stops_every_update_of_a_layer_and_only_of_it():
    from cifar_core.training.schedules import FreezeAfter

    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(4, name="early")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="late")(hidden))
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=0.1), loss="mse")
    x, y = np.random.default_rng(0).normal(size=(64, 4)), np.random.default_rng(1).normal(size=(64, 2))
    after_first = {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                after_first.update(
                    {layer: np.array(model.get_layer(layer).kernel) for layer in ("early", "late")}
                )

    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[FreezeAfter({"early": 1}), Snapshot()])
    np.testing.assert_array_equal(np.array(model.get_layer("early").kernel), after_first["early"])
    assert not np.allclose(np.array(model.get_layer("late").kernel), after_first["late"])


def test_set_options_reach_the_config_and_bad_ones_are_refused():
    from cifar_core.config import apply_setting

    settings = [
        "model_args.widths=[32, 64, 64]",
        "model_args.init=glorot",
        "augment.flip_alternate=false",
        "freeze_after.whiten_bias=2",
        "batch_size=512",
    ]
    config = TrainConfig.from_preset("fast", settings)
    preset = TrainConfig.from_preset("fast")
    assert preset.model_args["widths"] == [64, 256, 256] and preset.model_args["init"] == "torch"
    # One key each changed, the preset's others kept.
    assert config.model_args == {**preset.model_args, "widths": [32, 64, 64], "init": "glorot"}
    assert TrainConfig.from_preset("fast").model_args == preset.model_args  # preset untouched
    # A programmatic override replaces the dict (as before --set existed).
    assert TrainConfig.from_preset("fast", model_args={"init": "torch"}).model_args == {"init": "torch"}
    assert not config.augment.flip_alternate and config.augment.translate == 2  # the preset's kept
    assert config.freeze_after == {"whiten_bias": 2} and config.batch_size == 512
    for bad in ("nope=1", "augment.spin=1", "batch_size", "epochs.x=1"):
        with pytest.raises(ConfigError):
            apply_setting({}, bad)
