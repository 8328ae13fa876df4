"""The benchmark harness (``make bench``) on miniature workloads, so it cannot rot.

Nothing here looks at timings: only that every peer is measured in every round,
that the loaders return the model's values, and that the report and the JSON
hold every row and every target.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from bench import rss  # noqa: E402
from bench.__main__ import main  # noqa: E402
from bench._child import BASELINE  # noqa: E402
from bench.core import Config, Results, open_session, rotate  # noqa: E402
from bench.gate import split_timings  # noqa: E402
from bench.models import make_large  # noqa: E402
from bench.peers import CODE_EXPORTERS, FORMATS, TORCHPKG  # noqa: E402
from bench.report import TARGETS, format_report, machine, to_json  # noqa: E402
from bench.rss import EXPORT_PHASE, peak_rss  # noqa: E402
from bench.rss import PHASE as RSS_PHASE  # noqa: E402
from bench.workloads import CODE_NEW_PROCESS, run  # noqa: E402

TINY = Config(
    rounds=2,
    large_layers=2,
    large_dim=8,
    many_blocks=3,
    many_numel=4,
    code_modules=4,
    code_functions=2,
    rss_rounds=1,
)
LOADERS = [loader.name for fmt in FORMATS for loader in fmt.loaders]
EXPORTS = [fmt.name for fmt in FORMATS]


@pytest.fixture(scope="module")
def in_process_results() -> Results:
    return run(TINY, only=["large", "many", "code"])


def test_rounds_start_with_the_next_peer_each_time() -> None:
    assert [rotate("abc", by) for by in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_every_peer_is_measured_once_per_round_in_every_phase(in_process_results: Results) -> None:
    results = in_process_results
    expected = (
        {("large", "export", name) for name in EXPORTS}
        | {("large", phase, name) for phase in ("load", "load + touch") for name in LOADERS}
        | {("many", "export", name) for name in EXPORTS}
        | {("many", "load", name) for name in LOADERS}
        | {
            ("code", phase, exporter.name)
            for phase in ("export first", "export second")
            for exporter in CODE_EXPORTERS
        }
        | {("code", CODE_NEW_PROCESS, TORCHPKG)}
    )
    assert set(results.rows) == expected
    for row in results.rows.values():
        assert len(row.values) == TINY.rounds, row
        assert all(value >= 0 and math.isfinite(value) for value in row.values), row


def test_workloads_record_the_model_size(in_process_results: Results) -> None:
    facts = in_process_results.facts
    assert facts["large"]["model_bytes"] == TINY.large_layers * TINY.large_dim**2 * 4
    assert facts["many"]["tensors"] == TINY.many_blocks * 10


def test_report_has_a_line_per_peer_and_a_verdict_per_target(in_process_results: Results) -> None:
    report = format_report(in_process_results, TINY, machine())
    for name in [*LOADERS, *EXPORTS]:
        assert name in report
    verdicts = [line for line in report.splitlines() if line.strip().startswith(("PASS", "MISS"))]
    # the rss, gate and intern-library workloads run child processes: not here
    assert len(verdicts) == len(TARGETS) - 7
    assert "n/a" in report


def test_json_document_holds_every_row_with_its_values(in_process_results: Results) -> None:
    document = json.loads(json.dumps(to_json(in_process_results, TINY, machine())))
    assert len(document["rows"]) == len(in_process_results.rows)
    torchpkg_load = next(
        row
        for row in document["rows"]
        if (row["workload"], row["phase"], row["peer"]) == ("many", "load", TORCHPKG)
    )
    assert torchpkg_load["ratio_to_torchpkg"] == 1.0
    assert len(torchpkg_load["values"]) == TINY.rounds
    statuses = {target["label"]: target["status"] for target in document["targets"]}
    assert statuses[TARGETS[-1].label] == "n/a"
    assert set(statuses.values()) <= {"PASS", "MISS", "n/a"}


def test_peak_rss_of_a_child_excludes_the_memory_of_this_process() -> None:
    """Children spawned directly would inherit this (large) process's high-water mark."""
    size = 64 << 20
    ballast = b"x" * (4 * size)  # this process now holds at least 256 MB more
    small = peak_rss(["-c", "pass"])
    big = peak_rss(["-c", f"data = b'x' * {size}"])
    assert small < size < big < small + 2 * size
    del ballast


def test_rss_workload_runs_each_loader_in_its_own_child(monkeypatch: pytest.MonkeyPatch) -> None:
    """The children's script runs here (no process), with made-up peaks."""
    children: list[str] = []
    peaks = {BASELINE: 300_000_000, TORCHPKG: 300_002_048, "torchpkg (mmap=False)": 300_000_512}

    def run_child_here(python_args: list[str]) -> int:
        flag, script, loader, path = python_args
        assert flag == "-c"
        monkeypatch.setattr(sys, "argv", ["-c", loader, path])
        monkeypatch.setattr(sys, "path", list(sys.path))
        exec(compile(script, "<child>", "exec"), {})
        children.append(loader)
        return peaks[loader]

    monkeypatch.setattr(rss, "peak_rss", run_child_here)
    monkeypatch.setattr(rss, "export_peak", lambda *args: 1024)
    results = run(replace(TINY, peers=frozenset({TORCHPKG})), only=["rss"])
    assert children == [BASELINE, TORCHPKG, "torchpkg (mmap=False)"]
    model_bytes = TINY.large_layers * TINY.large_dim**2 * 4
    row = results.get("rss", RSS_PHASE, TORCHPKG)
    assert row is not None
    assert row.values == [2048 / model_bytes]
    assert results.facts["rss"]["baseline_peak_rss_bytes"] == [300_000_000]
    exported = results.get("rss", EXPORT_PHASE, TORCHPKG)
    assert exported is not None
    assert exported.values == [1024 / model_bytes]


def test_an_export_child_reports_how_far_the_export_raised_its_peak(tmp_path: Path) -> None:
    """A real child: it builds the model, resets its high-water mark and exports."""
    with open_session(TINY, lambda message: None) as session:
        model = make_large(session, TINY.large_layers, TINY.large_dim)
        (fmt,) = [fmt for fmt in FORMATS if fmt.name == TORCHPKG]
        paths = [str(Path(rss.__file__).resolve().parent.parent), str(session.src)]
        raised = rss.export_peak(session, fmt, model, tmp_path / "large.pt", paths)
    assert 0 <= raised < 256 << 20  # a tiny model: the export's own allocations only
    assert (tmp_path / "large.pt").exists()


def test_command_line_writes_the_table_and_the_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bench.json"
    code = main(["--only", "code", "--rounds", "1", "--json", str(path), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "[code]" in out
    assert "code export: torchpkg first (empty scan cache) >= 2x faster" in out
    document = json.loads(path.read_text())
    phases = {row["phase"] for row in document["rows"]}
    assert phases == {"export first", "export second", CODE_NEW_PROCESS}
    assert document["config"]["rounds"] == 1


def test_the_gate_split_sums_each_part_over_the_models_of_a_run() -> None:
    timings = {"capture": 0.5, "export": 0.5, "load": 0.25, "run": 0.25, "run_original": 0.125}
    report = {"tests": [{"models": [{"timings": timings}]}, {"models": [{"timings": timings}]}]}
    assert split_timings(report) == {
        "capture at the call": 1.0,
        "export": 1.0,
        "worker (pipes, fork)": 0.0,
        "clone load": 0.5,
        "clone run": 0.5,
        "compare": 0.0,
        "original re-run": 0.25,
    }
