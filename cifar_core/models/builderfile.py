"""Your own model, from your own file: ``--model path/to/my_nets.py:small_cnn``.

    python -m cifar_core train --model examples/my_nets.py:small_cnn --data-dir DIR \\
        --set model_args.width=64

The function takes the number of classes (``num_classes``) and its ``model_args`` as
keyword arguments and returns a ``keras.Model`` that maps one image batch to class
probabilities, shape ``(None, num_classes)``, ending in a softmax. Its input is either

- ``uint8`` of shape ``(32, 32, 3)``: it gets raw 0-255 pixels, as the zoo's models do and
  scales inside itself; or
- anything else (float32, the Keras default) of shape ``(32, 32, 3)`` or ``(None, None, 3)``:
  it gets pixels scaled to [0, 1], by a ``Rescaling`` layer the workbench puts in front,

so every stored model takes raw uint8 pixels and needs no preprocessing code. The file is
the user's own code, given on the command line, and runs as given (an ordinary import).
A run made from it keeps a copy of the file and records its sha256 and the function's
name; the run id changes when the file does. Every mistake gets one line that names the
file and what is wrong (``BuilderFileError``).
"""

from __future__ import annotations

import functools
import hashlib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from cifar_core.errors import ConfigError

SUFFIX = ".py"
SEPARATOR = ":"


class BuilderFileError(ConfigError):
    """A builder file that cannot make a model; the message names the file and the fault."""


@dataclass(frozen=True)
class BuilderFile:
    """A builder function in a user's file, as a run records it."""

    path: Path
    function: str
    sha256: str
    source: bytes

    @property
    def record(self) -> dict[str, str]:
        """The manifest's ``source`` entry for a run made from this file."""
        return {
            "kind": "builder_file",
            "file": self.path.name,
            "function": self.function,
            "sha256": self.sha256,
        }


def is_builder_ref(name: str) -> bool:
    """Whether a ``--model`` value names a function in a file (``FILE.py:FUNCTION``)."""
    file, sep, function = str(name).rpartition(SEPARATOR)
    return bool(sep) and file.endswith(SUFFIX) and bool(function)


def run_name(name: str) -> str:
    """The part of a ``--model`` value a run id starts with: a builder's function name."""
    return str(name).rpartition(SEPARATOR)[2] if is_builder_ref(name) else str(name)


def read(name: str) -> BuilderFile:
    """The file and function a ``FILE.py:FUNCTION`` reference names, read (not run)."""
    file, _, function = str(name).rpartition(SEPARATOR)
    path = Path(file).expanduser()
    if not path.is_file():
        raise BuilderFileError(f"{path}: no such file (--model takes FILE.py:FUNCTION or a zoo name)")
    source = path.read_bytes()
    return BuilderFile(path, function, hashlib.sha256(source).hexdigest(), source)


@functools.lru_cache(maxsize=32)
def _module(path: str, sha256: str, source: bytes) -> types.ModuleType:
    """The file run once per content (an edited file is run again)."""
    try:
        code = compile(source, path, "exec")
    except SyntaxError as error:
        raise BuilderFileError(f"{path}:{error.lineno}: syntax error: {error.msg}") from None
    module = types.ModuleType(f"cifar_builder_{sha256[:12]}")
    module.__file__ = path
    try:
        exec(code, module.__dict__)  # noqa: S102 -- the user's own file, named on the command line
    except Exception as error:  # noqa: BLE001
        raise BuilderFileError(f"{path}: running it failed: {type(error).__name__}: {error}") from None
    return module


def builder(name: str):
    """``builder(num_classes=10, **model_args) -> keras.Model`` for a builder reference: the
    user's function, its model checked, and wrapped to take uint8 pixels when it does not."""
    found = read(name)
    module = _module(str(found.path), found.sha256, found.source)
    function = getattr(module, found.function, None)
    if not callable(function):
        defined = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_"))
        hint = f" (it defines: {', '.join(defined)})" if defined else ""
        raise BuilderFileError(f"{found.path}: no function {found.function!r}{hint}")

    def build(num_classes: int = 10, **model_args: Any) -> keras.Model:
        try:
            model = function(num_classes=num_classes, **model_args)
        except Exception as error:  # noqa: BLE001
            where = f"{found.path}: {found.function}(num_classes={num_classes}, **{model_args})"
            raise BuilderFileError(f"{where} failed: {type(error).__name__}: {error}") from None
        return as_pixel_model(model, num_classes, f"{found.path}: {found.function}()")

    return build


def as_pixel_model(model, num_classes: int, where: str, scale: float = 1.0 / 255) -> keras.Model:
    """``model`` checked (``check_model``) and, unless it takes uint8 already, behind a
    uint8 input multiplied by ``scale`` (a builder's model: pixels in [0, 1])."""
    check_model(model, num_classes, where)
    if model.inputs[0].dtype != "uint8":
        pixels = keras.Input((32, 32, 3), dtype="uint8", name="pixels")
        scaled = keras.layers.Rescaling(scale, name="scale_0_1" if scale != 1.0 else "as_float")(pixels)
        model = keras.Model(pixels, model(scaled), name=model.name)
    probs = np.asarray(model(np.zeros((2, 32, 32, 3), np.uint8), training=False), dtype=np.float64)
    if not (np.all(probs >= -1e-6) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-3)):
        raise BuilderFileError(f"{where}: the outputs are not probabilities (end the model with a softmax)")
    return model


def check_model(model, num_classes: int, where: str) -> None:
    """BuilderFileError unless ``model`` is a Keras model of one image input, (None, 32, 32,
    3) or (None, None, None, 3), and one output of ``num_classes``."""
    if not isinstance(model, keras.Model):
        raise BuilderFileError(f"{where} returned {type(model).__name__}, not a keras.Model")
    if len(model.inputs or []) != 1:
        raise BuilderFileError(f"{where}: the model needs one image input, it has {len(model.inputs or [])}")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] != 3 or any(s not in (None, 32) for s in shape[1:3]):
        raise BuilderFileError(f"{where}: input {shape} is not an image batch (None, 32, 32, 3)")
    out = tuple(model.outputs[0].shape) if len(model.outputs or []) == 1 else None
    if out != (None, num_classes):
        raise BuilderFileError(f"{where}: output shape {out}, expected (None, {num_classes})")
