"""The phase plan: what each phase of a fit trains, computed once from the config.

    for phase in plan(config, backbone_layers):
        phase.config            # the config as the phase trains (its epochs, LR, batch, augmentation)
        phase.unfrozen          # transfer: backbone layers trained from the top (0 = frozen); None: scratch
        phase.cache_cut         # transfer: trains on activations cached below this cut; None: on pixels

Scratch models have one phase. Transfer models have phase 1 (the head on the frozen
backbone) and, when ``fine_tune_epochs`` > 0, phase 2 (the top ``fine_tune_layers`` backbone
layers unfrozen at ``learning_rate * fine_tune_lr_factor``, with ``fine_tune_augment`` and
``fine_tune_batch_size`` when set). ``fitting.fit`` executes the plan, ``benchmark`` reads
it, and a finished phase leaves a ``PhaseRecord`` (in the run manifest's ``phases``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from cifar_core.config import TrainConfig


@dataclass(frozen=True)
class Phase:
    number: int  # 1, or 2 for a transfer model's fine-tuning
    config: TrainConfig  # epochs, learning_rate, batch_size and augment are this phase's
    unfrozen: int | None  # transfer: top backbone layers trained (0: frozen); None: every layer
    cache_cut: int | None  # transfer: a fine_tune_layers value to cut the cache at; None: pixels

    @property
    def epochs(self) -> int:
        return self.config.epochs

    @property
    def learning_rate(self) -> float:
        return self.config.learning_rate


def plan(config: TrainConfig, backbone_layers: int = 0) -> list[Phase]:
    """The phases ``config`` trains, in order.

    ``backbone_layers`` is a transfer model's backbone depth: it says whether phase 2's
    unfrozen top leaves anything below it to share a cache with phase 1. A phase can train
    on a cache when its augmentation is at most a flip (the frozen part then sees the same
    pixels every epoch). When phase 2 can too, both share one cache cut below phase 2's
    unfrozen layers; when phase 2 translates (it trains on pixels) or unfreezes the whole
    backbone (nothing left to cache), phase 1 caches the whole frozen backbone.
    """
    from cifar_core.models import get_spec  # the zoo imports Keras: not for PhaseRecord's readers

    transfer = get_spec(config.model).is_transfer
    phases = [(1, config, 0 if transfer else None)]
    if transfer and config.fine_tune_epochs > 0:
        two = dataclasses.replace(
            config,
            epochs=config.fine_tune_epochs,
            learning_rate=config.learning_rate * config.fine_tune_lr_factor,
            augment=config.fine_tune_augment or config.augment,
            batch_size=config.fine_tune_batch_size or config.batch_size,
        )
        phases.append((2, two, max(config.fine_tune_layers, 0)))
    cacheable = {number: transfer and _can_cache(c) for number, c, _ in phases}
    shared = len(phases) == 2 and cacheable[2] and config.fine_tune_layers < backbone_layers
    cut = config.fine_tune_layers if shared else 0

    def cache_cut(number: int) -> int | None:
        return cut if cacheable[1] and (number == 1 or shared) else None

    return [Phase(number, c, unfrozen, cache_cut(number)) for number, c, unfrozen in phases]


def _can_cache(config: TrainConfig) -> bool:
    """Caching is exact only when the frozen part always sees the same pixels (flip aside)."""
    return bool(config.cache_features) and config.augment.flips_only


@dataclass
class PhaseRecord:
    """What a finished phase did: stored in the work folder's phase marker and the manifest."""

    phase: int
    start_epoch: int = 0
    end_epoch: int = 0
    learning_rate: float | None = None
    batch_size: int | None = None
    augment: dict[str, Any] = field(default_factory=dict)
    trainable_layers: list[str] = field(default_factory=list)
    trainable_params: int = 0
    time_s: float = 0.0  # its epochs' wall time
    cached_activations: bool = False
    split_after_layer: str = ""  # the last backbone layer of the cached front ("" = none)
    cache_time_s: float = 0.0  # the caching pass, counted once (in the phase that ran it)

    @property
    def total_s(self) -> float:
        """Training plus caching time: the phase's share of the run's train time."""
        return (self.time_s or 0.0) + (self.cache_time_s or 0.0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PhaseRecord":
        """A stored record; fields an older version did not write take their defaults."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})
