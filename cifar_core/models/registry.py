"""Name -> builder registry of the model zoo, with per-model metadata and training preset."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cifar_core.errors import UnknownModelError

_REGISTRY: dict[str, "ModelSpec"] = {}


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows about one model besides how to build it."""

    name: str
    family: str  # "scratch", "transfer", or "custom" (a builder in the user's own file)
    description: str  # one line, naming the seed write-up it comes from
    builder: Callable[..., keras.Model]
    input_size: int = 32  # the size the network works at (transfer models resize inside)
    preset: dict[str, Any] = field(default_factory=dict)  # TrainConfig overrides: the best recipe
    # Optional hook run once before training with the (uint8) training images, e.g. to
    # initialise a whitening layer from patch statistics: fn(model, x_train) -> None.
    data_init: Callable[[keras.Model, Any], None] | None = None
    # Part of the reference zoo that ``run --all`` trains: every model that needs nothing
    # but the data (keras.applications backbones download their weights: by name only).
    zoo: bool = True
    # What ``tune`` searches: ``--set`` key -> {"log": [lo, hi]} | {"range": [lo, hi]} |
    # {"int": [lo, hi]} | {"choices": [...]} (None: cifar_core.tuning's default space).
    search_space: dict[str, dict] | None = None
    # The model's other named recipes (``fast:muon8``): name -> TrainConfig overrides, as
    # ``preset`` (which is the plain name's recipe, the best measured one).
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def is_transfer(self) -> bool:
        """A pretrained backbone with a head, trained in phases (``phases.plan``)."""
        return self.family == "transfer"


def register_model(
    name: str,
    *,
    family: str,
    description: str,
    input_size: int = 32,
    preset: dict[str, Any] | None = None,
    data_init=None,
    zoo: bool = True,
    search_space: dict[str, dict] | None = None,
    recipes: dict[str, dict[str, Any]] | None = None,
):
    """Decorator: register ``builder(num_classes=10, **overrides) -> keras.Model`` as ``name``,
    trained by default with ``preset`` and by ``name:recipe`` with one of ``recipes``."""

    def wrap(builder: Callable[..., keras.Model]) -> Callable[..., keras.Model]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelSpec(
            name,
            family,
            description,
            builder,
            input_size,
            dict(preset or {}),
            data_init,
            zoo,
            search_space,
            dict(recipes or {}),
        )
        return builder

    return wrap


RECIPE_SEPARATOR = ":"  # fast:muon8 (a builder file's FILE.py:FUNCTION is told apart by its .py)


def split_recipe(name: str) -> tuple[str, str | None]:
    """``"fast:muon8"`` -> ``("fast", "muon8")``; a plain name or a builder file -> (name, None)."""
    from cifar_core.models.builderfile import is_builder_ref

    if is_builder_ref(name) or RECIPE_SEPARATOR not in str(name):
        return name, None
    model, _, recipe = str(name).partition(RECIPE_SEPARATOR)
    return model, recipe


def recipe_preset(name: str) -> dict[str, Any]:
    """The TrainConfig overrides ``name`` (``fast`` or ``fast:muon8``) trains with;
    UnknownModelError, naming the model's recipes, for a recipe it does not have."""
    model, recipe = split_recipe(name)
    spec = get_spec(model)
    if recipe is None:
        return spec.preset
    if recipe not in spec.recipes:
        known = ", ".join([model, *(f"{model}{RECIPE_SEPARATOR}{r}" for r in spec.recipes)])
        raise UnknownModelError(f"{model} has no recipe {recipe!r}: its recipes are {known}")
    return spec.recipes[recipe]


def get_spec(name: str) -> ModelSpec:
    """The spec of a registered model (``name`` may name one of its recipes: ``fast:muon8``),
    or of a builder in the user's own file (``FILE.py:FUNCTION``, models/builderfile.py);
    UnknownModelError (with suggestions) for an unknown name or recipe, BuilderFileError for
    a file that cannot make a model."""
    from cifar_core.models.builderfile import is_builder_ref, read

    if is_builder_ref(name):
        return _builder_spec(name, read(name).sha256)
    model, recipe = split_recipe(name)
    if recipe is not None:
        recipe_preset(name)  # an unknown recipe fails here, naming the model's recipes
        name = model
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}.{hint} Known models: {', '.join(sorted(_REGISTRY))}"
        ) from None


@functools.lru_cache(maxsize=32)
def _builder_spec(name: str, sha256: str) -> ModelSpec:
    """A spec for a builder file's function (one per file content): no preset (the
    TrainConfig defaults and the command's options), not part of the zoo."""
    from cifar_core.models.builderfile import SEPARATOR, builder

    file, _, function = name.rpartition(SEPARATOR)
    description = f"your own model: {function}() in {Path(file).name} (sha256 {sha256[:12]})"
    return ModelSpec(name, "custom", description, builder(name), zoo=False)


def check_builder(name: str, model_args: dict | None = None, num_classes: int = 10) -> None:
    """Build a builder file's model once, so that a bad file fails with its one line before
    any data is loaded or anything is written (nothing to do for a zoo name)."""
    from cifar_core.models.builderfile import is_builder_ref

    if is_builder_ref(name):
        get_spec(name).builder(num_classes=num_classes, **(model_args or {}))
        keras.backend.clear_session()


def list_models(family: str | None = None, zoo_only: bool = False) -> list[str]:
    """Registered model names (optionally of one family, or the reference zoo only), in
    registration order."""
    return [
        n for n, s in _REGISTRY.items() if (family is None or s.family == family) and (s.zoo or not zoo_only)
    ]


def create_model(name: str, num_classes: int = 10, **overrides: Any) -> keras.Model:
    """Build model ``name``; it maps uint8 (B, 32, 32, 3) pixels to (B, num_classes) softmax."""
    spec = get_spec(name)
    return spec.builder(num_classes=num_classes, **overrides)


def flat_layers(model: keras.Model):
    """Every layer of ``model``, descending into nested models (a backbone inside a model)."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from flat_layers(layer)
        else:
            yield layer


def count_trainable(model: keras.Model) -> int:
    """Parameters that training updates (the model's trainable weights, as they are set now)."""
    return int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
