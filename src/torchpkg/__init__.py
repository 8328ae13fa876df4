"""torchpkg: hermetic packages of PyTorch code and data.

Reads and writes the ``torch.package`` archive format with its public API,
written from scratch. Importing torchpkg does not import torch.
"""

from __future__ import annotations

from torchpkg import analyze
from torchpkg._hooks import RemovableHandle
from torchpkg.analyze import is_from_package
from torchpkg.environment import Importer, OrderedImporter, sys_importer
from torchpkg.errors import (
    ArchiveFormatError,
    CoverageNotMeasuredWarning,
    EmptyMatchError,
    ImportedObjectNotFoundError,
    MangleError,
    ObjMismatchError,
    ObjNotFoundError,
    PackagedModuleNotFoundError,
    PackagingError,
    PackagingErrorReason,
    Problem,
    RecordNotFoundError,
    TorchpkgError,
    UnsupportedVersionError,
)
from torchpkg.exporter import PackageExporter
from torchpkg.file_tree import Directory
from torchpkg.glob import GlobGroup, GlobPattern
from torchpkg.importer import PackageImporter
from torchpkg.mangling import demangle, get_mangle_prefix, is_mangled
from torchpkg.policy import Action
from torchpkg.provenance import Origin, ProvenancePolicy
from torchpkg.records import (
    EnvironmentMismatch,
    EnvironmentMismatchError,
    EnvironmentMismatchWarning,
    EnvironmentRecord,
)
from torchpkg.roundtrip import (
    Diagnostic,
    DiagnosticKind,
    RngState,
    RoundtripFailure,
    RoundtripResult,
    Verdict,
)
from torchpkg.security import (
    Allowlist,
    ArchiveLimits,
    IntegrityError,
    UnsafeArchiveError,
    UnsafePickleError,
    UnverifiedArchiveError,
)

__all__ = [
    "Action",
    "Allowlist",
    "ArchiveFormatError",
    "ArchiveLimits",
    "CoverageNotMeasuredWarning",
    "Diagnostic",
    "DiagnosticKind",
    "Directory",
    "EmptyMatchError",
    "EnvironmentMismatch",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "EnvironmentRecord",
    "GlobGroup",
    "GlobPattern",
    "ImportedObjectNotFoundError",
    "Importer",
    "IntegrityError",
    "MangleError",
    "ObjMismatchError",
    "ObjNotFoundError",
    "OrderedImporter",
    "Origin",
    "PackageExporter",
    "PackageImporter",
    "PackagedModuleNotFoundError",
    "PackagingError",
    "PackagingErrorReason",
    "Problem",
    "ProvenancePolicy",
    "RecordNotFoundError",
    "RemovableHandle",
    "RngState",
    "RoundtripFailure",
    "RoundtripResult",
    "TorchpkgError",
    "UnsafeArchiveError",
    "UnsafePickleError",
    "UnsupportedVersionError",
    "UnverifiedArchiveError",
    "Verdict",
    "analyze",
    "demangle",
    "get_mangle_prefix",
    "is_from_package",
    "is_mangled",
    "sys_importer",
]

__version__ = "0.1.0"
