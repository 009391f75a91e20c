"""Saliency: the feature map is found from each model, and the heatmaps point at what
decides the class."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cifar_core import saliency
from cifar_core.models import create_model, get_spec, list_models

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


@pytest.mark.parametrize("name", list_models())
def test_every_model_of_the_zoo_gets_a_grad_cam_map_found_from_its_graph(name):
    kwargs = {"weights": "none"} if get_spec(name).family == "transfer" else {}
    model = create_model(name, **kwargs)
    explain = saliency.explainer(model)
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    maps = saliency.heatmaps(explain, images, classes=[3, 5])
    assert maps.shape == (2, 32, 32) and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    inner = model
    for part in (explain.layer or "").split("/")[:-1]:
        inner = inner.get_layer(part)
    kind = type(inner.get_layer(explain.layer.split("/")[-1])).__name__ if explain.layer else None
    print(f"{name}: {explain.method} {explain.layer} {kind} {explain.map_size}")
    assert (explain.method, kind, explain.map_size) == EXPECTED_MAPS[name]


def test_a_model_without_a_convolutional_map_gets_smoothgrad():
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    explain = saliency.explainer(model)
    assert explain.method == "SmoothGrad" and explain.layer is None
    maps = saliency.heatmaps(explain, np.zeros((3, 32, 32, 3), np.uint8))
    assert maps.shape == (3, 32, 32) and np.isfinite(maps).all()


COLOURS = np.array([(250, 40, 40), (40, 250, 40), (40, 40, 250), (250, 250, 40)], np.uint8)
PATCH = 16  # a quarter of the image: the smallest maps (4x4, 8 px cells) resolve that


def _patch_data(n: int, seed: int):
    """Grey noise with one coloured 16x16 patch at a random place; its colour is the class
    (so a translation-invariant net must find the patch to tell). Returns the corners."""
    rng = np.random.default_rng(seed)
    x = rng.integers(60, 140, (n, 32, 32, 3)).astype(np.uint8)
    y = rng.integers(0, len(COLOURS), n)
    corners = rng.integers(0, 32 - PATCH + 1, (n, 2))
    for i, ((r, c), label) in enumerate(zip(corners, y)):
        x[i, r : r + PATCH, c : c + PATCH] = COLOURS[label]
    return x, y, corners


@pytest.mark.parametrize("name", ["fast", "resnet20"])
def test_heatmaps_put_their_mass_on_the_patch_that_decides_the_class(name):
    keras.utils.set_random_seed(0)
    x, y, _ = _patch_data(1200, 0)
    model = create_model(name, **({"widths": (32, 64, 64)} if name == "fast" else {}))
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    x_test, y_test, corners = _patch_data(64, 1)
    assert (model.predict(x_test, verbose=0).argmax(1) == y_test).mean() > 0.9  # it learned the rule
    maps = saliency.heatmaps(saliency.explainer(model), x_test, classes=y_test)
    inside = [heat[r : r + PATCH, c : c + PATCH].sum() / heat.sum() for heat, (r, c) in zip(maps, corners)]
    # The patch is a quarter of the image: by chance it would get a quarter of the mass.
    above_chance = np.mean(np.array(inside) > 0.25)
    assert above_chance >= 0.75, f"{name}: more than chance on the patch in {above_chance:.0%} of images"
    assert np.median(inside) > 0.5, (
        f"{name}: median share of the heatmap on the patch {np.median(inside):.2f}"
    )
