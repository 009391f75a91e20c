"""What a ladder is: an ordered list of rungs, each one named change on top of the last."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from cifar_core.config import TrainConfig

Figures = tuple[float | None, float | None, float | None]  # train, validation, test accuracy


@dataclass(frozen=True)
class Rung:
    slug: str  # a short name, part of the rung's run id
    change: str  # what this rung changes, as the page labels it
    changes: dict[str, Any]  # --set KEY -> value on top of the rung before
    reported: Figures  # the write-up's (train, val, test) accuracy for this rung


@dataclass(frozen=True)
class Ladder:
    name: str
    title: str
    source: str  # the write-up file and its table
    model: str  # the builder every rung uses (its arguments make the rungs' nets)
    base: dict[str, Any]  # overrides of the model's preset: the write-up's starting point
    rungs: tuple[Rung, ...]
    epochs_note: str = ""

    def settings(self, index: int) -> list[str]:
        """The ``--set`` settings of rung ``index`` (0-based): every change up to it, in order."""
        return [
            f"{key}={json.dumps(value)}"
            for rung in self.rungs[: index + 1]
            for key, value in rung.changes.items()
        ]

    def config(self, index: int, **overrides: Any) -> TrainConfig:
        """Rung ``index``'s TrainConfig; ``overrides`` (e.g. epochs, val_size) apply to the base
        (a quick look at a ladder), so a rung that changes the same field still wins."""
        base = {**self.base, **{k: v for k, v in overrides.items() if v is not None}}
        return TrainConfig.from_preset(self.model, self.settings(index), **base)

    def run_id(self, index: int, seed: int = 0) -> str:
        """Rung ``index``'s run id; a seed other than the ladder's 0 adds ``-s<seed>``."""
        suffix = f"-s{seed}" if seed else ""
        return f"{self.name}-{index + 1:02d}-{self.rungs[index].slug}{suffix}"

    def record(self, index: int) -> dict[str, Any]:
        """What a rung's manifest says of it (``manifest["ladder"]``)."""
        return {
            "ladder": self.name,
            "index": index,
            "rung": self.rungs[index].slug,
            "change": self.rungs[index].change,
            "changes": self.rungs[index].changes,
        }


def parse_rungs(text: str | None, n: int) -> list[int]:
    """``"1-3,5"`` -> [0, 1, 2, 4] (1-based on the command line); None: every rung."""
    if not text:
        return list(range(n))
    out: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise ValueError(f"--rungs {text!r}: expected numbers and ranges like 1-3,5")
        first, last = int(match[1]), int(match[2] or match[1])
        if not 1 <= first <= last <= n:
            raise ValueError(f"--rungs {text!r}: rungs are 1 to {n}")
        out.extend(i - 1 for i in range(first, last + 1) if i - 1 not in out)
    return out
