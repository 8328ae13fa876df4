"""The gate workload: a real model repository's tests with and without ``--torchpkg-roundtrip``.

The repository is the real-library corpus of the test suite
(``tests/real/acme_repo``: transformers, diffusers and peft models). Each
round runs its pytest once plain and once gated, in new processes, in turns;
the gated run's JSON report splits the gate's time into capture at the call,
export, the worker's pipes and fork, the clone's load and run, comparing, and
re-runs of the original; the rest is the worker's start and preloads and
tracing. A third run turns tracing off: what the hermeticity and path checks
cost.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from bench.core import Session, rotate, timed

__all__ = ["CORPUS", "UNTRACED_GATE", "WITHOUT_GATE", "WITH_GATE", "run_gate"]

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "real" / "acme_repo"
WITHOUT_GATE = "pytest"
WITH_GATE = "pytest --torchpkg-roundtrip"
UNTRACED_GATE = "... with torchpkg_trace=false"  # no leak or path checks
_LIBRARIES = ("transformers", "diffusers", "peft")


def _pytest(repo: Path, *args: str) -> None:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    command = [sys.executable, "-m", "pytest", str(repo), "-q", *args]
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"the corpus failed under {' '.join(args) or 'plain pytest'}:\n{done.stdout[-2000:]}"
        )


def run_gate(session: Session) -> None:
    missing = [name for name in _LIBRARIES if importlib.util.find_spec(name) is None]
    if missing:
        session.log(f"gate: skipped ({', '.join(missing)} not installed: pip install .[real])")
        return
    results = session.results
    repo = session.path("gate-repo")
    shutil.copytree(CORPUS, repo)
    report = session.path("gate-report.json")
    runs = {
        WITHOUT_GATE: (),
        WITH_GATE: ("--torchpkg-roundtrip", f"--torchpkg-report={report}"),
        UNTRACED_GATE: ("--torchpkg-roundtrip", "-o", "torchpkg_trace=false"),
    }
    _pytest(repo)  # warm-up: compiled bytecode, page cache
    for round_ in range(session.config.rounds):
        session.log(f"gate: round {round_ + 1}/{session.config.rounds}")
        for name in rotate(list(runs), round_):
            _, seconds = timed(lambda args=runs[name]: _pytest(repo, *args))
            results.add("gate", "tests", name, seconds)
            if name == WITH_GATE:
                parts = split_timings(json.loads(report.read_text()))
                for part, value in parts.items():
                    results.add("gate", part, WITH_GATE, value)
    models = json.loads(report.read_text())["summary"]["checked"]
    results.note("gate", repository="tests/real/acme_repo", models=models)


def split_timings(report: dict[str, object]) -> dict[str, float]:
    """Seconds the gate spent in each part, summed over the models of one run."""
    totals = dict.fromkeys(_PARTS.values(), 0.0)
    tests = report["tests"]
    assert isinstance(tests, list)
    for test in tests:
        for model in test["models"]:
            for key, part in _PARTS.items():
                totals[part] += model["timings"].get(key, 0.0)
    return totals


# A roundtrip's timings, as the split names them.
_PARTS = {
    "capture": "capture at the call",
    "export": "export",
    "worker": "worker (pipes, fork)",
    "load": "clone load",
    "run": "clone run",
    "compare": "compare",
    "run_original": "original re-run",
}
