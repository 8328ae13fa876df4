"""The example repository's packaging gate: what `make demo` runs.

Runs the repository's own tests with ``--torchpkg-roundtrip=report`` and a
JSON report, prints pytest's torchpkg summary, then checks the report against
what this repository expects: the healthy models survive packaging, and each
deliberately broken model is flagged with the diagnostic of its sharp edge.
Exits 0 only if exactly that happened.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent

HEALTHY = {
    "modelzoo.mlp.MLP",
    "modelzoo.convnet.ConvNet",
    "modelzoo.dropout.DropoutClassifier",  # random, made deterministic by RNG replay
    "modelzoo.tiny_lm.TinyLM",  # transformers, registered with the Auto classes
}
# Each broken model and the diagnostic kind that names its sharp edge.
BROKEN = {
    "modelzoo.warmup.WarmupMLP": "global-state-mutated",
    "modelzoo.multimodal.MultiModalEncoder": "isinstance-across-namespaces",
    "modelzoo.gated.GatedMLP": "unpicklable-member",
    "modelzoo.calibrated.CalibratedClassifier": "mocked-module-used",
    "modelzoo.streaming.StreamingNormalizer": "unpicklable-member",
}


def run_tests(report: Path) -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(EXAMPLES),
        "--torchpkg-roundtrip=report",
        f"--torchpkg-report={report}",
    ]
    print("$", " ".join(command[2:]), flush=True)
    return subprocess.run(command, check=False).returncode


def check(report: dict[str, Any]) -> list[str]:
    """One line per model, starting with ok or FAIL: what was expected, what was found."""
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for test in report["tests"]:
        for result in test["models"]:
            seen[result["model"]].append(result)
    lines = []
    for model in sorted(HEALTHY | BROKEN.keys() | seen.keys()):
        results = seen.get(model, [])
        if model in HEALTHY:
            want = "passes"
            ok = bool(results) and all(r["passed"] for r in results)
        elif model in BROKEN:
            want = f"flagged with {BROKEN[model]}"
            ok = bool(results) and all(
                not r["passed"] and any(d["kind"] == BROKEN[model] for d in r["diagnostics"])
                for r in results
            )
        else:
            want, ok = "not checked (not a model of this repository)", False
        verdicts = ", ".join(sorted({r["verdict"] for r in results})) or "none"
        kinds = ", ".join(sorted({d["kind"] for r in results for d in r["diagnostics"]}))
        lines.append(
            f"{'ok  ' if ok else 'FAIL'} {model:<42} expected: {want}; got: {verdicts}"
            f"{f' ({kinds})' if kinds else ''}, checked {len(results)}x"
        )
    return lines


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "torchpkg-report.json"
        status = run_tests(path)
        if not path.exists():
            print(f"pytest exited with {status} and wrote no report")
            return 1
        report = json.loads(path.read_text(encoding="utf-8"))
    lines = check(report)
    print("\nGate: healthy models survive packaging, broken ones are flagged with their cause")
    print("\n".join(lines))
    failures = sum(not line.startswith("ok") for line in lines)
    if status != 0:
        print(f"the example tests themselves failed (pytest exit status {status})")
    ok = status == 0 and failures == 0
    print("gate passed" if ok else f"gate FAILED ({failures} models not as expected)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
