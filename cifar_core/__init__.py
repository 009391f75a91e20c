"""cifar_core: train, evaluate and record the CIFAR-10 model zoo.

    python -m cifar_core list-models
    python -m cifar_core train --model fast --data-dir ../shared/data/cifar10-jpeg

Wings, bottom up (a wing imports only those below it; tests/test_structure.py holds the table):
the root (errors, fileio, runtime, evaluate, models, config, phases) -> data -> artifacts ->
serving -> analysis -> training -> tuning, ladders -> benchmark -> commands -> cli.
"""

import importlib

__version__ = "0.1.0"

# The documented import ``from cifar_core import tracking``; loaded on first use, so that
# importing the package stays free of TensorFlow.
_PUBLIC = {"tracking": "cifar_core.training.tracking"}


def __getattr__(name: str):
    if name in _PUBLIC:
        return importlib.import_module(_PUBLIC[name])
    raise AttributeError(f"module 'cifar_core' has no attribute {name!r}")
