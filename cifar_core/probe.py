"""Linear probes of frozen EfficientNet-Lite0 features: which input size and which layers
give a frozen backbone the most validation accuracy per minute
(``python -m cifar_core probe --sizes 128,160``).

For each input size the ImageNet backbone runs once over a train subset and validation
images (carved from train with the training seed: the test split is never touched); the
average- and max-pooled activations of several blocks are kept, and a scikit-learn
logistic regression is fitted on each feature set. Prints images/s and the validation
accuracy of each feature set.
"""

from __future__ import annotations

import time

import numpy as np

# (label, [(tap, pooling), ...]) feature sets compared by the probe.
TAPS = {"b10": "block10_add", "b14": "block14_add", "b15": "block15_project_bn", "head": "head_relu6"}
FEATURE_SETS = (
    ("head conv, average", [("head", "avg")]),
    ("head conv, average + max", [("head", "avg"), ("head", "max")]),
    ("blocks 10, 14 + head conv, average", [("b10", "avg"), ("b14", "avg"), ("head", "avg")]),
    ("blocks 10, 14, 15 + head conv, average + max", [(t, p) for t in TAPS for p in ("avg", "max")]),
)


def pooled_features(size: int, x: np.ndarray, weights: str = "imagenet", batch: int = 128) -> dict:
    """{(tap, "avg"|"max"): (N, C)} for uint8 images ``x``, and the images/s it took."""
    import keras

    from cifar_core.models.transfer import _lite0

    base = _lite0(size, weights)
    inputs = keras.Input((32, 32, 3), dtype="uint8")
    y = keras.layers.Resizing(size, size, interpolation="bilinear")(inputs)
    y = keras.layers.Rescaling(1 / 128, offset=-127 / 128)(y)
    model = keras.Model(inputs, keras.Model(base.input, [base.get_layer(t).output for t in TAPS.values()])(y))
    parts: dict = {}
    start = time.perf_counter()
    for i in range(0, len(x), batch):
        for tap, out in zip(TAPS, model.predict_on_batch(x[i : i + batch])):
            out = np.asarray(out, dtype=np.float32)
            parts.setdefault((tap, "avg"), []).append(out.mean(axis=(1, 2)))
            parts.setdefault((tap, "max"), []).append(out.max(axis=(1, 2)))
    seconds = time.perf_counter() - start
    return {k: np.concatenate(v) for k, v in parts.items()}, len(x) / seconds


def probe(
    data,
    sizes,
    n_train: int = 8000,
    n_val: int = 3000,
    seed: int = 0,
    val_size: int = 5000,
    weights: str = "imagenet",
):
    """Rows of {size, images_per_s, features, dims, val_accuracy}; the validation images are
    the first ``n_val`` of the split training carves out (``val_size``, ``seed``)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from cifar_core.data import split_train_val

    x_tr, y_tr, x_val, y_val = split_train_val(data.x_train, data.y_train, val_size, seed)
    x_tr, y_tr, x_val, y_val = x_tr[:n_train], y_tr[:n_train], x_val[:n_val], y_val[:n_val]
    rows = []
    for size in sizes:
        features, speed = pooled_features(size, np.concatenate([x_tr, x_val]), weights)
        for label, keys in FEATURE_SETS:
            f = np.concatenate([features[k] for k in keys], axis=1)
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=300))
            clf.fit(f[: len(x_tr)], y_tr)
            rows.append(
                {
                    "size": size,
                    "images_per_s": speed,
                    "features": label,
                    "dims": f.shape[1],
                    "val_accuracy": float(clf.score(f[len(x_tr) :], y_val)),
                }
            )
    return rows
