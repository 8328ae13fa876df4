"""Which lines of which files ran, for the hermeticity and path checks.

A run is traced only where a caller says a file matters (``classify``): the
package's own code, the files it was exported from, the repository. Each line
counts once, in the order it first ran; for code outside the package the
first call into each file is kept with its call site. On 3.12+ this uses
``sys.monitoring`` (each line location reports once, then is disabled); on
3.11 ``sys.settrace`` with local tracing only in the files that matter, and
not at all when another tracer (coverage.py, a debugger) holds the hook.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

from torchpkg._materialize import packaged_record
from torchpkg.mangling import is_mangled
from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind

__all__ = ["Classify", "Trace", "Traced", "divergence_diagnostic", "leak_diagnostics", "trace"]

# (filename, packaged) -> the file's key (its record path), or None: not traced.
Classify = Callable[[str, bool], "str | None"]


@dataclass
class Traced:
    """What a traced run executed: packaged lines, and code from outside the package."""

    lines: list[tuple[str, int]] = field(default_factory=list)  # (record, line), first-run order
    # record -> (call site, line) of the first call into that file's unpackaged copy
    outside: dict[str, tuple[str, int]] = field(default_factory=dict)
    outside_lines: list[tuple[str, int]] = field(default_factory=list)
    available: bool = True  # False: another tracer held the hook, nothing was traced
    files: set[str] = field(default_factory=set)  # every file whose Python code started

    def keyed(self, records: dict[str, str]) -> Traced:
        """The lines outside the package under their records, where ``records`` has one."""
        return Traced(
            outside_lines=[(records[f], line) for f, line in self.outside_lines if f in records],
            available=self.available,
            files=self.files,
        )


def _site(frame: FrameType | None) -> tuple[str, int]:
    if frame is None:
        return ("?", 0)
    filename = frame.f_code.co_filename
    return (packaged_record(filename) or filename, frame.f_lineno)


def _packaged(frame: FrameType) -> bool:
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and is_mangled(name)


class Trace:
    """Context manager: traces the current thread while entered."""

    def __init__(self, classify: Classify, inputs: object = ()) -> None:
        self.result = Traced()
        self._classify = classify
        # Functions the test passed in run where they were written: not the package's.
        self._ignored = _input_code(inputs)
        self._keys: dict[tuple[str, bool], str | None] = {}
        self._seen: set[tuple[str, bool, int]] = set()
        self._tool: int | None = None

    def _key(self, filename: str, packaged: bool) -> str | None:
        cache_key = (filename, packaged)
        if cache_key not in self._keys:
            self._keys[cache_key] = self._classify(filename, packaged)
        return self._keys[cache_key]

    def _record(self, key: str, packaged: bool, line: int, caller: FrameType | None) -> None:
        if (key, packaged, line) in self._seen:
            return
        self._seen.add((key, packaged, line))
        if packaged:
            self.result.lines.append((key, line))
        else:
            self.result.outside_lines.append((key, line))
            self.result.outside.setdefault(key, _site(caller))

    # --- 3.11: sys.settrace ------------------------------------------------------------

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        self.result.files.add(frame.f_code.co_filename)
        if frame.f_code in self._ignored:
            return None
        packaged = _packaged(frame)
        if self._key(frame.f_code.co_filename, packaged) is None:
            return None
        return self._line

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            packaged = _packaged(frame)
            key = self._key(frame.f_code.co_filename, packaged)
            if key is not None:
                self._record(key, packaged, frame.f_lineno, frame.f_back)
        return self._line

    # --- 3.12+: sys.monitoring -----------------------------------------------------------

    def _monitored_line(self, code: CodeType, line: int) -> Any:
        monitoring: Any = getattr(sys, "monitoring")  # noqa: B009 (3.12+ only)
        if code in self._ignored:
            return monitoring.DISABLE
        frame = sys._getframe(1)
        packaged = _packaged(frame)
        key = self._key(code.co_filename, packaged)
        if key is not None:
            self._record(key, packaged, line, frame.f_back)
        return monitoring.DISABLE  # each line location reports once

    def _monitored_start(self, code: CodeType, offset: int) -> Any:
        self.result.files.add(code.co_filename)
        return getattr(sys, "monitoring").DISABLE  # noqa: B009 (3.12+ only)

    def __enter__(self) -> Traced:
        monitoring: Any = getattr(sys, "monitoring", None)
        if monitoring is not None:
            for tool in (monitoring.PROFILER_ID, monitoring.OPTIMIZER_ID, 4, 3):
                if monitoring.get_tool(tool) is None:
                    monitoring.use_tool_id(tool, "torchpkg")
                    self._tool = tool
                    break
            else:
                self.result.available = False
                return self.result
            events = monitoring.events
            monitoring.register_callback(self._tool, events.LINE, self._monitored_line)
            monitoring.register_callback(self._tool, events.PY_START, self._monitored_start)
            monitoring.set_events(self._tool, events.LINE | events.PY_START)
            return self.result
        if sys.gettrace() is not None:
            self.result.available = False
            return self.result
        sys.settrace(self._call)
        return self.result

    def __exit__(self, *exc_info: object) -> None:
        monitoring: Any = getattr(sys, "monitoring", None)
        if monitoring is not None:
            if self._tool is not None:
                monitoring.set_events(self._tool, 0)
                monitoring.register_callback(self._tool, monitoring.events.LINE, None)
                monitoring.register_callback(self._tool, monitoring.events.PY_START, None)
                monitoring.free_tool_id(self._tool)
                monitoring.restart_events()
            return
        if self.result.available:
            sys.settrace(None)


def trace(classify: Classify, inputs: object = ()) -> Trace:
    return Trace(classify, inputs)


def _input_code(inputs: object, depth: int = 0) -> set[CodeType]:
    """The code of callables among ``inputs`` (and inside their lists, tuples and dicts)."""
    found: set[CodeType] = set()
    code = getattr(getattr(inputs, "__func__", inputs), "__code__", None)
    if isinstance(code, CodeType):
        found.add(code)
    elif depth < 3 and isinstance(inputs, (list, tuple, dict)):
        items = inputs.values() if isinstance(inputs, dict) else inputs
        for item in items:
            found |= _input_code(item, depth + 1)
    return found


# --- what the traces say ---------------------------------------------------------------


def leak_diagnostics(clone: Traced) -> list[Diagnostic]:
    """Code from the files the package was made from, run while the clone ran."""
    return [
        Diagnostic(
            DiagnosticKind.HERMETICITY_LEAK,
            f"while the clone ran, {key} ran from its file on disk, not from the package "
            f"(first called from {site}:{line}): the clone is not using only the package",
            "the clone reached the original code: an import at run time that the package "
            "cannot serve (importlib.import_module of a computed name), or an object of the "
            "original kept somewhere both can see (a cache or registry in an extern module). "
            "Intern the module explicitly, or keep such objects out of extern state.",
            f"{site}:{line}",
        )
        for key, (site, line) in clone.outside.items()
    ]


def divergence_diagnostic(original: Traced, clone: Traced) -> Diagnostic | None:
    """Where the original and the clone, on the same inputs, first ran different lines."""
    if not (original.available and clone.available):
        return None
    ran = set(original.outside_lines)
    cloned = set(clone.lines)
    records = {key for key, _ in original.outside_lines}
    only_original = [step for step in original.outside_lines if step not in cloned]
    only_clone = [step for step in clone.lines if step not in ran and step[0] in records]
    if not only_original and not only_clone:
        return None
    if only_original:
        (record, line), who, other = only_original[0], "the original", "the clone"
    else:
        (record, line), who, other = only_clone[0], "the clone", "the original"
    return Diagnostic(
        DiagnosticKind.DIVERGENT_PATH,
        f"on the same inputs {who} ran {record}:{line} and {other} did not "
        f"({len(only_original)} lines only the original ran, {len(only_clone)} only the "
        "clone): the two took different paths, whatever their outputs",
        "look at the condition that leads to that line: an isinstance check against a "
        "class the package also has (packaged and installed classes differ), a registry "
        "lookup, or a module-level flag that differs inside the package.",
        f"{record}:{line}",
    )
