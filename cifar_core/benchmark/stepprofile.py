"""Where a training step's time goes: forward + backward time per layer.

    python -m cifar_core benchmark --models fast --profile [--set model_args.kernels=keras]

Each layer is timed on its own, in training mode, on a batch of the shape it sees in the
model (random values of its input dtype): forward, loss, gradients with respect to its
input and its trainable weights, in one compiled TensorFlow function, best of ``repeats``.
The sum is close to, but not exactly, a full step (no optimizer update, no fusion across
layers): read it for shares, and compare variants measured in one invocation.

``step_parts`` splits the real model's step the other way: gradients (forward, loss,
backward) against the optimizer's update, the step as ``fit`` runs it (input pipeline and
callbacks included), and the validation pass that ``fit`` runs inside every epoch.
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
        rows.append(
            {
                "layer": layer.name,
                "type": type(layer).__name__,
                "output": "x".join(str(d) for d in layer.output.shape[1:]),
                "ms": _best_ms(lambda step=step, x=x: _wait(step(x)), repeats),
            }
        )
    return rows


def _wait(out) -> None:
    """Block until a compiled function's (first) result is computed."""
    _ = [np.asarray(t) for t in out[:1]]


def _best_ms(fn, repeats: int) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def step_parts(model, dataset, steps: int, val_images: int = 5_000, repeats: int = 3) -> dict:
    """Milliseconds per training batch of a compiled, warmed-up ``model``: ``gradients``,
    ``update`` (the optimizer on those gradients), ``fit_step`` (``steps`` steps of ``fit``
    on the endless training ``dataset``, per step) and ``validation_s``, the seconds ``fit``
    spends evaluating ``val_images`` images (batch 512, as ``fit`` does) after each epoch."""
    import tensorflow as tf

    xb, yb = next(iter(dataset))
    variables = model.trainable_variables

    @tf.function
    def gradients(x, y):
        with tf.GradientTape() as tape:
            pred = model(x, training=True)
            loss = model.compute_loss(x=x, y=y, y_pred=pred, training=True)
        return tape.gradient(loss, variables)

    grads = gradients(xb, yb)
    update = tf.function(lambda: model.optimizer.apply(grads, variables))
    update()  # trace
    out = {
        "gradients": _best_ms(lambda: _wait(gradients(xb, yb)), repeats),
        "update": _best_ms(lambda: (update(), np.asarray(variables[0])), repeats),
    }
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    out["fit_step"] = (time.perf_counter() - start) * 1000 / steps
    x_val = tf.cast(tf.random.uniform((val_images, *xb.shape[1:]), 0, 256, dtype="int32"), xb.dtype)
    y_val = tf.one_hot(tf.zeros(val_images, "int32"), yb.shape[-1])
    evaluate = lambda: model.evaluate(x_val, y_val, batch_size=512, verbose=0)  # noqa: E731
    evaluate()  # trace
    out["validation_s"] = _best_ms(evaluate, 1) / 1000
    return out


def parts_table(parts: dict, step_ms: float, batch_size: int, epoch_images: int) -> str:
    """The step split into its parts, and what ``fit`` adds to an epoch."""
    steps = -(-epoch_images // batch_size)
    rows = [
        ("gradients (forward, loss, backward)", parts["gradients"]),
        ("optimizer update", parts["update"]),
        ("train_on_batch (the two, one call)", step_ms),
        ("fit, per step (input pipeline, callbacks)", parts["fit_step"]),
    ]
    lines = [f"{name:<50}{ms:>10.1f}" for name, ms in rows]
    train_s, val_s = steps * parts["fit_step"] / 1000, parts["validation_s"]
    lines.append(
        f"an epoch of {epoch_images:,} images: {steps} steps of fit {train_s:.0f} s"
        f" + validation {val_s:.0f} s ({val_s / (train_s + val_s):.1%})"
    )
    return "\n".join(lines)


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
