"""The model as a test called it: its state at the call, torch's context, and what it returned.

A test may change its model after calling it (``eval()``, a training step, an
attribute) and a forward may update the model's own state (running statistics,
a cache, an "initialised" flag). Either way the model at the end of the test is
not the one that produced the outputs the test saw, so the recorder captures
the model before ``forward`` runs: its Python structure is pickled then (cheap:
objects, not bytes) with every tensor kept aside, copied when the model is
small and referenced with its version counter when it is large (a tensor whose
counter moved later cannot be restored: the snapshot is then stale and the
live model is used, as before). Right after the call, a small model's state is
copied again: that is the state the clone's run must reproduce.

torch's process-wide state that a forward reads (grad and inference mode,
autocast, the default dtype and device, ...) is captured too and replayed
around the clone's run.
"""

from __future__ import annotations

import io
import pickle
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from torchpkg.roundtrip._observed import Observation
from torchpkg.roundtrip._state import RngState, copy_tensor

__all__ = [
    "CAPTURE_BUDGET",
    "Call",
    "ModelSnapshot",
    "TorchContext",
    "is_torch_only",
    "recording_allowed",
]

# Tensors of a model up to this many bytes in all are copied at the call; above it only
# those that are not parameters (buffers change in forward; weights rarely do).
CAPTURE_BUDGET = 256 * 1024 * 1024
_AUTOCAST_DEVICES = ("cpu", "cuda")


def _torch() -> Any:
    return sys.modules["torch"]


def recording_allowed() -> bool:
    """False while something else is looking at the call: a TorchScript or FX trace,
    torch.compile or torch.export, or a dispatch mode (fake tensors, proxies, flop
    counters). Copying a tensor there would be seen (and recorded) by it."""
    torch = _torch()
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and compiler.is_compiling():
        return False
    if torch._C._get_tracing_state() is not None:
        return False
    symbolic = sys.modules.get("torch.fx._symbolic_trace")
    if symbolic is not None and getattr(symbolic, "_is_fx_tracing_flag", False):
        return False
    dispatch = sys.modules.get("torch.utils._python_dispatch")
    return dispatch is None or dispatch._get_current_dispatch_mode() is None


def is_torch_only(model: Any) -> bool:
    """Whether every class in the model's module tree is torch's own: nothing of the
    repository would go into its package, so its roundtrip says nothing about it."""
    torch = _torch()
    modules = getattr(model, "modules", None)
    members = [model, *(modules() if callable(modules) else ())]
    # A ScriptModule's class is torch's, but its code is the repository's, compiled.
    return not any(isinstance(member, torch.jit.ScriptModule) for member in members) and all(
        type(member).__module__.split(".")[0] == "torch" for member in members
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """Our own tensor work: invisible to ``__torch_function__`` modes, outside autograd
    and able to make normal tensors inside ``inference_mode``."""
    torch = _torch()
    with torch._C.DisableTorchFunction(), torch.no_grad(), torch.inference_mode(False):
        yield


@dataclass(frozen=True, eq=False)
class TorchContext:
    """torch's process-wide settings at the call, replayed around the clone's call."""

    grad_enabled: bool
    inference_mode: bool
    default_dtype: Any
    default_device: str
    autocast: tuple[tuple[str, Any], ...]  # (device type, dtype) of each enabled autocast
    autocast_cache: bool
    deterministic: bool
    matmul_precision: str

    @classmethod
    def capture(cls) -> TorchContext:
        torch = _torch()
        autocast = tuple(
            (device, torch.get_autocast_dtype(device))
            for device in _AUTOCAST_DEVICES
            if torch.is_autocast_enabled(device)
        )
        return cls(
            grad_enabled=torch.is_grad_enabled(),
            inference_mode=torch.is_inference_mode_enabled(),
            default_dtype=torch.get_default_dtype(),
            default_device=str(torch.get_default_device()),
            autocast=autocast,
            autocast_cache=torch.is_autocast_cache_enabled(),
            deterministic=torch.are_deterministic_algorithms_enabled(),
            matmul_precision=torch.get_float32_matmul_precision(),
        )

    def differences(self, other: TorchContext) -> list[str]:
        """``name: mine vs other's`` for each setting that differs."""
        return [
            f"{name} {getattr(self, name)} vs {getattr(other, name)}"
            for name in self.__dataclass_fields__
            if getattr(self, name) != getattr(other, name)
        ]

    @contextmanager
    def applied(self) -> Iterator[None]:
        """These settings while inside; the previous ones restored after."""
        torch = _torch()
        before = TorchContext.capture()
        setters = {
            "default_dtype": torch.set_default_dtype,
            "default_device": torch.set_default_device,
            "deterministic": torch.use_deterministic_algorithms,
            "matmul_precision": torch.set_float32_matmul_precision,
        }
        with ExitStack() as stack:
            for name, setter in setters.items():
                if getattr(before, name) != getattr(self, name):
                    setter(getattr(self, name))
                    stack.callback(setter, getattr(before, name))
            stack.enter_context(torch.inference_mode(self.inference_mode))
            stack.enter_context(torch.set_grad_enabled(self.grad_enabled))
            for device, dtype in self.autocast:
                stack.enter_context(
                    torch.autocast(device, dtype=dtype, cache_enabled=self.autocast_cache)
                )
            yield


@dataclass(eq=False)
class _Kept:
    """A tensor of the model at the call: a copy, or the tensor and its version then."""

    copy: Any = None
    live: Any = None
    version: int = 0

    def value(self) -> Any:
        """The tensor as it was at the call, or None when it changed since."""
        if self.copy is not None:
            return self.copy
        return self.live if self.live._version == self.version else None


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, copy_all: bool) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.kept: list[_Kept] = []
        self.ids: dict[int, int] = {}
        self._copy_all = copy_all
        self._tensor = _torch().Tensor
        self._parameter = _torch().nn.Parameter

    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, self._tensor):
            return None
        key = self.ids.get(id(obj))
        if key is None:
            if self._copy_all or not isinstance(obj, self._parameter):
                kept = _Kept(copy=copy_tensor(_torch(), obj))
            else:
                kept = _Kept(live=obj, version=obj._version)
            key = self.ids[id(obj)] = len(self.kept)
            self.kept.append(kept)
        return key


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, tensors: list[Any]) -> None:
        super().__init__(io.BytesIO(data))
        self._tensors = tensors

    def persistent_load(self, pid: Any) -> Any:
        return self._tensors[pid]


@dataclass(eq=False)
class ModelSnapshot:
    """The model's objects pickled at the call, its tensors kept aside (see module doc)."""

    data: bytes
    kept: list[_Kept]
    copied_all: bool  # every tensor was copied (the model is within CAPTURE_BUDGET)

    @classmethod
    def capture(cls, model: Any) -> ModelSnapshot:
        """Raises whatever pickling the model raises (a lambda, a local class...)."""
        torch = _torch()
        buffer = io.BytesIO()
        with _quiet():
            state = model.state_dict(keep_vars=True) if isinstance(model, torch.nn.Module) else {}
            size = sum(t.nbytes for t in state.values() if isinstance(t, torch.Tensor))
            copied_all = size <= CAPTURE_BUDGET
            pickler = _Pickler(buffer, copy_all=copied_all)
            pickler.dump(model)
        return cls(buffer.getvalue(), pickler.kept, copied_all)

    def restore(self) -> Any | None:
        """A new model as it was at the call, or None when a tensor that was not copied
        changed since (the snapshot is stale)."""
        tensors = [kept.value() for kept in self.kept]
        if any(tensor is None for tensor in tensors):
            return None
        return _Unpickler(self.data, tensors).load()

    def state_after(self, model: Any) -> dict[str, Any] | None:
        """A copy of the model's state_dict right after the call; None for a model too
        large to copy (its snapshot references its weights). Every tensor is copied:
        version counters miss writes through ``.data`` (gpytorch initialises its
        variational parameters so) and native kernels' in-place updates (batch norm's
        running statistics)."""
        torch = _torch()
        if not isinstance(model, torch.nn.Module) or not self.copied_all:
            return None
        with _quiet():
            return {
                key: copy_tensor(torch, value) if isinstance(value, torch.Tensor) else value
                for key, value in model.state_dict(keep_vars=True).items()
            }


@dataclass(frozen=True, eq=False)
class Call:
    """What a roundtrip checks: a model as a test called it, and what the call returned.

    ``module`` is the test's model (live: the test may have changed it since),
    ``snapshot`` the model as it was when called (None when it could not be
    taken: ``capture_error`` says why), ``state_after`` its state_dict right
    after the call.
    """

    module: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    rng_state: RngState
    context: TorchContext | None  # None: torch was not imported
    observed: Observation | None = None  # None: not observed, the original runs again
    snapshot: ModelSnapshot | None = None
    state_after: Mapping[str, Any] | None = None
    capture_error: str | None = None
    capture_seconds: float = 0.0  # what recording the call cost the test

    def model_as_called(self) -> Any | None:
        """A new model as it was at the call, or None when the snapshot is missing or
        stale (a weight that was too large to copy changed since)."""
        return self.snapshot.restore() if self.snapshot is not None else None
