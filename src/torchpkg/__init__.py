"""torchpkg: hermetic packages of PyTorch code and data.

Reads and writes the ``torch.package`` archive format with its public API,
written from scratch. Importing torchpkg does not import torch.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from torchpkg._hooks import RemovableHandle
from torchpkg.environment import Importer, OrderedImporter, sys_importer
from torchpkg.errors import (
    ArchiveFormatError,
    CoverageNotMeasuredWarning,
    EmptyMatchError,
    ImportedObjectNotFoundError,
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
from torchpkg.security import Allowlist, ArchiveLimits, UnsafeArchiveError, UnsafePickleError

__all__ = [
    "Action",
    "Allowlist",
    "ArchiveFormatError",
    "ArchiveLimits",
    "Diagnostic",
    "DiagnosticKind",
    "Directory",
    "CoverageNotMeasuredWarning",
    "EmptyMatchError",
    "EnvironmentMismatch",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "EnvironmentRecord",
    "GlobGroup",
    "GlobPattern",
    "ImportedObjectNotFoundError",
    "Importer",
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
    "Verdict",
    "demangle",
    "get_mangle_prefix",
    "is_from_package",
    "is_mangled",
    "sys_importer",
]

__version__ = "0.1.0"


def is_from_package(obj: Any) -> bool:
    """Whether ``obj`` (a module, or an object whose class) was loaded from a package.

    Objects of extern or standard-library classes are not, even when a package
    returned them.
    """
    if isinstance(obj, ModuleType):
        return is_mangled(obj.__name__)
    return is_mangled(type(obj).__module__)
