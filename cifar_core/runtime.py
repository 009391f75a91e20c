"""The machine side of training: precision policy, distribution strategy, environment facts."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from cifar_core.config import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpus() -> list[str]:
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def resolve_precision(precision: str) -> str:
    """The Keras dtype policy for ``precision``; "auto" picks what is fastest here.

    Measured with `python -m cifar_core benchmark`: on CPUs without native bf16 (AVX512-BF16
    or AMX) bfloat16 is emulated and slower than float32, so auto means float32 there.
    """
    if precision != "auto":
        return precision
    if gpus():
        return "mixed_float16"
    if {"avx512_bf16", "amx_bf16"} & cpu_flags():
        return "mixed_bfloat16"
    return "float32"


def make_strategy(name: str):
    """A tf.distribute strategy: default (one device), mirrored (all local GPUs, or all
    logical CPUs when there is no GPU), or multiworker (from the TF_CONFIG variable)."""
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r}: choose one of {STRATEGIES}")
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
        if not devices:
            devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multiworker needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def patch_multiworker_build(model) -> None:
    """Work around keras-team/keras#20585 (Keras 3 fit under MultiWorkerMirroredStrategy).

    Keras' ``_maybe_symbolic_build`` all-reduces the first distributed batch only to learn
    its shapes and dtypes, and that reduce fails for multi-worker PerReplica values. The
    first local replica's batch carries the same shapes, so build from that instead.
    """
    import types

    import tensorflow as tf

    def build_from_local_batch(self, iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = tf.nest.map_structure(
                    lambda v: (
                        self.distribute_strategy.experimental_local_results(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    batch,
                )
                break
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = types.MethodType(build_from_local_batch, model)
    _patch_scalar_reduce()


def _patch_scalar_reduce() -> None:
    """Same bug, second place: Keras reduces the per-replica loss and metric scalars of a
    multi-worker step with ``strategy.reduce("MEAN", v, axis=0)``, which has no axis 0 for
    a scalar. Reduce scalars over replicas only (axis=None); everything else is unchanged."""
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    if getattr(trainer.reduce_per_replica, "_cifar_core_patched", False):
        return
    original = trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and reduction in ("auto", "mean"):

            def mean(v):
                if isinstance(v, tf.distribute.DistributedValues):
                    rank = strategy.experimental_local_results(v)[0].shape.rank
                    return strategy.reduce("MEAN", v, axis=None if rank == 0 else 0)
                return v

            return tf.nest.map_structure(mean, values)
        return original(values, strategy, reduction)

    reduce_per_replica._cifar_core_patched = True
    trainer.reduce_per_replica = reduce_per_replica


def split_cpu(count: int) -> None:
    """Expose the CPU as ``count`` logical devices (call before TensorFlow runs anything)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    )


def is_chief(strategy) -> bool:
    """Whether this process writes the run (always, except non-chief multi-workers)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0)


def task_index(strategy) -> int:
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0)


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip()
    except Exception:
        return None


def git_commit() -> str | None:
    return _git("rev-parse", "HEAD") or None


def git_dirty() -> bool | None:
    """True when the package's own code differs from the commit (None outside a checkout)."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ".")
    return None if status is None else bool(status)


def environment() -> dict[str, Any]:
    """Versions and hardware, for the run manifest."""
    import keras
    import numpy as np
    import tensorflow as tf

    return {
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "gpus": gpus(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),  # uncommitted changes to cifar_core/ when training started
    }


def hardware_label(env: dict[str, Any]) -> str:
    """Short text for tables: 'CPU x2 (AMD EPYC)' or 'GPU x1'."""
    if env.get("gpus"):
        return f"GPU x{len(env['gpus'])}"
    return f"CPU x{env.get('cpu_count')} ({env.get('cpu')})"
