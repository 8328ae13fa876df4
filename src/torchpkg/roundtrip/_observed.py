"""What a test saw when it called a model, and how a later difference is explained.

The recorder captures an :class:`Observation` at the call; when the clone
differs from it, the module globals and weights captured then tell whether the
model depends on state the test set around the call.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from torchpkg.mangling import is_mangled
from torchpkg.policy import is_implicitly_extern
from torchpkg.roundtrip._compare import state_dict_of
from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind
from torchpkg.roundtrip._explain import GlobalValue, snapshot_globals
from torchpkg.roundtrip._state import copy_inputs
from torchpkg.roundtrip._trace import Traced

__all__ = [
    "Observation",
    "changed_globals",
    "depends_on_test_state",
    "model_modules",
    "tensor_versions",
]


def model_modules(model: Any) -> dict[str, ModuleType]:
    """The modules that define the classes of ``model`` and its submodules (not torch's)."""
    owners = [type(model)]
    submodules = getattr(model, "modules", None)
    torch: Any = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module) and callable(submodules):
        owners.extend(type(module) for module in submodules())
    found: dict[str, ModuleType] = {}
    for owner in owners:
        name = owner.__module__
        module = sys.modules.get(name)
        if module is not None and not is_mangled(name) and not is_implicitly_extern(name):
            found[name] = module
    return found


def tensor_versions(model: Any) -> dict[str, tuple[int, int]]:
    """Each state tensor's storage and in-place version: what changes when a test trains."""
    state = state_dict_of(model) or {}
    return {
        key: (value.data_ptr(), value._version)
        for key, value in state.items()
        if hasattr(value, "_version") and hasattr(value, "data_ptr")
    }


@dataclass(frozen=True, eq=False)
class Observation:
    """What a test saw when it called the model: copies of the outputs, and the state
    (module globals, weights) they depended on at that moment."""

    outputs: Any
    globals: dict[str, GlobalValue] = field(default_factory=dict)
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)
    traced: Traced | None = None  # the lines of local files the call ran, by file path

    @classmethod
    def capture(cls, model: Any, outputs: Any, traced: Traced | None = None) -> Observation:
        return cls(
            copy_inputs(outputs),
            snapshot_globals(model_modules(model)),
            tensor_versions(model),
            traced,
        )


def changed_globals(
    then: Mapping[str, GlobalValue], now: Mapping[str, GlobalValue]
) -> list[tuple[str, str, str]]:
    return [
        (name, then[name].shown, now[name].shown)
        for name in sorted(then)
        if name in now and then[name].fingerprint != now[name].fingerprint
    ]


def depends_on_test_state(
    changed: list[tuple[str, str, str]], parting: str | None = None
) -> Diagnostic:
    """``changed``: (global, value at the call, value now); ``parting``: the first line
    where the original's run and the clone's part, when the traces say."""
    if changed:
        listed = "; ".join(
            f"{name} was {then} during the call and is {now} now" for name, then, now in changed
        )
        message = (
            "the original model itself answers differently after the test than it did when "
            f"the test called it: {listed}. The package imports its modules afresh, so the "
            "clone only ever sees their import-time values."
        )
        location: str | None = changed[0][0]
    else:
        message = (
            "the original model itself answers differently after the test than it did when "
            "the test called it, and none of its modules' globals changed: it depends on "
            "state the test set around the call elsewhere (environment variables, another "
            "module, a file, a flag on torch, a library's settings context)."
        )
        if parting is not None:
            message += (
                f" The original's run and the clone's part at {parting}: what is read "
                "there is the likely cause (the package has its own copy of that module, "
                "which the test's setting does not reach)."
            )
        location = parting
    return Diagnostic(
        DiagnosticKind.DEPENDS_ON_TEST_STATE,
        message,
        "give the model what it depends on (a constructor argument, an attribute or a "
        "buffer, which are packaged with it) instead of state a test sets around the call.",
        location,
    )
