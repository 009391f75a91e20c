"""Search spaces: per model, declared next to its preset (``register_model(search_space=)``).

A space maps a ``--set`` key (``learning_rate``, ``augment.translate``,
``model_args.dropout``) to one of:

    {"log": [lo, hi]}      a float, log-uniform (learning rates, weight decay)
    {"range": [lo, hi]}    a float, uniform
    {"int": [lo, hi]}      an integer, both ends included
    {"choices": [a, b]}    one of the values (numbers, strings, lists such as widths)

A small JSON file (``tune --space FILE``) changes it: its keys replace or add entries, a key
set to null removes one.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

from cifar_core.config import apply_setting
from cifar_core.errors import ConfigError

KINDS = ("log", "range", "int", "choices")

# For a model that declares none, ``default_space`` searches around its preset's values
# (an SGD preset at learning rate 0.2 and an AdamW one at 2e-3 need different ranges):
LR_FACTORS = (0.1, 3.0)  # log-uniform, times the preset's learning rate
DECAY_FACTORS = (0.1, 10.0)  # log-uniform, times the preset's weight decay
NO_WEIGHT_DECAY = [1e-5, 1e-3]  # where the preset has none (a log range cannot hold 0)
BATCH_FACTORS = (0.5, 1, 2)  # choices, times the preset's batch size
FIXED_RANGES = {"label_smoothing": {"range": [0.0, 0.2]}, "augment.translate": {"int": [0, 4]}}
DROPOUT_RANGE = {"range": [0.0, 0.6]}  # where the builder takes a ``dropout`` argument


def default_space(model: str) -> dict[str, dict]:
    """The search space around the model's preset: every preset value lies inside its range
    (but weight decay 0, which a log range cannot hold)."""
    from cifar_core.config import TrainConfig
    from cifar_core.models import get_spec

    preset = TrainConfig.from_preset(model, [])
    lr, decay, batch = preset.learning_rate, preset.weight_decay, preset.batch_size
    space = {
        "learning_rate": {"log": [float(f"{lr * f:.3g}") for f in LR_FACTORS]},
        "weight_decay": {
            "log": [float(f"{decay * f:.3g}") for f in DECAY_FACTORS] if decay > 0 else NO_WEIGHT_DECAY
        },
        "batch_size": {"choices": sorted({max(8, int(batch * f)) for f in BATCH_FACTORS})},
        **FIXED_RANGES,
    }
    if "dropout" in inspect.signature(get_spec(model).builder).parameters:
        space["model_args.dropout"] = DROPOUT_RANGE
    return {k: {kind: list(v) for kind, v in spec.items()} for k, spec in space.items()}  # copies


def space_for(model: str) -> dict[str, dict]:
    """The model's declared space, else the default one around its preset."""
    from cifar_core.models import get_spec

    spec = get_spec(model)
    if spec.search_space is not None:
        return {k: dict(v) for k, v in spec.search_space.items()}
    return default_space(model)


def check_space(space: dict[str, Any]) -> dict[str, dict]:
    """``space`` if every entry is well formed and every key a ``--set`` key; ConfigError
    naming the first bad entry otherwise."""
    if not isinstance(space, dict) or not space:
        raise ConfigError("a search space is a non-empty mapping of --set keys to ranges")
    for key, spec in space.items():
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            raise ConfigError(f"search space {key!r}: expected one of {', '.join(KINDS)}, got {spec!r}")
        kind, values = next(iter(spec.items()))
        if kind == "choices":
            if not isinstance(values, list) or not values:
                raise ConfigError(f"search space {key!r}: choices must be a non-empty list")
        elif not (isinstance(values, list) and len(values) == 2 and values[0] < values[1]):
            raise ConfigError(f"search space {key!r}: {kind} needs [low, high] with low < high")
        elif kind == "log" and values[0] <= 0:
            raise ConfigError(f"search space {key!r}: a log range must be positive")
        apply_setting({}, f"{key}={json.dumps(values[0])}")  # ConfigError for a bad key
    return space


def load_space(model: str, path: str | Path | None) -> dict[str, dict]:
    """The model's space, changed by the JSON file at ``path`` if one is given."""
    space = space_for(model)
    if path is not None:
        try:
            changes = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{path}: not a readable JSON search space ({type(error).__name__})") from None
        if not isinstance(changes, dict):
            raise ConfigError(f"{path}: expected a JSON object of --set keys to ranges")
        for key, spec in changes.items():
            if spec is None:
                space.pop(key, None)
            else:
                space[key] = spec
    return check_space(space)


def suggest(trial, space: dict[str, dict]) -> dict[str, Any]:
    """One value per key, asked of an Optuna trial (TPE learns from the earlier ones)."""
    values = {}
    for key, spec in space.items():
        kind, bounds = next(iter(spec.items()))
        if kind == "log":
            values[key] = trial.suggest_float(key, bounds[0], bounds[1], log=True)
        elif kind == "range":
            values[key] = trial.suggest_float(key, bounds[0], bounds[1])
        elif kind == "int":
            values[key] = trial.suggest_int(key, bounds[0], bounds[1])
        else:  # Optuna's choices are scalars: a list (e.g. widths) travels as its JSON text
            choices = [json.dumps(c) if isinstance(c, (list, dict)) else c for c in bounds]
            picked = trial.suggest_categorical(key, choices)
            values[key] = json.loads(picked) if isinstance(picked, str) and picked[:1] in "[{" else picked
    return values


def settings(values: dict[str, Any]) -> list[str]:
    """``--set`` strings for a trial's values (how a config and a run's manifest take them)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]


def config_values(config, space: dict[str, dict]) -> dict[str, Any]:
    """What ``config`` itself sets for each key of ``space`` (a model argument the preset
    leaves alone: its builder's default), e.g. the preset's values as a trial's. ConfigError
    for a key the config and the builder give no value for."""
    from cifar_core.models import get_spec

    fields = config.to_dict()
    defaults = inspect.signature(get_spec(config.model).builder).parameters
    values = {}
    for key in space:
        head, _, sub = key.partition(".")
        if not sub:
            values[key] = fields[head]
        elif sub in (fields.get(head) or {}):
            values[key] = fields[head][sub]
        elif (
            head == "model_args" and sub in defaults and defaults[sub].default is not inspect.Parameter.empty
        ):
            values[key] = defaults[sub].default
        else:
            raise ConfigError(f"the preset of {config.model} sets no {key}: give it with --set")
    return values


def trial_params(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as Optuna stores a trial's parameters (a list choice as its JSON text), the
    form ``enqueue_trial`` takes: the inverse of ``suggest``."""
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in values.items()}


def outside(values: dict[str, Any], space: dict[str, dict]) -> list[str]:
    """The keys of ``values`` that lie outside their range in ``space``."""
    keys = []
    for key, value in values.items():
        kind, bounds = next(iter(space[key].items()))
        if not (value in bounds if kind == "choices" else bounds[0] <= value <= bounds[1]):
            keys.append(key)
    return keys


def clamp(values: dict[str, Any], space: dict[str, dict]) -> dict[str, Any]:
    """``values`` moved into their ranges (the nearest end; for choices the nearest number,
    else the first choice): Optuna refuses a trial's value outside its distribution, and a
    log range cannot hold 0 (a preset without weight decay)."""
    moved = dict(values)
    for key in outside(values, space):
        kind, bounds = next(iter(space[key].items()))
        value = values[key]
        if kind != "choices":
            moved[key] = min(max(value, bounds[0]), bounds[1])
        elif isinstance(value, (int, float)) and all(isinstance(c, (int, float)) for c in bounds):
            moved[key] = min(bounds, key=lambda c: abs(c - value))
        else:
            moved[key] = bounds[0]
    return moved
