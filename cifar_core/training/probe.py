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

# (label, [(tap, pooling), ...]) feature sets compared by the probe; taps as in LITE0_TAPS.
TAPS = {"b10": "block10_add", "b14": "block14_add", "b15": "block15_project_bn", "head": "head_relu6"}
FEATURE_SETS = (
    ("head conv, average", [("head", "avg")]),
    ("head conv, average + max", [("head", "avg"), ("head", "max")]),
    ("blocks 10, 14 + head conv, average", [("b10", "avg"), ("b14", "avg"), ("head", "avg")]),
    ("blocks 10, 14, 15 + head conv, average + max", [(t, p) for t in TAPS for p in ("avg", "max")]),
)


def pooled_features(size: int, x: np.ndarray, weights: str = "imagenet", batch: int = 128) -> tuple:
    """{(tap, "avg"|"max"): (N, C)} for uint8 images ``x``, and the images/s it took.

    Computed by the frozen front of the ``efficientnet_lite0_frozen`` model itself (resize,
    Lite0 scaling, backbone, multi-scale pooling), then cut into its per-tap parts.
    """
    from cifar_core.models import create_model
    from cifar_core.models.transfer import LITE0_TAPS
    from cifar_core.training import finetune

    assert tuple(TAPS.values()) == LITE0_TAPS
    model = create_model("efficientnet_lite0", weights=weights, input_size=size, taps=LITE0_TAPS)
    front = finetune.split(model, 0).frozen
    start = time.perf_counter()
    vectors = np.concatenate(
        [np.asarray(front.predict_on_batch(x[i : i + batch]), np.float32) for i in range(0, len(x), batch)]
    )
    seconds = time.perf_counter() - start
    base, parts, offset = model.get_layer("backbone"), {}, 0
    for tap, layer in TAPS.items():  # the vector holds [average, max] per tap, in order
        channels = base.get_layer(layer).output.shape[-1]
        for pooling in ("avg", "max"):
            parts[(tap, pooling)] = vectors[:, offset : offset + channels]
            offset += channels
    assert offset == vectors.shape[1]
    return parts, len(x) / seconds


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
