"""torch storages <-> archive records. Only called once torch is already loaded."""

from __future__ import annotations

import ctypes
import warnings
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "StorageOf",
    "StorageRef",
    "describe_storage",
    "load_storage",
    "restore_location",
    "storage_bytes",
    "tensor_reducers",
]


@dataclass(frozen=True)
class StorageRef:
    """What a pickle records about one storage: ``("storage", type, key, location, numel)``."""

    untyped: Any  # torch.UntypedStorage
    storage_type: Any  # a legacy storage class (FloatStorage, ...) or torch.UntypedStorage
    numel: int
    location: str


class StorageOf:
    """A tensor's storage as ``tensor_reducers`` put it in a pickle: what torch's own
    reduction wraps in a ``TypedStorage``, without building one."""

    __slots__ = ("dtype", "untyped")

    def __init__(self, untyped: Any, dtype: Any) -> None:
        self.untyped = untyped
        self.dtype = dtype


def describe_storage(obj: Any, torch: Any) -> StorageRef | None:
    """A StorageRef if ``obj`` is a storage, else None."""
    location_tag = torch.serialization.location_tag
    if type(obj) is StorageOf:
        untyped, dtype = obj.untyped, obj.dtype
        storage_type = _storage_types.get(dtype) or _storage_type_of(torch, dtype)
        return StorageRef(
            untyped, storage_type, untyped.nbytes() // dtype.itemsize, location_tag(untyped)
        )
    if isinstance(obj, torch.storage.TypedStorage):
        untyped = obj._untyped_storage
        storage_type = _storage_type(torch, obj)
        # nbytes // itemsize: TypedStorage._size() looks the element size up slowly.
        numel = untyped.nbytes() // obj.dtype.itemsize
        return StorageRef(untyped, storage_type, numel, location_tag(untyped))
    if isinstance(obj, torch.UntypedStorage):
        return StorageRef(obj, torch.UntypedStorage, obj.nbytes(), location_tag(obj))
    return None


_storage_types: dict[Any, Any] = {}


def _storage_type_of(torch: Any, dtype: Any) -> Any:
    typed = torch.empty(0, dtype=dtype)._typed_storage()
    storage_type = _storage_types[dtype] = _storage_type(torch, typed)
    return storage_type


Reduce = Callable[[Any], Any]


def tensor_reducers(torch: Any, protocol: int) -> dict[type, Reduce]:
    """Reductions of plain tensors and parameters for a pickler's ``dispatch_table``.

    They give the pickle torch's ``__reduce_ex__`` gives (the same rebuild
    functions and arguments; the storage as a :class:`StorageOf`, which the
    exporter's persistent ids write as they write a ``TypedStorage``), at a
    fraction of its cost: torch's general reduction is most of the time a model
    of thousands of small tensors takes to export. Anything less plain than a
    dense CPU or CUDA tensor without Python state, hooks, conjugate or negative
    bits, or a newer dtype is left to torch.
    """
    rebuild_tensor = torch._utils._rebuild_tensor_v2
    rebuild_parameter = torch._utils._rebuild_parameter
    newer_dtypes = frozenset(torch.storage._new_dtypes())
    flags = torch.serialization._serialization_tls
    has_storage, metadata = torch._C._has_storage, torch._C._get_tensor_metadata
    strided = torch.strided

    def plain(tensor: Any) -> bool:
        return (
            (tensor.is_cpu or tensor.is_cuda)
            and tensor.layout is strided
            and not tensor.__dict__
            and tensor._backward_hooks is None
            and not tensor.is_quantized
            and not tensor.is_nested
            and tensor.dtype not in newer_dtypes
            and has_storage(tensor)
            and not metadata(tensor)
            and not flags.skip_data
            and not flags.materialize_fake_tensors
        )

    def reduce_tensor(tensor: Any) -> Any:
        if not plain(tensor):
            return tensor.__reduce_ex__(protocol)
        storage = StorageOf(tensor.untyped_storage(), tensor.dtype)
        return rebuild_tensor, (
            storage,
            tensor.storage_offset(),
            tuple(tensor.size()),
            tensor.stride(),
            tensor.requires_grad,
            OrderedDict(),
        )

    def reduce_parameter(parameter: Any) -> Any:
        if parameter.__dict__:  # Python state: torch's reduction keeps it
            return parameter.__reduce_ex__(protocol)
        return rebuild_parameter, (parameter.data, parameter.requires_grad, OrderedDict())

    return {torch.Tensor: reduce_tensor, torch.nn.Parameter: reduce_parameter}


_memory_view = ctypes.pythonapi.PyMemoryView_FromMemory
_memory_view.restype = ctypes.py_object
_memory_view.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
_PYBUF_READ = 0x100


def _storage_type(torch: Any, typed: Any) -> Any:
    """The legacy storage class torch.package records, or the dtype itself.

    Dtypes newer than the legacy classes (float8 kinds, uint16/32/64, ...) have
    none: torch.package cannot save them at all; we record the dtype, which our
    loader reads (torch.package's cannot, but it never wrote such archives).
    """
    try:
        return getattr(torch, typed._pickle_storage_type())
    except KeyError:
        return typed.dtype


def storage_bytes(untyped: Any) -> memoryview:
    """The storage's bytes; zero-copy for CPU storages."""
    if untyped.device.type != "cpu":
        untyped = untyped.cpu()
    nbytes = untyped.nbytes()
    if nbytes == 0:
        return memoryview(b"")
    # A read-only view straight over the storage's memory: no copy. It does not
    # keep the storage alive; the caller does, while it writes.
    return _memory_view(untyped.data_ptr(), nbytes, _PYBUF_READ)  # type: ignore[no-any-return]


def load_storage(torch: Any, data: memoryview) -> Any:
    """An UntypedStorage over ``data`` (no copy: the storage shares the buffer)."""
    if len(data) == 0:
        return torch.UntypedStorage(0)
    return torch.frombuffer(data, dtype=torch.uint8).untyped_storage()


_dtypes: dict[Any, Any] = {}


def storage_dtype(torch: Any, storage_type: Any) -> Any:
    """The dtype a pickled storage type stands for."""
    if storage_type is torch.UntypedStorage:
        return torch.uint8
    if isinstance(storage_type, torch.dtype):
        return storage_type
    dtype = _dtypes.get(storage_type)
    if dtype is None:
        # Legacy storage classes warn that TypedStorage is deprecated on every
        # .dtype access; the archive format still names them, so ask once.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            dtype = _dtypes[storage_type] = storage_type.dtype
    return dtype


RestoreLocation = Callable[[Any, str], Any]


def restore_location(torch: Any, map_location: Any) -> RestoreLocation:
    """``map_location`` in any form torch.load takes -> f(storage, location)."""
    from torch import serialization

    default_restore_location: RestoreLocation = serialization.default_restore_location
    if map_location is None:
        return default_restore_location
    if isinstance(map_location, dict):
        mapping = dict(map_location)
        return lambda storage, location: default_restore_location(
            storage, mapping.get(location, location)
        )
    if isinstance(map_location, (str, bytes)):
        target = map_location.decode() if isinstance(map_location, bytes) else map_location
        return lambda storage, location: default_restore_location(storage, target)
    if isinstance(map_location, torch.device):
        device = str(map_location)
        return lambda storage, location: default_restore_location(storage, device)
    if callable(map_location):
        user = map_location

        def restore(storage: Any, location: str) -> Any:
            result = user(storage, location)
            return default_restore_location(storage, location) if result is None else result

        return restore
    raise TypeError(
        "map_location must be None, a str, a torch.device, a dict of location strings or a "
        f"callable (storage, location) -> storage, not {type(map_location).__name__}"
    )
