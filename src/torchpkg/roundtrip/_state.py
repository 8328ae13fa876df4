"""What a replay needs: the RNG states, and snapshots of inputs and outputs."""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import pickle
import random
import sys
import types
import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["RngState", "copy_inputs", "copy_tensor"]


def _optional_module(name: str) -> ModuleType | None:
    module = sys.modules.get(name)
    if module is not None:
        return module
    try:
        return __import__(name)
    except ImportError:
        return None


@dataclass(frozen=True, eq=False)
class RngState:
    """The global RNG states of ``random``, torch (CPU and CUDA) and numpy, when importable."""

    python: Any
    torch_cpu: Any = None
    torch_cuda: Any = None
    numpy: Any = None

    @classmethod
    def capture(cls) -> RngState:
        torch: Any = _optional_module("torch")
        numpy: Any = _optional_module("numpy")
        cuda = None
        if torch is not None and torch.cuda.is_available():
            cuda = tuple(torch.cuda.get_rng_state_all())
        return cls(
            python=random.getstate(),
            torch_cpu=torch.get_rng_state() if torch is not None else None,
            torch_cuda=cuda,
            numpy=numpy.random.get_state() if numpy is not None else None,
        )

    def restore(self) -> None:
        random.setstate(self.python)
        torch: Any = sys.modules.get("torch")
        if torch is not None and self.torch_cpu is not None:
            torch.set_rng_state(self.torch_cpu)
        if torch is not None and self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))
        numpy: Any = sys.modules.get("numpy")
        if numpy is not None and self.numpy is not None:
            numpy.random.set_state(self.numpy)


def copy_inputs(value: Any) -> Any:
    """A deep snapshot of model inputs (or outputs) that nothing done later can change.

    Tensors are detached and cloned (a Parameter stays a Parameter; ``requires_grad``
    is kept, which deepcopy refuses for non-leaf tensors), each one once, so that
    objects shared in ``value`` stay shared in the snapshot. Plain containers are
    copied directly; anything else is pickled with its tensors passed aside, which
    copies any picklable object graph (distributions, modules, dataclasses) without
    touching autograd. What pickling refuses falls back to ``copy.deepcopy``, then
    to copying container by container, and what cannot be copied is used as it is.
    torch-function modes and subclasses do not see the copying.
    """
    torch: Any = sys.modules.get("torch")
    snapshot = _Snapshot(torch)
    with torch._C.DisableTorchFunction() if torch is not None else nullcontext():
        return snapshot.copy(value)


class _NotPlain(Exception):
    """The plain walk met an object that it leaves to pickle."""


class _Snapshot:
    def __init__(self, torch: Any) -> None:
        self.torch = torch
        self.tensor_type, self.atomic, self.by_reference = _kinds(torch)
        # id -> (original, copy): holding the original keeps its id from being reused
        self.tensors: dict[int, tuple[Any, Any]] = {}
        self.memo: dict[int, tuple[Any, Any]] = {}

    def copy(self, value: Any) -> Any:
        try:
            return self.walk(value, plain=True)
        except _NotPlain:
            pass
        self.memo.clear()  # lists and dicts the aborted walk left half filled
        try:
            return self.pickled(value)
        except Exception:
            return self.walk(value, plain=False)

    def walk(self, value: Any, plain: bool) -> Any:
        """Copy tensors and plain containers here; other objects raise when ``plain``,
        else are copied one by one."""
        kind = type(value)
        if value is None or kind in self.atomic:
            return value
        if isinstance(value, self.tensor_type):
            return self.tensor(value)
        seen = self.memo.get(id(value))
        if seen is not None:
            return seen[1]
        result: Any
        if kind is list:
            result = []
            self.memo[id(value)] = (value, result)  # before the items: a list may hold itself
            result.extend([self.walk(item, plain) for item in value])
        elif kind is dict:
            result = {}
            self.memo[id(value)] = (value, result)
            result.update({key: self.walk(item, plain) for key, item in value.items()})
        elif kind is tuple:
            result = tuple([self.walk(item, plain) for item in value])
        elif isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
            result = kind(*[self.walk(item, plain) for item in value])
        elif plain:
            raise _NotPlain
        else:
            result = self.copy_object(value)
        self.memo[id(value)] = (value, result)
        return result

    def tensor(self, value: Any) -> Any:
        entry = self.tensors.get(id(value))
        if entry is None:
            entry = self.tensors[id(value)] = (value, copy_tensor(self.torch, value))
        return entry[1]

    def pickled(self, value: Any) -> Any:
        buffer = io.BytesIO()
        pickler = _Pickler(buffer, self)
        pickler.dump(value)
        buffer.seek(0)
        return _Unpickler(buffer, pickler.aside).load()

    def copy_object(self, value: Any) -> Any:
        for copier in (self.pickled, copy.deepcopy):
            try:
                return copier(value)
            except Exception:
                pass
        return self.copy_container(value)

    def copy_container(self, value: Any) -> Any:
        """A shallow copy whose items (dict entries, attributes) are copied one by one."""
        try:
            shallow = copy.copy(value)
        except Exception:  # not copyable: used as it is
            return value
        if shallow is value:
            return value
        if isinstance(shallow, dict):
            for key, item in list(shallow.items()):
                dict.__setitem__(shallow, key, self.walk(item, plain=False))
        attributes = getattr(shallow, "__dict__", None)
        if isinstance(attributes, dict):
            for name, item in list(attributes.items()):
                attributes[name] = self.walk(item, plain=False)
        elif dataclasses.is_dataclass(shallow) and not isinstance(shallow, type):  # slots
            for field in dataclasses.fields(shallow):
                if hasattr(shallow, field.name):
                    item = self.walk(getattr(shallow, field.name), plain=False)
                    object.__setattr__(shallow, field.name, item)
        return shallow


# Immutable: the snapshot holds the object itself.
_ATOMIC: frozenset[type] = frozenset({bool, int, float, complex, str, bytes, range, type(Ellipsis)})
# What deepcopy also keeps as it is (functions, classes: lambdas and local classes
# included) and what cannot be pickled but needs no copy (modules).
_BY_REFERENCE: tuple[type, ...] = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.ModuleType,
    types.CodeType,
    weakref.ref,
    property,
)


@functools.cache
def _kinds(torch: Any) -> tuple[Any, frozenset[type], tuple[type, ...]]:
    """(the tensor type, atomic types, types kept by reference), torch's values added."""
    if torch is None:
        return (), _ATOMIC, _BY_REFERENCE
    values = (torch.Size, torch.dtype, torch.device, torch.layout)
    return torch.Tensor, _ATOMIC | frozenset(values), (*_BY_REFERENCE, *values, torch.memory_format)


class _Pickler(pickle.Pickler):
    """Pickles everything but tensors and objects kept by reference: those are set aside."""

    def __init__(self, file: io.BytesIO, snapshot: _Snapshot) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.snapshot = snapshot
        self.aside: list[Any] = []

    def persistent_id(self, obj: Any) -> int | None:
        if isinstance(obj, self.snapshot.by_reference):
            self.aside.append(obj)
        elif isinstance(obj, self.snapshot.tensor_type):
            self.aside.append(self.snapshot.tensor(obj))
        else:
            return None
        return len(self.aside) - 1


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, aside: list[Any]) -> None:
        super().__init__(file)
        self.aside = aside

    def persistent_load(self, pid: Any) -> Any:
        return self.aside[pid]


def copy_tensor(torch: Any, value: Any) -> Any:
    """A detached copy of a tensor that keeps its type and ``requires_grad`` (a copy of a
    non-leaf tensor becomes a leaf that requires grad, as the original did)."""
    kind = type(value)
    if kind is torch.nn.Parameter:
        return torch.nn.Parameter(value.detach().clone(), requires_grad=value.requires_grad)
    if kind is not torch.Tensor:
        return _copy_subclass(torch, value)
    clone = value.detach().clone()
    return clone.requires_grad_() if value.requires_grad else clone


def _copy_subclass(torch: Any, value: Any) -> Any:
    """The subclass's deepcopy when it keeps the type (with torch functions disabled,
    the default one does not), else a clone cast to the subclass with its attributes,
    else the original."""
    try:
        copied = copy.deepcopy(value)
        if type(copied) is type(value):
            return copied
    except Exception:
        pass
    try:
        copied = value.detach().clone()
        if type(copied) is torch.Tensor:
            copied = copied.as_subclass(type(value))
            copied.__dict__.update(vars(value))
        if type(copied) is type(value):
            return copied.requires_grad_(value.requires_grad)
    except Exception:
        pass
    return value
