"""Saliency: heatmaps point at what decides the class (the map found in every model of the
zoo is checked in test_models.py, which builds each model once)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from cifar_core.analysis import saliency
from cifar_core.models import create_model


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


@pytest.mark.parametrize("name", ["fast", pytest.param("resnet20", marks=pytest.mark.slow)])  # ~85 s
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
