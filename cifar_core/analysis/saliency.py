"""Why a model says what it says: a heatmap per image for a chosen class.

    explainer = saliency.explainer(model)          # once per loaded model
    maps = saliency.heatmaps(explainer, images)    # (N, 32, 32) in [0, 1], top class
    maps = saliency.heatmaps(explainer, images, classes=[3] * len(images))   # "cat"

Grad-CAM (Selvaraju et al. 2017, as in the keras-io "Grad-CAM class activation
visualization" example): the gradient of the class's logit (the input of the softmax; the
log-probability where the model hands back none) with respect to a
convolutional feature map, averaged over the map's positions, weights the map's channels;
their weighted sum, rectified and resized, is the heatmap over the 32x32 input.

The feature map is found from the model, not named per model: the 4-D tensor that feeds
the layer where the spatial axes go away (global pooling, Flatten). When several do (a
backbone that pools four of its blocks), the earliest of them, which every later one is
computed from; inside a nested backbone the search goes on in the backbone. A map smaller
than 4x4 only says which quadrant: the search steps back along the chain of single-input
layers to a 4x4 one where there is one (not across a residual addition). Transfer models
resize and preprocess inside their graph, so their map lives at 128-160 px: it is resized
back onto the 32x32 input. A model without a convolutional map gets SmoothGrad (Smilkov et
al. 2017: input gradients averaged over noisy copies) and says so in ``method``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from cifar_core.errors import CifarError

CONV_TYPES = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose")
MIN_MAP = 4  # a 2x2 map only says which quadrant: step back along the chain to >= 4x4


class SaliencyError(CifarError):
    """This model's graph cannot be explained (neither Grad-CAM nor SmoothGrad applies)."""


@dataclass
class Explainer:
    method: str  # "Grad-CAM" or "SmoothGrad"
    layer: str | None  # the feature map's layer ("backbone/block10_add" inside a backbone)
    map_size: tuple[int, int] | None  # its spatial size (the heatmap's real resolution)
    fn: Callable[[Any, Any], Any]  # (uint8 images, class ids) -> (N, 32, 32) heatmaps
    model: Any  # the model explained (its top classes, when none is asked for)


def _rank(tensor) -> int:
    return len(tensor.shape)


def _inputs(layer) -> list:
    tensors = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    return [t for t in tensors if hasattr(t, "_keras_history")]


def _producer(tensor):
    return tensor._keras_history.operation


def _has_conv(layer) -> bool:
    if type(layer).__name__ in CONV_TYPES:
        return True
    return any(_has_conv(inner) for inner in getattr(layer, "layers", []))


def _is_model(layer) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs")


def find_feature_map(model) -> list[str] | None:
    """The path of layer names to the feature map Grad-CAM uses, or None if there is none."""
    order = {layer.name: i for i, layer in enumerate(model.layers)}
    feeders = []
    for layer in model.layers:
        ins = _inputs(layer)
        if not ins or not all(_rank(t) == 4 for t in ins):
            continue
        outs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        if all(_rank(t) < 4 for t in outs):
            if _is_model(layer):  # a backbone that pools inside: look inside it
                inner = find_feature_map(layer)
                return [layer.name, *inner] if inner else None
            feeders.extend(_producer(t) for t in ins)
    if not feeders:
        return None
    first = min(feeders, key=lambda layer: order.get(layer.name, 0))
    while min(first.output.shape[1:3]) < MIN_MAP:
        ins = _inputs(first)
        if len(ins) != 1 or _rank(ins[0]) != 4 or _producer(ins[0]).name not in order:
            break  # a merge (a residual add) or the model's input: keep this map
        first = _producer(ins[0])
    before = model.layers[: order.get(first.name, 0) + 1]
    if not any(_has_conv(layer) for layer in before):
        return None  # the map is the (preprocessed) input itself: nothing learned to look at
    return [first.name]


def _chain(model, nested: str, inner_model, x, upto: int | None = None):
    """Re-run ``model``'s top-level layers (all, or the first ``upto``) on ``x``, taking the
    feature map from the nested model ``nested`` (its call replaced by ``inner_model``,
    which also returns the map). Only for graphs that are one chain at the top level."""
    feature = None
    for layer in model.layers[1:upto]:
        ins = _inputs(layer)
        if len(ins) != 1:
            raise SaliencyError(f"{model.name}: layer {layer.name} is not part of a single chain")
        if layer.name == nested:
            feature, x = inner_model(x)
        else:
            x = layer(x)
    return feature, x


def _head(model):
    """The last layer, if it is a softmax over logits it can hand back (Dense(softmax) or
    Activation(softmax)): Grad-CAM explains the class's logit, as the keras-io example does."""
    last = model.layers[-1]
    if getattr(getattr(last, "activation", None), "__name__", "") == "softmax" and len(_inputs(last)) == 1:
        return last
    return None


def _logits(head, x):
    from keras import ops

    if hasattr(head, "kernel"):  # Dense(softmax): its pre-activation
        x = ops.matmul(x, head.kernel)
        return x + head.bias if head.bias is not None else x
    return x  # Activation(softmax): its input


def _grad_cam_model(model, path: list[str], head):
    """keras.Model: pixels -> (feature map, input of ``head`` or, without one, probabilities)."""
    import keras

    target = model.get_layer(path[0])
    if len(path) == 1 and not _is_model(target):
        end = head.input if head is not None else model.outputs[0]
        return keras.Model(model.inputs, [target.output, end])
    if len(path) == 1:  # a nested backbone whose output is the map (keras.applications)
        inner = lambda x: (lambda y: (y, y))(target(x))  # noqa: E731
    else:
        inner_model = _grad_cam_model(target, path[1:], None)
        inner = lambda x: inner_model(x)  # noqa: E731
    inputs = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    feature, end = _chain(model, path[0], inner, inputs, upto=-1 if head is not None else None)
    return keras.Model(inputs, [feature, end])


def explainer(model) -> Explainer:
    """How to explain ``model``: Grad-CAM on its feature map, else SmoothGrad on pixels."""
    import tensorflow as tf

    path = find_feature_map(model)
    size = tuple(model.inputs[0].shape[1:3])
    head = _head(model)
    explain = _grad_cam_model(model, path, head) if path is not None else None
    if explain is not None and min(explain.outputs[0].shape[1:3]) < 2:
        explain = None  # a 1x1 map has no "where" (InceptionV3 at 75 px): SmoothGrad instead
    if explain is not None:

        @tf.function(reduce_retracing=True)
        def grad_cam(images, classes):
            with tf.GradientTape() as tape:
                feature, end = explain(images, training=False)
                if head is not None:  # the class's logit
                    score = tf.gather(_logits(head, end), classes, batch_dims=1)
                else:  # its log-probability
                    score = tf.math.log(tf.gather(end, classes, batch_dims=1) + 1e-12)
            grads = tape.gradient(score, feature)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
            cam = tf.nn.relu(tf.reduce_sum(weights * feature, axis=-1, keepdims=True))
            return tf.image.resize(cam, size, method="bilinear")[..., 0]

        map_size = tuple(int(d) for d in explain.outputs[0].shape[1:3])
        return Explainer("Grad-CAM", "/".join(path), map_size, grad_cam, model)

    float_model = _float_input_model(model)

    @tf.function(reduce_retracing=True)
    def smooth_grad(images, classes, samples: int = 16, noise: float = 0.15 * 255):
        x = tf.cast(images, "float32")
        total = tf.zeros_like(x)
        for i in tf.range(samples):
            noisy = x + tf.random.stateless_normal(tf.shape(x), seed=[i, 0]) * noise
            with tf.GradientTape() as tape:
                tape.watch(noisy)
                probs = float_model(noisy, training=False)
                score = tf.math.log(tf.gather(probs, classes, batch_dims=1) + 1e-12)
            total += tf.abs(tape.gradient(score, noisy))
        return tf.reduce_max(total, axis=-1)

    return Explainer("SmoothGrad", None, size, smooth_grad, model)


def _float_input_model(model):
    """``model`` with a float32 input (its own takes uint8, which has no gradient)."""
    import keras

    inputs = keras.Input(model.inputs[0].shape[1:], dtype="float32")
    try:
        _, out = _chain(model, "", None, inputs)
    except SaliencyError as error:
        raise SaliencyError(f"{model.name}: no convolutional feature map and {error}") from None
    return keras.Model(inputs, out)


def heatmaps(explain: Explainer, images: np.ndarray, classes=None, batch_size: int = 64) -> np.ndarray:
    """(N, H, W) float32 heatmaps in [0, 1] for uint8 ``images``, each scaled from its own
    minimum to its maximum (a floor that every position shares says nothing about where);
    ``classes``: one class id per image, or None for each image's top class."""
    import tensorflow as tf

    images = np.asarray(images, dtype=np.uint8)
    if images.ndim == 3:
        images = images[None]
    if classes is None:
        classes = np.full(len(images), -1)
    classes = np.broadcast_to(np.asarray(classes, dtype=np.int32), (len(images),))
    out = []
    for start in range(0, len(images), batch_size):
        batch = tf.constant(images[start : start + batch_size])
        wanted = classes[start : start + batch_size]
        if (wanted < 0).any():  # each image's top class where none was asked for
            top = np.asarray(explain.model.predict_on_batch(batch)).argmax(axis=1)
            wanted = np.where(wanted < 0, top, wanted)
        maps = np.asarray(explain.fn(batch, tf.constant(wanted, dtype=tf.int32)), dtype=np.float32)
        flat = maps.reshape(len(maps), -1)
        low, span = flat.min(axis=1), np.ptp(flat, axis=1)
        out.append((maps - low[:, None, None]) / np.where(span > 0, span, 1.0)[:, None, None])
    return np.concatenate(out).astype(np.float32)


def overlay(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.5, scale: int = 4) -> np.ndarray:
    """The image with its heatmap on top (blue = cold, red = hot), ``scale`` times larger
    (nearest neighbour: the 32x32 pixels the model saw stay visible), uint8 RGB."""
    heat = np.clip(np.asarray(heat, dtype=np.float32), 0, 1)
    # A small blue -> cyan -> yellow -> red ramp, as colour maps for heatmaps go.
    stops = np.array([[0, 0, 160], [0, 200, 255], [255, 230, 0], [230, 0, 0]], dtype=np.float32)
    position = heat * (len(stops) - 1)
    low = np.floor(position).astype(int).clip(0, len(stops) - 2)
    frac = (position - low)[..., None]
    colour = stops[low] * (1 - frac) + stops[low + 1] * frac
    blended = (1 - alpha) * np.asarray(pixels, dtype=np.float32) + alpha * colour
    out = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out.repeat(scale, axis=0).repeat(scale, axis=1)
