"""Records the root ``nn.Module`` calls of a test with global forward hooks.

A root call is one made while no other module is running on the same
thread (``model(x)``, not the ``model.encoder(x)`` inside it). Each module
instance is recorded once, at its first root call that returns, with copies
of its inputs, the RNG state from just before the call, and copies of the
outputs the test got: the clone is replayed from the first two and compared
with the third.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn.modules import module as torch_module

from torchpkg import is_from_package
from torchpkg.roundtrip import Observation, RngState, copy_inputs
from torchpkg.roundtrip._trace import Trace, trace

__all__ = ["RecordedCall", "Recorder"]


@dataclass(frozen=True)
class RecordedCall:
    module: torch.nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    rng_state: RngState
    observed: Observation  # the outputs the test got, and the state they came from


@dataclass
class _Pending:
    module: torch.nn.Module
    args: tuple[Any, ...]
    rng_state: RngState
    tracer: Trace | None = None


class Recorder:
    """While entered, records root module calls into ``calls``."""

    def __init__(self, roots: tuple[str, ...] = ()) -> None:
        # The repository's files whose lines a root call runs: the path check's reference.
        self._roots = tuple(os.path.join(root, "") for root in roots)
        self.calls: list[RecordedCall] = []
        self._recorded: set[int] = set()  # ids stay unique: ``calls`` keeps the modules alive
        self._suspended = 0
        self._thread = threading.local()
        self._handles: list[Any] = []

    def __enter__(self) -> Recorder:
        self._handles = [
            torch_module.register_module_forward_pre_hook(self._before),
            # always_call: an exception inside forward must still end the call.
            torch_module.register_module_forward_hook(
                self._after, with_kwargs=True, always_call=True
            ),
        ]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Record nothing inside (a roundtrip run by the test calls the model and its clone)."""
        self._suspended += 1
        try:
            yield
        finally:
            self._suspended -= 1

    def _before(self, module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        depth: int = getattr(self._thread, "depth", 0)
        self._thread.depth = depth + 1
        if (
            depth == 0
            and not self._suspended
            and id(module) not in self._recorded
            # A model loaded from a package is not this repository's to check.
            and not is_from_package(module)
        ):
            pending = _Pending(module, copy_inputs(args), RngState.capture())
            if self._roots:
                pending.tracer = trace(self._classify, args)
                pending.tracer.__enter__()
            self._thread.pending = pending

    def _classify(self, filename: str, packaged: bool) -> str | None:
        return filename if not packaged and filename.startswith(self._roots) else None

    def _after(self, module: torch.nn.Module, args: tuple[Any, ...], *rest: Any) -> None:
        # ``rest`` is (kwargs, output) after a call that returned; torch passes only
        # (output,) to always_call hooks when forward raised, and then nothing is recorded.
        self._thread.depth -= 1
        if self._thread.depth:
            return
        pending: _Pending | None = getattr(self._thread, "pending", None)
        self._thread.pending = None
        if pending is not None and pending.tracer is not None:
            pending.tracer.__exit__()
        if pending is None or len(rest) != 2:
            return
        # Global pre-hooks do not receive kwargs; forward rarely changes them in place.
        kwargs = copy_inputs(rest[0])
        self._recorded.add(id(module))
        traced = pending.tracer.result if pending.tracer is not None else None
        observed = Observation.capture(module, rest[1], traced)
        self.calls.append(RecordedCall(module, pending.args, kwargs, pending.rng_state, observed))
