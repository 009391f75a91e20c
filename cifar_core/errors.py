"""Every error that bad input can cause: one base class, so callers catch one thing.

    try:
        ...
    except CifarError as error:       # a wrong model name, a malformed folder, a corrupt
        print(f"error: {error}")      # artifact, a hostile upload: one line, nothing changed

Each subclass's message names what was wrong (the path, the value, the known choices).
They subclass ValueError too, for code that predates the base class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class CifarError(ValueError):
    """Bad input of any kind; ``str(error)`` is one line meant for the user."""


class ConfigError(CifarError):
    """A training configuration that cannot work (bad value, unknown field)."""


class DataError(CifarError):
    """A data source is missing, malformed or unreadable. The message names the path."""


class ImageError(CifarError):
    """An input that is not a usable image; str() is a one-line message for the user."""


class ArtifactError(CifarError):
    """A run folder or file is missing, corrupt or not allowed; the message names the path."""


class RunExistsError(ArtifactError):
    """A complete run with this id already exists."""


class RunLockedError(ArtifactError):
    """Another process is training this run id right now."""


class ModelLoadError(CifarError):
    """A saved model that cannot (or may not) be loaded."""


class ExportError(CifarError):
    """A model could not be exported, or its export does not match the Keras model."""


class UnknownModelError(CifarError):
    """A model name that is not registered; the message lists the close matches."""


class WeightsError(CifarError):
    """Pretrained weights that are missing, unreadable or do not fit the model."""


class StopRequested(Exception):
    """A training stopped after an epoch because a stop request asked it to (``status
    --stop``, the dashboard's Stop): not an error; its checkpoints let it resume."""

    def __init__(self, work, epochs_done: int, command: str | None):
        self.work, self.epochs_done, self.command = work, epochs_done, command
        again = f"resume with: {command}" if command else "start it again to resume"
        super().__init__(f"stopped after epoch {epochs_done}, as requested; {again}")


@contextlib.contextmanager
def reraised_as(kind: type[CifarError], message: Callable[[Exception], str]) -> Iterator[None]:
    """Inside the block, any exception but ``kind`` itself becomes ``kind(message(error))``:
    a reader of untrusted bytes fails with one line for the user, never a traceback."""
    try:
        yield
    except kind:
        raise
    except Exception as error:
        raise kind(message(error)) from None
