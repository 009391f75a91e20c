"""Learning-rate schedules (per optimizer step) and the optimizer factory."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from cifar_core.training.muon import AirbenchMuon


@keras.saving.register_keras_serializable(package="cifar_core")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear ramp from peak/div to ``peak`` over ``warmup`` of the steps, then linearly
    down to peak/final_div at the end (the triangular one-cycle airbench uses)."""

    def __init__(
        self, peak: float, total_steps: int, warmup: float = 0.25, div: float = 10.0, final_div: float = 100.0
    ):
        self.peak, self.total_steps, self.warmup = float(peak), int(total_steps), float(warmup)
        self.div, self.final_div = float(div), float(final_div)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rise = max(self.warmup * self.total_steps, 1.0)
        fall = max(self.total_steps - rise, 1.0)
        start, end = self.peak / self.div, self.peak / self.final_div
        up = start + (self.peak - start) * step / rise
        down = self.peak + (end - self.peak) * ops.minimum((step - rise) / fall, 1.0)
        return ops.where(step < rise, up, down)

    def get_config(self):
        return {
            "peak": self.peak,
            "total_steps": self.total_steps,
            "warmup": self.warmup,
            "div": self.div,
            "final_div": self.final_div,
        }


@keras.saving.register_keras_serializable(package="cifar_core")
class ScaledBiasSGD(keras.optimizers.SGD):
    """SGD in which BatchNorm shifts (``beta``) take ``bias_lr_scale`` times larger steps.

    airbench trains BatchNorm biases 64x faster than the weights (its nets have no learned
    BatchNorm scale); weight decay is applied at the base rate to every variable.
    """

    def __init__(self, *args, bias_lr_scale: float = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.bias_lr_scale = float(bias_lr_scale)

    def build(self, variables):
        super().build(variables)
        # The TensorFlow backend hands update_step its own variables: match them by key.
        self._scaled_keys = {self._var_key(v) for v in variables if v.path.endswith("/beta")}

    def update_step(self, gradient, variable, learning_rate):
        if self.bias_lr_scale != 1.0 and self._var_key(variable) in self._scaled_keys:
            learning_rate = ops.multiply(ops.cast(learning_rate, variable.dtype), self.bias_lr_scale)
        return super().update_step(gradient, variable, learning_rate)

    def get_config(self):
        return {**super().get_config(), "bias_lr_scale": self.bias_lr_scale}


def make_schedule(config, steps_per_epoch: int):
    """A float (constant / plateau, which ReduceLROnPlateau changes) or a per-step schedule."""
    total = max(config.epochs * steps_per_epoch, 1)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total)
    if config.lr_schedule == "linear":
        return keras.optimizers.schedules.PolynomialDecay(config.learning_rate, total, 0.0)
    if config.lr_schedule == "one_cycle":
        return OneCycle(
            config.learning_rate,
            total,
            warmup=config.warmup_fraction,
            div=1.0 / config.lr_start_factor,
            final_div=1.0 / config.lr_end_factor,
        )
    return config.learning_rate


def make_optimizer(config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    if config.optimizer == "muon":
        return make_muon(config, steps_per_epoch)
    lr = make_schedule(config, steps_per_epoch)
    decay = config.weight_decay or None
    if config.optimizer == "sgd":
        if config.bias_lr_scale != 1.0:
            return ScaledBiasSGD(
                lr,
                momentum=config.momentum,
                nesterov=config.nesterov,
                weight_decay=decay,
                bias_lr_scale=config.bias_lr_scale,
            )
        return keras.optimizers.SGD(
            lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=decay
        )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 1e-4)
    return keras.optimizers.Adam(lr, weight_decay=decay)


def make_muon(config, steps_per_epoch: int) -> AirbenchMuon:
    """airbench94_muon's optimizers: ``--lr`` and ``momentum`` are Muon's, ``weight_decay``
    the SGD groups' summed-loss decay; the whitening bias decays over the epochs it trains
    (``freeze_after.whiten_bias``); the mean loss is scaled back to a sum by the batch size."""
    total = max(config.epochs * steps_per_epoch, 1)
    whiten_epochs = config.freeze_after.get("whiten_bias", config.epochs)
    return AirbenchMuon(
        total_steps=total,
        whiten_steps=max(min(whiten_epochs, config.epochs) * steps_per_epoch, 1),
        muon_lr=config.learning_rate,
        muon_momentum=config.momentum,
        weight_decay=config.weight_decay,
        gradient_scale=float(config.batch_size),
        **config.optimizer_args,
    )


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    return max(1, math.ceil(n_images / batch_size))


class Lookahead(keras.callbacks.Callback):
    """airbench's lookahead (after hlb-cifar10): every ``every`` steps the weights (BatchNorm
    statistics included) move to ``slow = decay * slow + (1 - decay) * weights``, with
    ``decay = base * (step / total) ** 3``: no effect early, strong averaging late. At the
    end of every epoch (as airbench does) and after the last step the weights become the
    slow ones, so validation, checkpoints and a resumed run all see the averaged weights.
    """

    def __init__(self, total_steps: int, every: int = 5, base: float = 0.95**5):
        super().__init__()
        self.total_steps, self.every, self.base = int(total_steps), int(every), float(base)
        self.slow = None

    def on_train_begin(self, logs=None):
        self.slow = None  # taken at the first step: BackupAndRestore may still load weights

    def _weights(self):
        return [w for w in self.model.weights if "float" in str(w.dtype)]

    def on_epoch_end(self, epoch, logs=None):
        if self.slow is not None:
            for slow, variable in zip(self.slow, self._weights()):
                variable.assign(slow)

    def on_train_batch_end(self, batch, logs=None):
        if self.slow is None:
            self.slow = [np.array(w, dtype=np.float32) for w in self._weights()]
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        if step % self.every and step < self.total_steps:
            return
        decay = 1.0 if step >= self.total_steps else self.base * (step / self.total_steps) ** 3
        for slow, variable in zip(self.slow, self._weights()):
            slow *= decay
            slow += (1.0 - decay) * np.asarray(variable, dtype=np.float32)
            variable.assign(slow)


class FreezeAfter(keras.callbacks.Callback):
    """Stop training named layers after a number of epochs (airbench trains its whitening
    bias for 3). Frozen layers get no update at all (no momentum, no weight decay): the
    train step is traced again without them. Works on resume: it looks at the epoch index."""

    def __init__(self, epochs_by_layer: dict[str, int]):
        super().__init__()
        self.epochs_by_layer = dict(epochs_by_layer)

    def on_epoch_begin(self, epoch, logs=None):
        changed = False
        for name, epochs in self.epochs_by_layer.items():
            layer = self.model.get_layer(name)
            if epoch >= epochs and layer.trainable:
                layer.trainable = False
                changed = True
        if changed:
            self.model.make_train_function(force=True)
