"""The training configuration: one dataclass, a note per field, presets from the registry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cifar_core.pipeline import AugmentConfig

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "plateau", "cosine", "one_cycle")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
TTA_MODES = ("none", "flip", "flip_translate")


class ConfigError(ValueError):
    """A training configuration that cannot work (bad value, unknown field)."""


@dataclass
class TrainConfig:
    """Everything that decides how one model is trained. Presets live with each model."""

    model: str
    epochs: int = 30  # upper bound: early stopping may end sooner
    batch_size: int = 128
    optimizer: str = "adam"  # adam | adamw | sgd
    learning_rate: float = 1e-3  # peak learning rate for cosine / one_cycle
    momentum: float = 0.9  # SGD only
    nesterov: bool = True  # SGD only
    lr_schedule: str = "plateau"  # constant | plateau | cosine | one_cycle
    warmup_fraction: float = 0.25  # one_cycle: share of steps spent rising to the peak
    lr_start_factor: float = 0.1  # one_cycle: the first step's LR as a fraction of the peak
    lr_end_factor: float = 0.01  # one_cycle: the last step's LR as a fraction of the peak
    plateau_factor: float = 0.5  # plateau: multiply the LR by this ...
    plateau_patience: int = 3  # ... after this many epochs without val_loss improving
    weight_decay: float = 0.0  # decoupled decay (AdamW, SGD), per step, times the LR
    label_smoothing: float = 0.0
    bias_lr_scale: float = 1.0  # SGD: BatchNorm shifts (beta) learn this many times faster (airbench: 64)
    lookahead: bool = False  # airbench's lookahead: every 5 steps pull weights towards a slow average
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tta: str = "none"  # test-time augmentation: none | flip | flip_translate
    precision: str = "auto"  # auto | float32 | mixed_bfloat16 | mixed_float16
    seed: int = 0
    val_size: int = 5000  # images carved (stratified) out of train for validation
    train_limit: int | None = None  # use at most this many train images (quick runs)
    early_stopping_patience: int = 5  # epochs without val_accuracy improving; 0 = off
    restore_best: bool = True  # end with the weights of the best validation epoch
    # Model builder arguments (transfer models: head_units, dropout, ...).
    model_args: dict[str, Any] = field(default_factory=dict)
    # Transfer learning only: "imagenet", a weights file, or "none" (random, recorded).
    weights: str | None = None
    input_size: int | None = None  # transfer only: backbone input size in px (None: preset)
    fine_tune_epochs: int = 0  # transfer only: phase 2 epochs after `epochs` of phase 1
    fine_tune_layers: int = 0  # transfer only: top backbone layers unfrozen in phase 2
    fine_tune_lr_factor: float = 0.03  # transfer only: phase 2 LR = learning_rate x this
    cache_features: bool = True  # transfer only: run the frozen part once per image and reuse it
    # Transfer only, phase 2: its own augmentation and batch size (None / 0: as phase 1).
    # Augmentation beyond a flip means phase 2 trains on pixels, not on cached activations.
    fine_tune_augment: AugmentConfig | None = None
    fine_tune_batch_size: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        if isinstance(self.fine_tune_augment, dict):
            self.fine_tune_augment = AugmentConfig(**self.fine_tune_augment)
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.lr_schedule in SCHEDULES, f"lr_schedule must be one of {SCHEDULES}"),
            (self.precision in PRECISIONS, f"precision must be one of {PRECISIONS}"),
            (self.tta in TTA_MODES, f"tta must be one of {TTA_MODES}"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 < self.lr_start_factor <= 1, "lr_start_factor must be in (0, 1]"),
            (0 < self.lr_end_factor <= 1, "lr_end_factor must be in (0, 1]"),
            (self.val_size >= 1, "val_size must be >= 1"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.bias_lr_scale > 0, "bias_lr_scale must be > 0"),
            (
                self.bias_lr_scale == 1 or self.optimizer == "sgd",
                "bias_lr_scale needs optimizer 'sgd'",
            ),
            (self.fine_tune_epochs >= 0, "fine_tune_epochs must be >= 0"),
            (self.fine_tune_batch_size >= 0, "fine_tune_batch_size must be >= 0"),
            (0.001 <= self.fine_tune_lr_factor <= 1, "fine_tune_lr_factor must be in [0.001, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message} (config for {self.model!r})")

    @classmethod
    def from_preset(cls, model: str, **overrides: Any) -> "TrainConfig":
        """The model's registered preset, with ``overrides`` (None values ignored) on top."""
        from cifar_core.models import get_spec

        values: dict[str, Any] = dict(get_spec(model).preset)
        augment = dict(values.pop("augment", {}))
        augment.update(overrides.pop("augment", None) or {})
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(model=model, augment=AugmentConfig(**augment), **values)

    def model_kwargs(self, load_weights: bool = True) -> dict[str, Any]:
        """Builder arguments: model_args plus, for transfer models, weights and input size.

        With ``load_weights=False`` pretrained weights are not loaded (they are about to be
        overwritten from a checkpoint), so nothing is downloaded or read twice.
        """
        kwargs = dict(self.model_args)
        if self.weights is not None:
            kwargs["weights"] = self.weights if load_weights else "none"
        if self.input_size is not None:
            kwargs["input_size"] = self.input_size
        return kwargs

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ConfigError(f"unknown config fields: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def non_default(self) -> dict[str, Any]:
        """The fields that differ from the dataclass defaults (``model`` always).

        What identifies a config: a field added later with a default that keeps the old
        behaviour leaves it unchanged, so run ids and finished runs survive new options.
        """
        defaults = {
            f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
            for f in dataclasses.fields(self)
            if f.name != "model"
        }
        values = self.to_dict()
        return {k: v for k, v in values.items() if k == "model" or _plain(v) != _plain(defaults[k])}

    def phase(self, phase: int) -> "TrainConfig":
        """The config as phase ``phase`` sees it (phase 2: its own augmentation, batch size)."""
        if phase != 2:
            return self
        return dataclasses.replace(
            self,
            augment=self.fine_tune_augment or self.augment,
            batch_size=self.fine_tune_batch_size or self.batch_size,
        )

    def fingerprint(self) -> str:
        """Short hash of the config: the same command gives the same run id."""
        blob = json.dumps(self.non_default(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value))


def same_config(saved: dict[str, Any], config: TrainConfig) -> bool:
    """Whether a config saved by an earlier version (maybe without later fields) is ``config``."""
    try:
        return TrainConfig.from_dict(saved).non_default() == _plain(config.non_default())
    except (ConfigError, TypeError):
        return False
