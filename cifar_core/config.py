"""The training configuration: one dataclass, defined once.

Each field carries its default, its allowed values and the help text of its command-line
option (``cli.py`` generates the ``train`` / ``run`` options from these fields, so a
choice or default is written in one place). Presets live with each model in the registry.
This module imports neither TensorFlow nor Keras.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field
from typing import Any

from cifar_core.errors import ConfigError

__all__ = ["AugmentConfig", "ConfigError", "TrainConfig", "cli_fields", "same_config"]


@dataclass
class AugmentConfig:
    """Which augmentations the training pipeline applies (all per image, at random)."""

    flip: bool = True  # horizontal flip with probability 1/2
    # airbench's alternating flips: a random half of the images is flipped in the first epoch,
    # and every image is mirrored relative to that in every other epoch (each one seen both ways).
    flip_alternate: bool = False
    translate: int = 4  # pad by this many pixels (reflect) and crop back to 32x32; 0 = off
    rotation: float = 0.0  # max rotation as a fraction of a full turn (0.1 = +-36 degrees)
    zoom: float = 0.0  # max zoom in/out as a fraction of the size (0.1 = +-10%)
    # Progressive resizing: the first ``small_crop_epochs`` epochs train on random
    # small_crop x small_crop windows (same object scale, less context, ~half the work at 24).
    small_crop: int = 0  # 0 = off
    small_crop_epochs: int = 0
    augmix: int = 0  # AugMix with this many chains at severity 3 (data/augmix.py); 0 = off
    # Fields added after runs were recorded: left out of a config's identity while at these
    # defaults, so older run ids stay what they were (TrainConfig.non_default).
    LATER = {"small_crop": 0, "small_crop_epochs": 0, "augmix": 0}

    def __post_init__(self) -> None:
        if self.small_crop and not 8 <= self.small_crop < 32:
            raise ConfigError(f"augment.small_crop must be in [8, 32) or 0 (off), not {self.small_crop}")
        if self.small_crop_epochs < 0 or (self.small_crop_epochs > 0) != (self.small_crop > 0):
            raise ConfigError("augment.small_crop and augment.small_crop_epochs go together (both > 0)")

    @property
    def enabled(self) -> bool:
        return bool(self.flip or not self.flips_only)

    @property
    def flips_only(self) -> bool:
        """Whether every epoch sees the same pixels, flips aside (what caching activations needs)."""
        return not (self.translate or self.rotation or self.zoom or self.small_crop or self.augmix)


# AirbenchMuon's arguments that ``optimizer_args`` may set (the rest come from the config).
MUON_ARGS = frozenset({"bias_lr", "head_lr", "sgd_momentum", "ns_steps"})

NO_AUGMENT = {"flip": False, "translate": 0, "rotation": 0.0, "zoom": 0.0}


def _opt(default: Any, help: str, *, choices: tuple | None = None, flags: tuple = (), group: str = "train"):
    """A config field that is also a command-line option (``--field-name`` unless ``flags``)."""
    meta = {"help": help, "choices": choices, "flags": flags, "group": group}
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything that decides how one model is trained. Presets live with each model."""

    model: str
    epochs: int = _opt(30, "maximum epochs (early stopping may end sooner)")
    batch_size: int = _opt(128, "images per step")
    optimizer: str = _opt(
        "adam",
        "optimizer (muon: airbench94_muon's Muon on conv filters + Nesterov SGD on the rest, "
        "cifar_core.training.muon; --lr is Muon's rate, the others are optimizer_args)",
        choices=("adam", "adamw", "sgd", "muon"),
    )
    learning_rate: float = _opt(
        1e-3, "(peak) learning rate for cosine / one_cycle", flags=("--learning-rate", "--lr")
    )
    momentum: float = 0.9  # SGD; muon: Muon's momentum on the conv filters
    nesterov: bool = True  # SGD only
    lr_schedule: str = _opt(
        "plateau",
        "plateau: ReduceLROnPlateau on val_loss; cosine / one_cycle / linear (to 0): per step",
        choices=("constant", "plateau", "cosine", "one_cycle", "linear"),
    )
    warmup_fraction: float = 0.25  # one_cycle: share of steps spent rising to the peak
    lr_start_factor: float = 0.1  # one_cycle: the first step's LR as a fraction of the peak
    lr_end_factor: float = 0.01  # one_cycle: the last step's LR as a fraction of the peak
    plateau_factor: float = 0.5  # plateau: multiply the LR by this ...
    plateau_patience: int = 3  # ... after this many epochs without val_loss improving
    weight_decay: float = _opt(
        0.0,
        "decoupled weight decay (AdamW, SGD), per step, times the LR; muon: the recipe's "
        "summed-loss decay of its SGD groups (2e-6 x batch)",
    )
    label_smoothing: float = _opt(0.0, "label smoothing in [0, 1)")
    bias_lr_scale: float = 1.0  # SGD: BatchNorm shifts (beta) learn this many times faster (airbench: 64)
    # muon only: AirbenchMuon's other arguments (bias_lr, head_lr, sgd_momentum, ns_steps)
    optimizer_args: dict[str, Any] = field(default_factory=dict)
    lookahead: bool = False  # airbench's lookahead: every 5 steps pull weights towards a slow average
    # layer name -> epochs it trains for; frozen after that (airbench's whitening bias: 3)
    freeze_after: dict[str, int] = field(default_factory=dict)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    tta: str = _opt("none", "test-time augmentation", choices=("none", "flip", "flip_translate"))
    precision: str = _opt(
        "auto",
        "auto: mixed_float16 on a GPU; on a CPU float32, unless bfloat16 was measured to train "
        "this recipe as well and faster on this kind of CPU (training/bf16_measured.json)",
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    )
    xla: str = _opt(
        "auto",
        "compile the training step with XLA (Keras' jit_compile): auto = Keras' choice (on "
        "with a GPU, off on a CPU); on; off",
        choices=("auto", "on", "off"),
    )
    seed: int = _opt(0, "random seed (split, initialisation, shuffling)")
    val_size: int | None = _opt(
        None,
        "validation images carved (stratified) from train; default 10%% of train, at most 5,000; "
        "0 = none (a final fit on all of train: needs --patience 0, no restore_best, no plateau)",
    )
    train_limit: int | None = _opt(None, "train on at most this many images (quick runs)")
    early_stopping_patience: int = _opt(
        5, "early-stopping patience in epochs (val_accuracy); 0 = off", flags=("--patience",)
    )
    restore_best: bool = True  # end with the weights of the best validation epoch
    # Model builder arguments (transfer models: head_units, dropout, ...).
    model_args: dict[str, Any] = field(default_factory=dict)
    # Transfer learning only.
    weights: str | None = _opt(
        None, '"imagenet" (default), a local weights file, or "none" (random, recorded)', group="transfer"
    )
    input_size: int | None = _opt(
        None, "backbone input size in px (images are resized inside)", group="transfer"
    )
    fine_tune_epochs: int = _opt(0, "phase 2 epochs; 0 = frozen backbone only", group="transfer")
    fine_tune_layers: int = _opt(0, "top backbone layers unfrozen in phase 2", group="transfer")
    fine_tune_lr_factor: float = _opt(0.03, "phase 2 learning rate = --lr x this", group="transfer")
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
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(f"{f.name} must be one of {choices} (config for {self.model!r})")
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.learning_rate > 0, "learning_rate must be > 0"),
            (0 < self.lr_start_factor <= 1, "lr_start_factor must be in (0, 1]"),
            (0 < self.lr_end_factor <= 1, "lr_end_factor must be in (0, 1]"),
            (self.val_size is None or self.val_size >= 0, "val_size must be >= 0 (or unset: automatic)"),
            *self._no_validation_checks(),
            (self.train_limit is None or self.train_limit >= 1, "train_limit must be >= 1"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.bias_lr_scale > 0, "bias_lr_scale must be > 0"),
            (
                self.bias_lr_scale == 1 or self.optimizer == "sgd",
                "bias_lr_scale needs optimizer 'sgd'",
            ),
            (
                self.optimizer != "muon" or self.lr_schedule == "linear",
                "optimizer 'muon' decays every group linearly to 0: needs lr_schedule 'linear'",
            ),
            (
                not self.optimizer_args or self.optimizer == "muon",
                "optimizer_args are for optimizer 'muon'",
            ),
            (
                set(self.optimizer_args) <= MUON_ARGS,
                f"optimizer_args: unknown keys {sorted(set(self.optimizer_args) - MUON_ARGS)} "
                f"(allowed: {', '.join(sorted(MUON_ARGS))})",
            ),
            (self.fine_tune_epochs >= 0, "fine_tune_epochs must be >= 0"),
            (
                all(isinstance(n, int) and n >= 1 for n in self.freeze_after.values()),
                "freeze_after: epochs must be integers >= 1",
            ),
            (self.fine_tune_batch_size >= 0, "fine_tune_batch_size must be >= 0"),
            (0.001 <= self.fine_tune_lr_factor <= 1, "fine_tune_lr_factor must be in [0.001, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"{message} (config for {self.model!r})")

    def _no_validation_checks(self) -> list[tuple[bool, str]]:
        """With ``val_size`` 0 nothing may choose by validation figures."""
        if self.val_size != 0:
            return []
        why = "val_size 0 (no validation split) needs"
        return [
            (self.early_stopping_patience == 0, f"{why} early stopping off (--patience 0)"),
            (not self.restore_best, f"{why} restore_best false (--set restore_best=false)"),
            (self.lr_schedule != "plateau", f"{why} a schedule other than plateau (it watches val_loss)"),
        ]

    @property
    def validates(self) -> bool:
        """Whether the run carves a validation split (``val_size`` 0: it does not)."""
        return self.val_size != 0

    @classmethod
    def from_preset(
        cls, model: str, settings: tuple[str, ...] | list[str] = (), **overrides: Any
    ) -> "TrainConfig":
        """The model's registered recipe (``fast``: its best, ``fast:muon8``: a named one), with
        ``overrides`` (None values ignored; ``augment`` merged key by key, any other field
        replaced) and then ``--set`` ``settings`` on top (``augment.X``, ``model_args.X``,
        ``optimizer_args.X``, ``freeze_after.X`` change one key of the dict). The config's
        ``model`` is the model's name; which recipe a config is, ``recipes.identify`` says."""
        from cifar_core.models.registry import recipe_preset, split_recipe

        preset = recipe_preset(model)
        model = split_recipe(model)[0]
        values: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in preset.items()}
        augment = dict(values.pop("augment", {}))
        augment.update(overrides.pop("augment", None) or {})
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["augment"] = augment
        for setting in settings:
            apply_setting(values, setting)
        return cls(model=model, **{**values, "augment": AugmentConfig(**values["augment"])})

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
        return {
            k: _identity(v) for k, v in values.items() if k == "model" or _plain(v) != _plain(defaults[k])
        }

    def fingerprint(self) -> str:
        """Short hash of the config: the same command gives the same run id."""
        blob = json.dumps(self.non_default(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


def cli_fields() -> list[tuple[dataclasses.Field, type]]:
    """The fields that are command-line options, with the type argparse converts to."""
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in dataclasses.fields(TrainConfig):
        if "help" not in f.metadata:
            continue
        kind = hints[f.name]
        if typing.get_origin(kind) in (typing.Union, getattr(__import__("types"), "UnionType", ())):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        out.append((f, kind))
    return out


def _identity(value: Any) -> Any:
    """An augmentation dict without the later fields that are at their defaults."""
    if isinstance(value, dict) and set(AugmentConfig.LATER) <= set(value):
        return {k: v for k, v in value.items() if k not in AugmentConfig.LATER or v != AugmentConfig.LATER[k]}
    return value


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value))


def same_config(saved: dict[str, Any], config: TrainConfig) -> bool:
    """Whether a config saved by an earlier version (maybe without later fields) is ``config``."""
    try:
        return TrainConfig.from_dict(saved).non_default() == _plain(config.non_default())
    except (ConfigError, TypeError):
        return False


def apply_setting(overrides: dict[str, Any], setting: str) -> None:
    """Apply one ``--set KEY=VALUE`` to ``overrides`` (in place).

    KEY is a TrainConfig field or ``augment.X`` / ``model_args.X``; VALUE is JSON
    (``3``, ``1e-12``, ``true``, ``[64, 256, 256]``, ``{"whiten_bias": 3}``) or else a string.
    """
    key, sep, text = setting.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {setting!r}: expected KEY=VALUE, e.g. model_args.widths=[64,256,256]")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    head, _, sub = key.partition(".")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    if head not in names or head == "model":
        raise ConfigError(f"--set {key}: not a config field (one of {', '.join(sorted(names - {'model'}))})")
    if sub:
        if head == "augment" and sub not in {f.name for f in dataclasses.fields(AugmentConfig)}:
            raise ConfigError(f"--set {key}: augment has no field {sub!r}")
        if head not in ("augment", "model_args", "freeze_after", "optimizer_args"):
            raise ConfigError(
                f"--set {key}: only augment, model_args, optimizer_args and freeze_after take a sub-key"
            )
        overrides[head] = {**(overrides.get(head) or {}), sub: value}
    else:
        overrides[head] = value
