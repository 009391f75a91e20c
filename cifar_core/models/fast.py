"""`fast`: the most accuracy per CPU-minute, after airbench (Keller Jordan, 2024).

What it takes from airbench and why:
- a frozen 2x2 "whitening" first conv, initialised from the eigenvectors of the training
  set's 2x2 patch covariance (+ and - copies): the net starts from decorrelated inputs;
- a wide 3-stage net (64/256/256), each stage conv -> max-pool -> BN -> GELU -> conv -> BN
  -> GELU, BatchNorm without a learned scale, global max pool, a scaled-down linear head;
- label smoothing, one-cycle Nesterov SGD, flip + translate augmentation, and flip
  test-time augmentation (set in the preset, applied by train.py).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from cifar_core.models.registry import register_model
from cifar_core.models.scratch import CIFAR_MEAN, CIFAR_VAR

WHITEN_KERNEL = 2  # patch size of the whitening conv
WHITEN_EPS = 5e-4  # added to eigenvalues before 1/sqrt, as airbench does
BN_MOMENTUM = 0.4  # Keras convention (weight of the old running value): airbench's 0.6 in torch terms


def conv_group(x, filters: int, name: str):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU (halves the resolution)."""
    for i in range(2):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        if i == 0:
            x = layers.MaxPooling2D(name=f"{name}_pool")(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=1e-5, scale=False, name=f"{name}_bn{i}")(
            x
        )
        x = layers.Activation("gelu", name=f"{name}_gelu{i}")(x)
    return x


def whiten_init(model: keras.Model, x_train: np.ndarray, max_images: int = 5000) -> None:
    """Set the frozen whitening conv from the patch covariance of (normalised) train images."""
    layer = model.get_layer("whiten")
    x = np.asarray(x_train[:max_images], dtype=np.float32)
    x = (x - np.array(CIFAR_MEAN)) / np.sqrt(np.array(CIFAR_VAR))
    k = WHITEN_KERNEL
    # All k x k x 3 patches, flattened in (row, col, channel) order = Conv2D kernel order.
    patches = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # N,H',W',C,k,k
    patches = patches.transpose(0, 1, 2, 4, 5, 3).reshape(-1, k * k * 3)
    cov = np.cov(patches, rowvar=False)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    filters = eigenvectors / np.sqrt(eigenvalues + WHITEN_EPS)  # (k*k*3, k*k*3), columns
    kernel = np.concatenate([filters, -filters], axis=1).reshape(k, k, 3, -1)
    layer.kernel.assign(kernel.astype(np.float32))


@register_model(
    "fast",
    family="scratch",
    description="airbench-style net: frozen whitening conv, 64/256/256 GELU stages, "
    "one-cycle SGD, label smoothing, flip TTA (accuracy per CPU-minute).",
    preset={
        "epochs": 10,
        "batch_size": 512,
        "optimizer": "sgd",
        "learning_rate": 0.4,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "lr_schedule": "one_cycle",
        "label_smoothing": 0.2,
        "augment": {"flip": True, "translate": 2},
        "early_stopping_patience": 0,
        "tta": "flip",
    },
    data_init=whiten_init,
)
def fast(num_classes: int = 10, widths: tuple[int, int, int] = (64, 256, 256)) -> keras.Model:
    inputs = keras.Input(shape=(32, 32, 3), dtype="uint8", name="pixels")
    x = layers.Normalization(mean=CIFAR_MEAN, variance=CIFAR_VAR, name="standardize")(inputs)
    width0 = 2 * WHITEN_KERNEL * WHITEN_KERNEL * 3
    whiten = layers.Conv2D(width0, WHITEN_KERNEL, padding="valid", name="whiten")
    x = whiten(x)  # 31x31, decorrelated patches
    whiten.trainable = False  # fixed by whiten_init; the bias stays zero
    x = layers.Activation("gelu", name="whiten_gelu")(x)
    for i, width in enumerate(widths):
        x = conv_group(x, width, name=f"g{i}")  # 31 -> 15 -> 7 -> 3
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(num_classes, use_bias=False, name="head")(x)
    x = layers.Rescaling(1 / 9, name="logit_scale")(x)  # airbench's scaled-down head
    return keras.Model(inputs, softmax_head_from_logits(x), name="fast")


def softmax_head_from_logits(logits) -> keras.KerasTensor:
    return layers.Activation("softmax", dtype="float32", name="probs")(logits)
