"""Run one suite three times, each in a fresh pytest process: plain, gate, report.

Each run's working directory is the extracted sdist, which is also pytest's
rootdir (so the gate interns the library's own code), with the suite's own
configuration file and no conftest above it. Every run loads ``upstream._seed``
so all three draw the same random numbers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from upstream.junit import Case, read_cases
from upstream.suites import REPO, WORKDIR, Suite

__all__ = ["MODES", "Run", "SuiteRun", "describe_torchpkg", "load_suite", "run_suite"]

# mode -> the torchpkg options that make it
MODES: Final[dict[str, tuple[str, ...]]] = {
    "plain": (),
    "gate": ("--torchpkg-roundtrip",),
    "report": ("--torchpkg-roundtrip=report",),
}
# Environment that would leak the calling session (a pytest run, coverage) into the runs.
_DROPPED_ENV: Final = ("PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_", "COV_CORE_")
# Files pytest reads its configuration from, in the order it looks for them.
_CONFIG_FILES: Final = ("pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")
_CONFIG_SECTIONS: Final = ("[pytest]", "[tool.pytest.ini_options]", "[tool:pytest]")


@dataclass
class Run:
    """One pytest process: what it ran, how long it took, what the plugin reported."""

    mode: str
    seconds: float
    exit_code: int
    timed_out: bool
    log: Path
    junit: Path
    report: Path | None
    torchpkg: dict[str, Any]  # which torchpkg it ran (see describe_torchpkg)
    cases: dict[str, Case] = field(default_factory=dict)
    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # nodeid -> results
    not_checked: dict[str, int] = field(default_factory=dict)  # torch-only models, by class


@dataclass
class SuiteRun:
    suite: Suite
    paths: tuple[str, ...]
    runs: dict[str, Run]  # by mode


def config_file(folder: Path) -> Path:
    """The suite's pytest configuration file; else a file that stops pytest looking above.

    Without ``-c``, pytest would climb out of the sdist into this repository and
    take its configuration (``filterwarnings = error``, ``--strict-markers``).
    """
    existing = [folder / name for name in _CONFIG_FILES if (folder / name).is_file()]
    for path in existing:
        text = path.read_text(encoding="utf-8", errors="replace")
        if path.name.startswith(("pytest", ".pytest")) or any(s in text for s in _CONFIG_SECTIONS):
            return path
    for path in existing:
        if path.name in ("pyproject.toml", "tox.ini"):
            return path
    empty = WORKDIR / "pytest.ini"
    empty.parent.mkdir(parents=True, exist_ok=True)
    empty.write_text("[pytest]\n", encoding="utf-8")
    return empty


def _pythonpath() -> str:
    """A folder holding only this package, so ``-p upstream._seed`` imports without
    putting the whole repository (its ``tests``, ``conftest``) on the suites' path."""
    shim = WORKDIR / "pythonpath"
    link = shim / "upstream"
    try:
        if not link.exists():
            shim.mkdir(parents=True, exist_ok=True)
            link.symlink_to(REPO / "upstream", target_is_directory=True)
        return str(shim)
    except OSError:
        return str(REPO)


def environment(src: Path | None = None) -> dict[str, str]:
    """The runs' environment; ``src``: a torchpkg source folder to test instead of the
    installed one (it goes first on ``PYTHONPATH``, ahead of the editable install)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)}
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONHASHSEED"] = "0"
    # One torch thread per process unless asked otherwise: on a busy machine, OpenMP's
    # spinning threads made a run ten times slower, which drowns the gate's own cost.
    env.setdefault("OMP_NUM_THREADS", "1")
    first = [str(src.resolve())] if src is not None else []
    env["PYTHONPATH"] = os.pathsep.join(
        [*first, _pythonpath(), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def describe_torchpkg(src: Path | None) -> dict[str, Any]:
    """Which torchpkg runs: a ``--src`` folder, or this repository's (commit, and whether
    its ``src/`` differs from it; the sources can change while the suites run)."""
    if src is not None:
        return {"src": str(src.resolve())}

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], check=False, cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    dirty = git("status", "--porcelain", "--", "src")
    return {
        "src": str(REPO / "src"),
        "commit": git("rev-parse", "HEAD"),
        "src_modified": None if dirty is None else bool(dirty),
    }


def command(suite: Suite, mode: str, paths: tuple[str, ...], out: Path, workers: int) -> list[str]:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "upstream._seed"]
    args += ["-c", str(config_file(suite.folder)), "--rootdir", ".", "--confcutdir", "."]
    args += ["--junitxml", str(out / f"{mode}.xml")]
    args += list(MODES[mode])
    if mode != "plain":
        args += ["--torchpkg-report", str(out / f"{mode}.json")]
    if workers > 0:
        args += ["-n", str(workers)]
    return [*args, *paths]


def _report(path: Path | None) -> dict[str, Any]:
    """The plugin's ``--torchpkg-report`` JSON (empty if the run wrote none)."""
    if path is None or not path.is_file():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _load(suite: Suite, mode: str, out: Path, meta: dict[str, Any]) -> Run:
    """A finished run, from its artefacts in ``out`` and what the harness measured."""
    report = out / f"{mode}.json" if mode != "plain" else None
    run = Run(
        mode,
        float(meta["seconds"]),
        int(meta["exit_code"]),
        bool(meta["timed_out"]),
        out / f"{mode}.log",
        out / f"{mode}.xml",
        report,
        dict(meta.get("torchpkg", {})),
    )
    run.cases = read_cases(run.junit, suite.folder)
    data = _report(report)
    run.models = {test["nodeid"]: list(test["models"]) for test in data.get("tests", [])}
    run.not_checked = {str(k): int(v) for k, v in data.get("not_checked", {}).items()}
    return run


def run_mode(
    suite: Suite,
    mode: str,
    paths: tuple[str, ...],
    out: Path,
    *,
    workers: int,
    timeout: float,
    src: Path | None,
) -> Run:
    out.mkdir(parents=True, exist_ok=True)
    log = out / f"{mode}.log"
    for stale in (f"{mode}.xml", f"{mode}.json", f"{mode}.run.json"):
        (out / stale).unlink(missing_ok=True)
    args = command(suite, mode, paths, out, workers)
    torchpkg = describe_torchpkg(src)
    print(f"  {suite.name} {mode}: running (log: {log})", flush=True)
    start = time.monotonic()
    timed_out = False
    with log.open("w", encoding="utf-8") as stream:
        stream.write(" ".join(args) + "\n\n")
        stream.flush()
        process = subprocess.Popen(  # a new session: a timeout ends its whole group
            args,
            cwd=suite.folder,
            env=environment(src),
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            exit_code = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(process.pid, signal.SIGKILL)
            exit_code = process.wait()
        except BaseException:  # Ctrl-C: the new session would not see it
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    meta = {
        "seconds": time.monotonic() - start,
        "exit_code": exit_code,
        "timed_out": timed_out,
        "paths": list(paths),
        "torchpkg": torchpkg,
        "command": args,
    }
    (out / f"{mode}.run.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    run = _load(suite, mode, out, meta)
    note = " (timed out)" if timed_out else ""
    print(
        f"  {suite.name} {mode}: {len(run.cases)} tests in {run.seconds:.1f}s, "
        f"exit {exit_code}{note}",
        flush=True,
    )
    return run


def load_suite(suite: Suite, out: Path, modes: tuple[str, ...] = tuple(MODES)) -> SuiteRun | None:
    """The runs an earlier ``run_suite`` left in ``out / suite.name`` (None if there are none)."""
    folder = out / suite.name
    runs: dict[str, Run] = {}
    paths: tuple[str, ...] = ()
    for mode in modes:
        meta_file = folder / f"{mode}.run.json"
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            paths = tuple(meta["paths"])
            runs[mode] = _load(suite, mode, folder, meta)
    return SuiteRun(suite, paths, runs) if runs else None


def run_suite(
    suite: Suite,
    out: Path,
    *,
    slice_only: bool = False,
    workers: int = 0,
    timeout: float = 7200.0,
    modes: tuple[str, ...] = tuple(MODES),
    src: Path | None = None,
) -> SuiteRun:
    """Run the suite once per mode; artefacts go to ``out / suite.name``."""
    if not suite.fetched():
        raise SystemExit(f"{suite.requirement} is not fetched: run `python -m upstream fetch`")
    paths = suite.paths(slice_only)
    folder = out / suite.name
    runs = {
        mode: run_mode(suite, mode, paths, folder, workers=workers, timeout=timeout, src=src)
        for mode in modes
    }
    return SuiteRun(suite, paths, runs)
