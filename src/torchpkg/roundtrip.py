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
import functools
import importlib.machinery
import io
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any, BinaryIO

from torchpkg._compare import Tolerance, output_diagnostics
from torchpkg._diagnostics import (
    Diagnostic,
    DiagnosticKind,
    crossing_objects,
    error_diagnostic,
    error_diagnostics,
    find_unpicklable,
    global_state_diagnostics,
    isinstance_diagnostics,
    packaging_diagnostics,
    pickling_failed,
    snapshot_globals,
)
from torchpkg.environment import SourceStatus, find_spec_without_running, sys_importer
from torchpkg.errors import PackagingError, PackagingErrorReason
from torchpkg.exporter import PackageExporter
from torchpkg.glob import GlobGroup, GlobPattern
from torchpkg.importer import PackageImporter
from torchpkg.mangling import is_mangled
from torchpkg.policy import is_implicitly_extern

__all__ = [
    "Diagnostic",
    "DiagnosticKind",
    "RngState",
    "RoundtripFailure",
    "RoundtripResult",
    "Verdict",
    "roundtrip",
]

PACKAGE = "model"
RESOURCE = "model.pkl"

# Test infrastructure that a model's module (a test file) may import: never part of a model.
TOOLING_EXTERNS = (
    "pytest.**",
    "_pytest.**",
    "pluggy.**",
    "hypothesis.**",
    "xdist.**",
    "execnet.**",
    "pytest_torchpkg.**",
    "torchpkg.**",
)
_TOOLING_TOPS = frozenset(pattern.partition(".")[0] for pattern in TOOLING_EXTERNS)


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


# --- the export --------------------------------------------------------------------------


def _patterns(pattern: GlobPattern) -> tuple[str, ...]:
    return (pattern,) if isinstance(pattern, str) else tuple(pattern)


def _qualified_name(model: Any) -> str:
    owner = model if isinstance(model, (type, FunctionType)) else type(model)
    return f"{owner.__module__}.{owner.__qualname__}"


def own_packages(model: Any) -> list[str]:
    """The top-level packages of the model's class and its submodules' classes."""
    owners: list[Any] = [model if isinstance(model, (type, FunctionType)) else type(model)]
    modules = getattr(model, "modules", None)
    torch: Any = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module) and callable(modules):
        owners.extend(type(module) for module in modules())
    tops: dict[str, None] = {}
    for owner in owners:
        name = getattr(owner, "__module__", None)
        if not isinstance(name, str) or not name or is_mangled(name):
            continue
        top = name.partition(".")[0]
        if top != "builtins" and not is_implicitly_extern(top) and top not in _TOOLING_TOPS:
            tops[top] = None
    return list(tops)


@functools.lru_cache(maxsize=256)
def _ships_extensions(top: str) -> bool:
    """Whether the installed package ``top`` contains compiled extension modules."""
    spec = find_spec_without_running(top)
    if spec is None or not spec.submodule_search_locations:
        return False
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    files_seen = 0
    for location in spec.submodule_search_locations:
        for _folder, _dirs, files in os.walk(location):
            if any(name.endswith(suffixes) for name in files):
                return True
            files_seen += len(files)
            if files_seen > 20_000:
                return False
    return False


def _auto_externs(error: BaseException, user_intern: GlobGroup) -> list[str]:
    """Unruled modules without Python source, or from packages with C extensions."""
    if not isinstance(error, PackagingError):
        return []
    found: dict[str, None] = {}
    no_source = {
        PackagingErrorReason.IS_EXTENSION_MODULE,
        PackagingErrorReason.NO_DUNDER_FILE,
        PackagingErrorReason.SOURCE_FILE_NOT_FOUND,
    }
    for problem in error.problems:
        name = problem.subject
        if problem.reason is PackagingErrorReason.NO_ACTION:
            if sys_importer.module_source(name).status is not SourceStatus.OK:
                found[name] = None
            elif _ships_extensions(name.partition(".")[0]):
                found[f"{name.partition('.')[0]}.**"] = None
        elif problem.reason in no_source and not user_intern.matches(name):
            found[name] = None
    return list(found)


@dataclass(frozen=True)
class _Rules:
    mock: tuple[str, ...]
    extern: tuple[str, ...]
    intern: tuple[str, ...]
    own: tuple[str, ...]
    configure: Callable[[PackageExporter], None] | None


@dataclass(frozen=True)
class _Exported:
    source: bytes | Path | None  # None: the export failed
    error: BaseException | None
    interned: tuple[str, ...]
    externed: tuple[str, ...]
    mocked: tuple[str, ...]
    size: int


_Lists = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


def _export_once(
    model: Any, target: BinaryIO | Path, rules: _Rules, auto: list[str]
) -> tuple[BaseException | None, _Lists]:
    exporter = PackageExporter(target)
    error: BaseException | None = None
    try:
        with exporter:
            if rules.mock:
                exporter.mock(rules.mock)
            if rules.extern:
                exporter.extern(rules.extern)
            if rules.intern:
                exporter.intern(rules.intern)
            if rules.configure is not None:
                rules.configure(exporter)
            if auto:
                exporter.extern(auto)
            if rules.own:
                exporter.intern([f"{top}.**" for top in rules.own])
            exporter.extern(TOOLING_EXTERNS)
            exporter.save_pickle(PACKAGE, RESOURCE, model)
    except Exception as raised:
        error = raised
    lists = (
        tuple(exporter.interned_modules()),
        tuple(exporter.externed_modules()),
        tuple(exporter.mocked_modules()),
    )
    return error, lists


def _export(model: Any, folder: Path | None, rules: _Rules) -> _Exported:
    auto: list[str] = []
    user_intern = GlobGroup(rules.intern)
    while True:
        target: BinaryIO | Path = io.BytesIO() if folder is None else folder / "model.pt"
        error, lists = _export_once(model, target, rules, auto)
        if error is not None:
            more = [name for name in _auto_externs(error, user_intern) if name not in auto]
            if more and not auto:  # one retry, with every automatic extern at once
                auto.extend(more)
                continue
            return _Exported(None, error, *lists, 0)
        if isinstance(target, Path):
            return _Exported(target, None, *lists, target.stat().st_size)
        assert isinstance(target, io.BytesIO)
        data = target.getvalue()
        return _Exported(data, None, *lists, len(data))


def _copies(inputs: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[Any, Any]]:
    """One copy of the inputs per call, so in-place changes by one call cannot reach the other."""
    try:
        return [copy.deepcopy((inputs, kwargs)) for _ in range(2)]
    except Exception:  # not copyable: both calls get the caller's objects
        return [(inputs, kwargs), (inputs, kwargs)]


# --- the roundtrip -----------------------------------------------------------------------


@dataclass
class _Session:
    """One roundtrip after a successful export: runs, loads, compares."""

    model: Any
    exported: _Exported
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
    rules = _Rules(
        _patterns(mock),
        _patterns(extern),
        _patterns(intern),
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
        exported = _export(model, folder, rules)
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
        _qualified_name(model),
        verdict,
        tuple(diagnostics),
        exported.interned,
        exported.externed,
        exported.mocked,
        exported.size,
        timings,
    )
