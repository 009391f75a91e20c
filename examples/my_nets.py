"""Two small models of your own, for the workbench's builder path.

    python -m cifar_core train --model examples/my_nets.py:small_cnn --data-dir DIR
    python -m cifar_core train --model examples/my_nets.py:tiny_resnet --set model_args.width=48 ...

A builder takes ``num_classes`` and its ``model_args`` (``--set model_args.NAME=VALUE``) as
keyword arguments and returns a ``keras.Model`` from a 32x32x3 image to class
probabilities (a softmax). ``small_cnn`` takes float pixels in [0, 1] (the workbench puts
a uint8 input and the scaling in front); ``tiny_resnet`` takes raw uint8 pixels and scales
them itself, as the zoo's models do.
"""

import keras
from keras import layers


def small_cnn(num_classes: int = 10, width: int = 32, dropout: float = 0.25) -> keras.Model:
    """Three conv-conv-pool blocks (width, 2x, 4x filters) with BatchNorm, global pooling."""
    inputs = keras.Input((32, 32, 3))  # float pixels in [0, 1]
    x = inputs
    for i, filters in enumerate((width, 2 * width, 4 * width)):
        for j in range(2):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"b{i}_conv{j}")(x)
            x = layers.BatchNormalization(name=f"b{i}_bn{j}")(x)
            x = layers.ReLU(name=f"b{i}_relu{j}")(x)
        x = layers.MaxPooling2D(name=f"b{i}_pool")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="small_cnn")


def tiny_resnet(num_classes: int = 10, width: int = 32) -> keras.Model:
    """A stem and two residual stages (width, 2x width), global pooling: uint8 in."""
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(width, 3, padding="same", activation="relu")(x)
    for stage, filters in enumerate((width, 2 * width)):
        stride = 1 if stage == 0 else 2
        shortcut = (
            x if stride == 1 and x.shape[-1] == filters else layers.Conv2D(filters, 1, strides=stride)(x)
        )
        y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False)(x)
        y = layers.BatchNormalization()(y)
        y = layers.ReLU()(y)
        y = layers.Conv2D(filters, 3, padding="same", use_bias=False)(y)
        y = layers.BatchNormalization()(y)
        x = layers.ReLU()(layers.Add()([shortcut, y]))
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs, name="tiny_resnet")
