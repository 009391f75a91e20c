"""Training precision: which Keras dtype policy ``--precision auto`` picks, from what was
measured on which kind of CPU (``BF16_MEASURED``), and setting a policy for a block."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from cifar_core.runtime import cpu_flags, gpus

# Where bfloat16 was measured against float32, per CPU kind and model (`benchmark` training
# images/s, float32 and bfloat16). auto picks mixed_bfloat16 only where bfloat16 trained faster
# AND its test accuracy was within BF16_MAX_ACCURACY_LOSS of float32's. An entry's "recipe"
# limits it to configs with those values, by their --set names (without a config: the
# preset's); small crops change the step (issue 32), so a recipe names its crop; a model measured
# with several recipes has a list of entries, and the first whose recipe matches counts.
BF16_MAX_ACCURACY_LOSS = 0.003
BF16_MEASURED: dict[str, dict[str, dict | list[dict]]] = {
    # AMD EPYC Zen 4, 2 vCPUs, AVX512-BF16, the shared JPEGs; accuracy_loss None: not measured.
    "avx512_bf16": {
        "fast": [
            # The preset, airbench94_muon's recipe (issue 32, Zen 4 family 25 model 17): 245 /
            # 379 images/s (1.55x) by `benchmark --models fast --precisions float32,mixed_bfloat16
            # --steps 8`; seed 0, 45,000 train images: 90.48% test with TTA in bfloat16
            # (fast-ab99bad4, Zen 4) against 90.60% in float32 (fast-dfd1253b, Zen 3).
            {
                "images_per_s": (245, 379),
                "accuracy_loss": 0.0012,
                "recipe": {"optimizer": "muon", "batch_size": 2000, "epochs": 8, "augment.small_crop": 0},
            },
            # The preset for 10 epochs, the first 4 on 24x24 crops (issue 32's 91% recipe), all
            # 50,000 train images, seeds 0 and 1, same Zen 4: 91.04% with TTA in bfloat16
            # (fast-ffdf50a5, fast-380716b8) against 90.80% in float32 (fast-35d28b72,
            # fast-623263e9); without TTA 89.66% against 89.70%. 517 against 354 train images/s,
            # the runs' means (metrics.json; the benchmark cannot time small crops): 1.46x.
            {
                "images_per_s": (354, 517),
                "accuracy_loss": 0.0,
                "recipe": {
                    "optimizer": "muon",
                    "batch_size": 2000,
                    "epochs": 10,
                    "augment.small_crop": 24,
                    "augment.small_crop_epochs": 4,
                },
            },
            # airbench94's recipe, the preset before (Zen 4 "machine B"): 277 / 422 images/s by
            # the same benchmark; all 50,000 train images, same seed: 90.58% with TTA in
            # bfloat16 (Zen 4) and in float32 (Cascade Lake).
            {
                "images_per_s": (277, 422),
                "accuracy_loss": 0.0,
                "recipe": {
                    "optimizer": "sgd",
                    "batch_size": 1024,
                    "epochs": 10,
                    "lookahead": True,
                    "augment.small_crop": 0,
                },
            },
        ],
        "cnn_bn": {"images_per_s": (2460, 2729), "accuracy_loss": None},
        "resnet20": {"images_per_s": (863, 920), "accuracy_loss": None},
        "efficientnet_lite0": {"images_per_s": (236, 131), "accuracy_loss": None},
        "efficientnet_lite0_frozen": {"images_per_s": (333, 254), "accuracy_loss": None},
    },
    # CPUs without AVX512-BF16 or AMX emulate bfloat16 (slower for every model): no entry.
}


def cpu_kind(flags: set[str] | None = None) -> str:
    """The CPU's bfloat16 capability: amx_bf16, avx512_bf16, or none (emulated)."""
    flags = cpu_flags() if flags is None else flags
    for kind in ("amx_bf16", "avx512_bf16"):
        if kind in flags:
            return kind
    return "none"


def bf16_helps(model: str | None, kind: str, config=None) -> bool:
    """Whether bfloat16 was measured to train ``model`` (with ``config``'s recipe, else its
    preset's) as well as float32, and faster, on this kind of CPU."""
    found = BF16_MEASURED.get(kind, {}).get(model or "")
    entries = found if isinstance(found, list) else [found] if found else []
    if config is None and any(entry.get("recipe") for entry in entries):
        from cifar_core.config import TrainConfig

        config = TrainConfig.from_preset(model)
    for entry in entries:
        recipe = entry.get("recipe") or {}
        if entry.get("accuracy_loss") is None or any(_setting(config, k) != v for k, v in recipe.items()):
            continue
        fp32, bf16 = entry["images_per_s"]
        return bf16 > fp32 and entry["accuracy_loss"] <= BF16_MAX_ACCURACY_LOSS
    return False


def _setting(config, name: str):
    """A config value by its ``--set`` name (``augment.small_crop``)."""
    return functools.reduce(getattr, name.split("."), config)


def resolve_precision(
    precision: str, model: str | None = None, flags: set[str] | None = None, config=None
) -> str:
    """The Keras dtype policy for ``precision``; "auto" is mixed_float16 on a GPU and, on
    a CPU, float32 unless BF16_MEASURED shows bfloat16 helps ``model`` (trained with
    ``config``, else its preset) on this kind of CPU."""
    if precision != "auto":
        return precision
    if flags is None and gpus():
        return "mixed_float16"
    return "mixed_bfloat16" if bf16_helps(model, cpu_kind(flags), config) else "float32"


@contextlib.contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Set Keras' global dtype policy for the block and restore the one that was set before."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
