"""The table, the targets (PASS/MISS) and the JSON document of a run."""

from __future__ import annotations

import operator
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.core import SECONDS, Config, Results, Row
from bench.gate import UNTRACED_GATE, WITH_GATE, WITHOUT_GATE
from bench.peers import TORCHPKG, TORCHPKG_NO_FSYNC
from bench.rss import EXPORT_PHASE as RSS_EXPORT_PHASE
from bench.rss import PHASE as RSS_PHASE
from bench.workloads import CODE_NEW_PROCESS

__all__ = ["TARGETS", "Target", "format_report", "machine", "to_json"]

Key = tuple[str, str, str]  # (workload, phase, peer)

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    """``median(numerator) / median(denominator) <op> bound`` (no denominator: the median)."""

    label: str
    numerator: Key
    denominator: Key | None
    op: str
    bound: float

    def value(self, results: Results) -> float | None:
        top = results.get(*self.numerator)
        if top is None:
            return None
        if self.denominator is None:
            return top.median
        bottom = results.get(*self.denominator)
        if bottom is None or bottom.median <= 0:
            return None
        return top.median / bottom.median

    def status(self, value: float | None) -> str:
        if value is None:
            return "n/a"
        return "PASS" if _OPS[self.op](value, self.bound) else "MISS"

    def describe(self, value: float | None) -> str:
        if value is None:
            return "not measured"
        if self.denominator is None:
            return f"{value:.3f} (target {self.op} {self.bound:g})"
        return f"{value:.2f}x (target {self.op} {self.bound:g}x)"


_SD_MMAP = "torch.load(state_dict, mmap=True)"
_SD_SAVE = "torch.save(state_dict)"
_SAFETENSORS = "safetensors"
_TP = "torch.package"
_TENSORS = ("large", "many")


def _faster_than_torch_package(
    workload: str, phase: str, factor: float, ours: str = TORCHPKG
) -> Target:
    """``ours`` in ``phase`` of ``workload`` at least ``factor`` times as fast as torch.package."""
    return Target(
        f"{workload} {phase}: {ours} >= {factor:g}x faster than torch.package",
        (workload, phase, _TP),
        (workload, phase, ours),
        ">=",
        factor,
    )


def _at_most(workload: str, phase: str, ours: str, theirs: str, bound: float) -> Target:
    """``ours`` in ``phase`` of ``workload`` takes at most ``bound`` times ``theirs``."""
    return Target(
        f"{workload} {phase}: {ours} <= {bound:g}x {theirs}",
        (workload, phase, ours),
        (workload, phase, theirs),
        "<=",
        bound,
    )


TARGETS: tuple[Target, ...] = (
    _at_most("large", "load", TORCHPKG, _SD_MMAP, 1.2),
    _faster_than_torch_package("large", "load", 10.0),
    # Exports against tools that never fsync: the row without it (the default row keeps it).
    *(_at_most(workload, "export", TORCHPKG_NO_FSYNC, _SD_SAVE, 1.2) for workload in _TENSORS),
    *(_at_most(workload, "load", TORCHPKG, _SAFETENSORS, 1.2) for workload in _TENSORS),
    _faster_than_torch_package("many", "load", 2.0),
    _faster_than_torch_package("many", "export", 2.0, TORCHPKG_NO_FSYNC),
    Target(
        "code export: torchpkg first (empty scan cache) >= 2x faster than torch.package first",
        ("code", "export first", _TP),
        ("code", "export first", TORCHPKG),
        ">=",
        2.0,
    ),
    Target(
        "code export: torchpkg first in a new process (warm scan cache) >= 2x faster than "
        "torch.package first",
        ("code", "export first", _TP),
        ("code", CODE_NEW_PROCESS, TORCHPKG),
        ">=",
        2.0,
    ),
    Target(
        "code export: torchpkg second >= 10x faster than torchpkg first (empty scan cache)",
        ("code", "export first", TORCHPKG),
        ("code", "export second", TORCHPKG),
        ">=",
        10.0,
    ),
    Target(
        "gate: the corpus's tests with the gate <= 1.3x without",
        ("gate", "tests", WITH_GATE),
        ("gate", "tests", WITHOUT_GATE),
        "<=",
        1.3,
    ),
    Target(
        "gate: tracing (leak and path checks) adds <= 15%",
        ("gate", "tests", WITH_GATE),
        ("gate", "tests", UNTRACED_GATE),
        "<=",
        1.15,
    ),
    Target(
        "intern-library export: torchpkg first >= 3x faster than torch.package",
        ("intern-library", "export first", _TP),
        ("intern-library", "export first", TORCHPKG),
        ">=",
        3.0,
    ),
    Target(
        "intern-library export: torchpkg second >= 10x faster than first",
        ("intern-library", "export first", TORCHPKG),
        ("intern-library", "export second", TORCHPKG),
        ">=",
        10.0,
    ),
    Target(
        "intern-library load (transformers interned) < 2 s",
        ("intern-library", "load", TORCHPKG),
        None,
        "<",
        2.0,
    ),
    Target(
        "large load peak RSS: torchpkg < 0.25x model bytes above import torch",
        ("rss", RSS_PHASE, TORCHPKG),
        None,
        "<",
        0.25,
    ),
    Target(
        "large export peak RSS: torchpkg < 0.25x model bytes above the model held",
        ("rss", RSS_EXPORT_PHASE, TORCHPKG),
        None,
        "<",
        0.25,
    ),
)


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }
    for name in ("torchpkg", "safetensors"):
        try:
            info[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            info[name] = None
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def ratio_to_torchpkg(results: Results, row: Row) -> float | None:
    """``row``'s median over torchpkg's in the same phase (> 1: slower than torchpkg)."""
    if row.unit != SECONDS:
        return None
    reference = results.get(row.workload, row.phase, TORCHPKG)
    if reference is None or reference.median <= 0:
        return None
    return row.median / reference.median


def _amount(value: float, unit: str) -> str:
    if unit != SECONDS:
        return f"{value:.3f}"
    if value >= 1:
        return f"{value:.3f} s"
    if value >= 1e-3:
        return f"{value * 1e3:.2f} ms"
    return f"{value * 1e6:.0f} us"


def _facts(facts: dict[str, Any]) -> str:
    parts = []
    for key, value in facts.items():
        if key.endswith("bytes") and isinstance(value, int):
            parts.append(f"{key}={value / 1e6:,.1f} MB")
        elif key.endswith("bytes") and isinstance(value, list):
            parts.append(f"{key}=[{', '.join(f'{v / 1e6:,.0f}' for v in value)}] MB")
        else:
            parts.append(f"{key}={value}")
    return ", ".join(parts)


def _phase(row: Row) -> str:
    return row.phase if row.unit == SECONDS else f"{row.phase} ({row.unit})"


def format_report(results: Results, config: Config, info: dict[str, Any]) -> str:
    """The table of every row, then the targets."""
    lines = [
        f"machine: {info['cpus']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
        f"Python {info['python']}, torch {info['torch']} ({info['torch_threads']} threads)",
        f"rounds: {config.rounds} (rss: {config.rss_rounds}); loads read files just written "
        "(warm page cache); ratio = median / torchpkg's median (> 1: slower than torchpkg)",
    ]
    header = ("phase", "peer", "median", "min", "max", "ratio")
    rows = list(results.rows.values())
    widths = (
        max([len(header[0]), *(len(_phase(row)) for row in rows)]),
        max([len(header[1]), *(len(row.peer) for row in rows)]),
        10,
        10,
        10,
        7,
    )

    def line(cells: tuple[str, ...]) -> str:
        first = [f"{cells[0]:<{widths[0]}}", f"{cells[1]:<{widths[1]}}"]
        rest = [f"{cell:>{width}}" for cell, width in zip(cells[2:], widths[2:], strict=True)]
        return "  " + "  ".join(first + rest)

    workloads = list(dict.fromkeys(row.workload for row in results.rows.values()))
    for workload in workloads:
        lines += ["", f"[{workload}] {_facts(results.facts.get(workload, {}))}"]
        lines.append(line(header))
        ours = [row for row in rows if row.workload == workload]
        phases = list(dict.fromkeys(row.phase for row in ours))
        for phase in phases:
            for row in (row for row in ours if row.phase == phase):
                ratio = ratio_to_torchpkg(results, row)
                lines.append(
                    line(
                        (
                            _phase(row),
                            row.peer,
                            _amount(row.median, row.unit),
                            _amount(row.min, row.unit),
                            _amount(row.max, row.unit),
                            "" if ratio is None else f"{ratio:.2f}x",
                        )
                    )
                )
    lines += ["", "targets (medians of this run)"]
    for target in TARGETS:
        value = target.value(results)
        lines.append(f"  {target.status(value):<4}  {target.label}: {target.describe(value)}")
    return "\n".join(lines)


def to_json(results: Results, config: Config, info: dict[str, Any]) -> dict[str, Any]:
    """The same data as the table, with every measurement."""
    rows = []
    for row in results.rows.values():
        ratio = ratio_to_torchpkg(results, row)
        rows.append(
            {
                "workload": row.workload,
                "phase": row.phase,
                "peer": row.peer,
                "unit": row.unit,
                "median": row.median,
                "min": row.min,
                "max": row.max,
                "ratio_to_torchpkg": ratio,
                "values": row.values,
            }
        )
    targets = []
    for target in TARGETS:
        value = target.value(results)
        targets.append(
            {
                "label": target.label,
                "numerator": list(target.numerator),
                "denominator": list(target.denominator) if target.denominator else None,
                "op": target.op,
                "bound": target.bound,
                "value": value,
                "status": target.status(value),
            }
        )
    return {
        "machine": info,
        "config": config.to_json(),
        "workloads": results.facts,
        "rows": rows,
        "targets": targets,
    }
