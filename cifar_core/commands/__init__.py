"""The command line's subcommands: each module adds its parsers (``register``) and turns
parsed arguments into calls of the engine's functions, printing what they return.
Engine packages expose functions only; parsing and printing live here.
"""

from cifar_core.commands import benchmark, export, ladder, runs, status, train, tune

MODULES = (train, status, runs, export, ladder, tune, benchmark)

__all__ = ["MODULES"]
