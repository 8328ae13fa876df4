"""pytest wiring: options, ini keys, markers and hooks around ``torchpkg.roundtrip``.

Loading this module imports no torch: the recorder (which does) is imported
only when roundtrips are on and the test session already imported torch, and
the roundtrip core only when a model is checked.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

from pytest_torchpkg import hookspecs
from pytest_torchpkg.report import (
    NOT_CHECKED_ATTRIBUTE,
    Mode,
    SessionReport,
    attach,
    not_checked_of,
    results_of,
)

if TYPE_CHECKING:
    from pytest_torchpkg.recorder import Recorder
    from torchpkg import PackageExporter
    from torchpkg.roundtrip import Diagnostic, RoundtripResult

ROUNDTRIP_OPTION: Final = "--torchpkg-roundtrip"
REPORT_OPTION: Final = "--torchpkg-report"
ROUNDTRIP_INI: Final = "torchpkg_roundtrip"
EXTERN_INI: Final = "torchpkg_extern"
MOCK_INI: Final = "torchpkg_mock"
INTERN_INI: Final = "torchpkg_intern"
RTOL_INI: Final = "torchpkg_rtol"
ATOL_INI: Final = "torchpkg_atol"
ISOLATION_INI: Final = "torchpkg_isolation"
TIMEOUT_INI: Final = "torchpkg_timeout"
TRACE_INI: Final = "torchpkg_trace"
STRICT_PATHS_INI: Final = "torchpkg_strict_paths"
ISOLATIONS: Final = ("process", "in-process")
# The default of torchpkg_isolation when the ini file does not set it.
ISOLATION_ENV: Final = "TORCHPKG_ISOLATION"
MARKER: Final = "torchpkg"
SKIP_MARKER: Final = "torchpkg_skip"

_PATTERN_KEYS: Final = ("extern", "mock", "intern")
_TOLERANCE_KEYS: Final = ("rtol", "atol")
_FLAG_KEYS: Final = ("strict_paths",)


@dataclass(frozen=True)
class RoundtripOptions:
    """The export policy and tolerances handed to ``torchpkg.roundtrip.roundtrip``."""

    extern: tuple[str, ...] = ()
    mock: tuple[str, ...] = ()
    intern: tuple[str, ...] = ()
    rtol: float | None = None
    atol: float | None = None
    strict_paths: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Settings:
    """The session's configuration, from the command line and the ini file."""

    mode: Mode
    report_path: Path | None
    defaults: RoundtripOptions
    root: Path  # the repository under test: its code is interned
    isolation: str  # where clones run: "process" or "in-process"
    timeout: float  # seconds a clone may take to load and run
    trace: bool = True  # watch which code the clone runs (leaks, divergent paths)


SETTINGS: Final = pytest.StashKey[Settings]()
RECORDER: Final[pytest.StashKey[Recorder]] = pytest.StashKey()
RESULTS: Final[pytest.StashKey[list[RoundtripResult]]] = pytest.StashKey()
NOT_CHECKED: Final[pytest.StashKey[list[str]]] = pytest.StashKey()


def parse_mode(value: str) -> Mode:
    """argparse ``type`` of ``--torchpkg-roundtrip``: a precise error for a bad mode."""
    try:
        return Mode(value)
    except ValueError:
        choices = ", ".join(mode.value for mode in Mode)
        raise argparse.ArgumentTypeError(
            f"invalid mode {value!r}: expected one of {choices} (a bare {ROUNDTRIP_OPTION} "
            f"reads the next word as its mode: write {ROUNDTRIP_OPTION}=fail to put paths after it)"
        ) from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torchpkg", "torchpkg: do the models survive packaging")
    group.addoption(
        ROUNDTRIP_OPTION,
        dest="torchpkg_roundtrip",
        nargs="?",
        const=Mode.FAIL,
        default=None,
        type=parse_mode,
        metavar="MODE",
        help="round-trip every torch.nn.Module a test calls at the top level through a "
        "package and compare outputs; 'fail' (the default) fails the test when a model does "
        "not survive, 'report' only reports, 'off' turns off the ini default.",
    )
    group.addoption(
        REPORT_OPTION,
        dest="torchpkg_report",
        default=None,
        metavar="PATH",
        help="write the roundtrip results (per test and model) to PATH as JSON.",
    )
    parser.addini(
        ROUNDTRIP_INI, f"default mode of {ROUNDTRIP_OPTION}: fail, report or off.", default="off"
    )
    for name, action in [(EXTERN_INI, "extern"), (MOCK_INI, "mock"), (INTERN_INI, "intern")]:
        parser.addini(name, f"module patterns to {action} in every roundtrip.", type="linelist")
    parser.addini(RTOL_INI, "relative tolerance for outputs (default: exact).", default="")
    parser.addini(ATOL_INI, "absolute tolerance for outputs (default: exact).", default="")
    parser.addini(
        ISOLATION_INI,
        "where clones load and run: 'process' (a worker process, the default: the session "
        f"never sees the package's imports) or 'in-process'; default: ${ISOLATION_ENV}, "
        "else process.",
        default=None,
    )
    parser.addini(
        TIMEOUT_INI, "seconds a clone may take to load and run (default 300).", default="300"
    )
    parser.addini(
        TRACE_INI,
        "trace which code clones run, for hermeticity leaks and divergent paths (default true).",
        type="bool",
        default=True,
    )
    parser.addini(
        STRICT_PATHS_INI,
        "fail a model whose clone runs other lines than the original (default false: report).",
        type="bool",
        default=False,
    )


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def pytest_configure(config: pytest.Config) -> None:
    # The fixtures module imports this one, so it is imported here rather than at the top.
    from pytest_torchpkg import fixtures

    config.pluginmanager.register(fixtures, "torchpkg-fixtures")
    config.addinivalue_line(
        "markers",
        f"{MARKER}(extern=[...], mock=[...], intern=[...], rtol=None, atol=None): "
        "export policy and tolerances for the models this test round-trips.",
    )
    config.addinivalue_line(
        "markers", f"{SKIP_MARKER}(reason=...): do not round-trip the models this test calls."
    )
    settings = _settings(config)
    config.stash[SETTINGS] = settings
    # Under xdist the workers check models; only the controller sums them up.
    if settings.mode is not Mode.OFF and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_SessionPlugin(settings), "torchpkg-session")


def _settings(config: pytest.Config) -> Settings:
    mode: Mode | None = config.getoption("torchpkg_roundtrip")
    if mode is None:
        try:
            mode = parse_mode(config.getini(ROUNDTRIP_INI).strip())
        except argparse.ArgumentTypeError as error:
            raise pytest.UsageError(f"ini key {ROUNDTRIP_INI}: {error}") from None
    report: str | None = config.getoption("torchpkg_report")
    if report is not None and mode is Mode.OFF:
        raise pytest.UsageError(
            f"{REPORT_OPTION} reports on roundtrips, which are off: add {ROUNDTRIP_OPTION} "
            f"(or set the ini key {ROUNDTRIP_INI})."
        )
    defaults = RoundtripOptions(
        extern=tuple(config.getini(EXTERN_INI)),
        mock=tuple(config.getini(MOCK_INI)),
        intern=tuple(config.getini(INTERN_INI)),
        rtol=_ini_number(config, RTOL_INI),
        atol=_ini_number(config, ATOL_INI),
        strict_paths=bool(config.getini(STRICT_PATHS_INI)),
    )
    report_path = None if report is None else config.invocation_params.dir / report
    isolation = (config.getini(ISOLATION_INI) or os.environ.get(ISOLATION_ENV, "process")).strip()
    if isolation not in ISOLATIONS:
        raise pytest.UsageError(
            f"ini key {ISOLATION_INI}: expected one of {', '.join(ISOLATIONS)}, got {isolation!r}"
        )
    timeout = _ini_number(config, TIMEOUT_INI)
    if timeout is None or timeout <= 0:
        raise pytest.UsageError(f"ini key {TIMEOUT_INI}: expected a number of seconds > 0")
    trace = bool(config.getini(TRACE_INI))
    return Settings(mode, report_path, defaults, config.rootpath, isolation, timeout, trace)


def _ini_number(config: pytest.Config, name: str) -> float | None:
    text = config.getini(name).strip()
    if not text:
        return None
    try:
        value: float | None = float(text)
    except ValueError:
        value = None
    if value is None or not value >= 0:  # "not >=" also rejects nan
        raise pytest.UsageError(f"ini key {name}: expected a number >= 0, got {text!r}")
    return value


def options_for(item: pytest.Item) -> RoundtripOptions:
    """The ini defaults updated by the item's ``torchpkg`` markers, the closest one last.

    Patterns accumulate (a marker adds to the ini's); tolerances are replaced.
    """
    options = item.config.stash[SETTINGS].defaults
    for mark in reversed(list(item.iter_markers(MARKER))):
        unknown = sorted(set(mark.kwargs) - {*_PATTERN_KEYS, *_TOLERANCE_KEYS, *_FLAG_KEYS})
        if mark.args or unknown:
            pytest.fail(
                f"@pytest.mark.{MARKER} takes only the keyword arguments "
                f"{', '.join(_PATTERN_KEYS + _TOLERANCE_KEYS + _FLAG_KEYS)}; got "
                f"{'positional arguments' if mark.args else ', '.join(unknown)}",
                pytrace=False,
            )
        changes: dict[str, Any] = {}
        for key in _PATTERN_KEYS:
            if key in mark.kwargs:
                changes[key] = getattr(options, key) + _patterns(key, mark.kwargs[key])
        for key in _TOLERANCE_KEYS:
            if key in mark.kwargs:
                changes[key] = _tolerance(key, mark.kwargs[key])
        for key in _FLAG_KEYS:
            if key in mark.kwargs:
                if not isinstance(mark.kwargs[key], bool):
                    pytest.fail(
                        f"@pytest.mark.{MARKER}({key}=...) expects True or False, "
                        f"got {mark.kwargs[key]!r}",
                        pytrace=False,
                    )
                changes[key] = mark.kwargs[key]
        options = dataclasses.replace(options, **changes)
    return options


def _patterns(key: str, value: object) -> tuple[str, ...]:
    patterns = (value,) if isinstance(value, str) else value
    if isinstance(patterns, (list, tuple)) and all(isinstance(p, str) for p in patterns):
        return tuple(patterns)
    pytest.fail(
        f"@pytest.mark.{MARKER}({key}=...) expects a module pattern or a list of them, "
        f"got {value!r}",
        pytrace=False,
    )


def _tolerance(key: str, value: object) -> float | None:
    if value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    ):
        return value
    pytest.fail(
        f"@pytest.mark.{MARKER}({key}=...) expects a number >= 0 or None, got {value!r}",
        pytrace=False,
    )


def run_roundtrip(item: pytest.Item, model: Any, *inputs: Any, **options: Any) -> RoundtripResult:
    """``roundtrip(...)`` with the item's hook implementations plugged in."""
    from torchpkg.roundtrip import roundtrip

    hook = item.ihook

    def configure_exporter(exporter: PackageExporter) -> None:
        hook.pytest_torchpkg_configure_exporter(exporter=exporter, item=item)

    compare: Callable[[Any, Any], Diagnostic | None] | None = None
    if hook.pytest_torchpkg_compare.get_hookimpls():

        def compare(original: Any, clone: Any) -> Diagnostic | None:
            diagnostic: Diagnostic | None = hook.pytest_torchpkg_compare(
                original=original, clone=clone, item=item
            )
            return diagnostic

    settings = item.config.stash[SETTINGS]
    where = {
        "roots": (settings.root,),
        "isolation": settings.isolation,
        "timeout": settings.timeout,
        "trace": settings.trace,
    }
    result = roundtrip(
        model,
        *inputs,
        configure_exporter=configure_exporter,
        compare=compare,
        **{**where, **options},
    )
    hook.pytest_torchpkg_roundtrip_result(result=result, item=item)
    return result


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the clone worker while the first tests run, not when the first model is done."""
    settings = session.config.stash[SETTINGS]
    if settings.mode is not Mode.OFF and settings.isolation == "process" and "torch" in sys.modules:
        from torchpkg.roundtrip import warm_worker

        warm_worker((settings.root,))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    settings = item.config.stash[SETTINGS]
    # No torch in the process means no module to record: stay torch-free.
    if (
        settings.mode is Mode.OFF
        or item.get_closest_marker(SKIP_MARKER)
        or "torch" not in sys.modules
    ):
        return (yield)
    options = options_for(item).as_kwargs()
    from pytest_torchpkg.recorder import Recorder

    roots = (str(settings.root),) if settings.trace else ()
    with Recorder(roots) as recorder:
        item.stash[RECORDER] = recorder
        try:
            outcome = yield  # a test that fails on its own raises here: nothing is checked
        finally:
            del item.stash[RECORDER]
    # roundtrip() puts the RNG back as it found it, so later tests draw the same numbers.
    item.stash[NOT_CHECKED] = recorder.skipped
    item.stash[RESULTS] = [run_roundtrip(item, call, **options) for call in recorder.calls]
    return outcome


def pytest_unconfigure(config: pytest.Config) -> None:
    recorder = sys.modules.get("pytest_torchpkg.recorder")
    if recorder is not None:
        recorder.uninstall()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    results = item.stash.get(RESULTS, None)
    if call.when == "call" and results:
        settings = item.config.stash[SETTINGS]
        attach(report, results, settings.mode, verbosity=item.config.get_verbosity())
    if call.when == "call" and item.stash.get(NOT_CHECKED, None):
        setattr(report, NOT_CHECKED_ATTRIBUTE, item.stash[NOT_CHECKED])
    return report


class _SessionPlugin:
    """Controller-side hooks: collect the results from reports, print and write them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.report = SessionReport(settings.mode)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.report.add(report.nodeid, results_of(report), not_checked_of(report))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.settings.report_path is not None:
            self.report.write_json(self.settings.report_path)
        session.exitstatus = self.report.exit_status(session.exitstatus)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_sep("=", "torchpkg roundtrip")
        for line in self.report.summary_lines():
            terminalreporter.write_line(line)
        if self.settings.report_path is not None:
            terminalreporter.write_line(f"JSON report: {self.settings.report_path}")
