"""Cheaper CPU kernels for the same maths (used by ``fast``; see ``benchmark --profile``).

- ``FusedBatchNorm``: Keras' BatchNormalization computes batch moments and normalises in
  separate element-wise ops (five passes over the activations, more in the backward pass);
  in training this layer calls TensorFlow's fused kernel (oneDNN on a CPU) instead: one op
  forward, one backward. Inference, other backends and frozen layers use Keras' own path.
- ``gelu``: the exact (erf) GELU with a hand-written gradient: TensorFlow differentiates its
  composite GELU op by op; this needs three element-wise ops for the backward pass.
Both give the same numbers as the Keras originals (checked in tests/test_models.py).
"""

from __future__ import annotations

import math

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="cifar_core")
class FusedBatchNorm(layers.BatchNormalization):
    """BatchNormalization over the last axis of NHWC tensors, fused in training (TensorFlow)."""

    def call(self, inputs, training=None, mask=None):
        if (
            not (training and self.trainable)
            or keras.backend.backend() != "tensorflow"
            or inputs.shape.rank != 4
        ):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones([channels], "float32")
        offset = self.beta if self.center else tf.zeros([channels], "float32")
        y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.cast(scale, "float32"),
            offset=tf.cast(offset, "float32"),
            mean=tf.zeros([0], "float32"),
            variance=tf.zeros([0], "float32"),
            epsilon=self.epsilon,  # the raw op takes any epsilon (airbench: 1e-12)
            exponential_avg_factor=1.0,
            data_format="NHWC",
            is_training=True,
        )
        n = tf.cast(tf.size(inputs) // channels, "float32")
        variance = variance * (n - 1.0) / n  # the op returns the unbiased variance; Keras keeps the biased
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + tf.cast(mean, self.moving_mean.dtype) * (1 - m))
        self.moving_variance.assign(
            self.moving_variance * m + tf.cast(variance, self.moving_variance.dtype) * (1 - m)
        )
        return tf.cast(y, self.compute_dtype)


_SQRT_HALF = 1 / math.sqrt(2)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


@keras.saving.register_keras_serializable(package="cifar_core")
def gelu(x):
    """Exact GELU, x * Phi(x), with its gradient Phi(x) + x * phi(x) written out."""
    if keras.backend.backend() != "tensorflow":
        return keras.activations.gelu(x, approximate=False)
    import tensorflow as tf

    @tf.custom_gradient
    def _gelu(x):
        cdf = 0.5 * (1.0 + tf.math.erf(x * _SQRT_HALF))

        def grad(dy):
            return dy * (cdf + x * tf.exp(-0.5 * x * x) * _INV_SQRT_2PI)

        return x * cdf, grad

    return _gelu(x)
