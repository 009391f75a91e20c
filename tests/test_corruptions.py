"""CIFAR-10-C corruptions, regenerated (cifar_core.data.corruptions)."""

import numpy as np
import pytest
from conftest import synthetic_images

from cifar_core.data import corruptions
from cifar_core.errors import ConfigError


@pytest.fixture(scope="module")
def images():
    return synthetic_images(24, seed=3)[0]


def test_all_fifteen_in_four_groups():
    assert len(corruptions.NAMES) == 15 and len(set(corruptions.NAMES)) == 15
    assert set(corruptions.LEVELS) == set(corruptions.NAMES)
    assert all(len(levels) == 5 for levels in corruptions.LEVELS.values())


@pytest.mark.parametrize("name", corruptions.NAMES)
def test_each_corruption_is_uint8_deterministic_and_independent_of_the_batch(images, name):
    for severity in corruptions.SEVERITIES:
        out = corruptions.corrupt(images, name, severity, seed=7)
        assert out.dtype == np.uint8 and out.shape == images.shape
        assert np.array_equal(out, corruptions.corrupt(images, name, severity, seed=7))
        part = corruptions.corrupt(images[5:9], name, severity, seed=7, first_index=5)
        assert np.array_equal(part, out[5:9])  # each image its own draws, whatever the batch
    assert not np.array_equal(corruptions.corrupt(images, name, 5), images)


@pytest.mark.parametrize("name", [n for n in corruptions.NAMES if n not in corruptions.NOT_ORDERED])
def test_a_higher_severity_moves_images_further_from_the_original(images, name):
    distances = [
        np.abs(corruptions.corrupt(images, name, s).astype(float) - images).mean()
        for s in corruptions.SEVERITIES
    ]
    assert all(a < b + 1e-9 for a, b in zip(distances, distances[1:])), distances
    assert distances[-1] > distances[0]


@pytest.mark.parametrize("name", corruptions.NOT_ORDERED)
def test_the_three_unordered_tables_still_change_the_image_at_every_severity(images, name):
    for severity in corruptions.SEVERITIES:
        moved = np.abs(corruptions.corrupt(images, name, severity).astype(float) - images).mean()
        assert moved > 1.0


def test_bad_input_is_one_clear_error(images):
    with pytest.raises(ConfigError, match="unknown corruption 'rain'"):
        corruptions.corrupt(images, "rain", 1)
    for severity in (0, 6):
        with pytest.raises(ConfigError, match="1 to 5"):
            corruptions.corrupt(images, "fog", severity)
    with pytest.raises(ConfigError, match="uint8 images of 32x32x3"):
        corruptions.corrupt(images.astype(np.float32), "fog", 1)


def test_augmix_mixes_each_image_with_augmented_copies_of_itself(images):
    import tensorflow as tf

    from cifar_core.config import AugmentConfig, TrainConfig
    from cifar_core.data.augmix import augmix

    seed = tf.constant([3, 4])
    out = augmix(tf.constant(images), chains=3, severity=3, seed=seed).numpy()
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert np.array_equal(out, augmix(tf.constant(images), 3, 3, seed).numpy())  # stateless
    moved = np.abs(out.astype(float) - images).mean(axis=(1, 2, 3))
    assert moved.mean() > 1 and (moved < 80).all()  # changed, yet still the same picture
    assert not np.array_equal(out, augmix(tf.constant(images), 3, 3, tf.constant([5, 6])).numpy())
    robust = TrainConfig.from_preset("fast:robust")
    assert robust.augment.augmix == 3 and TrainConfig.from_preset("fast").augment.augmix == 0
    assert AugmentConfig(flip=False, translate=0, augmix=3).enabled
    assert not AugmentConfig(augmix=3).flips_only


def test_the_pipeline_applies_augmix_batch_by_batch(images):
    from cifar_core.config import AugmentConfig
    from cifar_core.data.pipeline import make_dataset

    y = np.arange(len(images)) % 10
    plain = make_dataset(images, y, 8, 10, augment=AugmentConfig(flip=False, translate=0), seed=0)
    mixed = make_dataset(images, y, 8, 10, augment=AugmentConfig(flip=False, translate=0, augmix=2), seed=0)
    (a, _), (b, _) = next(iter(plain)), next(iter(mixed))
    assert b.dtype == a.dtype and b.shape == a.shape and not np.array_equal(a.numpy(), b.numpy())
