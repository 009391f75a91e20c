"""Read a legacy-format PyTorch ``.pth`` state dict into NumPy arrays, without torch.

The legacy format (``torch.save(..., _use_new_zipfile_serialization=False)``) is a
sequence of pickles followed by raw data:

    pickle(magic number) pickle(protocol version) pickle(system info)
    pickle(state dict; tensors refer to storages by persistent id)
    pickle(list of storage keys, in file order)
    for each key: int64 little-endian element count, then count raw elements

Unpickling is restricted to the few globals such a file needs (an OrderedDict, tensor
rebuild functions, storage types), so a hostile file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

from cifar_core.errors import WeightsError, reraised_as

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class PthError(WeightsError):
    """A file that is not a legacy PyTorch state dict this reader understands."""


class _StorageType:
    def __init__(self, name: str):
        if name not in STORAGE_DTYPES:
            raise PthError(f"unsupported storage type torch.{name}")
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
    """A storage announced by the pickle; its data is read after the pickles."""

    def __init__(self, key: str, dtype: np.dtype, size: int):
        self.key, self.dtype, self.size = key, dtype, size
        self.data: np.ndarray | None = None


class _LazyTensor:
    """A tensor view on a storage, materialised once the storages are read."""

    def __init__(self, storage: _Storage, offset: int, shape: tuple, stride: tuple):
        self.storage, self.offset, self.shape, self.stride = storage, offset, tuple(shape), tuple(stride)

    def materialise(self) -> np.ndarray:
        base = self.storage.data
        if base is None:
            raise PthError(f"storage {self.storage.key} has no data")
        count = int(np.prod(self.shape)) if self.shape else 1
        if count and self.offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride)) >= base.size:
            raise PthError(f"tensor view exceeds storage {self.storage.key}")
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset :], shape=self.shape, strides=[st * item for st in self.stride]
        )
        return np.array(view)  # own the memory, contiguous


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, stream, storages: dict[str, _Storage]):
        super().__init__(stream)
        self.storages = storages

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise PthError(f"refusing to load {module}.{name} from a .pth file")

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise PthError(f"unexpected persistent id {pid!r}")
        storage_type, key, size = pid[1], str(pid[2]), int(pid[4])
        if not isinstance(storage_type, _StorageType):
            raise PthError(f"unexpected storage type {storage_type!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, size)
        return self.storages[key]


def read_state_dict(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """Return the state dict of a legacy-format ``.pth`` file as NumPy arrays."""
    path = Path(path)
    try:
        stream = io.BytesIO(path.read_bytes())
    except OSError as error:
        raise PthError(f"{path}: cannot read ({error})") from None

    def unreadable(error: Exception) -> str:
        return f"{path}: not a readable legacy .pth file ({type(error).__name__}: {error})"

    with reraised_as(PthError, unreadable):
        if pickle.load(stream) != LEGACY_MAGIC:
            raise PthError(f"{path}: not a legacy PyTorch file (bad magic number)")
        pickle.load(stream)  # protocol version
        info = pickle.load(stream)
        if not (isinstance(info, dict) and info.get("little_endian", True)):
            raise PthError(f"{path}: big-endian files are not supported")
        storages: dict[str, _Storage] = {}
        state = _RestrictedUnpickler(stream, storages).load()
        keys = pickle.load(stream)
        for key in keys:
            storage = storages[str(key)]
            (count,) = struct.unpack("<q", stream.read(8))
            raw = stream.read(count * storage.dtype.itemsize)
            if count != storage.size or len(raw) != count * storage.dtype.itemsize:
                raise PthError(f"{path}: storage {key} is truncated or has the wrong size")
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    if not isinstance(state, dict):
        raise PthError(f"{path}: expected a state dict, got {type(state).__name__}")
    return OrderedDict(
        (name, value.materialise() if isinstance(value, _LazyTensor) else np.asarray(value))
        for name, value in state.items()
    )
