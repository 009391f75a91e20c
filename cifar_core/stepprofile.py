"""Where a training step's time goes: forward + backward time per layer.

    python -m cifar_core benchmark --models fast --profile [--set model_args.kernels=keras]

Each layer is timed on its own, in training mode, on a batch of the shape it sees in the
model (random values of its input dtype): forward, loss, gradients with respect to its
input and its trainable weights, in one compiled TensorFlow function, best of ``repeats``.
The sum is close to, but not exactly, a full step (no optimizer update, no fusion across
layers): read it for shares, and compare variants measured in one invocation.
"""

from __future__ import annotations

import time

import numpy as np


def layer_times(model, batch_size: int, repeats: int = 5) -> list[dict]:
    """Per layer with work to do: name, class, output shape and milliseconds per batch."""
    import keras
    import tensorflow as tf

    rows = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        spec = layer.input
        shape = (batch_size, *spec.shape[1:])
        if "int" in str(spec.dtype):
            x = tf.constant(np.random.default_rng(0).integers(0, 256, shape), dtype=spec.dtype)
        else:
            x = tf.random.normal(shape, dtype=spec.dtype)
        differentiable = x.dtype.is_floating

        @tf.function
        def step(x, layer=layer, differentiable=differentiable):
            with tf.GradientTape() as tape:
                if differentiable:
                    tape.watch(x)
                y = layer(x, training=True)
                loss = tf.reduce_sum(tf.square(tf.cast(y, "float32")))
            sources = ([x] if differentiable else []) + list(layer.trainable_weights)
            return tape.gradient(loss, sources) if sources else [loss]

        step(x)  # trace
        best = np.inf
        for _ in range(repeats):
            start = time.perf_counter()
            out = step(x)
            _ = [np.asarray(t) for t in out[:1]]  # wait for the result
            best = min(best, time.perf_counter() - start)
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output": "x".join(str(d) for d in layer.output.shape[1:]),
                "ms": best * 1000,
            }
        )
    return rows


def table(rows: list[dict], step_ms: float | None = None) -> str:
    total = sum(r["ms"] for r in rows)
    lines = [f"{'layer':<16}{'type':<22}{'output':>12}{'ms/batch':>10}{'share':>7}"]
    for r in rows:
        lines.append(
            f"{r['layer']:<16}{r['type']:<22}{r['output']:>12}{r['ms']:>10.1f}{r['ms'] / total:>7.1%}"
        )
    lines.append(f"{'sum of layers':<50}{total:>10.1f}")
    if step_ms:
        lines.append(f"{'measured full train step':<50}{step_ms:>10.1f}")
    return "\n".join(lines)
