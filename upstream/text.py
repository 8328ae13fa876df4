"""The terminal form of :func:`upstream.summary.summarize`'s dicts."""

from __future__ import annotations

from typing import Any

__all__ = ["render", "render_table"]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items()) or "none"


def _changes(mode: str, run: dict[str, Any]) -> list[str]:
    changes = run.get("changes", [])
    lines = [f"  outcome changes plain -> {mode}: {len(changes)}"]
    for change in changes:
        lines.append(
            f"    {change['nodeid']}: {change['plain']} -> {change['now']} [{change['kind']}]"
        )
    return lines


def _models(mode: str, models: dict[str, Any]) -> list[str]:
    lines = [
        f"  models checked ({mode}): {models['checked']} in {models['tests_with_models']} tests: "
        f"{models['passed']} passed, {models['failed']} failed"
    ]
    if models["by_class"]:
        top = ", ".join(f"{name} {n}" for name, n in models["by_class"])
        lines.append(f"    by class (top 10): {top}")
    if models["not_checked"]:
        top = ", ".join(f"{name} {n}" for name, n in models["not_checked_by_class"])
        lines.append(f"    not checked (torch's modules only): {models['not_checked']}: {top}")
    if models["failed"]:
        lines.append(f"    failed by verdict: {_counts(models['failed_by_verdict'])}")
        lines.append(f"    failed by first kind: {_counts(models['failed_by_first_kind'])}")
        lines.append("    failed models by diagnostic kind (with examples):")
        for kind, entry in models["kinds"].items():
            lines.append(f"      {kind}: {entry['models']} models")
            for example in entry["examples"]:
                lines.append(f"        e.g. {example['nodeid']} ({example['model']})")
                lines.append(f"          {example['message']}")
    return lines


def render(summary: dict[str, Any]) -> str:
    runs = summary["runs"]
    lines = [f"== {summary['requirement']}: {' '.join(summary['paths'])} =="]
    lines.append(f"  folder: {summary['folder']}")
    plain = runs.get("plain")
    if plain is not None:
        lines.append(f"  tests run: {summary['tests_run']}")
        lines.append(f"  plain outcomes: {_counts(plain['outcomes'])}")
    walls = []
    for mode, run in runs.items():
        ratio = f" (x{run['ratio_to_plain']} plain)" if run.get("ratio_to_plain") else ""
        late = ", TIMED OUT" if run["timed_out"] else ""
        walls.append(f"{mode} {run['seconds']:.1f}s{ratio}{late}")
    lines.append(f"  wall time: {'; '.join(walls)}")
    for mode, run in runs.items():
        if mode == "plain":
            continue
        lines.append(f"  {mode} outcomes: {_counts(run['outcomes'])}")
        if plain is not None:
            lines.extend(_changes(mode, run))
        if "models" in run:
            lines.extend(_models(mode, run["models"]))
    return "\n".join(lines)


def render_table(summaries: list[dict[str, Any]]) -> str:
    """One line per suite: the numbers to compare from one baseline to the next."""
    header = (
        f"{'suite':<18}{'tests':>6}{'plain p/f/s/e':>16}{'gate Δ':>8}{'report Δ':>10}"
        f"{'models':>8}{'failed':>8}{'plain s':>9}{'gate s':>9}{'ratio':>7}"
    )
    lines = [header]
    for summary in summaries:
        runs = summary["runs"]
        plain, gate, report = runs.get("plain"), runs.get("gate"), runs.get("report")
        outcomes = "/".join(str(n) for n in plain["outcomes"].values()) if plain else "-"
        models = gate.get("models", {}) if gate else {}
        lines.append(
            f"{summary['requirement']:<18}{summary['tests_run'] or 0:>6}{outcomes:>16}"
            f"{len(gate['changes']) if gate and 'changes' in gate else '-':>8}"
            f"{len(report['changes']) if report and 'changes' in report else '-':>10}"
            f"{models.get('checked', '-'):>8}{models.get('failed', '-'):>8}"
            f"{plain['seconds'] if plain else '-':>9}{gate['seconds'] if gate else '-':>9}"
            f"{gate.get('ratio_to_plain') or '-' if gate else '-':>7}"
        )
    return "\n".join(lines)
