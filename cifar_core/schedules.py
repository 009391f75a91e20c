"""Learning-rate schedules (per optimizer step) and the optimizer factory."""

from __future__ import annotations

import math

import keras
from keras import ops


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


def make_schedule(config, steps_per_epoch: int):
    """A float (constant / plateau, which ReduceLROnPlateau changes) or a per-step schedule."""
    total = max(config.epochs * steps_per_epoch, 1)
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=total)
    if config.lr_schedule == "one_cycle":
        return OneCycle(config.learning_rate, total, warmup=config.warmup_fraction)
    return config.learning_rate


def make_optimizer(config, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    lr = make_schedule(config, steps_per_epoch)
    decay = config.weight_decay or None
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            lr, momentum=config.momentum, nesterov=config.nesterov, weight_decay=decay
        )
    if config.optimizer == "adamw":
        return keras.optimizers.AdamW(lr, weight_decay=config.weight_decay or 1e-4)
    return keras.optimizers.Adam(lr, weight_decay=decay)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    return max(1, math.ceil(n_images / batch_size))
