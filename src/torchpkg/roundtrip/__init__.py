"""Roundtrip: export a model, load it fresh, run both, and say what differs and why.

``roundtrip(model, *inputs)`` packages ``model`` with the policy by
provenance (the repository's code interned; the standard library, torch and
installed distributions extern; see :mod:`torchpkg.provenance`), loads it in
a worker process (:mod:`torchpkg.roundtrip._worker`) where the package's
imports cannot touch the caller's interpreter, runs the clone on a copy of the
inputs from the same RNG state, and compares its outputs and state_dict with
the original's. The :class:`RoundtripResult` carries the verdict and
diagnostics that each say what to do next. Nothing is left behind: the
temporary archive is removed and the caller's RNG state restored.

torch is imported inside functions only; importing this package does not.
"""

from __future__ import annotations

import copy
import enum
import io
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from torchpkg._paths import module_path
from torchpkg.exporter import PackageExporter
from torchpkg.glob import GlobPattern
from torchpkg.mangling import is_mangled
from torchpkg.provenance import Origin, ProvenancePolicy
from torchpkg.roundtrip._capture import (
    Call,
    ModelSnapshot,
    TorchContext,
    is_torch_only,
    recording_allowed,
)
from torchpkg.roundtrip._clone import CloneJob, CloneOutcome, Stage, run_clone
from torchpkg.roundtrip._compare import (
    Tolerance,
    compare_values,
    output_diagnostics,
    state_dict_of,
)
from torchpkg.roundtrip._diagnostics import (
    Diagnostic,
    DiagnosticKind,
    error_diagnostic,
    find_unpicklable,
    packaging_diagnostics,
    pickling_failed,
    relative_paths,
)
from torchpkg.roundtrip._explain import (
    global_state_diagnostics,
    snapshot_globals,
)
from torchpkg.roundtrip._export import (
    TOOLING_EXTERNS,
    Exported,
    Rules,
    export,
    patterns,
    qualified_name,
)
from torchpkg.roundtrip._observed import (
    Observation,
    changed_globals,
    depends_on_test_state,
    model_modules,
    tensor_versions,
)
from torchpkg.roundtrip._result import RoundtripFailure, RoundtripResult, Verdict
from torchpkg.roundtrip._state import RngState, copy_inputs
from torchpkg.roundtrip._trace import Traced, divergence_diagnostic, leak_diagnostics, trace
from torchpkg.roundtrip._worker import DEFAULT_TIMEOUT, run_in_worker, warm_up

__all__ = [
    "DEFAULT_TIMEOUT",
    "TOOLING_EXTERNS",
    "Call",
    "Diagnostic",
    "DiagnosticKind",
    "Isolation",
    "ModelSnapshot",
    "Observation",
    "RngState",
    "RoundtripFailure",
    "RoundtripResult",
    "TorchContext",
    "Verdict",
    "copy_inputs",
    "is_torch_only",
    "recording_allowed",
    "roundtrip",
    "warm_worker",
]

# Installed code the worker imports once for all clones; the repository's never (it changes).
_PRELOADED = (Origin.DISTRIBUTION, Origin.STANDARD_LIBRARY)


class Isolation(enum.Enum):
    """Where the clone is loaded and run."""

    PROCESS = "process"  # a worker process: the caller's interpreter is never touched
    IN_PROCESS = "in-process"  # here: faster to debug, but the package's imports run here


@dataclass
class _Check:
    """One roundtrip after a successful export: runs, loads, compares."""

    model: Any  # what was exported: the model as called where the call was captured
    call: Call
    exported: Exported
    stack: ExitStack
    timings: dict[str, float]
    isolation: Isolation
    timeout: float
    roots: tuple[str, ...]
    # The model was restored as it was at the call: its own later changes are not the
    # clone's to explain, and its state right after the call is known.
    faithful: bool = False
    trace: bool = True
    strict_paths: bool = False
    original_traced: Traced | None = None

    def originals(self) -> dict[str, str]:
        """The files the package's interned modules came from: path -> record."""
        files = {}
        for name in self.exported.interned:
            module = sys.modules.get(name)
            file = vars(module).get("__file__") if module is not None else None
            if isinstance(file, str):
                files[file] = module_path(name, "__path__" in vars(module))
        return files

    @property
    def observed(self) -> Observation | None:
        return self.call.observed

    def run_original(self, model: Any, *, traced: bool = False) -> Any:
        args, kwargs = copy_inputs((self.call.args, dict(self.call.kwargs)))
        originals = self.originals() if traced and self.trace else None
        tracing: AbstractContextManager[Traced | None] = (
            nullcontext()
            if originals is None
            else trace(
                lambda file, packaged: None if packaged else originals.get(file),
                (args, kwargs),
                model=model,
            )
        )
        context = self.call.context
        self.call.rng_state.restore()
        start = time.perf_counter()
        try:
            with context.applied() if context else nullcontext(), tracing as original_traced:
                return model(*args, **kwargs)
        finally:
            self.timings["run_original"] = time.perf_counter() - start
            self.original_traced = original_traced

    def path_diagnostics(self, outcome: CloneOutcome) -> tuple[list[Diagnostic], list[Diagnostic]]:
        """(leaks, the divergent path): leaks always fail, a divergence only when strict."""
        if outcome.traced is None:
            return [], []
        leaks = leak_diagnostics(outcome.traced, self.roots)
        original = self.original_traced
        if original is None and self.observed is not None and self.observed.traced is not None:
            original = self.observed.traced.keyed(self.originals())
        divergent = (
            divergence_diagnostic(original, outcome.traced, self.roots) if original else None
        )
        return leaks, [divergent] if divergent is not None else []

    def clone(self) -> CloneOutcome:
        exported = self.exported
        assert exported.source is not None
        args, kwargs = copy_inputs((self.call.args, dict(self.call.kwargs)))
        job = CloneJob(
            exported.source,
            args,
            kwargs,
            self.call.rng_state,
            exported.interned,
            exported.mocked,
            state_after_run=self.observed is None or self.call.state_after is not None,
            materialize=bool(exported.interned_distributions),
            trace=self.trace,
            originals=self.originals() if self.trace else {},
            roots=self.roots,
            context=self.call.context,
        )
        if self.isolation is Isolation.PROCESS:
            provenance = ProvenancePolicy(self.roots)
            preload = tuple(
                name
                for name in exported.externed
                if provenance.provenance(name).origin in _PRELOADED
            )
            try:
                return run_in_worker(job, preload, self.timeout)
            except (pickle.PicklingError, TypeError, AttributeError) as error:
                note = Diagnostic(
                    DiagnosticKind.RAN_IN_PROCESS,
                    f"the inputs cannot be sent to the worker process ({type(error).__name__}: "
                    f"{error}), so the clone ran in this process, where loading the package "
                    "runs its imports.",
                    "give the model picklable inputs to check it in isolation.",
                )
                outcome = run_clone(job, self.stack)
                outcome.side_effects.insert(0, note)
                return outcome
        return run_clone(job, self.stack)

    def run(
        self,
        tolerance: Tolerance,
        compare: Callable[[Any, Any], Diagnostic | None] | None,
    ) -> tuple[Verdict, list[Diagnostic]]:
        observed = self.observed
        originals = {
            name: sys.modules[name] for name in self.exported.interned if name in sys.modules
        }
        before = after = None
        if observed is None:
            before = snapshot_globals(originals)
            try:
                expected = self.run_original(self.model, traced=True)
            except Exception as error:
                what = "the original model"
                return Verdict.RUN_FAILED, [error_diagnostic(DiagnosticKind.RUN_ERROR, what, error)]
            after = snapshot_globals(originals)
        else:
            expected = observed.outputs
        outcome = self.clone()
        self.timings.update(outcome.timings)
        notes = outcome.side_effects
        if outcome.stage is Stage.LOAD_FAILED:
            return Verdict.LOAD_FAILED, outcome.diagnostics + notes
        if outcome.stage is Stage.WORKER_FAILED:
            return Verdict.RUN_FAILED, outcome.diagnostics + notes
        explained = [*outcome.isinstance_notes]
        if before is not None and after is not None:
            explained += global_state_diagnostics(before, after, outcome.fresh_globals)
        if outcome.stage is Stage.RUN_FAILED:
            return Verdict.RUN_FAILED, outcome.diagnostics + explained + notes
        state = self.call.state_after
        if state is None:
            state = state_dict_of(self.model)

        def differences(reference: Any) -> list[Diagnostic]:
            start = time.perf_counter()
            try:
                return output_diagnostics(
                    reference,
                    outcome.outputs,
                    state=state,
                    clone_state=outcome.state,
                    tolerance=tolerance,
                    compare=compare,
                )
            finally:
                self.timings["compare"] += time.perf_counter() - start

        leaks, divergent = self.path_diagnostics(outcome)
        failing = leaks + (divergent if self.strict_paths else [])
        informational = [] if self.strict_paths else divergent
        found = differences(expected)
        if not found:
            verdict = Verdict.MISMATCH if failing else Verdict.PASSED
            return verdict, failing + informational + notes
        if observed is None:
            return Verdict.MISMATCH, found + failing + explained + informational + notes
        verdict, diagnostics = self.explain_observed(
            observed,
            found=found,
            differences=differences,
            outcome=outcome,
            originals=originals,
            tolerance=tolerance,
            parting=divergent[0].location if divergent else None,
        )
        if failing and verdict is Verdict.PASSED:
            verdict = Verdict.MISMATCH
        return verdict, failing + diagnostics + informational

    def explain_observed(
        self,
        observed: Observation,
        *,
        found: list[Diagnostic],
        differences: Callable[[Any], list[Diagnostic]],
        outcome: CloneOutcome,
        originals: Mapping[str, ModuleType],
        tolerance: Tolerance,
        parting: str | None = None,
    ) -> tuple[Verdict, list[Diagnostic]]:
        """The clone differs from what the test saw: is it the package, or the test's state?

        The original runs again (on a copy, so the test's model is untouched) to tell.
        """
        notes = outcome.side_effects
        end_of_test = snapshot_globals(model_modules(self.model))
        try:
            twin = copy.deepcopy(self.model)
        except Exception:
            twin = self.model
        before = snapshot_globals(originals)
        try:
            now = self.run_original(twin)
        except Exception:
            now = _FAILED
        mutations = global_state_diagnostics(
            before, snapshot_globals(originals), outcome.fresh_globals
        )
        if now is not _FAILED and not compare_values(observed.outputs, now, tolerance):
            # The original still answers as it did: the clone is what differs.
            return Verdict.MISMATCH, found + outcome.isinstance_notes + mutations + notes
        changed = changed_globals(observed.globals, end_of_test)
        if changed:
            return Verdict.MISMATCH, [depends_on_test_state(changed), *found, *notes]
        if mutations:  # each call changes the model's own globals
            return Verdict.MISMATCH, found + mutations + notes
        if (
            not self.faithful
            and observed.versions != tensor_versions(self.model)
            and now is not _FAILED
        ):
            # The test changed the weights after the call (a training step): the clone is
            # judged against the model as it is now.
            again = differences(now)
            return (Verdict.PASSED, notes) if not again else (Verdict.MISMATCH, again + notes)
        return Verdict.MISMATCH, [depends_on_test_state([], parting), *found, *notes]


_FAILED = object()


def _model_as_called(call: Call) -> tuple[Any, bool, Diagnostic | None]:
    """(the model to export, whether it is the model as it was at the call, and a note
    when a snapshot was wanted and could not be had)."""
    why = call.capture_error
    try:
        restored = call.model_as_called()
    except Exception as error:  # it does not unpickle (a custom __new__): the export tells
        restored, why = None, f"{type(error).__name__}: {error}"
    if restored is not None:
        return restored, True, None
    if call.observed is None:  # a plain roundtrip(model, ...): the model is as it is now
        return call.module, False, None
    if why is None:
        why = "a weight too large to copy at the call changed after it"
    note = Diagnostic(
        DiagnosticKind.NOT_CAPTURED,
        f"the model could not be captured as it was when the test called it ({why}), so "
        "it was checked as it is at the end of the test: what the test changed after the "
        "call (training, eval(), attributes) counts as a difference.",
        "nothing to do if the check passed; otherwise make the model picklable as it is "
        "at the call (a tensor subclass or member that pickles), or mark the test with "
        "@pytest.mark.torchpkg_skip.",
    )
    return call.module, False, note


def warm_worker(roots: Iterable[str | os.PathLike[str]] = ()) -> None:
    """Start the worker process now, and have it import the installed libraries this
    process has imported, while the caller goes on (the first clone then waits for neither).
    The repository's own modules are never preloaded: they change between clones."""
    provenance = ProvenancePolicy(_roots(roots))
    skip = {"torch", "torchpkg", *(pattern.partition(".")[0] for pattern in TOOLING_EXTERNS)}
    preload = tuple(
        name
        for name in sorted(sys.modules)
        if name.partition(".")[0] not in skip
        and not is_mangled(name)
        and provenance.provenance(name).origin is Origin.DISTRIBUTION
    )
    warm_up(preload)


def _roots(roots: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    return tuple(os.fspath(root) for root in roots)


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
    roots: Iterable[str | os.PathLike[str]] = (),
    isolation: Isolation | str = Isolation.PROCESS,
    timeout: float = DEFAULT_TIMEOUT,
    trace: bool = True,
    strict_paths: bool = False,
) -> RoundtripResult:
    """Export ``model``, load it fresh, run both on ``inputs`` and compare.

    Rules apply in this order, first match wins: ``mock``, ``extern``,
    ``intern``, those added by ``configure_exporter``, test tooling (extern),
    then provenance: code under ``roots`` (default: the current directory) or
    on ``sys.path`` without a distribution is interned, installed
    distributions and the standard library are extern.
    ``rtol``/``atol`` both ``None`` compare exactly (NaNs equal in the same
    places); one given, the other is 0. ``rng_state`` is restored before each
    call (default: the state at entry, which is also restored on return).
    ``compare(original_output, clone_output)`` replaces the built-in output
    comparison; state_dicts are always compared.

    ``isolation="process"`` (the default) loads and runs the clone in a worker
    process, stopped after ``timeout`` seconds; ``"in-process"`` does it here
    (the package's imports then run in this interpreter) and ``in_memory=False``
    then writes the archive to a temporary file instead of memory.

    ``model`` may be a :class:`Call` a recorder captured (the pytest plugin's):
    the model as it was called is exported, the clone runs on the call's inputs
    from its RNG state and torch context, and is compared with the outputs the
    call returned and the state it left; the original runs again only to
    explain a difference. Otherwise the clone runs in the caller's torch
    context and is compared with the original run now.
    """
    isolation = Isolation(isolation)
    caller_rng = RngState.capture()
    if isinstance(model, Call):
        if inputs or kwargs is not None or rng_state is not None:
            raise TypeError(
                "roundtrip(call) takes the inputs, keyword inputs and RNG state from the "
                "call: pass none of them"
            )
        call = model
    else:
        context = TorchContext.capture() if "torch" in sys.modules else None
        rng = rng_state if rng_state is not None else caller_rng
        call = Call(model, inputs, dict(kwargs or {}), rng, context)
    subject, faithful, uncaptured = _model_as_called(call)
    observed = call.observed
    root_paths = _roots(roots)
    rules = Rules(
        patterns(mock), patterns(extern), patterns(intern), root_paths, configure_exporter
    )
    timings = {
        "capture": call.capture_seconds,
        "export": 0.0,
        "worker": 0.0,
        "load": 0.0,
        "run_original": 0.0,
        "run": 0.0,
        "compare": 0.0,
    }
    with ExitStack() as stack:
        stack.callback(caller_rng.restore)
        target: io.BytesIO | Path = io.BytesIO()
        if isolation is Isolation.PROCESS or not in_memory:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="torchpkg-")))
            target = folder / "model.pt"
        start = time.perf_counter()
        exported = export(subject, target, rules)
        timings["export"] = time.perf_counter() - start
        if exported.source is None:
            error = exported.error or RuntimeError("the export produced no archive")
            unpicklable = find_unpicklable(subject) if pickling_failed(error) else None
            verdict = Verdict.PACKAGING_FAILED
            traced = observed.traced if observed is not None else None
            ran = traced.files if traced is not None and traced.available else None
            diagnostics = packaging_diagnostics(error, unpicklable, ran)
        else:
            check = _Check(
                subject,
                call,
                exported,
                stack,
                timings,
                isolation,
                timeout,
                root_paths,
                faithful,
                trace,
                strict_paths,
            )
            verdict, diagnostics = check.run(Tolerance(rtol, atol), compare)
    if uncaptured is not None and verdict is not Verdict.PACKAGING_FAILED:
        diagnostics = [*diagnostics, uncaptured]  # (a failed export says why itself)
    return RoundtripResult(
        qualified_name(subject),
        verdict,
        tuple(relative_paths(diagnostics, root_paths or (os.getcwd(),))),
        exported.interned,
        exported.externed,
        exported.mocked,
        exported.size,
        timings,
        exported.distributions,
    )
