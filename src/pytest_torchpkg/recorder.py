"""Records the root model calls of a test: the model as called, its inputs, torch's
context and what it returned (a :class:`torchpkg.roundtrip.Call` each).

A root call is one made while no other module is running on the same thread
(``model(x)``, not the ``model.encoder(x)`` inside it). ``nn.Module.__call__``
is seen through global forward hooks; classes that override ``__call__`` and
never reach it (gpytorch's modules call ``forward`` themselves) get their
``__call__`` wrapped while the recorder is entered. Each module instance is
recorded once, at its first root call that returns. Models made of torch's own
modules alone are not checked (nothing of the repository would be packaged):
their classes are listed in ``skipped``.

The recorder stays out of sight: nothing is recorded while a TorchScript or FX
trace, torch.compile, torch.export or a dispatch mode watches the call, its
tensor copies are hidden from ``__torch_function__`` modes, and it never
changes a call's inputs or outputs.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from torchpkg import is_from_package
from torchpkg.roundtrip import (
    Call,
    ModelSnapshot,
    Observation,
    RngState,
    TorchContext,
    copy_inputs,
    is_torch_only,
    recording_allowed,
)
from torchpkg.roundtrip._trace import Trace, in_repository, trace

__all__ = ["Recorder", "uninstall"]

_ACTIVE: Recorder | None = None  # the recorder of the test running now
# The functions replaced for the session: (class, attribute) -> the original.
_INSTALLED: dict[tuple[type, str], Callable[..., Any]] = {}


def _recording(original: Callable[..., Any]) -> Callable[..., Any]:
    """``original`` (``nn.Module._call_impl`` or a class's ``__call__``) that hands its
    calls to the active recorder. Outside a recording, or while torch.compile traces
    it, it only calls through: dynamo then reads no state of ours."""
    is_compiling = torch.compiler.is_compiling

    @functools.wraps(original)
    def call(module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if is_compiling() or _ACTIVE is None or not recording_allowed():
            return original(module, *args, **kwargs)
        return _ACTIVE.record(original, module, args, kwargs)

    return call


def _install() -> None:
    """Route module calls through the recorder, once a session (swapping functions in and
    out around each test would make torch.compile's guards fail and recompile)."""
    targets = [(torch.nn.Module, "_call_impl"), *((cls, "__call__") for cls in _overriding_call())]
    for owner, name in targets:
        if (owner, name) not in _INSTALLED:
            _INSTALLED[owner, name] = owner.__dict__[name]
            setattr(owner, name, _recording(owner.__dict__[name]))


def uninstall() -> None:
    """Put back every function :func:`_install` replaced (at the end of the session)."""
    for (owner, name), original in reversed(list(_INSTALLED.items())):
        setattr(owner, name, original)
    _INSTALLED.clear()


def _overriding_call() -> list[type]:
    """Subclasses of ``nn.Module`` outside torch whose own ``__call__`` replaces
    ``nn.Module.__call__`` (their calls never reach ``_call_impl``)."""
    found: list[type] = []
    seen: set[type] = set()
    stack = list(torch.nn.Module.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        stack.extend(cls.__subclasses__())
        if "__call__" in cls.__dict__ and cls.__module__.split(".")[0] != "torch":
            found.append(cls)
    return found


def _compiled(module: torch.nn.Module) -> bool:
    # Without dynamo imported there is no compiled module (and importing it costs seconds).
    eval_frame = sys.modules.get("torch._dynamo.eval_frame")
    return eval_frame is not None and isinstance(module, eval_frame.OptimizedModule)


@dataclass
class _Pending:
    """A root call in progress."""

    module: torch.nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    rng_state: RngState
    context: TorchContext
    snapshot: ModelSnapshot | None
    capture_error: str | None
    seconds: float  # what capturing took so far
    tracer: Trace | None = None


class Recorder:
    """While entered, records root module calls into ``calls``."""

    def __init__(self, roots: tuple[str, ...] = ()) -> None:
        # The repository's files whose lines a root call runs: the path check's reference.
        self._roots = tuple(os.path.join(root, "") for root in roots)
        self.calls: list[Call] = []
        self.skipped: list[str] = []  # classes of torch-only models the test called
        self._skipped_modules: list[torch.nn.Module] = []
        self._seen: set[int] = set()  # ids stay unique: ``calls`` keeps the modules alive
        self._suspended = 0
        self._thread = threading.local()

    def __enter__(self) -> Recorder:
        global _ACTIVE
        _install()
        _ACTIVE = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _ACTIVE
        _ACTIVE = None

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Record nothing inside (a roundtrip run by the test calls the model and its clone)."""
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1

    def record(
        self,
        original: Callable[..., Any],
        module: torch.nn.Module,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        """Call ``original`` as a recorded call of ``module``."""
        if _compiled(module):  # torch.compile's wrapper: the model inside it is the root
            return original(module, *args, **kwargs)
        with torch._C.DisableTorchFunction():  # our bookkeeping is no operation of the test's
            self._enter(module, args, kwargs)
        try:
            output = original(module, *args, **kwargs)
        except BaseException:
            with torch._C.DisableTorchFunction():
                self._leave(module, None, returned=False)
            raise
        with torch._C.DisableTorchFunction():
            self._leave(module, output, returned=True)
        return output

    def _enter(
        self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        depth: int = getattr(self._thread, "depth", 0)
        self._thread.depth = depth + 1
        if depth or self._suspended or id(module) in self._seen:
            return
        # A model loaded from a package is not this repository's to check.
        if is_from_package(module):
            return
        if is_torch_only(module):
            self._seen.add(id(module))
            self._skipped_modules.append(module)  # alive, so that its id stays its own
            self.skipped.append(f"{type(module).__module__}.{type(module).__qualname__}")
            return
        start = time.perf_counter()
        snapshot, error = None, None
        try:
            snapshot = ModelSnapshot.capture(module)
        except Exception as raised:  # an unpicklable member: the export will say what
            error = f"{type(raised).__name__}: {raised}"
        pending = _Pending(
            module,
            copy_inputs(args),
            copy_inputs(kwargs),
            RngState.capture(),
            TorchContext.capture(),
            snapshot,
            error,
            time.perf_counter() - start,
        )
        if self._roots:
            pending.tracer = trace(self._classify, (args, kwargs), model=module)
            pending.tracer.__enter__()
        self._thread.pending = pending

    def _classify(self, filename: str, packaged: bool) -> str | None:
        return filename if not packaged and in_repository(filename, self._roots) else None

    def _leave(self, module: torch.nn.Module, output: Any, *, returned: bool) -> None:
        self._thread.depth -= 1
        if self._thread.depth:
            return
        pending: _Pending | None = getattr(self._thread, "pending", None)
        self._thread.pending = None
        if pending is None or pending.module is not module:
            return
        if pending.tracer is not None:
            pending.tracer.__exit__()
        if not returned:
            return
        start = time.perf_counter()
        self._seen.add(id(module))
        traced = pending.tracer.result if pending.tracer is not None else None
        snapshot = pending.snapshot
        observed = Observation.capture(module, output, traced)
        state_after = snapshot.state_after(module) if snapshot is not None else None
        self.calls.append(
            Call(
                module,
                pending.args,
                pending.kwargs,
                pending.rng_state,
                pending.context,
                observed,
                snapshot,
                state_after,
                pending.capture_error,
                pending.seconds + time.perf_counter() - start,
            )
        )
