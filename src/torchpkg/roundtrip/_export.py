"""How a roundtrip packages a model: the user's rules, then the policy by provenance."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType
from typing import Any, BinaryIO

from torchpkg.exporter import PackageExporter
from torchpkg.glob import GlobPattern
from torchpkg.provenance import ProvenancePolicy

__all__ = [
    "PACKAGE",
    "RESOURCE",
    "TOOLING_EXTERNS",
    "Exported",
    "Rules",
    "export",
    "patterns",
    "qualified_name",
]

PACKAGE = "model"
RESOURCE = "model.pkl"

# Test infrastructure that a model's module (a test file) may import: never part of a model.
TOOLING_EXTERNS = (
    "pytest.**",
    "_pytest.**",
    "pluggy.**",
    "hypothesis.**",
    "xdist.**",
    "execnet.**",
    "pytest_torchpkg.**",
    "torchpkg.**",
)


# --- the export --------------------------------------------------------------------------


def patterns(pattern: GlobPattern) -> tuple[str, ...]:
    return (pattern,) if isinstance(pattern, str) else tuple(pattern)


def qualified_name(model: Any) -> str:
    owner = model if isinstance(model, (type, FunctionType)) else type(model)
    return f"{owner.__module__}.{owner.__qualname__}"


@dataclass(frozen=True)
class Rules:
    mock: tuple[str, ...]
    extern: tuple[str, ...]
    intern: tuple[str, ...]
    roots: tuple[str, ...] = ()  # the repository: see ProvenancePolicy
    configure: Callable[[PackageExporter], None] | None = None

    def apply(self, exporter: PackageExporter) -> None:
        """The user's rules, the hook's, test tooling, then provenance for everything else."""
        if self.mock:
            exporter.mock(self.mock)
        if self.extern:
            exporter.extern(self.extern)
        if self.intern:
            exporter.intern(self.intern)
        if self.configure is not None:
            self.configure(exporter)
        exporter.extern(TOOLING_EXTERNS)
        exporter.fallback(ProvenancePolicy(self.roots))


@dataclass(frozen=True)
class Exported:
    source: bytes | Path | None  # None: the export failed
    error: BaseException | None
    interned: tuple[str, ...]
    externed: tuple[str, ...]
    mocked: tuple[str, ...]
    size: int
    distributions: dict[str, str] = field(default_factory=dict)  # extern: name -> version
    # Distributions whose code went in: their files are materialised when the clone loads.
    interned_distributions: tuple[str, ...] = ()


def export(model: Any, target: BinaryIO | Path, rules: Rules) -> Exported:
    """Package ``model`` at ``PACKAGE/RESOURCE`` under ``rules``; never raises."""
    # Every problem of the export at close(), so the report can name them all. The
    # roundtrip asks whether the model survives: a ScriptModule does, once torch.package's
    # beta gate on saving one is lifted (for this exporter only).
    # A throwaway archive: it need not survive a power cut (no fsync).
    exporter = PackageExporter(
        target, collect_errors=True, allow_script_modules=True, durable=False
    )
    error: BaseException | None = None
    try:
        with exporter:
            rules.apply(exporter)
            exporter.save_pickle(PACKAGE, RESOURCE, model)
    except Exception as raised:
        error = raised
    externed = tuple(exporter.externed_modules())
    lists = (tuple(exporter.interned_modules()), externed, tuple(exporter.mocked_modules()))
    if error is not None:
        return Exported(None, error, *lists, 0)
    record = exporter.environment()
    assert record is not None  # close() succeeded
    distributions = {name: version or "?" for name, version in record.distributions.items()}
    libraries = tuple(record.interned)
    if isinstance(target, Path):
        return Exported(target, None, *lists, target.stat().st_size, distributions, libraries)
    assert isinstance(target, io.BytesIO)
    data = target.getvalue()
    return Exported(data, None, *lists, len(data), distributions, libraries)
