"""A model's architecture and cost: its layers with output shapes, parameters and FLOPs.

FLOPs come from TensorFlow's own profiler (``tf.compat.v1.profiler``, the float-operation
count the field quotes) on the traced inference graph of one image: ``model(x,
training=False)`` for a (1, 32, 32, 3) input, variables frozen into constants. The
profiler counts a multiply-add as two FLOPs (ResNet-20: 82 million FLOPs, the 41 million
multiply-adds of He et al.). Each operation is charged to the layer whose name scope it
ran in; a nested model (a transfer model's backbone) is one row whose ``children`` are its
own layers.

    table = layer_table(model)            # DataFrame: one row per top-level layer
    totals(table)                         # params, trainable, FLOPs, multiply-adds
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ["layer", "type", "output shape", "params", "trainable", "flops"]


def _suffixless(scope: str) -> str:
    """Keras names a layer's scope ``<name>_<n>`` for its n-th call."""
    return re.sub(r"_\d+$", "", scope)


def flops_by_scope(model) -> dict[tuple[str, ...], int]:
    """Float operations of one image through ``model``, by name-scope path below the model
    (e.g. ``("b1c0_conv",)``, ``("backbone", "block3a_expand")``), suffixes removed."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2_as_graph

    spec = tf.TensorSpec((1, *model.input_shape[1:]), tf.as_dtype(model.inputs[0].dtype))
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    frozen, _ = convert_variables_to_constants_v2_as_graph(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the v1 profiler warns that its shape helper is deprecated
    try:
        profile = tf.compat.v1.profiler.profile(
            graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="scope", options=options
        )
    finally:
        logger.setLevel(level)
    result: dict[tuple[str, ...], int] = {}
    pending = list(profile.children)
    while pending:  # every op node of the profile's scope tree, with its own float ops
        node = pending.pop()
        pending.extend(node.children)
        if node.float_ops:
            parts = tuple(_suffixless(p) for p in node.name.split("/")[1:-1])  # below the model
            result[parts] = result.get(parts, 0) + int(node.float_ops)
    return result


def _charged(flops: dict[tuple[str, ...], int], names: list[str], depth: int, prefix: tuple = ()) -> dict:
    """FLOPs per layer name at scope ``depth`` below ``prefix``: a scope is charged to the
    layer with that name, or to the longest layer name it starts with."""
    by_length = sorted(names, key=len, reverse=True)
    charged = dict.fromkeys(names, 0)
    for path, count in flops.items():
        if len(path) <= depth or path[:depth] != prefix:
            continue
        scope = path[depth]
        owner = scope if scope in charged else next((n for n in by_length if scope.startswith(n)), None)
        if owner is not None:
            charged[owner] += count
    return charged


def _rows(model, flops: dict, depth: int = 0, prefix: tuple = ()) -> list[dict]:
    import keras

    names = [layer.name for layer in model.layers]
    charged = _charged(flops, names, depth, prefix)
    rows = []
    for layer in model.layers:
        trainable = int(sum(int(np.prod(w.shape)) for w in layer.trainable_weights))
        row = {
            "layer": layer.name,
            "type": type(layer).__name__,
            "output shape": _shape(layer),
            "params": int(layer.count_params()) if layer.built else 0,
            "trainable": trainable,
            "flops": int(charged.get(layer.name, 0)),
        }
        if isinstance(layer, keras.Model):  # a backbone: one row, its layers inside
            row["children"] = _rows(layer, flops, depth + 1, (*prefix, layer.name))
            row["flops"] = max(row["flops"], sum(child["flops"] for child in row["children"]))
        rows.append(row)
    return rows


def _shape(layer) -> str:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return ""
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def layer_table(model) -> pd.DataFrame:
    """One row per top-level layer: name, type, output shape, params, trainable params,
    FLOPs per image; a nested model's layers are in its ``children`` column (a list of rows)."""
    flops = flops_by_scope(model)
    frame = pd.DataFrame(_rows(model, flops))
    if "children" not in frame:
        frame["children"] = None
    frame.attrs["total_flops"] = int(sum(flops.values()))
    return frame


def to_record(table: pd.DataFrame) -> dict:
    """The table as the run folder stores it (``artifacts.ARCHITECTURE``)."""
    rows = table.to_dict("records")
    for row in rows:
        if not isinstance(row.get("children"), list):
            row.pop("children", None)
    return {"layers": rows, "total_flops": int(table.attrs.get("total_flops", table["flops"].sum()))}


def from_record(record: dict) -> pd.DataFrame:
    """A ``layer_table`` read back from its stored record."""
    frame = pd.DataFrame(record["layers"])
    if "children" not in frame:
        frame["children"] = None
    frame["children"] = [c if isinstance(c, list) else None for c in frame["children"]]
    frame.attrs["total_flops"] = int(record["total_flops"])
    return frame[[*COLUMNS, "children"]]


def totals(table: pd.DataFrame) -> dict:
    """Parameters, trainable parameters and FLOPs per image of a ``layer_table``; the FLOPs
    are the whole graph's, so an op outside every layer still counts."""
    flops = int(table.attrs.get("total_flops", table["flops"].sum()))
    return {
        "params": int(table["params"].sum()),
        "trainable": int(table["trainable"].sum()),
        "flops": flops,
        "multiply_adds": flops // 2,
    }


def measure_cost(model, images: np.ndarray | None = None) -> dict:
    """What ``model`` (a Keras model, its ``Predictor`` or an ``OnnxPredictor``) costs to run
    here, through the engine's predictor: batch-1 latency (ms, median), batch-500 throughput (images/s)
    and the memory one batch-1 prediction adds above the process's resident size (MB, from
    the kernel's high-water mark; None where it cannot be reset). ``images``: uint8 pixels
    (default: random ones; the time does not depend on what the pixels show)."""
    from cifar_core import evaluate, runtime
    from cifar_core.serving.inference import as_predictor

    predict = as_predictor(model)
    if images is None:
        shape = tuple(predict.input_shape)
        images = np.random.default_rng(0).integers(0, 256, (500, *shape), dtype=np.uint8)
    one = images[:1]
    predict(one)  # warm: traced once
    before = _reset_peak()
    predict(one)
    peak = _peak_rss_mb()
    batch = np.resize(images, (500, *images.shape[1:]))
    return {
        "latency_ms_batch1": evaluate.latency_ms_per_image(predict, one),
        "images_per_s_batch500": evaluate.throughput_images_per_s(predict, batch),
        "peak_memory_mb_batch1": (peak - before) if before is not None and peak is not None else None,
        "cpu": runtime.cpu_model(),
        "measured_at": time.strftime("%Y-%m-%d %H:%M"),
    }


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _reset_peak() -> float | None:
    """Reset this process's peak-RSS counter (Linux: ``clear_refs`` 5); the resident MB now."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    return _status_mb("VmRSS")


def _peak_rss_mb() -> float | None:
    return _status_mb("VmHWM")
