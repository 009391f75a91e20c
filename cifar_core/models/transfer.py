"""Transfer learning: ImageNet backbones under a small head, frozen then fine-tuned.

Every transfer model has the same shape, so the phase plan (phases.py) and the fit
(fitting.py, finetune.py) treat them alike:

    pixels (uint8 32x32x3) -> Resizing(input_size) -> ImageNetPreprocess(mode)
        -> backbone (nested Model, called with training=False) -> GlobalAveragePooling
        -> head (optional Dense + Dropout) -> Dense softmax ("probs")

The backbone is called with ``training=False`` so its BatchNorm layers stay in inference
mode in both phases (keras-io's transfer-learning guide). Weights are "imagenet" (the Keras
download, cached under ~/.keras/models), a local file, or "none" (random: allowed only
when asked for explicitly, and recorded).
"""

from __future__ import annotations

import re
from pathlib import Path

import keras
from keras import layers, ops

from cifar_core.errors import WeightsError
from cifar_core.models.efficientnet_lite import backbone as lite0_backbone
from cifar_core.models.efficientnet_lite import default_weights_path, load_pth_weights
from cifar_core.models.registry import register_model

# ImageNet channel statistics for the preprocessing modes of keras.applications.
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
TORCH_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
TORCH_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@keras.saving.register_keras_serializable(package="cifar_core")
class ImageNetPreprocess(layers.Layer):
    """``preprocess_input`` of keras.applications as a layer (0..255 RGB in).

    modes: "caffe" (BGR, minus the ImageNet mean: ResNet50, VGG16), "tf" ([-1, 1]:
    MobileNetV2, InceptionV3), "torch" (0..1, minus mean, over std: DenseNet121),
    "lite" ((x - 127) / 128: EfficientNet-Lite0), "none" (EfficientNet B0/V2 scale inside).
    """

    MODES = ("caffe", "tf", "torch", "lite", "none")

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.array(CAFFE_MEAN_BGR, dtype=self.compute_dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.array(TORCH_MEAN, dtype=self.compute_dtype)
            return (x - mean) / ops.array(TORCH_STD, dtype=self.compute_dtype)
        if self.mode == "lite":
            return (x - 127.0) / 128.0
        return x

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def keras_weights_file(error: Exception) -> str | None:
    """The file name in a failed keras.applications download message, if any."""
    match = re.search(r"https?://\S+/([\w.\-]+\.h5)", str(error))
    return match.group(1) if match else None


def _keras_application(app_name: str, input_size: int, weights: str | None):
    app = getattr(keras.applications, app_name)
    source = None if weights in (None, "none") else weights
    try:
        base = app(include_top=False, weights=source, input_shape=(input_size, input_size, 3))
    except Exception as error:
        if source is None:
            raise
        if source != "imagenet":
            raise WeightsError(f"{source}: cannot load weights into {app_name} ({error})") from None
        fname = keras_weights_file(error) or f"the {app_name} no-top weights file"
        home = Path(keras.config.keras_home() if hasattr(keras.config, "keras_home") else "~/.keras")
        raise WeightsError(
            f"cannot get ImageNet weights for {app_name} ({type(error).__name__}). Offline? Put "
            f"{fname} into {home.expanduser() / 'models'}/ (where Keras caches it), pass "
            "--weights PATH to a local weights file, or --weights none to train from random "
            "weights (recorded in the run)."
        ) from None
    # The same layers under the name finetune.py looks for (some applications need their own).
    return keras.Model(base.input, base.output, name="backbone")


def _lite0(input_size: int, weights: str | None):
    base = lite0_backbone(input_size, name="backbone")
    if weights in (None, "none"):
        return base
    path = default_weights_path() if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise WeightsError(f"{path}: EfficientNet-Lite0 weights file not found")
    load_pth_weights(base, path)
    return base


def _lite0_multiscale(taps: tuple[str, ...]):
    """Lite0 whose output is the average- and max-pooled activations of several blocks.

    ImageNet's last layer is tuned to 224-px objects; at 32-px CIFAR images upsized to
    128-160 px, the middle blocks carry much of what a frozen backbone knows. A logistic
    regression on these pooled features (block 10, 14, 15 and the head conv; 3,808 values)
    beat the head conv alone by 6 points of validation accuracy at 128 px and 4 at 160 px
    (8,000 train / 3,000 validation images).
    """

    def build(input_size: int, weights: str | None) -> keras.Model:
        base = _lite0(input_size, weights)
        pooled = []
        for tap in taps:
            tensor = base.get_layer(tap).output
            pooled.append(layers.GlobalAveragePooling2D(name=f"{tap}_avg")(tensor))
            pooled.append(layers.GlobalMaxPooling2D(name=f"{tap}_max")(tensor))
        return keras.Model(base.input, layers.Concatenate(name="multiscale")(pooled), name="backbone")

    return build


def build_transfer(
    backbone_fn,
    preprocess: str,
    num_classes: int,
    input_size: int,
    weights: str | None,
    head_units: int = 0,
    dropout: float = 0.2,
    name: str = "transfer",
) -> keras.Model:
    """pixels -> resize -> preprocess -> frozen backbone -> GAP -> head -> softmax."""
    inputs = keras.Input((32, 32, 3), dtype="uint8", name="pixels")
    x = layers.Resizing(input_size, input_size, interpolation="bilinear", name="resize")(inputs)
    x = ImageNetPreprocess(preprocess, name="preprocess")(x)
    base = backbone_fn(input_size, weights)
    base.trainable = False  # phase 1; finetune.apply_phase unfreezes the top for phase 2
    x = base(x, training=False)  # BatchNorm in inference mode, in both phases
    # A backbone that pools itself (multi-scale features) hands over a vector already.
    pool = (
        layers.Identity(name="pool")
        if len(base.output.shape) == 2
        else layers.GlobalAveragePooling2D(name="pool")
    )
    x = pool(x)
    if head_units:
        x = layers.Dense(head_units, use_bias=False, name="classifier_dense")(x)
        x = layers.BatchNormalization(name="classifier_bn")(x)
        x = layers.Activation("relu", name="classifier_relu")(x)
    x = layers.Dropout(dropout, name="classifier_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=name)


# name, keras.applications class, preprocessing, default input size, layers unfrozen in
# phase 2, the write-ups' figures (frozen -> fine-tuned).
APPLICATIONS = (
    ("mobilenetv2", "MobileNetV2", "tf", 96, 30, "seed 001: 86.1% frozen -> 90.4% fine-tuned"),
    ("efficientnetb0", "EfficientNetB0", "none", 96, 30, "seed 001: 83.1% -> 83.5%"),
    ("efficientnetv2b0", "EfficientNetV2B0", "none", 96, 30, "seed 000: 93.97%"),
    ("resnet50", "ResNet50", "caffe", 128, 20, "seed 003: 94.73% at 224 px; seed 000: 92%"),
    ("vgg16", "VGG16", "caffe", 96, 4, "seed 001: 77.0% -> 85.2%; seed 002: 88% val"),
    ("inceptionv3", "InceptionV3", "tf", 96, 30, "seed 004: 88.7% -> 92.8%; seed 000: 89-90%"),
    ("densenet121", "DenseNet121", "torch", 96, 20, "seed 000: 89% frozen -> 91% at 96 px"),
)
TRANSFER_PRESET = {
    "epochs": 5,
    "batch_size": 64,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "lr_schedule": "constant",
    "augment": {"flip": True, "translate": 0},
    "early_stopping_patience": 3,
    "weights": "imagenet",
    "fine_tune_epochs": 3,
    "fine_tune_lr_factor": 0.03,
}


def _register_application(name, app_name, preprocess, size, unfreeze, figures):
    def build(num_classes=10, weights="imagenet", input_size=size, head_units=0, dropout=0.2):
        fn = lambda s, w: _keras_application(app_name, s, w)  # noqa: E731
        return build_transfer(fn, preprocess, num_classes, input_size, weights, head_units, dropout, name)

    register_model(
        name,
        family="transfer",
        input_size=size,
        description=f"keras.applications {app_name} (ImageNet) at {size} px, frozen then top "
        f"{unfreeze} layers fine-tuned ({figures}).",
        preset={**TRANSFER_PRESET, "fine_tune_layers": unfreeze},
        zoo=False,  # ImageNet weights come from a download: trained by name, not by --all
    )(build)


for _entry in APPLICATIONS:
    _register_application(*_entry)

LITE0_SIZE = 128
LITE0_TAPS = ("block10_add", "block14_add", "block15_project_bn", "head_relu6")
LITE0_PRESET = {
    **TRANSFER_PRESET,
    # Cheap epochs on cached activations (finetune.py), so more of them than the others.
    "epochs": 10,
    "fine_tune_epochs": 10,
    "lr_schedule": "cosine",
    "label_smoothing": 0.1,
    "tta": "flip",
    "fine_tune_layers": 38,  # blocks 12-15 and the head conv: a clean split at block 12's input
    "model_args": {"head_units": 512, "dropout": 0.3},
    "augment": {"flip": True, "translate": 0},
}
# The fine-tuned reference model, sized for about 90 minutes of CPU training: blocks 5-15
# unfrozen at 128 px (the whole backbone trains much slower for little gain).
LITE0_FINE_TUNE_FROM = "block5_expand_conv"
LITE0_FINE_TUNE_PRESET = {
    **LITE0_PRESET,
    # Phase 1: a head on the pooled four-block features, cached once (no mirror: ~5 min).
    "epochs": 10,
    "batch_size": 256,
    "optimizer": "adamw",
    "learning_rate": 1e-3,
    "weight_decay": 0.01,
    "lr_schedule": "one_cycle",
    "early_stopping_patience": 0,
    "augment": {"flip": False, "translate": 0},
    # Phase 2: blocks 5-15 and the head conv (BatchNorm frozen) on flipped and translated
    # pixels, so the unfrozen layers never see the same image twice (fine-tuning on cached
    # activations overfits them).
    "fine_tune_epochs": 8,
    "fine_tune_layers": 107,  # the multi-scale backbone's layers from block5_expand_conv on
    "fine_tune_lr_factor": 0.3,  # peak 3e-4
    "fine_tune_batch_size": 64,
    "fine_tune_augment": {"flip": True, "translate": 4},
    "model_args": {"head_units": 256, "dropout": 0.3, "taps": list(LITE0_TAPS)},
}


def efficientnet_lite0(
    num_classes=10, weights="imagenet", input_size=LITE0_SIZE, head_units=512, dropout=0.3, taps=()
):
    backbone_fn = _lite0_multiscale(tuple(taps)) if taps else _lite0
    return build_transfer(
        backbone_fn, "lite", num_classes, input_size, weights, head_units, dropout, "efficientnet_lite0"
    )


register_model(
    "efficientnet_lite0",
    family="transfer",
    input_size=LITE0_SIZE,
    description="EfficientNet-Lite0 (ImageNet weights from a .pth, offline) at 128 px: a head on "
    "pooled features of four blocks, then blocks 5-15 fine-tuned on augmented pixels "
    "(write-ups: 90-95% fine-tuned for comparable backbones).",
    preset=LITE0_FINE_TUNE_PRESET,
)(efficientnet_lite0)
LITE0_FROZEN_SIZE = 160

register_model(
    "efficientnet_lite0_frozen",
    family="transfer",
    input_size=LITE0_FROZEN_SIZE,
    description="EfficientNet-Lite0 frozen at 160 px: a head on pooled features of four blocks "
    "(write-ups: 83-89% frozen).",
    # Every image (and its mirror) goes through the frozen backbone once: ~100 images/s at
    # 160 px here, ~16 min for 95,000; the head then trains in seconds per epoch.
    preset={
        **LITE0_PRESET,
        "epochs": 30,
        "batch_size": 256,  # a head on 3,808 cached values: ~2 s per epoch
        "early_stopping_patience": 0,
        "fine_tune_epochs": 0,
        "fine_tune_layers": 0,
        "input_size": LITE0_FROZEN_SIZE,
        "model_args": {"head_units": 256, "dropout": 0.4, "taps": list(LITE0_TAPS)},
    },
)(efficientnet_lite0)
