"""Training precision: which Keras dtype policy ``--precision auto`` picks, from what was
measured for which named recipe on which kind of CPU (``bf16_measured.json``), and setting a
policy for a block."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator
from pathlib import Path

from cifar_core.runtime import cpu_flags, gpus

MEASURED_FILE = Path(__file__).with_name("bf16_measured.json")  # each measurement, its runs and commit


@functools.lru_cache(maxsize=1)
def measurements() -> dict:
    """The bfloat16 measurements (``bf16_measured.json``): ``max_accuracy_loss`` and a list
    of ``{cpu_kind, recipe, images_per_s: [float32, bfloat16], accuracy_loss, runs, commit}``."""
    return json.loads(MEASURED_FILE.read_text())


def cpu_kind(flags: set[str] | None = None) -> str:
    """The CPU's bfloat16 capability: amx_bf16, avx512_bf16, or none (emulated)."""
    flags = cpu_flags() if flags is None else flags
    for kind in ("amx_bf16", "avx512_bf16"):
        if kind in flags:
            return kind
    return "none"


def auto_choice(found, kind: str) -> tuple[str, str]:
    """(policy, why) for ``--precision auto`` on a CPU of ``kind``, for ``found`` (the run's
    ``recipes.Recipe``, None for a builder file's model): bfloat16 only for a named recipe
    with nothing changed that was measured on this kind of CPU to train faster in bfloat16
    and as accurately."""
    if found is None or found.changes:
        return "float32", f"{found.label if found else 'this model'}: bfloat16 not measured, float32"
    recipe, table = found.name, measurements()
    found = next((m for m in table["measurements"] if m["cpu_kind"] == kind and m["recipe"] == recipe), None)
    if found is None:
        return "float32", f"{recipe}: bfloat16 not measured on this kind of CPU ({kind}), float32"
    fp32, bf16 = found["images_per_s"]
    if found["accuracy_loss"] is None:
        return "float32", f"{recipe}: bfloat16's accuracy not measured, float32"
    if bf16 > fp32 and found["accuracy_loss"] <= table["max_accuracy_loss"]:
        why = f"{recipe}: bfloat16 measured {bf16 / fp32:.2f}x as fast and as accurate on {kind} CPUs"
        return "mixed_bfloat16", why
    return "float32", f"{recipe}: bfloat16 measured slower or less accurate on {kind} CPUs, float32"


def resolve(precision: str, config, flags: set[str] | None = None) -> tuple[str, str]:
    """(the Keras dtype policy, why) for ``config`` trained with ``precision``: "auto" is
    mixed_float16 on a GPU and, on a CPU, ``auto_choice`` for the config's recipe."""
    if precision != "auto":
        return precision, f"{precision}, as asked"
    if flags is None and gpus():
        return "mixed_float16", "mixed_float16 on a GPU"
    from cifar_core.recipes import identify

    return auto_choice(identify(config) if config is not None else None, cpu_kind(flags))


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
