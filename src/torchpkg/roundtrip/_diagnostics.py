"""What went wrong in a roundtrip, and what to do about it.

The diagnostic types, and the finders for what fails loudly: members that
cannot be pickled, stubs of mocked modules that the clone called, errors of
the clone, and the grouped ``PackagingError`` with the ``extern``/``mock``
patterns that would fix it. ``_explain`` finds what fails silently.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import os
import pickle
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from torchpkg._materialize import packaged_record, shorten_paths
from torchpkg.errors import PackagingError, PackagingErrorReason
from torchpkg.mangling import demangle
from torchpkg.roundtrip._hermeticity import not_hermetic, packaged_location

__all__ = [
    "Diagnostic",
    "DiagnosticKind",
    "error_diagnostic",
    "error_diagnostics",
    "find_unpicklable",
    "mocked_use_diagnostic",
    "not_hermetic_diagnostic",
    "packaging_diagnostics",
    "pickling_failed",
    "relative_path",
    "relative_paths",
]


class DiagnosticKind(enum.Enum):
    OUTPUT_MISMATCH = "output-mismatch"
    STATE_DICT_MISMATCH = "state-dict-mismatch"
    PACKAGING_ERROR = "packaging-error"
    ISINSTANCE_ACROSS_NAMESPACES = "isinstance-across-namespaces"
    GLOBAL_STATE_MUTATED = "global-state-mutated"
    MOCKED_MODULE_USED = "mocked-module-used"
    UNPICKLABLE_MEMBER = "unpicklable-member"
    LOAD_ERROR = "load-error"
    RUN_ERROR = "run-error"
    DEPENDS_ON_TEST_STATE = "depends-on-test-state"  # the original's answer changed after the test
    CLONE_TIMEOUT = "clone-timeout"
    CLONE_CRASHED = "clone-crashed"  # the worker process died (a signal, os._exit)
    IMPORT_SIDE_EFFECT = "import-side-effect"  # informational: never fails a model
    RAN_IN_PROCESS = "ran-in-process"  # informational: the worker could not take the inputs
    NOT_HERMETIC = "not-hermetic"  # packaged code reached outside its package, and failed
    HERMETICITY_LEAK = "hermeticity-leak"  # the clone ran code from files, not the package
    DIVERGENT_PATH = "divergent-path"  # fails only with strict paths
    NOT_CAPTURED = "not-captured"  # informational: checked as it was after the test


@dataclass(frozen=True)
class Diagnostic:
    """One finding: what is wrong, what to do next, and where (when it has a place)."""

    kind: DiagnosticKind
    message: str
    next_step: str
    location: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "next_step": self.next_step,
            "location": self.location,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Diagnostic:
        return cls(
            DiagnosticKind(data["kind"]), data["message"], data["next_step"], data.get("location")
        )


# --- paths as diagnostics show them ------------------------------------------------------


def _prefixes(roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Each root as absolute and as real path, ending with a separator; longest first."""
    found = set()
    for root in roots:
        path = os.fspath(root)
        if path:
            found |= {
                os.path.join(os.path.abspath(path), ""),
                os.path.join(os.path.realpath(path), ""),
            }
    return sorted(found, key=len, reverse=True)


def relative_path(path: str, roots: Iterable[str | os.PathLike[str]]) -> str:
    """``path`` relative to the repository root it lies under (the deepest), or as given
    (a package record, a file elsewhere)."""
    for prefix in _prefixes(roots):
        if path.startswith(prefix) and len(path) > len(prefix):
            return path[len(prefix) :]
    return path


def relative_paths(
    diagnostics: Iterable[Diagnostic], roots: Iterable[str | os.PathLike[str]]
) -> list[Diagnostic]:
    """The diagnostics with every path under a root (in the message, the next step and
    the location) written relative to it, so that a report shows paths one way."""
    prefixes = _prefixes(roots)
    if not prefixes:
        return list(diagnostics)
    # A root's path where a path starts: not inside a longer path that merely ends alike.
    pattern = re.compile(
        r"(?<![\w.\\/~-])(?:" + "|".join(re.escape(prefix) for prefix in prefixes) + r")(?=\S)"
    )

    def shorten(text: str | None) -> str | None:
        return None if text is None else pattern.sub("", text)

    def relative(diagnostic: Diagnostic) -> Diagnostic:
        shortened = dataclasses.replace(
            diagnostic,
            message=pattern.sub("", diagnostic.message),
            next_step=pattern.sub("", diagnostic.next_step),
            location=shorten(diagnostic.location),
        )
        # The same object when nothing changed (a hook's own diagnostic stays its own).
        return diagnostic if shortened == diagnostic else shortened

    return [relative(diagnostic) for diagnostic in diagnostics]


_PATTERN_ARGS = (
    "as roundtrip() arguments, in @pytest.mark.torchpkg(...), or in the torchpkg_extern / "
    "torchpkg_mock ini keys"
)


# --- packaging ---------------------------------------------------------------------------


def packaging_diagnostics(
    error: BaseException,
    unpicklable: tuple[str, str] | None,
    ran: set[str] | None = None,
) -> list[Diagnostic]:
    """The export failed: the grouped error, suggested patterns, the unpicklable member."""
    if not isinstance(error, PackagingError):
        return [
            Diagnostic(
                DiagnosticKind.PACKAGING_ERROR,
                f"exporting the model failed: {type(error).__name__}: {error}",
                "fix the error above (it was raised while the model was exported); the "
                "traceback of a direct PackageExporter.save_pickle() call shows where.",
            )
        ]
    groups = error.by_reason()
    externs = _suggested_externs(groups)
    steps = []
    if externs:
        listed = ", ".join(repr(p) for p in externs)
        steps.append(
            f"declare what the package does not contain: extern=[{listed}] (the environment "
            f"that loads the package provides them) or mock=[{listed}] (only if the model "
            f"never runs their code), {_PATTERN_ARGS}; intern=[...] puts their source in "
            "the package instead."
        )
    unused = _never_ran(groups, ran)
    if unused:
        listed = ", ".join(repr(name) for name in unused)
        steps.append(
            f"none of the code of {listed} ran during the test's call of the model, so "
            f"mock=[{listed}] is safe for this test (their stubs raise if the model ever "
            "uses them)."
        )
    steps.extend(
        reason.next_step for reason in groups if reason is not PackagingErrorReason.NO_ACTION
    )
    diagnostics = [
        Diagnostic(
            DiagnosticKind.PACKAGING_ERROR,
            f"exporting the model failed:\n{_listing(error)}",
            " ".join(steps) or "see the problems above.",
        )
    ]
    for problem in groups.get(PackagingErrorReason.MOCKED_BUT_STILL_USED, ()):
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.MOCKED_MODULE_USED,
                f"{problem.subject} is mocked, but the pickled model holds objects of it"
                + (f" ({problem.context.strip()})" if problem.context else ""),
                f"stop mocking {problem.subject}: intern or extern it instead.",
                problem.subject,
            )
        )
    if unpicklable is not None:
        path, reason = unpicklable
        diagnostics.append(
            Diagnostic(
                DiagnosticKind.UNPICKLABLE_MEMBER,
                f"{path} cannot be pickled: {reason}",
                "replace it with something picklable (a module-level function or class, an "
                "nn.Module such as nn.Identity(), a plain value), or leave it out of the "
                "pickled state (__getstate__) and rebuild it in __setstate__. Lambdas, local "
                "functions and classes, locks and open files cannot be pickled.",
                path,
            )
        )
    return diagnostics


def _listing(error: PackagingError) -> str:
    """The problems grouped by reason, each with what torchpkg knows of it (the
    error's own text is torch.package's, written for someone calling the exporter)."""
    lines = []
    for reason, problems in error.by_reason().items():
        lines.append(f"* {reason.value}")
        for problem in problems:
            about = "; ".join(text for text in (problem.context, problem.detail) if text)
            lines.append(f"    {problem.subject}" + (f" ({about})" if about else ""))
    return "\n".join(lines)


def _never_ran(groups: Mapping[PackagingErrorReason, list[Any]], ran: set[str] | None) -> list[str]:
    """The failing modules (loaded here) none of whose files ran during the traced call."""
    if not ran:
        return []
    unused = []
    for problems in groups.values():
        for problem in problems:
            name = problem.subject
            files = [
                vars(module).get("__file__")
                for key, module in list(sys.modules.items())
                if module is not None and (key == name or key.startswith(name + "."))
            ]
            files = [file for file in files if isinstance(file, str)]
            if files and not ran.intersection(files) and name not in unused:
                unused.append(name)
    return unused


def _suggested_externs(groups: Mapping[PackagingErrorReason, list[Any]]) -> list[str]:
    patterns: dict[str, None] = {}
    for problem in groups.get(PackagingErrorReason.NO_ACTION, ()):
        patterns[f"{problem.subject.partition('.')[0]}.**"] = None
    for reason in (
        PackagingErrorReason.IS_EXTENSION_MODULE,
        PackagingErrorReason.NO_DUNDER_FILE,
        PackagingErrorReason.SOURCE_FILE_NOT_FOUND,
    ):
        for problem in groups.get(reason, ()):
            patterns[problem.subject] = None
    return list(patterns)


def pickling_failed(error: BaseException) -> bool:
    if not isinstance(error, PackagingError):
        return False
    reasons = {PackagingErrorReason.UNPICKLABLE, PackagingErrorReason.OBJECT_NOT_FOUND}
    return any(problem.reason in reasons for problem in error.problems)


# --- unpicklable members -----------------------------------------------------------------


class _Probe(pickle.Pickler):
    """A pickler that skips tensor data: it only answers 'can this be pickled?'."""

    def persistent_id(self, obj: Any) -> Any:
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(
            obj, (torch.Tensor, torch.storage.UntypedStorage, torch.storage.TypedStorage)
        ):
            return id(obj)
        return None


def _pickle_error(obj: Any) -> str | None:
    try:
        _Probe(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _children(obj: Any) -> Iterator[tuple[str, Any]]:
    torch = sys.modules.get("torch")
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield f"[{key!r}]", value
        return
    if isinstance(obj, (list, tuple)):
        for index, value in enumerate(obj):
            yield f"[{index}]", value
        return
    if isinstance(obj, (set, frozenset)):
        for value in obj:
            yield f"{{{value!r}}}", value
        return
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        state = {}
    if torch is not None and isinstance(obj, torch.nn.Module):
        for name, child in obj._modules.items():
            yield (f"[{name}]" if name.isdigit() else f".{name}"), child
        skip = {"_modules", "_parameters", "_buffers"}
        state = {k: v for k, v in state.items() if k not in skip}
    for name, value in state.items():
        yield f".{name}", value
    for cls in type(obj).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
                yield f".{name}", getattr(obj, name)


def find_unpicklable(obj: Any, root: str = "model") -> tuple[str, str] | None:
    """The path to the deepest member that makes ``obj`` unpicklable, and why."""
    error = _pickle_error(obj)
    if error is None:
        return None
    path, seen = root, {id(obj)}
    while True:
        for suffix, child in _children(obj):
            if id(child) in seen:
                continue
            seen.add(id(child))
            child_error = _pickle_error(child)
            if child_error is not None:
                obj, path, error = child, path + suffix, child_error
                break
        else:
            return path, error


# --- errors raised by the clone ----------------------------------------------------------


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


def mocked_use_diagnostic(error: BaseException, mocked: Iterable[str]) -> Diagnostic | None:
    """The clone touched a stub of a mocked module (``MockedObjectUsedError``)."""
    for exc in _chain(error):
        name = getattr(exc, "name", None)
        if type(exc).__name__ == "MockedObjectUsedError" and isinstance(name, str):
            used = demangle(name)
            owners = [m for m in mocked if used == m or used.startswith(m + ".")]
            module = max(owners, key=len) if owners else used.rpartition(".")[0] or used
            return Diagnostic(
                DiagnosticKind.MOCKED_MODULE_USED,
                f"the clone used {used}, but {module} was mocked: its objects are stubs that "
                f"raise when used ({exc})",
                f"stop mocking {module} (remove it from mock=[...]): extern it if the loading "
                "environment has it, or intern it so its source goes into the package.",
                used,
            )
    return None


def _traceback_tail(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    packaged = [f for f in frames if packaged_record(f.filename) is not None]
    shown = frames[frames.index(packaged[0]) :] if packaged else frames[-4:]
    return shorten_paths("".join(traceback.format_list(shown[-8:]))).rstrip()


def error_diagnostic(kind: DiagnosticKind, what: str, error: BaseException) -> Diagnostic:
    """A load or run error: the exception, the innermost packaged frame, a short traceback."""
    location = packaged_location(error)
    message = f"{what} raised {type(error).__name__}: {error}\n{_traceback_tail(error)}"
    if kind is DiagnosticKind.LOAD_ERROR:
        next_step = (
            "the packaged code fails when imported from the archive: look for module-level "
            "code that reads files next to __file__, importlib.import_module() of packaged "
            "modules, or a dependency that should be extern; load it by hand with "
            "torchpkg.PackageImporter(...).load_pickle('model', 'model.pkl') to debug."
        )
    else:
        next_step = (
            "the original ran on the same inputs; see the other diagnostics for the usual "
            "causes (isinstance across namespaces, mocked modules, global state), or load the "
            "package with torchpkg.PackageImporter and call the model to debug."
        )
    return Diagnostic(kind, message, next_step, location)


def not_hermetic_diagnostic(what: str, error: BaseException) -> Diagnostic | None:
    """The error as the operation outside the package that caused it, if one did."""
    found = not_hermetic(error)
    if found is None:
        return None
    message = (
        f"{what} failed: {found.operation.value} at {found.location or 'an unknown line'}: "
        f"{found.detail}\n{_traceback_tail(error)}"
    )
    return Diagnostic(DiagnosticKind.NOT_HERMETIC, message, found.next_step, found.location)


def error_diagnostics(
    kind: DiagnosticKind, what: str, error: BaseException, mocked: Iterable[str]
) -> list[Diagnostic]:
    diagnostics = [not_hermetic_diagnostic(what, error) or error_diagnostic(kind, what, error)]
    mocked_use = mocked_use_diagnostic(error, mocked)
    if mocked_use is not None:
        diagnostics.append(mocked_use)
    return diagnostics
