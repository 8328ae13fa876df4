"""Typed errors. Each says what was wrong and what to do next.

Errors subclass what ``torch.package`` raises in the same situation, so code
written against ``torch.package`` keeps catching them.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torchpkg._graph import DependencyGraph

__all__ = [
    "ArchiveFormatError",
    "CoverageNotMeasuredWarning",
    "EmptyMatchError",
    "ImportedObjectNotFoundError",
    "MangleError",
    "ObjMismatchError",
    "ObjNotFoundError",
    "PackagedModuleNotFoundError",
    "PackagingError",
    "PackagingErrorReason",
    "Problem",
    "RecordNotFoundError",
    "TorchpkgError",
    "UnsupportedVersionError",
]


class TorchpkgError(Exception):
    """Base class of every error torchpkg raises on purpose."""


class PackagingErrorReason(enum.Enum):
    """Why a module or object could not be packaged.

    The values of the members shared with ``torch.package`` are its sentences,
    so logs and tests that grep them keep working; ``next_step`` is ours.
    """

    IS_EXTENSION_MODULE = (
        "Module is a C extension module. torch.package supports Python modules only."
    )
    NO_DUNDER_FILE = "Module had no __file__ defined."
    SOURCE_FILE_NOT_FOUND = "Module had a __file__, but we could not find it in your filesystem."
    DEPENDENCY_RESOLUTION_FAILED = "Dependency resolution failed."
    NO_ACTION = "Module did not match against any action pattern. Extern, mock, or intern it."
    DENIED = "Module was denied by a pattern."
    MOCKED_BUT_STILL_USED = (
        "Module was mocked out, but is still being used in the package. "
        "Please intern or extern the mocked modules if objects are supposed to be in "
        "the package."
    )
    MODULE_NOT_FOUND = "Module could not be found in the exporting environment."
    OBJECT_NOT_FOUND = "A pickled object could not be found again under its module and name."
    UNPICKLABLE = "An object could not be pickled."
    FROM_ANOTHER_PACKAGE = "An object was loaded from a package this exporter does not know."
    EMPTY_MATCH = "A pattern marked allow_empty=False matched no module."
    MAIN_WITHOUT_SOURCE = "An object defined in __main__ has no source to package it from."
    MAIN_GLOBAL_WITHOUT_SOURCE = (
        "An object defined in __main__ uses a global of __main__ that cannot be packaged."
    )

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}>"

    @property
    def next_step(self) -> str:
        return _NEXT_STEPS[self]


_NEXT_STEPS: dict[PackagingErrorReason, str] = {
    PackagingErrorReason.IS_EXTENSION_MODULE: (
        "extern() it (the loading environment must have it) or mock() it if it is never run."
    ),
    PackagingErrorReason.NO_DUNDER_FILE: (
        "extern() or mock() it, or give its source with save_source_string()."
    ),
    PackagingErrorReason.SOURCE_FILE_NOT_FOUND: (
        "make the source file readable, or give it with save_source_string()."
    ),
    PackagingErrorReason.DEPENDENCY_RESOLUTION_FAILED: (
        "fix the module's source (it could not be parsed), or extern() it."
    ),
    PackagingErrorReason.NO_ACTION: (
        "call intern(), extern() or mock() with a pattern that matches the module."
    ),
    PackagingErrorReason.DENIED: "remove the dependency, or stop denying the module.",
    PackagingErrorReason.MOCKED_BUT_STILL_USED: (
        "intern() or extern() the module instead of mocking it: a pickled object needs it."
    ),
    PackagingErrorReason.MODULE_NOT_FOUND: (
        "install the module, or pass importer= with the PackageImporter that provides it."
    ),
    PackagingErrorReason.OBJECT_NOT_FOUND: (
        "define the object at module level (not inside a function), or give its class a "
        "__reduce__ / __reduce_package__."
    ),
    PackagingErrorReason.UNPICKLABLE: (
        "drop or replace the member (lambdas, open files, locks cannot be pickled), or "
        "define __getstate__ / __reduce_package__ on its owner."
    ),
    PackagingErrorReason.FROM_ANOTHER_PACKAGE: (
        "pass importer=(that PackageImporter, sys_importer) to the PackageExporter, so its "
        "modules are found in the archive they came from."
    ),
    PackagingErrorReason.EMPTY_MATCH: (
        "fix the pattern, or pass allow_empty=True if matching nothing is expected."
    ),
    PackagingErrorReason.MAIN_WITHOUT_SOURCE: (
        "define it with a class or def statement in the script or notebook (not type(), "
        "exec() or eval()), keep the script's file as it ran, or move it into a module and "
        "intern() that."
    ),
    PackagingErrorReason.MAIN_GLOBAL_WITHOUT_SOURCE: (
        "make the value an attribute (or buffer) of the model, pass it as an argument, or "
        "import it from a module."
    ),
}


@dataclass(frozen=True)
class Problem:
    """One thing that stops an export: which module (or pattern) and why.

    ``context`` is the ``Context:`` line of the message, worded as torch.package
    words it for the reasons it shares (None where it prints none); ``detail`` is
    torchpkg's own explanation, which goes into the exception's notes.
    """

    reason: PackagingErrorReason
    subject: str
    context: str | None = None
    chain: tuple[str, ...] = field(default=())
    detail: str | None = None


# Modules of the standard library that are not externed implicitly, as in torch.package.
DISALLOWED_STDLIB = frozenset({"sys", "io"})

# torch.package's sentences, so a message matches its message to the character.
_DISALLOWED_NOTE = (
    "      Note: While we usually use modules in the python standard library from the local "
    "environment, `{0}` has a lot of system level access and therefore can pose a security "
    "risk. We heavily recommend removing `{0}` from your packaged code. However, if that is "
    'not possible, add it to the extern list by calling PackageExporter.extern("`{0}`")'
)
_DEBUG_HINT = (
    "Set debug=True when invoking PackageExporter for a visualization of where broken "
    "modules are coming from!"
)


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``; Python 3.10 has no notes, so there the list is kept
    by hand (its tracebacks do not show it; ``__notes__`` still holds it)."""
    if sys.version_info >= (3, 11):
        error.add_note(note)
    else:
        error.__notes__ = [*getattr(error, "__notes__", ()), note]  # type: ignore[attr-defined]


class PackagingError(TorchpkgError):
    """Every problem an export found, raised once, grouped by reason.

    ``str()`` is what torch.package says about the same problems, to the
    character. torchpkg's advice (each problem's detail, what to do next) is in
    the exception's notes, which tracebacks show; ``problems`` holds everything.
    ``dependency_graph`` is the exporter's graph, as torch.package attaches it
    for tools (``torchpkg.analyze.find_first_use_of_broken_modules``).
    """

    def __init__(
        self,
        problems: Iterable[Problem],
        debug: bool = False,
        dependency_graph: DependencyGraph | None = None,
    ) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        self.debug = debug
        self.dependency_graph = dependency_graph
        super().__init__(self._message())
        for note in self._notes():
            add_note(self, note)

    def by_reason(self) -> dict[PackagingErrorReason, list[Problem]]:
        groups: dict[PackagingErrorReason, list[Problem]] = {}
        for problem in self.problems:
            groups.setdefault(problem.reason, []).append(problem)
        return groups

    def _message(self) -> str:
        lines = [""]
        for reason, problems in self.by_reason().items():
            if reason is PackagingErrorReason.EMPTY_MATCH:
                continue  # torch.package reports patterns only once nothing else fails
            lines.append(f"* {reason.value}")
            for problem in problems:
                lines.append(f"    {problem.subject}")
                if problem.context is not None:
                    lines.append(f"      Context: {problem.context}")
                if problem.subject in DISALLOWED_STDLIB:
                    lines.append(_DISALLOWED_NOTE.format(problem.subject))
                if self.debug:
                    path = " -> ".join(self._path_to(problem))
                    lines.append(f"      A path to {problem.subject}: {path}")
        if not self.debug:
            lines += ["", _DEBUG_HINT]
        return "\n".join(lines) + "\n"

    def _path_to(self, problem: Problem) -> list[str]:
        """How the subject got into the export, as torch.package finds it: first uses."""
        graph = self.dependency_graph
        if graph is not None and problem.subject in graph:
            return graph.first_path(problem.subject)
        return list(problem.chain) or [problem.subject]

    def _notes(self) -> list[str]:
        notes = []
        for reason, problems in self.by_reason().items():
            for problem in problems:
                if reason is PackagingErrorReason.EMPTY_MATCH:
                    notes.append(
                        f"{problem.subject} is marked allow_empty=False and matched no module "
                        "(torch.package reports it once the problems above are fixed)."
                    )
                elif problem.detail is not None:
                    notes.append(f"{problem.subject}: {problem.detail}")
                if problem.subject in DISALLOWED_STDLIB:
                    notes.append(
                        f"{problem.subject}: to let the loading environment provide it, call "
                        f'extern("{problem.subject}") (the pattern has no backticks).'
                    )
            notes.append(f"Next ({reason.name}): {reason.next_step}")
        return notes


class EmptyMatchError(PackagingError):
    """Patterns marked ``allow_empty=False`` matched no module (and nothing else failed).

    As in torch.package, the message names the first such pattern group; the
    notes and ``problems`` name every one.
    """

    def _message(self) -> str:
        first = (self.problems[0].context or self.problems[0].subject) if self.problems else ""
        return (
            f"Exporter did not match any modules to {first}, which was marked as allow_empty=False"
        )

    def _notes(self) -> list[str]:
        notes = [
            f"{problem.subject} is marked allow_empty=False and matched no module too."
            for problem in self.problems[1:]
        ]
        reason = PackagingErrorReason.EMPTY_MATCH
        return [*notes, f"Next ({reason.name}): {reason.next_step}"]


class ArchiveFormatError(TorchpkgError, RuntimeError):
    """The file is not a readable package archive (not a zip, truncated, corrupt)."""


class RecordNotFoundError(ArchiveFormatError):
    """A record the caller (or a pickle) asked for is not in the archive."""

    def __init__(self, record: str, archive: str) -> None:
        self.record = record
        self.archive = archive
        super().__init__(
            f"{archive} has no record {record!r}. Check the package and resource names "
            "(importer.file_structure() lists what the archive holds)."
        )


class UnsupportedVersionError(ArchiveFormatError):
    """The archive's ``.data/version`` is one this torchpkg cannot read."""

    def __init__(self, version: str, archive: str, supported: Sequence[int]) -> None:
        self.version = version
        self.archive = archive
        super().__init__(
            f"{archive} has archive format version {version!r}; this torchpkg reads versions "
            f"{supported[0]} to {supported[-1]}. Upgrade torchpkg to read it, or re-export the "
            "package with the version that wrote it."
        )


class PackagedModuleNotFoundError(TorchpkgError, ModuleNotFoundError):
    """Packaged code (or a pickle) needs a module that is neither in the package nor extern."""


class ImportedObjectNotFoundError(TorchpkgError, AttributeError):
    """A pickle names an attribute that its packaged module does not define."""


class MangleError(TorchpkgError, AssertionError, ValueError):
    """A name that cannot be mangled (an empty one).

    torch.package asserts here, so code that catches ``AssertionError`` keeps
    working; it is a ``ValueError`` too, which is what it is.
    """


class ObjNotFoundError(TorchpkgError, ValueError):
    """``Importer.get_name`` could not find an object under the module and name it reports."""


class ObjMismatchError(TorchpkgError, ValueError):
    """``Importer.get_name`` found a different object under the module and name it reports."""


class CoverageNotMeasuredWarning(UserWarning):
    """coverage.py measures the process, but some packaged code cannot be mapped to a file."""
