"""``python -m cifar_core ...``: see cifar_core/cli.py."""

import sys

from cifar_core.cli import main

sys.exit(main())
