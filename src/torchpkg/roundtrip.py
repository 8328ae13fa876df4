"""Roundtrip: export a model, import it fresh, run both, and say what differs and why.

``roundtrip(model, *inputs)`` packages ``model`` (interning its own top-level
packages; torch and the standard library are extern; modules without Python
source or from packages that ship C extensions are externed automatically),
loads it in a fresh :class:`~torchpkg.PackageImporter`, calls the original and
the clone on copies of the same inputs from the same RNG state, and compares
the outputs and the state_dicts. The :class:`RoundtripResult` carries the
verdict and diagnostics that each say what to do next. Nothing is left behind:
the importer is closed (its modules leave ``sys.modules``), a temporary archive
file is removed, and the caller's RNG state is restored.

torch is imported inside functions only; importing this module does not.
"""

from __future__ import annotations

import copy
import enum
import io
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from torchpkg._compare import Tolerance, output_diagnostics
from torchpkg._diagnostics import (
    Diagnostic,
    DiagnosticKind,
    error_diagnostic,
    error_diagnostics,
    find_unpicklable,
    packaging_diagnostics,
    pickling_failed,
)
from torchpkg._explain import (
    crossing_objects,
    global_state_diagnostics,
    isinstance_diagnostics,
    snapshot_globals,
)
from torchpkg._roundtrip_export import (
    PACKAGE,
    RESOURCE,
    TOOLING_EXTERNS,
    Exported,
    Rules,
    export,
    own_packages,
    patterns,
    qualified_name,
)
from torchpkg.exporter import PackageExporter
from torchpkg.glob import GlobPattern
from torchpkg.importer import PackageImporter

__all__ = [
    "TOOLING_EXTERNS",
    "Diagnostic",
    "DiagnosticKind",
    "RngState",
    "RoundtripFailure",
    "RoundtripResult",
    "Verdict",
    "copy_inputs",
    "own_packages",
    "roundtrip",
]


class Verdict(enum.Enum):
    PASSED = "passed"
    MISMATCH = "mismatch"  # outputs or state_dict differ
    PACKAGING_FAILED = "packaging-failed"
    LOAD_FAILED = "load-failed"  # the clone could not be imported/unpickled
    RUN_FAILED = "run-failed"  # the clone raised when called (or the original did)


@dataclass(frozen=True)
class RoundtripResult:
    """What a roundtrip found: the verdict, the diagnostics, and the package's make-up."""

    model: str
    verdict: Verdict
    diagnostics: tuple[Diagnostic, ...]
    interned: tuple[str, ...]
    externed: tuple[str, ...]
    mocked: tuple[str, ...]
    archive_bytes: int
    timings: dict[str, float]

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (enums as their values)."""
        return {
            "model": self.model,
            "verdict": self.verdict.value,
            "passed": self.passed,
            "diagnostics": [diagnostic.to_dict() for diagnostic in self.diagnostics],
            "interned": list(self.interned),
            "externed": list(self.externed),
            "mocked": list(self.mocked),
            "archive_bytes": self.archive_bytes,
            "timings": dict(self.timings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundtripResult:
        """The inverse of :meth:`to_dict` (results travel as dicts between processes)."""
        return cls(
            model=data["model"],
            verdict=Verdict(data["verdict"]),
            diagnostics=tuple(Diagnostic.from_dict(d) for d in data["diagnostics"]),
            interned=tuple(data["interned"]),
            externed=tuple(data["externed"]),
            mocked=tuple(data["mocked"]),
            archive_bytes=int(data["archive_bytes"]),
            timings={key: float(value) for key, value in data["timings"].items()},
        )

    def report(self) -> str:
        """Several lines: the verdict, then each diagnostic with its next step."""
        lines = [f"torchpkg roundtrip of {self.model}: {self.verdict.value}"]
        size = f"; archive {self.archive_bytes} bytes" if self.archive_bytes else ""
        lines.append(
            f"  package: {len(self.interned)} interned, {len(self.externed)} extern, "
            f"{len(self.mocked)} mocked modules{size}"
        )
        if self.passed:
            lines.append("  the clone's outputs and state_dict match the original's")
        for number, diagnostic in enumerate(self.diagnostics, 1):
            where = f" at {diagnostic.location}" if diagnostic.location else ""
            lines.append(f"  {number}. {diagnostic.kind.value}{where}")
            lines.extend(f"     {line}" for line in diagnostic.message.splitlines())
            lines.append(f"     next step: {diagnostic.next_step}")
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        """Raise :class:`RoundtripFailure` (an ``AssertionError``) unless the roundtrip passed."""
        if not self.passed:
            raise RoundtripFailure(self)


class RoundtripFailure(AssertionError):
    """A roundtrip that did not pass; ``str()`` is its report, ``.result`` the result."""

    def __init__(self, result: RoundtripResult) -> None:
        super().__init__(result.report())
        self.result = result

    def __reduce__(self) -> tuple[type[RoundtripFailure], tuple[RoundtripResult]]:
        return (type(self), (self.result,))


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
    """A copy of model inputs that in-place changes made later cannot reach.

    Tensors are cloned (keeping requires_grad, which deepcopy refuses for non-leaf
    tensors), containers copied item by item, and an item that cannot be copied
    is used as it is.
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
    except Exception:  # not copyable: used as it is
        return value


def _copies(inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    """One copy of the inputs per call, so in-place changes by one call cannot reach the other."""
    return [(copy_inputs(inputs), copy_inputs(kwargs)) for _ in range(2)]


# --- the roundtrip -----------------------------------------------------------------------


@dataclass
class _Session:
    """One roundtrip after a successful export: runs, loads, compares."""

    model: Any
    exported: Exported
    replay: RngState
    stack: ExitStack
    timings: dict[str, float]

    def run(
        self,
        inputs: tuple[Any, ...],
        kwargs: dict[str, Any],
        tolerance: Tolerance,
        compare: Callable[[Any, Any], Diagnostic | None] | None,
    ) -> tuple[Verdict, list[Diagnostic]]:
        exported = self.exported
        (original_args, original_kwargs), (clone_args, clone_kwargs) = _copies(inputs, kwargs)
        crossing = crossing_objects(inputs, kwargs, exported.interned)
        originals = {name: sys.modules[name] for name in exported.interned if name in sys.modules}
        before = snapshot_globals(originals)
        self.replay.restore()
        start = time.perf_counter()
        try:
            expected = self.model(*original_args, **original_kwargs)
        except Exception as error:
            original_error = error_diagnostic(DiagnosticKind.RUN_ERROR, "the original model", error)
            return Verdict.RUN_FAILED, [original_error]
        self.timings["run_original"] = time.perf_counter() - start
        after = snapshot_globals(originals)

        start = time.perf_counter()
        try:
            importer, clone = self.load()
        except Exception as error:
            what = "loading the model from the package"
            diagnostics = error_diagnostics(DiagnosticKind.LOAD_ERROR, what, error, exported.mocked)
            return Verdict.LOAD_FAILED, diagnostics
        self.timings["load"] = time.perf_counter() - start
        clone_modules = {
            name: module
            for name, module in importer.modules.items()
            if isinstance(module, ModuleType) and getattr(module, "__torch_package__", False)
        }
        fresh = snapshot_globals(clone_modules)

        self.replay.restore()
        start = time.perf_counter()
        try:
            actual = clone(*clone_args, **clone_kwargs)
        except Exception as error:
            diagnostics = error_diagnostics(
                DiagnosticKind.RUN_ERROR, "the clone", error, exported.mocked
            )
            diagnostics += isinstance_diagnostics(crossing, clone_modules, error)
            diagnostics += global_state_diagnostics(before, after, fresh)
            return Verdict.RUN_FAILED, diagnostics
        self.timings["run"] = time.perf_counter() - start

        diagnostics = output_diagnostics(
            expected,
            actual,
            original=self.model,
            clone=clone,
            tolerance=tolerance,
            compare=compare,
        )
        if not diagnostics:
            return Verdict.PASSED, []
        diagnostics += isinstance_diagnostics(crossing, clone_modules, None)
        diagnostics += global_state_diagnostics(before, after, fresh)
        return Verdict.MISMATCH, diagnostics

    def load(self) -> tuple[PackageImporter, Any]:
        source = self.exported.source
        assert source is not None
        importer = PackageImporter(io.BytesIO(source) if isinstance(source, bytes) else source)
        self.stack.callback(importer.close)
        return importer, importer.load_pickle(PACKAGE, RESOURCE)


def roundtrip(
    model: Any,
    *inputs: Any,
    kwargs: Mapping[str, Any] | None = None,
    extern: GlobPattern = (),
    mock: GlobPattern = (),
    intern: GlobPattern = (),
    rtol: float | None = None,
    atol: float | None = None,
    in_memory: bool = True,
    rng_state: RngState | None = None,
    configure_exporter: Callable[[PackageExporter], None] | None = None,
    compare: Callable[[Any, Any], Diagnostic | None] | None = None,
) -> RoundtripResult:
    """Export ``model``, load it fresh, run both on ``inputs`` and compare.

    Rules apply in this order, first match wins: ``mock``, ``extern``,
    ``intern``, those added by ``configure_exporter``, automatic externs,
    the model's own top-level packages (interned), test tooling (extern).
    ``rtol``/``atol`` both ``None`` compare exactly (NaNs equal in the same
    places); one given, the other is 0. ``rng_state`` is restored before each
    call (default: the state at entry, which is also restored on return).
    ``compare(original_output, clone_output)`` replaces the built-in output
    comparison; state_dicts are always compared. Each call gets its own deep
    copy of the inputs when they can be copied.
    """
    rules = Rules(
        patterns(mock),
        patterns(extern),
        patterns(intern),
        tuple(own_packages(model)),
        configure_exporter,
    )
    caller_rng = RngState.capture()
    timings = {"export": 0.0, "load": 0.0, "run_original": 0.0, "run": 0.0}
    with ExitStack() as stack:
        stack.callback(caller_rng.restore)
        folder = None
        if not in_memory:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="torchpkg-")))
        start = time.perf_counter()
        exported = export(model, folder, rules)
        timings["export"] = time.perf_counter() - start
        if exported.source is None:
            error = exported.error or RuntimeError("the export produced no archive")
            unpicklable = find_unpicklable(model) if pickling_failed(error) else None
            verdict = Verdict.PACKAGING_FAILED
            diagnostics = packaging_diagnostics(error, unpicklable)
        else:
            session = _Session(
                model, exported, rng_state if rng_state is not None else caller_rng, stack, timings
            )
            verdict, diagnostics = session.run(
                inputs, dict(kwargs or {}), Tolerance(rtol, atol), compare
            )
    return RoundtripResult(
        qualified_name(model),
        verdict,
        tuple(diagnostics),
        exported.interned,
        exported.externed,
        exported.mocked,
        exported.size,
        timings,
    )
