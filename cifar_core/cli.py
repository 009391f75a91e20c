"""The CIFAR-10 workbench's command line: ``python -m cifar_core <command>``.

    python -m cifar_core list-models
    python -m cifar_core train --model fast --data-dir ../shared/data/cifar10-jpeg
    python -m cifar_core run --all --data-dir ../shared/data/cifar10-jpeg
    python -m cifar_core evaluate --run fast-1a2b3c4d --data-dir my_photos/
    python -m cifar_core predict --run fast-1a2b3c4d cat.jpg dog.png

Each subcommand lives in ``cifar_core/commands/``. Every error that comes from bad input
(a model name, a data folder, an artifact, an image) prints one line, ``error: ...``, and
exits with status 2. A training ended by a stop request (``status --stop``, the dashboard)
says how to resume it and exits with status 3; Ctrl-C, 130.
"""

from __future__ import annotations

import argparse
import sys

from cifar_core.commands import MODULES
from cifar_core.commands.options import EPILOG, VERBOSE_HELP


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cifar_core", description=__doc__.split("\n")[0], epilog=EPILOG
    )
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in MODULES:
        module.register(sub)
    for command in sub.choices.values():  # also accepted after the command
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def reference() -> str:
    """The command-line reference as Markdown, generated from the parser (the docs' CLI page):
    every command, its help and every option's."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    lines = [
        "# Command-line reference",
        "",
        "Generated from the parser (`cifar_core/cli.py`) when the docs are built; "
        "`python -m cifar_core COMMAND --help` prints the same.",
        "",
    ]
    for name, command in sub.choices.items():
        lines += [f"## `{name}`", "", helps.get(name) or "", ""]
        usage = command.format_usage().replace("usage: ", "").strip()
        lines += ["```", usage, "```", ""]
        for action in command._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
                continue
            flags = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.dest}`"
            text = (action.help or "").replace("%(default)s", str(action.default)).replace("|", "\\|")
            lines.append(f"- {flags}: {text}")
        lines.append("")
    return "\n".join(lines)


STOPPED = 3  # the exit status of a training that a stop request ended (resumable)

# Commands that never touch TensorFlow (it takes seconds to import): no quiet import.
NO_TENSORFLOW = {"report", "status"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cifar_core.errors import CifarError, StopRequested

    quiet = args.command in NO_TENSORFLOW or getattr(args, "ladder_command", None) == "list"
    if not args.verbose and not quiet:
        from cifar_core.runtime import import_tensorflow_quietly

        import_tensorflow_quietly()
    try:
        return args.handler(args)
    except CifarError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except StopRequested as stopped:
        print(str(stopped), file=sys.stderr)
        return STOPPED
    except KeyboardInterrupt:
        print("interrupted: start the same command again to resume", file=sys.stderr)
        return 130
