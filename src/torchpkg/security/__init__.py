"""Loading packages you did not write: safe unpickling, the scan, archive limits.

A package is code. ``PackageImporter(path, allow=[...])`` (or
``load_pickle(..., safe=True)``) unpickles with an allowlist: classes and
functions defined in the package, torch's tensor and storage rebuilders, and a
curated set of builtins and torch types; extern names only when ``allow``
lists them. Everything else is an :class:`UnsafePickleError` before any of
the pickle runs. ``scan_archive`` (``torchpkg scan``) shows the same verdicts
without loading anything. Importing the package's own modules still runs
their code: read it first (``torchpkg tree``, ``torchpkg deps``).

Opening an archive refuses hostile layouts (names that escape it or collide,
symlinks, zip bombs) with an :class:`UnsafeArchiveError`; ``ArchiveLimits``
sets how far compressed records may inflate. ``check_integrity`` (and
``PackageImporter(path, verify=True)``, ``torchpkg verify``) compares an
archive with the digest manifest torchpkg writes at export.
"""

from __future__ import annotations

from torchpkg._archive_reader import (
    DEFAULT_LIMITS,
    ArchiveLimits,
    UnsafeArchiveError,
)
from torchpkg._pickle_scan import GlobalReference
from torchpkg.security._guard import PickleGuard, UnsafePickleError
from torchpkg.security._integrity import (
    IntegrityError,
    IntegrityReport,
    RecordStatus,
    UnverifiedArchiveError,
    check_integrity,
)
from torchpkg.security._rules import Allowlist, Basis, Risk, Verdict
from torchpkg.security._scan import (
    ArchiveScan,
    Finding,
    PickleScan,
    is_pickle_record,
    scan_archive,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Allowlist",
    "ArchiveLimits",
    "ArchiveScan",
    "Basis",
    "Finding",
    "GlobalReference",
    "IntegrityError",
    "IntegrityReport",
    "PickleGuard",
    "PickleScan",
    "RecordStatus",
    "Risk",
    "UnsafeArchiveError",
    "UnsafePickleError",
    "UnverifiedArchiveError",
    "Verdict",
    "check_integrity",
    "is_pickle_record",
    "scan_archive",
]
