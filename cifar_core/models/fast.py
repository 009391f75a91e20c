"""`fast`: the most accuracy per CPU-minute, after airbench (Keller Jordan, 2024).

What it takes from airbench (its ablations: each trick cuts the epochs needed for 94%) and
how it is done here:
- a frozen 2x2 "whitening" first conv, initialised from the eigenvectors of the training
  set's 2x2 patch covariance (+ and - copies), with a trainable bias: the net starts from
  decorrelated inputs (35 -> 21 epochs in airbench's ablation);
- identity ("dirac") initialisation of every 3x3 conv's first filters: each stage starts
  as an implicit residual (-> 18);
- 3 stages, each conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU, BatchNorm without a
  learned scale whose shifts learn 64x faster (``bias_lr_scale``, -> 13.5), global max
  pool, a scaled-down linear head;
- lookahead: the weights are pulled towards a slow average every 5 steps, more and more
  towards the end (``lookahead``, -> 12), and flip + 1-pixel translate test-time
  augmentation (``tta="flip_translate"``, -> 10.8);
- label smoothing 0.2, one-cycle Nesterov SGD, flip + 2-pixel translate augmentation,
  alternating flips (-> 9.9): ``AIRBENCH94_RECIPE``, the recipe ``fast:airbench94``.

airbench94_muon's recipe is ``fast:muon8`` (``MUON_RECIPE``, 8 epochs at batch 2000): Muon on
the conv filters (cifar_core.training.muon), no lookahead, a unit-variance head divided by its
width. ``fast`` itself is the best measured recipe (``CROP_RECIPE``): Muon for 10 epochs, the
first 4 on random 24x24 windows (progressive resizing: half the work per step, the same
object scale), on all 50,000 train images. Half precision only where measured to help
(training/bf16_measured.json).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from cifar_core.models.kernels import FusedBatchNorm, gelu
from cifar_core.models.registry import register_model
from cifar_core.models.scratch import CIFAR_MEAN, CIFAR_VAR

WHITEN_KERNEL = 2  # patch size of the whitening conv
WHITEN_EPS = 5e-4  # added to eigenvalues before 1/sqrt, as airbench does
# airbench's recipe, as model_args: its BatchNorm hyperparameter 0.6 is the weight of the
# old running value (it hands torch 1 - 0.6), Keras' convention too; epsilon 1e-12;
# PyTorch's default initialisation; and the fused kernels (same maths, faster).
AIRBENCH_ARGS = {"bn_momentum": 0.6, "bn_epsilon": 1e-12, "init": "torch", "kernels": "fused"}


def initializer(init: str):
    """ "torch": PyTorch's default for Conv2d / Linear, uniform(+-1/sqrt(fan_in)), as airbench
    trains from; "glorot": Keras' default (1.2-2.4x larger here, a smaller effective step)."""
    if init == "torch":
        return keras.initializers.VarianceScaling(1 / 3, mode="fan_in", distribution="uniform")
    return keras.initializers.GlorotUniform()


def head_initializer(head_init: str, init: str):
    """ "unit_std": uniform on +-sqrt(3), standard deviation 1 (airbench94_muon rescales
    PyTorch's draw to that); "torch": as ``init``."""
    if head_init == "unit_std":
        return keras.initializers.RandomUniform(-(3**0.5), 3**0.5)
    if head_init != "torch":
        raise ValueError(f"head_init must be 'torch' or 'unit_std', not {head_init!r}")
    return initializer(init)


def conv_group(x, filters: int, name: str, bn_momentum: float, bn_epsilon: float, init: str, kernels: str):
    """conv -> max-pool -> BN -> GELU -> conv -> BN -> GELU (halves the resolution)."""
    norm = FusedBatchNorm if kernels == "fused" else layers.BatchNormalization
    activation = gelu if kernels == "fused" else "gelu"
    for i in range(2):
        conv = layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer=initializer(init),
            name=f"{name}_conv{i}",
        )
        x = conv(x)
        if i == 0:
            x = layers.MaxPooling2D(name=f"{name}_pool")(x)
        bn = norm(momentum=bn_momentum, epsilon=bn_epsilon, scale=False, name=f"{name}_bn{i}")
        x = layers.Activation(activation, name=f"{name}_gelu{i}")(bn(x))
    return x


@keras.saving.register_keras_serializable(package="cifar_core")
class ChannelBias(layers.Layer):
    """A learned per-channel bias (for the frozen whitening conv, whose kernel stays fixed)."""

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="bias")

    def call(self, x):
        return x + ops.cast(self.bias, x.dtype)


def dirac_init(model: keras.Model) -> None:
    """Make the first min(in, out) filters of every 3x3 stage conv the identity."""
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D) and layer.name.startswith("g") and layer.kernel_size == (3, 3):
            kernel = np.array(layer.kernel)
            n = min(kernel.shape[2], kernel.shape[3])
            kernel[:, :, :, :n] = 0.0
            kernel[1, 1, np.arange(n), np.arange(n)] = 1.0
            layer.kernel.assign(kernel)


def whiten_init(model: keras.Model, x_train: np.ndarray, max_images: int = 5000) -> None:
    """Data-dependent initialisation: the whitening conv from the patch covariance of
    (normalised) train images, then the identity filters."""
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
    dirac_init(model)


# What both airbench recipes share: label smoothing, alternating flips and 2-pixel
# translation, the whitening bias trained for 3 epochs, no early stopping, six-view TTA.
AIRBENCH_SHARED = {
    "label_smoothing": 0.2,
    "augment": {"flip": True, "flip_alternate": True, "translate": 2},
    "freeze_after": {"whiten_bias": 3},
    "early_stopping_patience": 0,
    "tta": "flip_translate",
}

# airbench94's recipe (``fast:airbench94``), in Keras terms: its summed-loss LR
# 11.5 per 1024 examples at momentum 0.85 is a mean-loss LR of 1.5 at batch 1024; its weight
# decay per example, through momentum, is Keras' decoupled 0.009 x LR per step. BatchNorm
# momentum 0.6 and epsilon 1e-12, PyTorch's initialisation, the whitening bias trained for 3
# epochs and alternating flips are airbench's too.
AIRBENCH94_RECIPE = {
    "epochs": 10,
    "batch_size": 1024,
    "optimizer": "sgd",
    "learning_rate": 1.5,
    "momentum": 0.85,
    "nesterov": True,
    "weight_decay": 0.009,
    "bias_lr_scale": 64.0,
    "lookahead": True,
    "lr_schedule": "one_cycle",
    "warmup_fraction": 0.23,  # airbench's triangle: 0.2 -> 1 -> 0.07 of the peak
    "lr_start_factor": 0.2,
    "lr_end_factor": 0.07,
    **AIRBENCH_SHARED,
    "model_args": {"widths": [64, 256, 256], **AIRBENCH_ARGS},
}

# airbench94_muon's recipe (``fast:muon8``): Muon (lr 0.24, momentum 0.6, Nesterov) on the conv
# filters, Nesterov SGD (momentum 0.85) on BatchNorm shifts and the whitening bias (0.053) and
# the head (0.67), all decaying linearly to 0, weight decay 2e-6 x batch on the SGD groups;
# batch 2000, 8 epochs, no lookahead; the head's weights at unit standard deviation and its
# output divided by its width (256) instead of 9.
MUON_RECIPE = {
    "epochs": 8,
    "batch_size": 2000,
    "optimizer": "muon",
    "learning_rate": 0.24,
    "momentum": 0.6,
    "weight_decay": 2e-6 * 2000,
    "optimizer_args": {"bias_lr": 0.053, "head_lr": 0.67, "sgd_momentum": 0.85, "ns_steps": 3},
    "lr_schedule": "linear",
    **AIRBENCH_SHARED,
    "model_args": {
        "widths": [64, 256, 256],
        **AIRBENCH_ARGS,
        "logit_scale": 1 / 256,
        "head_init": "unit_std",
    },
}


# The best measured recipe (``fast``): airbench94_muon's for 10 epochs, the first 4 on random
# 24x24 windows, on all 50,000 train images (chosen on the validation split, then trained on
# all of train: no validation split, so nothing chooses by it).
CROP_RECIPE = {
    **MUON_RECIPE,
    "epochs": 10,
    "augment": {**AIRBENCH_SHARED["augment"], "small_crop": 24, "small_crop_epochs": 4},
    "val_size": 0,
    "restore_best": False,
}
# fast:robust: the crop recipe with AugMix (3 chains): robustness to corruptions for some clean accuracy.
ROBUST_RECIPE = {**CROP_RECIPE, "augment": {**CROP_RECIPE["augment"], "augmix": 3}}


@register_model(
    "fast",
    family="scratch",
    description="airbench94_muon's net: frozen whitening conv, identity-initialised 64/256/256 "
    "GELU stages, Muon on the conv filters, 10 epochs (4 on 24x24 crops), alternating flips, "
    "flip+translate TTA (accuracy per CPU-minute).",
    preset=CROP_RECIPE,
    recipes={"muon8": MUON_RECIPE, "airbench94": AIRBENCH94_RECIPE, "robust": ROBUST_RECIPE},
    data_init=whiten_init,
)
def fast(
    num_classes: int = 10,
    widths: tuple[int, int, int] = (64, 256, 256),
    bn_momentum: float = 0.6,
    bn_epsilon: float = 1e-12,
    init: str = "torch",
    kernels: str = "fused",
    logit_scale: float = 1 / 9,
    head_init: str = "torch",
) -> keras.Model:
    """airbench94's net (widths 64/256/256, its BatchNorm and initialisation) by default;
    the old recipe was bn_momentum=0.4, bn_epsilon=1e-5, init="glorot", kernels="keras".
    ``kernels``: "fused" (FusedBatchNorm, GELU with a written-out gradient: same maths,
    faster) or "keras". ``logit_scale`` divides the head's output (airbench94: 1/9,
    airbench94_muon: 1/width); ``head_init`` "unit_std" draws the head's weights at standard
    deviation 1 (airbench94_muon), "torch" as the convs."""
    inputs = keras.Input(shape=(32, 32, 3), dtype="uint8", name="pixels")
    x = layers.Normalization(mean=CIFAR_MEAN, variance=CIFAR_VAR, name="standardize")(inputs)
    width0 = 2 * WHITEN_KERNEL * WHITEN_KERNEL * 3
    whiten = layers.Conv2D(width0, WHITEN_KERNEL, padding="valid", use_bias=False, name="whiten")
    x = whiten(x)  # 31x31, decorrelated patches
    whiten.trainable = False  # fixed by whiten_init
    x = ChannelBias(name="whiten_bias")(x)
    x = layers.Activation(gelu if kernels == "fused" else "gelu", name="whiten_gelu")(x)
    for i, width in enumerate(widths):
        x = conv_group(x, int(width), f"g{i}", bn_momentum, bn_epsilon, init, kernels)  # 31 -> 15 -> 7 -> 3
    x = layers.GlobalMaxPooling2D(name="pool")(x)
    x = layers.Dense(
        num_classes, use_bias=False, kernel_initializer=head_initializer(head_init, init), name="head"
    )(x)
    x = layers.Rescaling(float(logit_scale), name="logit_scale")(x)  # airbench's scaled-down head
    return keras.Model(inputs, softmax_head_from_logits(x), name="fast")


def softmax_head_from_logits(logits) -> keras.KerasTensor:
    return layers.Activation("softmax", dtype="float32", name="probs")(logits)
