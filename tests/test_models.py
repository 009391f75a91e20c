import keras
import numpy as np
import pytest

from cifar_core.analysis import embeddings, saliency
from cifar_core.config import TrainConfig
from cifar_core.models import UnknownModelError, create_model, get_spec, list_models

# What the search finds in each model's graph (method, layer type, map size), recorded here
# so a change to a builder or to the search shows up. Transfer models at their preset sizes:
# keras.applications backbones hand over their last map (3x3-4x4 at 96-128 px); InceptionV3
# at 75 px ends in a 1x1 map, which has no "where": SmoothGrad.
EXPECTED_MAPS = {
    "baseline_cnn": ("Grad-CAM", "Conv2D", (4, 4)),
    "cnn_bn": ("Grad-CAM", "MaxPooling2D", (4, 4)),
    "cnn_4block": ("Grad-CAM", "Activation", (4, 4)),  # 2x2 after the last pool: one step back
    "vgg10": ("Grad-CAM", "Activation", (4, 4)),
    "deep_cnn": ("Grad-CAM", "Activation", (4, 4)),
    "resnet20": ("Grad-CAM", "Activation", (8, 8)),
    "fast": ("Grad-CAM", "Conv2D", (7, 7)),  # 3x3 after the last pool: the conv before it
    "mobilenetv2": ("Grad-CAM", "Functional", (3, 3)),
    "efficientnetb0": ("Grad-CAM", "Functional", (3, 3)),
    "efficientnetv2b0": ("Grad-CAM", "Functional", (3, 3)),
    "resnet50": ("Grad-CAM", "Functional", (4, 4)),
    "vgg16": ("Grad-CAM", "Functional", (3, 3)),
    "inceptionv3": ("SmoothGrad", None, (32, 32)),
    "densenet121": ("Grad-CAM", "Functional", (3, 3)),
    "efficientnet_lite0": ("Grad-CAM", "Functional", (4, 4)),
    "efficientnet_lite0_frozen": ("Grad-CAM", "Functional", (4, 4)),
}


# Run with -m slow: DenseNet-121 (32 s here, the slowest to build), and EfficientNetV2-B0 and
# ResNet-50 (15-18 s each), whose maps take the same path as EfficientNet-B0's and
# EfficientNet-Lite0's (Grad-CAM in a Functional backbone); test_transfer builds all three.
SLOW_TO_BUILD = ("densenet121", "efficientnetv2b0", "resnet50")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TO_BUILD else n for n in list_models()]
)
def test_every_model_maps_uint8_pixels_to_ten_probabilities(name):
    spec = get_spec(name)
    # keras.applications ImageNet weights cannot be downloaded in tests: random weights.
    model = create_model(name, **({"weights": "none"} if spec.family == "transfer" else {}))
    batch = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    if spec.data_init:
        spec.data_init(model, batch)
    probs = np.asarray(model(batch, training=False))
    assert model.inputs[0].dtype == "uint8"
    assert probs.shape == (3, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert spec.description and spec.family in ("scratch", "transfer")
    TrainConfig.from_preset(name)  # every preset is a valid config
    explain = saliency.explainer(model)  # heatmaps: the feature map found from the graph
    maps = saliency.heatmaps(explain, batch[:2], classes=[3, 5])
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    inner = model
    for part in (explain.layer or "").split("/")[:-1]:
        inner = inner.get_layer(part)
    kind = type(inner.get_layer(explain.layer.split("/")[-1])).__name__ if explain.layer else None
    assert (explain.method, kind, explain.map_size) == EXPECTED_MAPS[name], explain.layer
    # The map of the test set: features are what the last Dense layer reads, one vector each.
    feats = embeddings.features(embeddings.feature_model(model), batch)
    assert feats.shape[0] == 3 and feats.ndim == 2 and feats.shape[1] >= 10 and np.isfinite(feats).all()
    assert embeddings.feature_layer(model).name in ("probs", "head")
    keras.backend.clear_session()


def test_unknown_model_name_fails_with_suggestions():
    with pytest.raises(UnknownModelError, match="Did you mean resnet20"):
        create_model("resnet2O")


def test_fast_whitening_layer_decorrelates_patches():
    from cifar_core.models.fast import whiten_init

    model = create_model("fast")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    x[..., 1] = x[..., 0] // 2 + 60  # strongly correlated channels
    whiten_init(model, x)
    features = keras.Model(model.inputs, model.get_layer("whiten").output)(x).numpy()
    half = features.shape[-1] // 2  # the first half are the whitened directions (+), then (-)
    cov = np.cov(features[..., :half].reshape(-1, half), rowvar=False)
    off_diagonal = cov - np.diag(np.diag(cov))
    assert np.abs(off_diagonal).max() < 0.05 * np.abs(np.diag(cov)).max()
    assert not model.get_layer("whiten").trainable


def test_fast_stage_convs_start_as_identity_and_the_model_round_trips(tmp_path):
    from cifar_core.models.fast import whiten_init
    from cifar_core.serving.inference import load_model

    model = create_model("fast", widths=(16, 32, 32))
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    whiten_init(model, x)
    for name, n in (("g0_conv0", 16), ("g0_conv1", 16), ("g1_conv0", 16), ("g2_conv1", 32)):
        kernel = np.array(model.get_layer(name).kernel)
        identity = np.zeros((3, 3, kernel.shape[2], n))
        identity[1, 1, np.arange(n), np.arange(n)] = 1
        np.testing.assert_array_equal(kernel[..., :n], identity, err_msg=name)
        assert np.abs(kernel[..., n:]).sum() > 0 or kernel.shape[3] == n  # the rest stay random
    assert model.get_layer("whiten_bias").trainable and not model.get_layer("whiten").trainable
    model.save(tmp_path / "fast.keras")
    loaded = load_model(tmp_path / "fast.keras")  # safe mode: the custom layer is registered
    np.testing.assert_allclose(loaded.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0), atol=1e-6)


def test_resnet20_has_the_papers_parameter_count():
    # He et al. 2015 report 0.27M parameters for ResNet-20 on CIFAR-10.
    assert 0.26e6 < create_model("resnet20").count_params() < 0.29e6


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_fast_kernels_compute_what_keras_computes(policy):
    """FusedBatchNorm and the written-out GELU gradient: same outputs, gradients and
    running statistics as Keras' BatchNormalization and GELU, in both precisions."""
    import tensorflow as tf

    from cifar_core.models.kernels import FusedBatchNorm, gelu
    from cifar_core.training import precision

    x = tf.random.stateless_normal((8, 5, 5, 6), seed=[1, 2]) * 3 + 1
    with precision.dtype_policy(policy):
        fused = FusedBatchNorm(momentum=0.6, epsilon=1e-12, scale=False)
        plain = keras.layers.BatchNormalization(momentum=0.6, epsilon=1e-12, scale=False)
        outs, grads = [], []
        for norm, act in ((fused, gelu), (plain, keras.activations.gelu)):
            norm.build(x.shape)
            norm.beta.assign(tf.linspace(-1.0, 1.0, 6))
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = act(norm(tf.cast(x, norm.compute_dtype), training=True))
                loss = tf.reduce_sum(tf.cast(y, "float32") ** 2)
            outs.append(np.asarray(tf.cast(y, "float32")))
            grads.append([np.asarray(g, dtype=np.float32) for g in tape.gradient(loss, [x, norm.beta])])
    tol = 1e-4 if policy == "float32" else 0.05
    np.testing.assert_allclose(outs[0], outs[1], rtol=tol, atol=tol)
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())
    np.testing.assert_allclose(np.array(fused.moving_mean), np.array(plain.moving_mean), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.array(fused.moving_variance), np.array(plain.moving_variance), rtol=1e-3)
    inference = [np.asarray(n(x, training=False), dtype=np.float32) for n in (fused, plain)]
    np.testing.assert_allclose(*inference, rtol=1e-4, atol=1e-4)
