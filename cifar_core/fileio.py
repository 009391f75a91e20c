"""Writing files so that a reader never sees half of one: the one atomic-write helper.

    atomic_write(path, data)          # bytes -> a temporary sibling, fsync, rename
    write_json(path, value)           # sorted, indented, numpy-aware
    save_npy(path, array)             # an .npy that appears whole or not at all

A process killed mid-write leaves at most a hidden ``.<name>.<random>.tmp`` beside the
target; the target itself is the old file or the new one, never a mix.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (same-folder temporary file + rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=json_default).encode()


def write_json(path: str | os.PathLike, value: Any) -> Path:
    return atomic_write(path, json_bytes(value))


def npz_bytes(compressed: bool = True, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def save_npy(path: str | os.PathLike, array: np.ndarray) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return atomic_write(path, buffer.getvalue())
