import numpy as np
import pytest
import tensorflow as tf

from cifar_core.config import AugmentConfig, ConfigError, TrainConfig
from cifar_core.data.pipeline import make_dataset, random_flip, random_translate


def _ramp(n=8):
    x = np.zeros((n, 32, 32, 3), np.uint8)
    x[:] = (np.arange(32, dtype=np.uint8) * 7)[None, None, :, None]  # brightness grows left->right
    return x


def _offsets_of(window: np.ndarray, image: np.ndarray) -> list[tuple[int, int]]:
    """Every (row, col) at which ``window`` lies in ``image``."""
    h, w = window.shape[:2]
    rows, cols = image.shape[0] - h + 1, image.shape[1] - w + 1
    return [
        (r, c)
        for r in range(rows)
        for c in range(cols)
        if np.array_equal(image[r : r + h, c : c + w], window)
    ]


def test_flip_mirrors_some_images_and_leaves_the_rest():
    x = _ramp(64)
    out = random_flip(tf.constant(x), tf.constant([1, 2])).numpy()
    flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x)]
    kept = [np.array_equal(o, i) for o, i in zip(out, x)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 10 < sum(flipped) < 54


def test_translate_shifts_each_image_by_its_own_offset_within_the_pad():
    x = np.random.default_rng(0).integers(0, 256, (32, 32, 32, 3), dtype=np.uint8)
    out = random_translate(tf.constant(x), 2, tf.constant([3, 4])).numpy()
    assert out.shape == x.shape and out.dtype == np.uint8
    shifts = set()
    for original, moved in zip(x, out):
        padded = np.pad(original, ((2, 2), (2, 2), (0, 0)), mode="reflect")
        match = _offsets_of(moved, padded)
        assert match, "every output is a crop of the reflect-padded input"
        shifts.add(match[0])
    assert len(shifts) > 5  # offsets differ per image, not one per batch


def test_training_dataset_gives_new_augmentations_every_epoch_and_one_hot_labels():
    x = np.random.default_rng(1).integers(0, 256, (16, 32, 32, 3), dtype=np.uint8)
    y = np.arange(16) % 10
    ds = make_dataset(x, y, 16, 10, augment=AugmentConfig(flip=True, translate=4), seed=0, repeat=True)
    batches = iter(ds)
    first, labels = next(batches)
    second, _ = next(batches)
    assert first.dtype == tf.uint8 and labels.shape == (16, 10)
    assert not np.array_equal(first.numpy(), second.numpy())


def test_evaluation_dataset_is_unchanged_and_ordered():
    x = np.random.default_rng(2).integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    y = np.arange(10)
    ((xb, yb),) = list(make_dataset(x, y, 32, 10))
    np.testing.assert_array_equal(xb.numpy(), x)
    np.testing.assert_array_equal(yb.numpy().argmax(1), y)


def test_rotation_and_zoom_keep_uint8_batches():
    x = _ramp(4)
    ds = make_dataset(
        x, np.zeros(4, int), 4, 10, augment=AugmentConfig(flip=False, translate=0, rotation=0.1, zoom=0.2)
    )
    ((xb, _),) = list(ds)
    assert xb.dtype == tf.uint8 and xb.shape == (4, 32, 32, 3)
    assert not np.array_equal(xb.numpy(), x)


def test_alternating_flips_show_every_image_both_ways_in_two_epochs():
    n = 24
    x = _ramp(n)
    x[:, 0, 0, 0] = x[:, 0, 31, 0] = np.arange(n)  # corner pixels that name the image either way
    ids = lambda batch: [int(img[0, 0, 0]) for img in batch]  # noqa: E731
    flipped = lambda batch: [bool(img[0, 0, 1] > img[0, 31, 1]) for img in batch]  # noqa: E731
    aug = AugmentConfig(flip=True, flip_alternate=True, translate=0)
    ds = make_dataset(x, np.zeros(n, int), 8, 10, augment=aug, shuffle=True, seed=3, repeat=True)
    seen: dict[int, list[bool]] = {}
    for batch, _ in ds.take(2 * n // 8):  # two epochs of three batches
        for i, f in zip(ids(batch.numpy()), flipped(batch.numpy())):
            seen.setdefault(i, []).append(f)
    assert sorted(seen) == list(range(n))
    assert all(sorted(ways) == [False, True] for ways in seen.values())  # once each way
    first = [ways[0] for ways in seen.values()]
    assert 4 < sum(first) < n - 4  # epoch 0 flips a random part, not all or none


def test_small_crops_first_then_whole_images_each_a_window_of_its_image():
    n, batch = 12, 4  # three batches per epoch
    x = np.random.default_rng(5).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    aug = AugmentConfig(flip=False, translate=0, small_crop=20, small_crop_epochs=2)
    ds = make_dataset(x, np.arange(n) % 10, batch, 10, augment=aug, seed=1, repeat=True)
    shapes = [tuple(images.shape[1:3]) for images, _ in ds.take(4 * n // batch)]
    assert shapes == [(20, 20)] * 6 + [(32, 32)] * 6  # two epochs small, then whole
    windows = next(iter(ds))[0].numpy()
    offsets = set()
    for original, window in zip(x[:batch], windows):
        found = _offsets_of(window, original)
        assert found, "a small crop is a window of its own image, at the same scale"
        offsets.add(found[0])
    assert len(offsets) > 1  # each image its own offset


def test_small_crop_settings_are_checked_and_leave_older_run_ids_alone():
    for bad in ({"small_crop": 32, "small_crop_epochs": 1}, {"small_crop": 24}, {"small_crop_epochs": 2}):
        with pytest.raises(ConfigError, match="small_crop"):
            AugmentConfig(**bad)
    preset = TrainConfig.from_preset("fast:muon8")
    assert "small_crop" not in preset.non_default()["augment"]  # ids of runs made before it stay
    changed = TrainConfig.from_preset(
        "fast:muon8", settings=["augment.small_crop=24", "augment.small_crop_epochs=3"]
    )
    assert changed.non_default()["augment"]["small_crop"] == 24
    assert changed.fingerprint() != preset.fingerprint()
