"""What a replay needs: the RNG states, and copies of inputs and outputs."""

from __future__ import annotations

import copy
import dataclasses
import random
import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

__all__ = ["RngState", "copy_inputs"]


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
    """A copy of model inputs (or outputs) that in-place changes made later cannot reach.

    Tensors are cloned (keeping requires_grad, which deepcopy refuses for non-leaf
    tensors), containers copied item by item (dict subclasses and dataclasses such
    as transformers' ``ModelOutput`` too), and an item that cannot be copied is
    used as it is.
    """
    torch: Any = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        clone = value.detach().clone()
        return clone.requires_grad_() if value.requires_grad else clone
    if type(value) in (tuple, list):
        return type(value)(copy_inputs(item) for item in value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(copy_inputs(item) for item in value))
    if type(value) is dict:
        return {key: copy_inputs(item) for key, item in value.items()}
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return value
    try:
        return copy.deepcopy(value)
    except Exception:  # tensors with a grad_fn inside: copy the container, then its items
        return _copy_container(value)


def _copy_container(value: Any) -> Any:
    try:
        shallow = copy.copy(value)
    except Exception:  # not copyable: used as it is
        return value
    if shallow is value:
        return value
    copies: dict[int, Any] = {}  # one copy of an item held both as a field and as an entry

    def copied(item: Any) -> Any:
        if id(item) not in copies:
            copies[id(item)] = copy_inputs(item)
        return copies[id(item)]

    if isinstance(shallow, dict):
        for key, item in list(shallow.items()):
            dict.__setitem__(shallow, key, copied(item))
    if dataclasses.is_dataclass(shallow) and not isinstance(shallow, type):
        for field in dataclasses.fields(shallow):
            if hasattr(shallow, field.name):
                object.__setattr__(shallow, field.name, copied(getattr(shallow, field.name)))
    return shallow
