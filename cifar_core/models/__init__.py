"""The model zoo: ``create_model(name)``, ``list_models()``, ``get_spec(name)``.

Each family lives in its own module; importing them here registers their models.
"""

from cifar_core.models import fast, scratch, transfer  # noqa: F401  (registers the models)
from cifar_core.models.builderfile import BuilderFileError, is_builder_ref, run_name
from cifar_core.models.registry import (
    ModelSpec,
    UnknownModelError,
    count_trainable,
    create_model,
    get_spec,
    list_models,
)

__all__ = [
    "BuilderFileError",
    "ModelSpec",
    "UnknownModelError",
    "count_trainable",
    "create_model",
    "get_spec",
    "is_builder_ref",
    "list_models",
    "run_name",
]
