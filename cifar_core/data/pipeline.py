"""tf.data input pipelines with batch-vectorised augmentation.

    ds = make_dataset(x, y, batch_size=256, num_classes=10, augment=AugmentConfig(), seed=0)

Augmentation runs on whole uint8 batches (one gather per batch for pad-and-crop, one
select for flips) in parallel map calls, and batches are prefetched, so the model never
waits on the input: `benchmark` reports the share of time spent waiting for data.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cifar_core.config import AugmentConfig
from cifar_core.data.augmix import augmix


def random_flip(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Flip each image of a (B, H, W, C) batch left-right with probability 1/2."""
    batch = tf.shape(images)[0]
    flip = tf.random.stateless_uniform([batch], seed) < 0.5
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def crop_at(images: tf.Tensor, offsets: tf.Tensor, height, width) -> tf.Tensor:
    """Each image's ``height`` x ``width`` window whose top-left corner is its (row, col) offset."""
    rows = offsets[:, :1] + tf.range(height)[None, :]  # (B, H)
    cols = offsets[:, 1:] + tf.range(width)[None, :]  # (B, W)
    cropped = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(cropped, cols, axis=2, batch_dims=1)


def random_translate(images: tf.Tensor, pad: int, seed: tf.Tensor) -> tf.Tensor:
    """Reflect-pad a batch by ``pad`` pixels and crop each image back at its own offset."""
    shape = tf.shape(images)
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    offsets = tf.random.stateless_uniform([shape[0], 2], seed, 0, 2 * pad + 1, dtype=tf.int32)
    return crop_at(padded, offsets, shape[1], shape[2])


def random_crop(images: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    """A random ``size`` x ``size`` window of each (square) image of a batch."""
    shape = tf.shape(images)
    offsets = tf.random.stateless_uniform([shape[0], 2], seed, 0, shape[1] - size + 1, dtype=tf.int32)
    return crop_at(images, offsets, size, size)


def alternate_flip(images: tf.Tensor, first_epoch: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    """airbench's alternating flips: each image is flipped as ``first_epoch`` says (a fixed
    random half) in even epochs and the other way round in odd ones."""
    flip = tf.math.logical_xor(first_epoch, tf.equal(epoch % 2, 1))
    return tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)


def build_augmenter(config: AugmentConfig, seed: int, steps_per_epoch: int = 1):
    """Return ``fn(images, labels, step[, first_flips]) -> (images, labels)`` applying
    ``config`` to a batch (``first_flips``: the batch's flips of epoch 0, alternating flips)."""
    import keras

    geometric = []
    if config.rotation > 0:
        geometric.append(keras.layers.RandomRotation(config.rotation, fill_mode="reflect", seed=seed))
    if config.zoom > 0:
        geometric.append(keras.layers.RandomZoom(config.zoom, fill_mode="reflect", seed=seed + 1))

    def augment(images, labels, step, first_flips=None):
        base = tf.stack([tf.cast(step, tf.int32), tf.constant(seed, tf.int32)])
        if config.flip and first_flips is not None:
            images = alternate_flip(images, first_flips, tf.cast(step, tf.int32) // steps_per_epoch)
        elif config.flip:
            images = random_flip(images, base + [0, 1])
        if config.translate > 0:
            images = random_translate(images, config.translate, base + [0, 2])
        if config.small_crop > 0:  # progressive resizing: small windows first, whole images after
            early = tf.cast(step, tf.int32) // steps_per_epoch < config.small_crop_epochs
            images = tf.cond(
                early, lambda: random_crop(images, config.small_crop, base + [0, 3]), lambda: images
            )
        if config.augmix:
            images = augmix(images, config.augmix, 3, base + [0, 4])
        if geometric:
            floats = tf.cast(images, tf.float32)
            for layer in geometric:
                floats = layer(floats, training=True)
            images = tf.cast(tf.clip_by_value(tf.round(floats), 0, 255), tf.uint8)
        return images, labels

    return augment


def make_dataset(
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    num_classes: int,
    augment: AugmentConfig | None = None,
    shuffle: bool = False,
    seed: int = 0,
    drop_remainder: bool = False,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of (uint8 images, one-hot float32 labels); shuffled and augmented if asked.

    With ``repeat`` the dataset is endless (a fresh shuffle per pass) and the augmentation
    seed advances with the global batch index, so every epoch sees new random crops and
    flips; pass ``steps_per_epoch=ceil(len(x) / batch_size)`` to ``fit``.
    """
    alternate = augment is not None and augment.flip and augment.flip_alternate
    # Alternating flips need each image's own first-epoch flip, drawn once, travelling with it.
    first_flips = np.random.default_rng(seed).random(len(x)) < 0.5 if alternate else np.zeros(len(x), bool)
    ds = tf.data.Dataset.from_tensor_slices((x, y, first_flips))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(lambda xb, yb, fb: (xb, tf.one_hot(yb, num_classes), fb), num_parallel_calls=tf.data.AUTOTUNE)
    if augment is not None and augment.enabled:
        steps = len(x) // batch_size if drop_remainder else -(-len(x) // batch_size)
        augmenter = build_augmenter(augment, seed, steps_per_epoch=max(steps, 1))
        ds = ds.enumerate().map(
            lambda step, batch: augmenter(batch[0], batch[1], step, batch[2] if alternate else None),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        ds = ds.map(lambda xb, yb, fb: (xb, yb))
    return ds.prefetch(tf.data.AUTOTUNE)


def make_array_dataset(
    features: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    num_classes: int,
    shuffle: bool = False,
    seed: int = 0,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Batches of (float32 features, one-hot labels) from cached activations (any shape)."""
    ds = tf.data.Dataset.from_tensor_slices((features, y))
    if shuffle:
        ds = ds.shuffle(len(features), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if repeat:
        ds = ds.repeat()
    ds = ds.map(
        lambda xb, yb: (tf.cast(xb, tf.float32), tf.one_hot(yb, num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)
