"""AugMix (Hendrycks et al., ICLR 2020), batch-vectorised for the tf.data pipeline: each image
becomes a random convex mix of itself and ``chains`` augmented copies of itself.

    images = augmix(images, chains=3, severity=3, seed=seed_pair)    # uint8 in, uint8 out

Each chain applies one geometric operation (rotate, shear or translate along x or y, drawn
per image) and one pixel operation (autocontrast, posterize, solarize or none); chain
weights are Dirichlet(1) and the mix with the original Beta(1, 1), per image, as in the
paper. Left out: the Jensen-Shannon consistency loss (it needs three forward passes per
image) and ``equalize`` (a per-image histogram, which does not vectorise). Like the paper,
no operation overlaps the CIFAR-10-C corruptions (no noise, blur, contrast or brightness).
"""

from __future__ import annotations

import math

import tensorflow as tf


def _geometric(images: tf.Tensor, strength: float, seed: tf.Tensor) -> tf.Tensor:
    """One random affine operation per image, through one projective-transform op."""
    shape = tf.shape(images)
    batch, size = shape[0], tf.cast(shape[1], tf.float32)
    kind = tf.random.stateless_uniform([batch], seed, 0, 5, dtype=tf.int32)
    amount = tf.random.stateless_uniform([batch], seed + [0, 1], -1.0, 1.0) * strength
    angle = amount * math.radians(30)
    cos, sin, zero, one = tf.cos(angle), tf.sin(angle), tf.zeros([batch]), tf.ones([batch])
    centre = (size - 1) / 2
    rotate = [cos, -sin, centre - cos * centre + sin * centre, sin, cos, centre - sin * centre - cos * centre]
    shear = amount * 0.3
    shift = amount * size / 3
    options = [
        rotate,
        [one, shear, -shear * centre, zero, one, zero],  # shear x
        [one, zero, zero, shear, one, -shear * centre],  # shear y
        [one, zero, shift, zero, one, zero],  # translate x
        [one, zero, zero, zero, one, shift],  # translate y
    ]
    stacked = tf.stack([tf.stack(o, axis=1) for o in options], axis=1)  # (B, 5, 6)
    chosen = tf.gather(stacked, kind, axis=1, batch_dims=1)
    transforms = tf.concat([chosen, tf.zeros([batch, 2])], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images,
        transforms=transforms,
        output_shape=shape[1:3],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )


def _pixel(images: tf.Tensor, strength: float, seed: tf.Tensor) -> tf.Tensor:
    """One of autocontrast, posterize, solarize or nothing, per image (floats in [0, 255])."""
    batch = tf.shape(images)[0]
    low = tf.reduce_min(images, axis=[1, 2], keepdims=True)
    high = tf.reduce_max(images, axis=[1, 2], keepdims=True)
    autocontrast = (images - low) * 255.0 / tf.maximum(high - low, 1.0)
    bits = 8.0 - tf.round(tf.random.stateless_uniform([batch, 1, 1, 1], seed, 0.0, 4.0 * strength))
    step = tf.pow(2.0, 8.0 - bits)
    posterize = tf.floor(images / step) * step
    threshold = 256.0 - tf.random.stateless_uniform([batch, 1, 1, 1], seed + [0, 1], 0.0, 256.0 * strength)
    solarize = tf.where(images >= threshold, 255.0 - images, images)
    kind = tf.random.stateless_uniform([batch], seed + [0, 2], 0, 4, dtype=tf.int32)
    stacked = tf.stack([images, autocontrast, posterize, solarize], axis=1)
    return tf.gather(stacked, kind, axis=1, batch_dims=1)


def augmix(images: tf.Tensor, chains: int, severity: int, seed: tf.Tensor) -> tf.Tensor:
    """``images`` (uint8 batch) mixed with ``chains`` augmented copies; ``severity`` 1-10
    scales every operation (the paper's default for CIFAR: 3 chains at severity 3)."""
    floats = tf.cast(images, tf.float32)
    batch = tf.shape(images)[0]
    strength = min(severity, 10) / 10
    uniform = tf.random.stateless_uniform([batch, chains], seed, 1e-6, 1.0)
    weights = -tf.math.log(uniform)  # Dirichlet(1, ..., 1): normalised exponentials
    weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
    mixed = tf.zeros_like(floats)
    for k in range(chains):
        chain_seed = seed + [0, 10 * (k + 1)]
        copy = _pixel(_geometric(floats, strength, chain_seed), strength, chain_seed + [0, 5])
        mixed += weights[:, k, None, None, None] * copy
    m = tf.random.stateless_uniform([batch, 1, 1, 1], seed + [0, 99])  # Beta(1, 1)
    out = (1.0 - m) * floats + m * mixed
    return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)
