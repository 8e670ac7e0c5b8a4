"""Read PyTorch ``.pth`` state dicts into numpy arrays without PyTorch.

Both of PyTorch's file formats are read:

- the zip archive written since PyTorch 1.6: ``<name>/data.pkl`` (a pickle
  whose tensors point, by key, at raw storages ``<name>/data/<key>``) and
  ``<name>/byteorder``;
- the legacy stream: pickles of a magic number, a protocol version and
  system information, the pickled object, the list of storage keys, then
  each storage as an 8-byte element count and its raw bytes.

The pickle is read by an unpickler that builds only ordered dicts, tensors
and storages: any other class in the file (a whole pickled model, code) is
refused, so reading a file never runs code from it.
"""
import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# PyTorch's typed storage class names and the numpy dtype they hold.
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Tensor:
    """A tensor waiting for its storage's bytes (the legacy format stores
    them after the pickle)."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def to_numpy(self, storages):
        flat = storages[self.storage.key]
        view = self.storage.view
        if view is not None:
            flat = flat[view[0]: view[0] + view[1]]
        if not self.size:
            return flat[self.offset].copy()
        needed = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride)) + 1
        if min(self.size) > 0 and needed > flat.size:
            raise ValueError(f"a tensor of shape {self.size} runs past its storage of {flat.size} values")
        itemsize = flat.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size, strides=[s * itemsize for s in self.stride]
        ).copy()


class _StorageRef:
    def __init__(self, storage_type, key, numel, view=None):
        self.dtype, self.key, self.numel, self.view = storage_type.dtype, str(key), int(numel), view


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _Tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, *unused):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds ordered dicts, tensors and storage references, nothing else."""

    def __init__(self, handle, storages):
        super().__init__(handle)
        self.storages = storages  # key -> _StorageRef, filled while loading

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only tensors and dicts are read)")

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r:.60}")
        storage_type, key, _location, numel = pid[1:5]
        if not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r:.60}")
        view = pid[5] if len(pid) > 5 else None
        ref = self.storages.setdefault(str(key), _StorageRef(storage_type, key, numel))
        if view is not None:  # legacy views of a larger storage: (view key, offset, size)
            return _StorageRef(storage_type, key, numel, view=(int(view[1]), int(view[2])))
        return ref


def _arrays(obj, storages):
    """The ``{name: array}`` of a loaded state dict."""
    if not isinstance(obj, dict):
        raise ValueError(f"holds a {type(obj).__name__}, not a state dict")
    return {str(k): v.to_numpy(storages) for k, v in obj.items() if isinstance(v, _Tensor)}


def _read_zip(path):
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise ValueError("is a zip archive but not a PyTorch file (no single data.pkl)")
        prefix = pickles[0][: -len("data.pkl")]
        order = "little"
        if prefix + "byteorder" in names:
            order = archive.read(prefix + "byteorder").decode("ascii").strip()
        refs = {}
        obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), refs).load()
        storages = {}
        for key, ref in refs.items():
            raw = archive.read(f"{prefix}data/{key}")
            dtype = ref.dtype.newbyteorder("<" if order == "little" else ">")
            storages[key] = np.frombuffer(raw, dtype=dtype, count=ref.numel).astype(ref.dtype)
    return _arrays(obj, storages)


def _read_legacy(handle):
    magic = _RestrictedUnpickler(handle, {}).load()
    if magic != _LEGACY_MAGIC:
        raise ValueError("not a PyTorch file (neither a zip archive nor the legacy format)")
    protocol = _RestrictedUnpickler(handle, {}).load()
    if protocol != _LEGACY_PROTOCOL:
        raise ValueError(f"unsupported legacy protocol version {protocol!r}")
    sys_info = _RestrictedUnpickler(handle, {}).load()
    little = not isinstance(sys_info, dict) or sys_info.get("little_endian", True)
    refs = {}
    obj = _RestrictedUnpickler(handle, refs).load()
    keys = _RestrictedUnpickler(handle, {}).load()
    storages = {}
    for key in keys:
        ref = refs[str(key)]
        (count,) = struct.unpack("<q" if little else ">q", handle.read(8))
        raw = handle.read(count * ref.dtype.itemsize)
        if len(raw) != count * ref.dtype.itemsize:
            raise ValueError(f"is truncated (storage {key!r} has {len(raw)} of {count * ref.dtype.itemsize} bytes)")
        dtype = ref.dtype.newbyteorder("<" if little else ">")
        storages[str(key)] = np.frombuffer(raw, dtype=dtype).astype(ref.dtype)
    return _arrays(obj, storages)


def read_state_dict(path):
    """``{parameter name: numpy array}`` of a PyTorch ``.pth`` state dict.

    Args:
        path: a file written by ``torch.save(model.state_dict(), path)``, in
            the zip format (PyTorch >= 1.6) or the legacy one.

    Raises:
        ValueError: one line naming the file: missing, corrupt, truncated,
            not a PyTorch file, or holding objects other than tensors.

    Example:

    >>> read_state_dict("no-such.pth")
    Traceback (most recent call last):
    ...
    ValueError: no-such.pth: cannot read a PyTorch state dict (no such file)
    """
    name = os.fspath(path)
    try:
        if not os.path.isfile(name):
            raise ValueError("no such file")
        if zipfile.is_zipfile(name):
            return _read_zip(name)
        with open(name, "rb") as handle:
            return _read_legacy(handle)
    except (ValueError, KeyError, EOFError, struct.error, pickle.UnpicklingError, zipfile.BadZipFile,
            IndexError, TypeError, AttributeError, UnicodeDecodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{name}: cannot read a PyTorch state dict ({reason})") from None
