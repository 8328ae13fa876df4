"""Configuration, measurements and the per-run scratch space shared by the workloads."""

from __future__ import annotations

import gc
import importlib
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "FULL",
    "QUICK",
    "Config",
    "Results",
    "Row",
    "Session",
    "open_session",
    "rotate",
    "timed",
]

T = TypeVar("T")

SECONDS = "s"
MODEL_FRACTION = "x model bytes"


@dataclass(frozen=True)
class Config:
    """Sizes and repetitions. ``FULL`` is ``make bench``; ``QUICK`` is ``--quick``."""

    rounds: int = 5
    # large: ``large_layers`` bias-free Linear(dim, dim) layers, float32.
    large_layers: int = 20
    large_dim: int = 3584  # 20 x 3584^2 x 4 bytes = 1.03 GB
    # many: ``many_blocks`` blocks of 5 parameters and 5 buffers of ``many_numel`` floats.
    many_blocks: int = 500  # 5,000 tensors
    many_numel: int = 2560  # x 4 bytes x 5,000 = 51 MB
    # code: a generated package of ``code_modules`` modules (plus the model's module).
    code_modules: int = 50
    code_functions: int = 10  # functions (and as many small classes) per module
    # rss: children per loader (peak RSS varies little between runs).
    rss_rounds: int = 3
    # Export-row names of the formats to run (None: all); torchpkg is the reference.
    peers: frozenset[str] | None = None
    tmp_dir: str | None = None  # None: tempfile's default (/tmp)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["peers"] = sorted(self.peers) if self.peers is not None else None
        return data


FULL = Config()
QUICK = replace(FULL, rounds=3, large_dim=1120, many_blocks=100, rss_rounds=1)


@dataclass
class Row:
    """Every measurement of one peer in one phase of one workload."""

    workload: str
    phase: str
    peer: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)


class Results:
    """Rows in the order they were first measured, and facts about each workload."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], Row] = {}
        self.facts: dict[str, dict[str, Any]] = {}

    def add(self, workload: str, phase: str, peer: str, value: float, unit: str = SECONDS) -> None:
        key = (workload, phase, peer)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = Row(workload, phase, peer, unit)
        row.values.append(value)

    def get(self, workload: str, phase: str, peer: str) -> Row | None:
        return self.rows.get((workload, phase, peer))

    def note(self, workload: str, **facts: Any) -> None:
        self.facts.setdefault(workload, {}).update(facts)


def rotate(items: Sequence[T], by: int) -> list[T]:
    """``items`` starting at ``by`` (mod len): each round starts with another peer."""
    if not items:
        return []
    start = by % len(items)
    return [*items[start:], *items[:start]]


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """``fn()`` and its wall time, after a full collection so garbage is not billed to it."""
    gc.collect()
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


_names = itertools.count()


class Session:
    """One run: a scratch folder (deleted at the end), generated modules, the results."""

    def __init__(self, config: Config, root: Path, log: Callable[[str], None]) -> None:
        self.config = config
        self.root = root
        self.log = log
        self.results = Results()
        self.src = root / "src"
        self.src.mkdir()
        self._generated: list[str] = []
        self._shared: dict[str, Any] = {}

    def shared(self, key: str, factory: Callable[[], T]) -> T:
        """``factory()``, made once per session (the large model serves two workloads)."""
        if key not in self._shared:
            self._shared[key] = factory()
        value: T = self._shared[key]
        return value

    def path(self, name: str) -> Path:
        """A scratch file path (the caller deletes the file when done)."""
        return self.root / name

    def write_package(self, prefix: str, files: dict[str, str]) -> str:
        """Write ``files`` as a new top-level package with a fresh name; return the name."""
        name = f"{prefix}_{os.getpid()}_{next(_names)}"
        for relative, text in files.items():
            path = self.src / name / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        importlib.invalidate_caches()
        self._generated.append(name)
        return name

    def forget(self, name: str) -> None:
        """Remove a generated package from disk and from ``sys.modules``."""
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
        shutil.rmtree(self.src / name, ignore_errors=True)
        if name in self._generated:
            self._generated.remove(name)

    def close(self) -> None:
        self._shared.clear()
        for name in list(self._generated):
            self.forget(name)


@contextmanager
def open_session(config: Config, log: Callable[[str], None]) -> Iterator[Session]:
    """A Session whose generated modules are importable until the block ends."""
    with tempfile.TemporaryDirectory(prefix="torchpkg-bench-", dir=config.tmp_dir) as root:
        session = Session(config, Path(root), log)
        sys.path.insert(0, str(session.src))
        # Objects alive now (torch's, mostly) are never garbage: keep them out of every
        # collection, so that timed()'s collection and any automatic full collection
        # during a measurement cost little and the same for every peer.
        gc.collect()
        gc.freeze()
        try:
            yield session
        finally:
            gc.unfreeze()
            session.close()
            sys.path.remove(str(session.src))
