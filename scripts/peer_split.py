"""Lay out the workbench's train/validation split as an image folder a peer can read.

    python scripts/peer_split.py ../shared/data/cifar10-jpeg /tmp/cifar10-valsplit [--val-size 5000 --seed 0]

Writes ``OUT/train/<class>/`` (the images `fast` trains on) and ``OUT/test/<class>/`` (its
validation images) as symbolic links to the originals. A peer that validates on its "test"
folder every epoch (airbench94_cpu.py does) then reports per-epoch accuracy on exactly the
workbench's validation split, and the real test split stays untouched.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from cifar_core.data import auto_val_size
from cifar_core.data.folders import _class_names, _list_images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--val-size", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from sklearn.model_selection import train_test_split

    root = args.data_dir.resolve()
    classes = _class_names(root)
    files = _list_images(root, classes)["train"]
    labels = np.array([label for _, label in files])
    size = auto_val_size(len(files)) if args.val_size is None else args.val_size
    # The same call as data.split_train_val: the partition depends only on (n, labels, seed).
    train_idx, val_idx = train_test_split(
        np.arange(len(files)), test_size=size, random_state=args.seed, stratify=labels
    )
    for split, idx in (("train", train_idx), ("test", val_idx)):
        for i in idx:
            path, label = files[i]
            link = args.out / split / classes[label] / path.name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(path)
    print(f"{args.out}: train {len(train_idx)}, validation (as test) {len(val_idx)}")


if __name__ == "__main__":
    main()
