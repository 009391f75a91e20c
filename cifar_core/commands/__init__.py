"""The command line's subcommands: each module adds its parsers (``register``) and turns
parsed arguments into calls of the engine's functions, printing what they return.
Engine packages expose functions only; parsing and printing live here.
"""

from cifar_core.commands import bench, export, ladder, robust, runs, several, train, tune, watch

# One module per group of subcommands; ``python -m cifar_core --help`` lists them in this order.
MODULES = (train, watch, runs, export, ladder, tune, several, robust, bench)

__all__ = ["MODULES"]
