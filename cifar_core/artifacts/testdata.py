"""Where a run's data is, and its test images as the models see them.

record = data_record(data, root, n_train, n_val)   # the manifest's "data"
folder = data_folder(run)                          # its image folder, if it is on this machine
images = test_images(run, [3, 17])                 # from that folder, else its thumbnails
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from cifar_core.artifacts.reading import Run
from cifar_core.data import images
from cifar_core.errors import ImageError


def project_dir(root: Path) -> Path:
    """What relative data paths in manifests are relative to: the folder holding ``root``."""
    return Path(root).resolve().parent


def relative_path(path: str | os.PathLike, root: Path) -> str:
    """``path`` relative to the project folder when they share more than ``/``, else absolute."""
    path, base = Path(path).resolve(), project_dir(root)
    if os.path.commonpath([path, base]) == path.anchor:
        return path.as_posix()
    return Path(os.path.relpath(path, base)).as_posix()


def data_record(data, root: Path, n_train: int, n_val: int) -> dict[str, Any]:
    """The manifest's ``data``: kind, root (relative where it can be), source, checksum, sizes."""
    return {
        "kind": data.kind,
        "root": relative_path(data.root, root) if data.root is not None else None,
        "source": data.source,
        "checksum": data.checksum,
        "n_train": int(n_train),
        "n_val": int(n_val),
        "n_test": int(len(data.y_test)),
    }


def data_folder(run: Run) -> Path | None:
    """The run's image folder on this machine, if it was trained on one and it is here."""
    data = run.manifest["data"]
    if data["kind"] != "image_folder" or not data.get("root"):
        return None
    folder = (project_dir(run.path.parent.parent) / data["root"]).resolve()
    return folder if folder.is_dir() else None


def test_images(run, indices) -> list[np.ndarray | None]:
    """A run's test images by index, as the models see them: decoded from the run's data
    folder when it is on this machine, else the thumbnails the run stored; None where
    neither has the image."""
    folder = data_folder(run)
    lookup = {int(i): k for k, i in enumerate(run.thumbnails["index"])}
    out = []
    for index in np.asarray(indices, dtype=int).reshape(-1):
        image = None
        if folder is not None:
            path = (folder / str(run.predictions["test_ids"][index])).resolve()
            if path.is_file() and folder in path.parents:
                try:
                    image = images.decode_image(path, max_bytes=images.MAX_FILE_BYTES)
                except ImageError:
                    image = None
        if image is None and int(index) in lookup:
            image = run.thumbnails["images"][lookup[int(index)]]
        out.append(image)
    return out


def available_test_indices(run) -> np.ndarray:
    """Test images that can be shown here: all if the data is on this machine, else thumbnails."""
    if data_folder(run) is not None:
        return np.arange(len(run.predictions["y_true"]))
    return np.asarray(run.thumbnails["index"], dtype=int)
