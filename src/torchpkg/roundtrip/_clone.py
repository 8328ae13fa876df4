"""The clone's side of a roundtrip: load the package, run the clone, explain failures.

This is what runs in the worker process (or in the caller's, in-process), so
it takes and returns plain data: a :class:`CloneJob` in, a
:class:`CloneOutcome` out. Comparing with the original happens on the
caller's side, which has the original.
"""

from __future__ import annotations

import enum
import io
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import BuiltinFunctionType, FunctionType, ModuleType
from typing import Any

from torchpkg._materialize import packaged_record
from torchpkg.importer import PackageImporter
from torchpkg.mangling import is_mangled
from torchpkg.roundtrip._capture import TorchContext
from torchpkg.roundtrip._compare import state_dict_of
from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind, error_diagnostics
from torchpkg.roundtrip._explain import (
    GlobalValue,
    crossing_objects,
    isinstance_diagnostics,
    snapshot_globals,
)
from torchpkg.roundtrip._export import PACKAGE, RESOURCE
from torchpkg.roundtrip._state import RngState, copy_inputs
from torchpkg.roundtrip._trace import Classify, Traced, in_repository, trace

__all__ = ["CloneJob", "CloneOutcome", "Stage", "measure_registries", "run_clone"]


class Stage(enum.Enum):
    """How far the clone got."""

    RAN = "ran"
    LOAD_FAILED = "load-failed"
    RUN_FAILED = "run-failed"
    WORKER_FAILED = "worker-failed"  # timed out, or the process died


@dataclass
class CloneJob:
    archive: bytes | Path
    inputs: tuple[Any, ...]
    kwargs: dict[str, Any]
    rng: RngState
    interned: tuple[str, ...]
    mocked: tuple[str, ...]
    # The state_dict to compare: after the clone's run (to compare with an original that
    # just ran too), or as loaded (the original's run happened during the test).
    state_after_run: bool = True
    # Interned libraries read the files next to their modules (transformers lists its
    # models/ folder): give them real ones. Repository code keeps torch.package's names.
    materialize: bool = False
    # Trace the clone's run: files to watch outside the package (path -> record) and roots.
    trace: bool = False
    originals: dict[str, str] = field(default_factory=dict)
    roots: tuple[str, ...] = ()
    context: TorchContext | None = None  # torch's settings at the original call, replayed


@dataclass
class CloneOutcome:
    stage: Stage
    diagnostics: list[Diagnostic] = field(default_factory=list)  # why it failed
    # Found whatever the outcome; the caller adds them when the outputs differ.
    isinstance_notes: list[Diagnostic] = field(default_factory=list)
    # Registries in extern modules that loading the package wrote to: reported, never fatal.
    side_effects: list[Diagnostic] = field(default_factory=list)
    fresh_globals: dict[str, GlobalValue] = field(default_factory=dict)
    outputs: Any = None
    state: Mapping[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    traced: Traced | None = None


def run_clone(job: CloneJob, stack: ExitStack) -> CloneOutcome:
    """Load the package and run the clone on the job's inputs, from the job's RNG state.

    The importer stays open on ``stack`` (the caller compares the outputs first).
    """
    crossing = crossing_objects(job.inputs, job.kwargs, job.interned)
    start = time.perf_counter()
    watched: frozenset[str] = frozenset()
    extern_before: _Sizes = {}
    try:
        source = job.archive
        importer = PackageImporter(
            io.BytesIO(source) if isinstance(source, bytes) else source,
            materialize=job.materialize,
        )
        stack.callback(importer.close)
        watched = _libraries(importer.extern_modules)
        extern_before = _registries_before(watched)
        clone = importer.load_pickle(PACKAGE, RESOURCE)
    except Exception as error:
        what = "loading the model from the package"
        return CloneOutcome(
            Stage.LOAD_FAILED,
            error_diagnostics(DiagnosticKind.LOAD_ERROR, what, error, job.mocked),
            side_effects=_side_effects(extern_before),
        )
    load_time = time.perf_counter() - start
    clone_modules = {
        name: module
        for name, module in importer.modules.items()
        # vars(): a lazy module's __getattr__ would import on the miss
        if isinstance(module, ModuleType) and vars(module).get("__torch_package__", False)
    }
    outcome = CloneOutcome(
        Stage.RAN,
        side_effects=_side_effects(extern_before),
        fresh_globals=snapshot_globals(clone_modules),
        timings={"load": load_time},
    )
    if not job.state_after_run:
        outcome.state = copy_inputs(_state_of(clone))
    job.rng.restore()
    tracing: AbstractContextManager[Traced | None] = (
        trace(_classifier(job, importer), (job.inputs, job.kwargs), model=clone)
        if job.trace
        else nullcontext()
    )
    replay = job.context.applied() if job.context is not None else nullcontext()
    start = time.perf_counter()
    try:
        with replay, tracing as traced:
            outcome.outputs = clone(*job.inputs, **job.kwargs)
        outcome.traced = traced
    except Exception as error:
        outcome.stage = Stage.RUN_FAILED
        outcome.diagnostics = error_diagnostics(
            DiagnosticKind.RUN_ERROR, "the clone", error, job.mocked
        )
        outcome.diagnostics += isinstance_diagnostics(crossing, clone_modules, error)
        return outcome
    outcome.timings["run"] = time.perf_counter() - start
    outcome.isinstance_notes = isinstance_diagnostics(crossing, clone_modules, None)
    if job.state_after_run:
        outcome.state = _state_of(clone)
    return outcome


def _classifier(job: CloneJob, importer: PackageImporter) -> Classify:
    roots = tuple(os.path.join(root, "") for root in job.roots)
    relabelled = importer.measured_files

    def classify(filename: str, packaged: bool) -> str | None:
        if packaged:
            return packaged_record(filename) or relabelled.get(filename)
        if filename in job.originals:
            return job.originals[filename]
        return filename if in_repository(filename, roots) else None

    return classify


def _state_of(clone: Any) -> dict[str, Any] | None:
    state = state_dict_of(clone)
    return None if state is None else dict(state)


# --- what loading the package wrote into extern modules ----------------------------------

# "module.NAME[.attr]" -> (the module's top-level package, the container, its length)
_Sizes = dict[str, tuple[str, Any, int]]
_CONTAINERS = (dict, list, set)
# The registries of every library imported, measured by the worker's server before it
# forks clones (the same in each of them): the number of modules then, and the sizes.
_baseline: tuple[int, _Sizes] | None = None


def _containers(module: ModuleType) -> Iterator[tuple[str, Any]]:
    """The module's dict/list/set globals, and those one attribute down: registries kept
    in objects (transformers' ``CONFIG_MAPPING._extra_content``) or classes defined here."""
    name = module.__name__
    for key, value in list(vars(module).items()):
        if key.startswith("__") or isinstance(value, (ModuleType, FunctionType)):
            continue
        if isinstance(value, _CONTAINERS):
            yield f"{name}.{key}", value
            continue
        if isinstance(value, BuiltinFunctionType) or (
            isinstance(value, type) and value.__module__ != name
        ):
            continue
        attributes = getattr(value, "__dict__", None)
        if isinstance(attributes, Mapping):
            for attribute, inner in list(attributes.items()):
                if isinstance(inner, _CONTAINERS):
                    yield f"{name}.{key}.{attribute}", inner


# torch is extern in every package: of its modules, those that keep registries.
_TORCH_REGISTRIES = ("torch.utils.data",)


def _libraries(externs: Iterable[str]) -> frozenset[str]:
    """Top-level packages of the package's extern libraries (not the standard library's
    caches, nor torchpkg's registry of packaged modules)."""
    return frozenset(top for top in {name.partition(".")[0] for name in externs} if _library(top))


def _library(top: str) -> bool:
    return top not in sys.stdlib_module_names and top not in ("torch", "torchpkg")


def measure_registries() -> None:
    """Measure the registries of every library imported now, for the clones forked next
    (a clone then only compares lengths). Called by the worker's server, whose modules
    change only by import."""
    global _baseline
    if _baseline is None or _baseline[0] != len(sys.modules):
        _baseline = (len(sys.modules), _registry_sizes(None))


def _registries_before(libraries: frozenset[str]) -> _Sizes:
    if _baseline is not None and _baseline[0] == len(sys.modules):
        return {
            path: entry
            for path, entry in _baseline[1].items()
            if entry[0] in libraries or entry[0] == "torch"
        }
    return _registry_sizes(libraries)


def _registry_sizes(libraries: frozenset[str] | None) -> _Sizes:
    """The registries of ``libraries`` (of every library imported when None), with
    torch's that keep registries, filed under "torch"."""
    sizes: _Sizes = {}
    with warnings.catch_warnings():  # deprecated aliases warn when looked at
        warnings.simplefilter("ignore")
        for name, module in list(sys.modules.items()):
            if not isinstance(module, ModuleType) or is_mangled(name):
                continue
            if name.startswith(_TORCH_REGISTRIES):
                top = "torch"
            else:
                top = name.partition(".")[0]
                if not _library(top) or (libraries is not None and top not in libraries):
                    continue
            try:
                for path, container in _containers(module):
                    sizes[path] = (top, container, len(container))
            except Exception:  # a proxy object whose attribute access fails
                continue
    return sizes


def _side_effects(before: _Sizes) -> list[Diagnostic]:
    """The registries measured before loading that grew since (a global rebound to a new
    container leaves the measured one as it was: not a registration)."""
    grown = sorted(path for path, (_, container, size) in before.items() if len(container) > size)
    if not grown:
        return []
    shown = ", ".join(grown[:5]) + (f" and {len(grown) - 5} more" if len(grown) > 5 else "")
    return [
        Diagnostic(
            DiagnosticKind.IMPORT_SIDE_EFFECT,
            f"importing the package added entries to {shown}: its modules register "
            "themselves with a library when imported, so loading the package changes that "
            "library's state for everything else in the process.",
            "nothing to do if this is intended (e.g. AutoConfig.register); torchpkg checks "
            "clones in a separate worker process so the test session does not see it. "
            "Code that loads the package next to the original gets the packaged classes "
            "back from that registry.",
            grown[0],
        )
    ]
