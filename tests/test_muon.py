"""The engine's Muon (cifar_core.training.muon) against a NumPy transcription of airbench94_muon's
optimizers (its Muon class and torch.optim.SGD with Nesterov momentum and weight decay)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cifar_core.training.muon import NS_COEFFICIENTS, AirbenchMuon


def ns_reference(g: np.ndarray, steps: int = 3, eps: float = 1e-7) -> np.ndarray:
    """zeropower_via_newtonschulz5 of the recipe, in float64 (it runs in bfloat16 on a GPU)."""
    a, b, c = NS_COEFFICIENTS
    x = g / (np.linalg.norm(g) + eps)
    tall = g.shape[0] > g.shape[1]
    if tall:
        x = x.T
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


class Reference:
    """One optimizer step as the recipe takes it, on PyTorch-layout tensors."""

    def __init__(self, total, whiten_steps, scale, wd, muon_lr=0.24, bias_lr=0.053, head_lr=0.67):
        self.total, self.whiten_steps, self.scale, self.wd = total, whiten_steps, scale, wd
        self.lrs = {"muon": muon_lr, "bias": bias_lr, "whiten_bias": bias_lr, "head": head_lr}
        self.buffers, self.step_count = {}, 0

    def step(self, params: dict, grads: dict, groups: dict) -> None:
        s = self.step_count
        for name, p in params.items():
            kind = groups[name]
            steps = self.whiten_steps if kind == "whiten_bias" else self.total
            lr = self.lrs[kind] * (1 - s / steps)
            if kind == "muon":  # Muon.step: momentum, Nesterov, weight normalised, whitened update
                g = grads[name]
                buf = self.buffers[name] = 0.6 * self.buffers.get(name, 0) + g
                g = g + 0.6 * buf
                p *= len(p) ** 0.5 / np.linalg.norm(p)
                p -= lr * ns_reference(g.reshape(len(g), -1)).reshape(g.shape)
            else:  # torch.optim.SGD(momentum=0.85, nesterov=True, weight_decay=wd / lr0), summed loss
                d = grads[name] * self.scale + (self.wd / self.lrs[kind]) * p
                buf = self.buffers[name] = 0.85 * self.buffers.get(name, 0) + d
                p -= lr * (d + 0.85 * buf)
        self.step_count += 1


def small_net() -> keras.Model:
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Dense(3, name="whiten_bias")(inputs)  # its kernel is frozen below
    x = keras.layers.Conv2D(5, 3, use_bias=False, name="g0_conv0")(x)
    x = keras.layers.BatchNormalization(scale=False, name="g0_bn0")(x)
    x = keras.layers.Conv2D(4, 3, use_bias=False, name="g0_conv1")(x)  # a "tall" filter matrix
    x = keras.layers.GlobalMaxPooling2D()(x)
    outputs = keras.layers.Dense(10, use_bias=False, name="head")(x)
    model = keras.Model(inputs, outputs)
    model.get_layer("whiten_bias").kernel.trainable = False
    return model


def to_torch(value: np.ndarray) -> np.ndarray:
    return np.transpose(value, (3, 2, 0, 1)).copy() if value.ndim == 4 else value.copy()


def from_torch(value: np.ndarray) -> np.ndarray:
    return np.transpose(value, (2, 3, 1, 0)) if value.ndim == 4 else value


def test_groups_follow_the_recipe_on_the_fast_net():
    from cifar_core.models import create_model

    model = create_model("fast")
    optimizer = AirbenchMuon(total_steps=10)
    groups = {v.path: optimizer.group(v) for v in model.trainable_variables}
    assert {p for p, g in groups.items() if g == "muon"} == {
        v.path for v in model.trainable_variables if len(v.shape) == 4
    }
    assert [p for p, g in groups.items() if g == "head"] == ["head/kernel"]
    assert [p for p, g in groups.items() if g == "whiten_bias"] == ["whiten_bias/bias"]
    assert all("bn" in p for p, g in groups.items() if g == "bias")
    keras.backend.clear_session()


@pytest.mark.parametrize("steps", [1, 3])
def test_steps_match_a_numpy_transcription_of_the_recipe(steps):
    rng = np.random.default_rng(0)
    model = small_net()
    variables = model.trainable_variables
    for v in variables:
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    optimizer = AirbenchMuon(total_steps=5, whiten_steps=2, gradient_scale=64.0, weight_decay=2e-6 * 64)
    groups = {v.path: optimizer.group(v) for v in variables}
    assert sorted(groups.values()) == ["bias", "head", "muon", "muon", "whiten_bias"]
    reference = Reference(total=5, whiten_steps=2, scale=64.0, wd=2e-6 * 64)
    params = {v.path: to_torch(np.asarray(v, dtype=np.float64)) for v in variables}
    for _ in range(steps):
        grads = [rng.normal(0, 0.1, v.shape).astype("float32") for v in variables]
        optimizer.apply_gradients(zip(grads, variables))
        torch_grads = {v.path: to_torch(g.astype(np.float64)) for v, g in zip(variables, grads)}
        reference.step(params, torch_grads, groups)
    for v in variables:
        expected = from_torch(params[v.path])
        np.testing.assert_allclose(np.asarray(v), expected, rtol=2e-4, atol=2e-5, err_msg=v.path)
    # The filters' norms are sqrt(out channels) before each step, so close to it after.
    kernel = np.asarray(model.get_layer("g0_conv0").kernel)
    assert abs(np.linalg.norm(kernel) - 5**0.5) < 0.3


def test_keras_muon_would_not_touch_the_conv_filters():
    """The difference that rules out keras.optimizers.Muon for the recipe: 4-D kernels get
    its AdamW step, not the orthogonalised one."""
    model = small_net()
    optimizer = keras.optimizers.Muon(rms_rate=None)
    kernel = model.get_layer("g0_conv0").kernel
    assert optimizer._should_use_adamw(kernel)
    keras.backend.clear_session()


def test_the_muon8_recipe_is_airbench94_muons_and_its_optimizer_is_built_from_it():
    from cifar_core.config import TrainConfig
    from cifar_core.training.schedules import make_optimizer

    config = TrainConfig.from_preset("fast:muon8")
    assert (config.optimizer, config.epochs, config.batch_size, config.lookahead) == ("muon", 8, 2000, False)
    optimizer = make_optimizer(config, steps_per_epoch=23)
    assert isinstance(optimizer, AirbenchMuon)
    assert (optimizer.total_steps, optimizer.whiten_steps) == (8 * 23, 3 * 23)
    assert optimizer.gradient_scale == 2000 and optimizer.wd == pytest.approx(0.004)
    assert (optimizer.muon_lr, optimizer.muon_momentum) == (0.24, 0.6)
    assert (optimizer.bias_lr, optimizer.head_lr, optimizer.sgd_momentum) == (0.053, 0.67, 0.85)
    # What training logs as the LR is Muon's own rate, decaying linearly to 0.
    assert float(optimizer.learning_rate) == pytest.approx(0.24)
    optimizer.iterations.assign(4 * 23)
    assert float(optimizer.learning_rate) == pytest.approx(0.12)
    # --set reaches the optimizer's other arguments.
    changed = TrainConfig.from_preset("fast", ["optimizer_args.head_lr=0.5"])
    assert make_optimizer(changed, 23).head_lr == 0.5


@pytest.mark.parametrize(
    "settings, message",
    [
        (["lr_schedule=one_cycle"], "needs lr_schedule 'linear'"),
        (["optimizer_args.momentum=0.9"], "unknown keys ['momentum']"),
        (["optimizer=sgd", "lr_schedule=one_cycle"], "optimizer_args are for optimizer 'muon'"),
    ],
)
def test_a_muon_config_that_cannot_train_is_refused(settings, message):
    from cifar_core.config import ConfigError, TrainConfig

    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig.from_preset("fast", settings)


def test_the_muon_head_has_unit_weights_and_a_width_scaled_output():
    from cifar_core.config import TrainConfig
    from cifar_core.models import create_model

    config = TrainConfig.from_preset("fast")
    model = create_model("fast", **config.model_kwargs())
    assert np.std(np.asarray(model.get_layer("head").kernel)) == pytest.approx(1.0, abs=0.1)
    assert float(model.get_layer("logit_scale").scale) == pytest.approx(1 / 256)
    old = create_model("fast")  # the builder's defaults: airbench94's head
    assert np.std(np.asarray(old.get_layer("head").kernel)) < 0.1
    assert float(old.get_layer("logit_scale").scale) == pytest.approx(1 / 9)
    keras.backend.clear_session()


def test_a_model_compiled_with_it_saves_and_loads_with_its_optimizer(tmp_path):
    model = small_net()
    model.compile(optimizer=AirbenchMuon(total_steps=7, whiten_steps=3, gradient_scale=8.0), loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 6, 6, 3)).astype("float32")
    model.fit(x, np.zeros((8, 10), "float32"), epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, AirbenchMuon)
    assert (loaded.optimizer.total_steps, loaded.optimizer.whiten_steps) == (7, 3)
    assert loaded.optimizer.gradient_scale == 8.0
    keras.backend.clear_session()
