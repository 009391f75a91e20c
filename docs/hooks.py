"""MkDocs hook: the command-line reference page, generated from the parser at every build."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def on_pre_build(config, **kwargs):
    sys.path.insert(0, str(REPO))  # this checkout's parser, whatever else is installed
    from cifar_core.cli import reference

    page = Path(config["docs_dir"]) / "reference" / "cli.md"
    text = reference() + "\n"
    if not page.exists() or page.read_text() != text:
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(text)
