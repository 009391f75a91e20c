"""Two-phase transfer learning: head on a frozen backbone, then the backbone's top fine-tuned.

Phase 1 trains the head only; phase 2 unfreezes the top ``fine_tune_layers`` layers of the
backbone (BatchNorm stays frozen, so in inference mode) at ``fine_tune_lr_factor`` times the
learning rate (``phases.plan`` says which phase does what).

On a CPU the frozen part dominates the cost, and when augmentation is at most a flip its
output never changes, so it is computed once per image (and its mirror) and cached:

    pixels -> [resize -> preprocess -> lower backbone]  ->  A   (cached, float16)
    A      -> upper backbone -> pool -> head -> probs          (trained, both phases)

``lower`` ends where phase 2's unfrozen layers begin. The trained layers are the model's
own layer objects, so training the small graph trains the model that is saved.

Cached activations are the same every epoch, and a fine-tuned top overfits them; a phase 2
with its own translating augmentation (``fine_tune_augment``) therefore trains on pixels,
and phase 1 then caches the whole frozen backbone instead (``phases.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from cifar_core.fileio import save_npy
from cifar_core.models.registry import flat_layers

BACKBONE, POOL = "backbone", "pool"
PRE_LAYERS = ("resize", "preprocess")


@dataclass
class SplitModel:
    """The frozen front (pixels -> A) and the trained back (A -> probs) of a transfer model."""

    frozen: keras.Model
    trained: keras.Model
    split_layer: str  # the last backbone layer of the frozen front ("" = input)


def backbone_layers(model: keras.Model) -> int:
    """A transfer model's backbone depth (0 for a model without one)."""
    names = {layer.name for layer in model.layers}
    return len(model.get_layer(BACKBONE).layers) if BACKBONE in names else 0


def apply_phase(model: keras.Model, unfrozen: int | None) -> list[str]:
    """Make a phase's layers trainable (``Phase.unfrozen``: None leaves every layer as built,
    else the backbone's top ``unfrozen`` layers train, BatchNorm aside, 0 = frozen); return
    the names of the trainable layers with weights."""
    if unfrozen is None:
        return [layer.name for layer in model.layers if layer.trainable_weights]
    base = model.get_layer(BACKBONE)
    if unfrozen <= 0:
        base.trainable = False
    else:
        base.trainable = True
        first = max(len(base.layers) - unfrozen, 0)
        for index, layer in enumerate(base.layers):
            layer.trainable = index >= first and not isinstance(layer, keras.layers.BatchNormalization)
    return [
        layer.name
        for layer in flat_layers(model)
        if layer.trainable and layer.trainable_weights and _ancestors_trainable(model, layer)
    ]


def _ancestors_trainable(model: keras.Model, layer) -> bool:
    base = model.get_layer(BACKBONE)
    return base.trainable or layer not in base.layers


def split(model: keras.Model, cut: int) -> SplitModel:
    """Split ``model`` at the first layer phase 2 unfreezes (or after the whole backbone)."""
    base = model.get_layer(BACKBONE)
    first = len(base.layers) - max(cut, 0)
    upper, cut = None, len(base.layers)
    if first < len(base.layers):
        # Move the cut earlier until the upper part depends on the cut tensor alone
        # (a cut inside a residual block would leave the shortcut dangling).
        for cut in range(first, 0, -1):
            try:
                upper = keras.Model(base.layers[cut - 1].output, base.output, name="upper_backbone")
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"cannot split {base.name} below layer {first}")
    tensor = base.layers[cut - 1].output
    lower = keras.Model(base.input, tensor, name="lower_backbone")
    pixels = model.input
    x = pixels
    for name in PRE_LAYERS:
        x = model.get_layer(name)(x)
    frozen = keras.Model(pixels, lower(x, training=False), name="frozen_front")
    cached = keras.Input(tensor.shape[1:], name="cached_activations")
    y = upper(cached, training=False) if upper is not None else cached
    after_pool = False
    for layer in model.layers:  # pool and the head, in graph order
        after_pool = after_pool or layer.name == POOL
        if after_pool:
            y = layer(y)
    return SplitModel(frozen, keras.Model(cached, y, name="trained_back"), base.layers[cut - 1].name)


def cached_activations(
    front: keras.Model, x: np.ndarray, path: Path, verbose: int, flip: bool = False
) -> np.ndarray:
    """``front(x)`` as float16, computed once and kept in ``path`` (.npy) across restarts."""
    if path.exists():
        try:
            return np.load(path)
        except Exception:  # half-written by a killed run: compute again
            path.unlink()
    if flip:
        x = x[:, :, ::-1, :]
    out = front.predict(np.ascontiguousarray(x), batch_size=128, verbose=verbose)
    out = out.astype(np.float16)
    save_npy(path, out)
    return out
