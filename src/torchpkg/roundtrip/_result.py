"""What a roundtrip found: the verdict, the diagnostics and the package's make-up."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torchpkg.roundtrip._diagnostics import Diagnostic

__all__ = ["RoundtripFailure", "RoundtripResult", "Verdict"]


class Verdict(enum.Enum):
    PASSED = "passed"
    MISMATCH = "mismatch"  # outputs or state_dict differ
    PACKAGING_FAILED = "packaging-failed"
    LOAD_FAILED = "load-failed"  # the clone could not be imported/unpickled
    RUN_FAILED = "run-failed"  # the clone raised when called (or the original did)


@dataclass(frozen=True)
class RoundtripResult:
    """What a roundtrip found: the verdict, the diagnostics, and the package's make-up."""

    model: str
    verdict: Verdict
    diagnostics: tuple[Diagnostic, ...]
    interned: tuple[str, ...]
    externed: tuple[str, ...]
    mocked: tuple[str, ...]
    archive_bytes: int
    timings: dict[str, float]
    # The installed distributions the package left to the loading machine: name -> version.
    distributions: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (enums as their values)."""
        return {
            "model": self.model,
            "verdict": self.verdict.value,
            "passed": self.passed,
            "diagnostics": [diagnostic.to_dict() for diagnostic in self.diagnostics],
            "interned": list(self.interned),
            "externed": list(self.externed),
            "mocked": list(self.mocked),
            "archive_bytes": self.archive_bytes,
            "timings": dict(self.timings),
            "distributions": dict(self.distributions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RoundtripResult:
        """The inverse of :meth:`to_dict` (results travel as dicts between processes)."""
        return cls(
            model=data["model"],
            verdict=Verdict(data["verdict"]),
            diagnostics=tuple(Diagnostic.from_dict(d) for d in data["diagnostics"]),
            interned=tuple(data["interned"]),
            externed=tuple(data["externed"]),
            mocked=tuple(data["mocked"]),
            archive_bytes=int(data["archive_bytes"]),
            timings={key: float(value) for key, value in data["timings"].items()},
            distributions=dict(data.get("distributions", {})),
        )

    def report(self) -> str:
        """Several lines: the verdict, then each diagnostic with its next step."""
        lines = [f"torchpkg roundtrip of {self.model}: {self.verdict.value}"]
        size = f"; archive {self.archive_bytes} bytes" if self.archive_bytes else ""
        lines.append(
            f"  package: {len(self.interned)} interned, {len(self.externed)} extern, "
            f"{len(self.mocked)} mocked modules{size}"
        )
        if self.distributions:
            shown = ", ".join(f"{name} {version}" for name, version in self.distributions.items())
            lines.append(f"  extern distributions: {shown}")
        if self.passed:
            lines.append("  the clone's outputs and state_dict match the original's")
        for number, diagnostic in enumerate(self.diagnostics, 1):
            where = f" at {diagnostic.location}" if diagnostic.location else ""
            lines.append(f"  {number}. {diagnostic.kind.value}{where}")
            lines.extend(f"     {line}" for line in diagnostic.message.splitlines())
            lines.append(f"     next step: {diagnostic.next_step}")
        return "\n".join(lines)

    def raise_for_failure(self) -> None:
        """Raise :class:`RoundtripFailure` (an ``AssertionError``) unless the roundtrip passed."""
        if not self.passed:
            raise RoundtripFailure(self)


class RoundtripFailure(AssertionError):
    """A roundtrip that did not pass; ``str()`` is its report, ``.result`` the result."""

    def __init__(self, result: RoundtripResult) -> None:
        super().__init__(result.report())
        self.result = result

    def __reduce__(self) -> tuple[type[RoundtripFailure], tuple[RoundtripResult]]:
        return (type(self), (self.result,))
