"""What a run's data looked like, written with the run when it is trained.

    facts = datafacts.describe(data, splits)          # stored as the run's data_facts.json
    picks = datafacts.samples_per_class(y, available, 10, 8)   # a few images of each class

What all runs together say about the test set (label errors) is ``crossrun``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

SAMPLED_FILES = 400  # files per split whose header is read for the size and mode facts


def describe(data, splits) -> dict[str, Any]:
    """Class counts per split as training used them, per-channel mean and standard deviation
    of the train split (0-255), and the files' formats and sizes when read from a folder."""
    k = len(data.class_names)
    counts = {
        name: np.bincount(np.asarray(y, dtype=np.int64), minlength=k).tolist()
        for name, y in (("train", splits.y_train), ("val", splits.y_val), ("test", data.y_test))
    }
    # float64 accumulators: a float32 sum over millions of pixels loses precision (numpy
    # sums along a strided axis without pairwise summation).
    x = np.asarray(splits.x_train).reshape(-1, 3)
    mean = x.mean(0, dtype=np.float64)
    std = np.sqrt(
        sum(((x[i : i + 2**22] - mean) ** 2).sum(0) for i in range(0, len(x), 2**22)) / max(len(x), 1)
    )
    return {
        "source": data.source,
        "checksum": data.checksum,
        "class_names": list(data.class_names),
        "class_counts": counts,
        "channel_mean": [round(float(v), 3) for v in mean],
        "channel_std": [round(float(v), 3) for v in std],
        "image_shape": list(data.x_train.shape[1:]),
        "files": file_facts(Path(data.root)) if data.kind == "image_folder" and data.root else None,
    }


def file_facts(root: Path, sample: int = SAMPLED_FILES, seed: int = 0) -> dict[str, Any]:
    """Per split: how many files of each extension, and the sizes and colour modes found
    in the headers of a seeded sample of them (decoding makes every image 32x32 RGB)."""
    from PIL import Image

    out: dict[str, Any] = {}
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        files = sorted(p for p in (root / split).glob("*/*") if p.is_file())
        if not files:
            continue
        chosen = [files[i] for i in sorted(rng.choice(len(files), min(sample, len(files)), replace=False))]
        sizes, modes = Counter(), Counter()
        for path in chosen:
            try:
                with Image.open(path) as image:
                    sizes[f"{image.width}x{image.height}"] += 1
                    modes[f"{image.format} {image.mode}"] += 1
            except Exception:  # noqa: BLE001 - an unreadable file is a fact too
                modes["unreadable"] += 1
        out[split] = {
            "files": len(files),
            "extensions": dict(Counter(p.suffix.lower() or "(none)" for p in files).most_common()),
            "sampled": len(chosen),
            "sizes": dict(sizes.most_common()),
            "formats": dict(modes.most_common()),
        }
    return out


def samples_per_class(
    y: np.ndarray, available: np.ndarray, num_classes: int, per_class: int, seed: int = 0
) -> list[np.ndarray]:
    """For each class, up to ``per_class`` seeded picks among the ``available`` indices."""
    rng = np.random.default_rng(seed)
    y, available = np.asarray(y), np.asarray(available, dtype=int)
    out = []
    for c in range(num_classes):
        pool = available[y[available] == c]
        out.append(np.sort(rng.choice(pool, min(per_class, len(pool)), replace=False)) if len(pool) else pool)
    return out
