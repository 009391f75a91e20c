"""A map of the test set: a run's penultimate-layer features, reduced to 2-D, and neighbours.

    extract = embeddings.feature_model(model)       # once per loaded model
    feats = embeddings.features(extract, x_test)    # (N, D) float32: what the last Dense reads
    arrays = embeddings.reduce(feats, seed=0)       # PCA to 50 dimensions, then t-SNE to 2-D
    order, similarity = embeddings.neighbours(arrays, arrays["pca"][i], k=12)
    order, similarity = embeddings.neighbours(arrays, embeddings.project(arrays, feats_of_upload))

The features are the input of the model's last Dense layer (global pooling for ``fast``,
ResNet-20 and the transfer models, the hidden Dense layer for the Flatten CNNs), found
from the graph, not named per model. PCA keeps the directions that carry most of their
variance (50, as t-SNE's authors advise for the reduction before it); t-SNE
(scikit-learn, seeded, PCA initialisation) draws the 2-D map. Stored per run: the map
(float16, N x 2), the 50-D PCA coordinates for neighbours (float16, divided by their
largest absolute value, ``scale``) and the PCA itself (mean and components, float32), so
an upload can be placed among the test images.
Neighbours are by cosine similarity in the 50-D space.
"""

from __future__ import annotations

import numpy as np

from cifar_core.errors import CifarError

PCA_DIMS = 50
PERPLEXITY = 30.0
METHOD = "PCA-50 + t-SNE"


class EmbeddingError(CifarError):
    """The model has no layer to take features from, or the arrays do not fit the map."""


def feature_layer(model):
    """The model's last Dense layer (at the top level): its input is the feature vector."""
    dense = [layer for layer in model.layers if type(layer).__name__ == "Dense"]
    if not dense:
        raise EmbeddingError(f"{model.name}: no Dense layer whose input could serve as features")
    return dense[-1]


def feature_model(model):
    """A Keras model from the same inputs to the penultimate features (shares the weights).
    A model whose last layer is a whole model (your own, behind the workbench's uint8
    input) gives that inner model's features."""
    import keras

    last = model.layers[-1] if model.layers else None
    if isinstance(last, keras.Model) and not any(type(x).__name__ == "Dense" for x in model.layers):
        node = last._inbound_nodes[-1]  # where the outer graph calls it (no public name for it)
        inner = feature_model(last)
        return keras.Model(model.inputs, inner(node.input_tensors[0]), name=f"{model.name}_features")
    layer = feature_layer(model)
    return keras.Model(model.inputs, layer.input, name=f"{model.name}_features")


def features(extract, x: np.ndarray) -> np.ndarray:
    """(N, D) float32 penultimate-layer features of uint8 images ``x``; ``extract`` is
    ``feature_model(model)`` or its ``inference.Predictor``."""
    from cifar_core.serving.inference import as_predictor

    return as_predictor(extract)(x).reshape(len(x), -1)


def reduce(feats: np.ndarray, seed: int = 0, pca_dims: int = PCA_DIMS) -> dict[str, np.ndarray]:
    """PCA then t-SNE: the arrays a run stores as its map (see ``artifacts.write_embedding``)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    feats = np.asarray(feats, dtype=np.float32)
    n, d = feats.shape
    if n < 5:
        raise EmbeddingError(f"a map needs at least 5 images, got {n}")
    dims = max(2, min(pca_dims, n - 1, d))
    pca = PCA(n_components=dims, random_state=seed).fit(feats)
    coords = pca.transform(feats).astype(np.float32)
    perplexity = min(PERPLEXITY, (n - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed)
    xy = tsne.fit_transform(coords)
    xy = (xy - xy.mean(0)) / (np.abs(xy - xy.mean(0)).max() or 1.0)  # about [-1, 1]: float16 keeps it
    scale = float(np.abs(coords).max()) or 1.0  # raw coordinates can exceed float16's 65,504
    return {
        "xy": xy.astype(np.float16),
        "pca": (coords / scale).astype(np.float16),
        "scale": np.float32(scale),
        "mean": pca.mean_.astype(np.float32),
        "components": pca.components_.astype(np.float32),
        "explained": np.float32(pca.explained_variance_ratio_.sum()),
        "perplexity": np.float32(perplexity),
        "seed": np.int32(seed),
    }


def project(arrays: dict[str, np.ndarray], feats: np.ndarray) -> np.ndarray:
    """Features of new images (N, D) in the map's PCA space (N, P)."""
    feats = np.asarray(feats, dtype=np.float32).reshape(len(feats), -1)
    if feats.shape[1] != arrays["mean"].shape[0]:
        raise EmbeddingError(
            f"features have {feats.shape[1]} dimensions, the map's PCA {arrays['mean'].shape[0]}"
        )
    return (feats - arrays["mean"]) @ arrays["components"].T / arrays["scale"]


def neighbours(
    arrays: dict[str, np.ndarray], query: np.ndarray, k: int = 12, exclude: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ``k`` test images nearest to ``query`` (a PCA-space vector) by cosine
    similarity, nearest first, and their similarities; ``exclude``: the query's own index."""
    points = np.asarray(arrays["pca"], dtype=np.float32)
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    norms = np.linalg.norm(points, axis=1) * (np.linalg.norm(query) or 1.0)
    similarity = points @ query / np.where(norms > 0, norms, 1.0)
    if exclude is not None:
        similarity[exclude] = -np.inf
    order = np.argsort(-similarity, kind="stable")[: min(k, len(points) - (exclude is not None))]
    return order, similarity[order]


def neighbour_vote(y: np.ndarray, order: np.ndarray, class_names: list[str]) -> list[tuple[str, int]]:
    """How many of the neighbours carry each label, most first: where the image belongs."""
    counts = np.bincount(np.asarray(y)[order], minlength=len(class_names))
    return [(class_names[c], int(counts[c])) for c in np.argsort(-counts, kind="stable") if counts[c]]
