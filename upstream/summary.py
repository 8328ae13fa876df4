"""What the runs found, per suite: outcomes, outcome changes, models, timings (as JSON)."""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

from upstream.junit import OUTCOMES
from upstream.runner import Run, SuiteRun

__all__ = ["first_kind", "summarize"]

# Diagnostics that never fail a model by themselves: not what made a model fail.
INFORMATIONAL: Final = frozenset(
    {"import-side-effect", "ran-in-process", "divergent-path", "not-captured"}
)
EXAMPLES: Final = 2  # example tests per failure kind
MESSAGE_CHARS: Final = 400


def first_kind(result: dict[str, Any]) -> str:
    """The kind of a failed model's first diagnostic that can fail it (else the verdict)."""
    kinds = [str(d["kind"]) for d in result.get("diagnostics", [])]
    failing = [kind for kind in kinds if kind not in INFORMATIONAL]
    return (failing or kinds or [str(result["verdict"])])[0]


def _abridged(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    text = " / ".join(lines)
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 3] + "..."


def _outcomes(run: Run) -> dict[str, int]:
    counts = Counter(case.outcome for case in run.cases.values())
    return {outcome: counts.get(outcome, 0) for outcome in OUTCOMES}


def _why(run: Run, nodeid: str) -> tuple[str, str]:
    """The kind and message of the test's first failed model in this run; else the test's."""
    for result in run.models.get(nodeid, []):
        if result["verdict"] != "passed":
            kind = first_kind(result)
            messages = [d["message"] for d in result["diagnostics"] if d["kind"] == kind]
            return kind, _abridged(messages[0] if messages else result["verdict"])
    case = run.cases.get(nodeid)
    message = case.message if case else "the test did not run"
    return "no-failed-model", _abridged(message)


def _changes(plain: Run, other: Run) -> list[dict[str, str]]:
    changes = []
    for nodeid in sorted(set(plain.cases) | set(other.cases)):
        before = plain.cases[nodeid].outcome if nodeid in plain.cases else "absent"
        after = other.cases[nodeid].outcome if nodeid in other.cases else "absent"
        if before != after:
            kind, message = _why(other, nodeid)
            changes.append(
                {"nodeid": nodeid, "plain": before, "now": after, "kind": kind, "message": message}
            )
    return changes


def _models(run: Run) -> dict[str, Any]:
    results = [(nodeid, r) for nodeid, rs in sorted(run.models.items()) for r in rs]
    failed = [(nodeid, r) for nodeid, r in results if r["verdict"] != "passed"]
    kinds: dict[str, dict[str, Any]] = {}
    for nodeid, result in failed:
        for diagnostic in result["diagnostics"]:
            entry = kinds.setdefault(diagnostic["kind"], {"models": 0, "examples": []})
            seen = {example["nodeid"] for example in entry["examples"]}
            if nodeid in seen or any(e["model"] == result["model"] for e in entry["examples"]):
                continue
            if len(entry["examples"]) < EXAMPLES:
                entry["examples"].append(
                    {
                        "nodeid": nodeid,
                        "model": result["model"],
                        "verdict": result["verdict"],
                        "message": _abridged(diagnostic["message"]),
                    }
                )
        for kind in {str(d["kind"]) for d in result["diagnostics"]}:
            kinds[kind]["models"] += 1
    return {
        "checked": len(results),
        "passed": len(results) - len(failed),
        "failed": len(failed),
        "tests_with_models": len(run.models),
        "by_class": Counter(str(r["model"]) for _, r in results).most_common(10),
        "not_checked": sum(run.not_checked.values()),
        "not_checked_by_class": Counter(run.not_checked).most_common(10),
        "failed_by_verdict": dict(Counter(str(r["verdict"]) for _, r in failed).most_common()),
        "failed_by_first_kind": dict(Counter(first_kind(r) for _, r in failed).most_common()),
        "kinds": dict(sorted(kinds.items(), key=lambda item: -int(item[1]["models"]))),
    }


def _run(run: Run, plain: Run | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "seconds": round(run.seconds, 2),
        "exit_code": run.exit_code,
        "timed_out": run.timed_out,
        "tests": len(run.cases),
        "outcomes": _outcomes(run),
        "torchpkg": run.torchpkg,
        "log": str(run.log),
        "junit": str(run.junit),
    }
    if plain is not None and plain is not run:
        data["ratio_to_plain"] = round(run.seconds / plain.seconds, 2) if plain.seconds else None
        data["changes"] = _changes(plain, run)
    if run.report is not None:
        data["report"] = str(run.report)
        data["models"] = _models(run)
    return data


def summarize(suite_run: SuiteRun) -> dict[str, Any]:
    suite, runs = suite_run.suite, suite_run.runs
    plain = runs.get("plain")
    return {
        "suite": suite.name,
        "requirement": suite.requirement,
        "folder": str(suite.folder),
        "paths": list(suite_run.paths),
        "tests_run": len(plain.cases) if plain else None,
        "runs": {mode: _run(run, plain) for mode, run in runs.items()},
    }
