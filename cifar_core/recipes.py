"""Named recipes: which way of training a config is, and what it changes.

A model's plain name is its best measured recipe (``fast``); its other recipes have a name
(``fast:muon8``, ``fast:airbench94``, ``cnn_bn:tuned``). They live with each model in the
registry (``ModelSpec.preset`` and ``ModelSpec.recipes``); this module matches a config to
them, so that a run says what it is:

    found = identify(config)          # Recipe("fast", {"epochs": 12})
    found.label                       # "fast + epochs=12"

The seed, the precision and XLA are not part of a recipe: they change a run's speed (and its
figures say which), not what it trains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cifar_core.config import TrainConfig

NOT_RECIPE = {"seed", "precision", "xla"}  # how one run of a recipe ran, not what it is
NESTED = ("augment", "model_args", "optimizer_args", "freeze_after")  # compared key by key


@dataclass(frozen=True)
class Recipe:
    name: str  # "fast" (the model's best) or "fast:muon8"
    changes: dict[str, Any] = field(default_factory=dict)  # --set name -> the run's value

    @property
    def label(self) -> str:
        """ "fast", or "fast:muon8 + epochs=12, augment.small_crop=0" when the run changed it."""
        if not self.changes:
            return self.name
        return f"{self.name} + " + ", ".join(f"{k}={_text(v)}" for k, v in sorted(self.changes.items()))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "changes": dict(self.changes)}


def names(model: str) -> list[str]:
    """A model's recipes, the best first: ``["fast", "fast:muon8", "fast:airbench94"]``."""
    from cifar_core.models import get_spec
    from cifar_core.models.registry import RECIPE_SEPARATOR

    return [model, *(f"{model}{RECIPE_SEPARATOR}{r}" for r in get_spec(model).recipes)]


def flat(config: TrainConfig) -> dict[str, Any]:
    """A config as ``--set`` names and values (``augment.small_crop``: 24)."""
    values = config.to_dict()
    out = {k: v for k, v in values.items() if k not in NESTED and k != "model"}
    for key in NESTED:
        out.update({f"{key}.{sub}": v for sub, v in (values.get(key) or {}).items()})
    return out


def changes(config: TrainConfig, recipe: str) -> dict[str, Any]:
    """The settings in which ``config`` differs from ``recipe`` (the seed, precision and XLA
    aside), as ``--set`` names and ``config``'s values."""
    mine, theirs = flat(config), flat(TrainConfig.from_preset(recipe))
    keys = set(mine) | set(theirs)
    return {
        k: mine.get(k) for k in keys if k.split(".")[0] not in NOT_RECIPE and mine.get(k) != theirs.get(k)
    }


def identify(config: TrainConfig) -> Recipe | None:
    """The recipe ``config`` is (the one it changes least; the best recipe on a tie), with
    what it changes; None for a builder file's model, which has no recipes."""
    from cifar_core.models import is_builder_ref

    if is_builder_ref(config.model):
        return None
    found = [Recipe(name, changes(config, name)) for name in names(config.model)]
    return min(found, key=lambda recipe: len(recipe.changes))


def identify_saved(saved: dict[str, Any]) -> Recipe | None:
    """``identify`` for a config a run saved (maybe by an older version); None when it is
    not a config of the zoo (a recorded fit, an unknown model)."""
    from cifar_core.errors import CifarError

    try:
        return identify(TrainConfig.from_dict(saved))
    except (CifarError, TypeError, KeyError):
        return None


def train_command(recipe: Recipe, config: dict[str, Any], data_dir: str = "DIR") -> str:
    """The command that trains a run of ``recipe`` again: its name, what it changed, and the
    run's seed (and precision and XLA where not left to auto), from the repository root."""
    import json
    import shlex

    words = ["python", "-m", "cifar_core", "train", "--model", recipe.name]
    for key, value in sorted(recipe.changes.items()):
        words += ["--set", f"{key}={json.dumps(value, separators=(',', ':'))}"]
    words += ["--seed", str(config.get("seed", 0))]
    for key in ("precision", "xla"):
        if config.get(key, "auto") != "auto":
            words += [f"--{key}", str(config[key])]
    return shlex.join([*words, "--data-dir", data_dir])


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "auto"
    return str(value)
