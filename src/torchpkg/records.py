"""torchpkg's own records under ``.data/torchpkg/``, which torch.package ignores.

The environment record: what the loading machine must provide, and what it has.

An archive lists its extern modules; this record adds, for each of them, the
installed distribution (and version) it came from, plus the Python and torch
versions that wrote the package. It lives in ``.data/torchpkg/environment.json``,
which torch.package ignores, so archives still load there. ``PackageImporter``
compares it with the loading environment: a difference is an
:class:`EnvironmentMismatchWarning`, or an :class:`EnvironmentMismatchError`
with ``strict_environment=True``. The source map says which local file each
interned module came from; the manifest holds a digest (BLAKE3) of every record
(``torchpkg.security.check_integrity`` compares an archive with it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import platform
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torchpkg._digest import WRITTEN, DigestAlgorithm
from torchpkg.errors import ArchiveFormatError, TorchpkgError

__all__ = [
    "ENVIRONMENT_RECORD",
    "MANIFEST_RECORD",
    "SOURCES_RECORD",
    "EnvironmentMismatch",
    "EnvironmentMismatchError",
    "EnvironmentMismatchWarning",
    "EnvironmentRecord",
    "InternedDistribution",
    "InvalidRecordError",
    "Manifest",
    "SourceMap",
    "distribution_for_module",
    "installed_version",
]

ENVIRONMENT_RECORD = ".data/torchpkg/environment.json"
SOURCES_RECORD = ".data/torchpkg/sources.json"
MANIFEST_RECORD = ".data/torchpkg/manifest.json"
_FORMAT = 1


@functools.lru_cache(maxsize=1)
def _top_level_distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_for_module(module: str) -> str | None:
    """The installed distribution that provides ``module`` (by its top-level package)."""
    return _distribution_for_top(module.partition(".")[0])


@functools.lru_cache(maxsize=1024)
def _distribution_for_top(top: str) -> str | None:
    """Most distributions are named like their package, which costs one metadata
    lookup (once per package, not per module); the full top-level table is built
    only for the others."""
    if top in sys.stdlib_module_names or top == "builtins":
        return None
    try:
        distribution = importlib.metadata.distribution(top)
    except importlib.metadata.PackageNotFoundError:
        names = _top_level_distributions().get(top)
        return names[0] if names else None
    name: str = distribution.metadata["Name"] or top
    return name


@functools.lru_cache(maxsize=1024)
def installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


class InvalidRecordError(ArchiveFormatError, ValueError):
    """One of torchpkg's records does not parse: the archive was damaged or altered.
    (A ``ValueError`` too, which is what these records raised before.)"""


@dataclass(frozen=True)
class InternedDistribution:
    """A distribution whose code the package interns, with the metadata it had at export.

    Packaged code that asks ``importlib.metadata`` about it gets this answer, whether
    or not (and in whatever version) the loading environment has it installed.
    """

    name: str
    version: str
    packages: tuple[str, ...]  # its top-level packages that the archive holds
    metadata: str  # the METADATA file

    @classmethod
    def of_installed(cls, name: str, packages: Iterable[str]) -> InternedDistribution | None:
        try:
            found = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return None
        text = found.read_text("METADATA") or found.read_text("PKG-INFO")
        if text is None:
            text = f"Metadata-Version: 2.1\nName: {name}\nVersion: {found.version}\n"
        return cls(found.metadata["Name"] or name, found.version, tuple(sorted(packages)), text)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "packages": list(self.packages), "metadata": self.metadata}


def _interned_distributions(interned: Iterable[str]) -> dict[str, InternedDistribution]:
    packages: dict[str, set[str]] = {}
    for module in interned:
        dist = distribution_for_module(module)
        if dist is not None:
            packages.setdefault(dist, set()).add(module.partition(".")[0])
    found = (InternedDistribution.of_installed(dist, tops) for dist, tops in packages.items())
    return {record.name: record for record in found if record is not None}


@dataclass(frozen=True)
class EnvironmentRecord:
    """Python and torch versions, the distribution (and version) of each extern module,
    and the metadata of the distributions the package interns."""

    python: str
    torch: str | None
    distributions: dict[str, str | None] = field(default_factory=dict)  # name -> version
    modules: dict[str, str | None] = field(default_factory=dict)  # extern module -> dist
    interned: dict[str, InternedDistribution] = field(default_factory=dict)

    @classmethod
    def of_environment(
        cls, externs: Iterable[str], interned: Iterable[str] = ()
    ) -> EnvironmentRecord:
        """The record of this interpreter for a package with these extern and interned modules."""
        modules = {name: distribution_for_module(name) for name in externs}
        distributions = {
            dist: installed_version(dist) for dist in sorted({d for d in modules.values() if d})
        }
        return cls(
            platform.python_version(),
            installed_version("torch"),
            distributions,
            modules,
            _interned_distributions(interned),
        )

    def to_json(self) -> bytes:
        data = {
            "format": _FORMAT,
            "python": self.python,
            "torch": self.torch,
            "distributions": self.distributions,
            "modules": self.modules,
            "interned": {name: record.to_json() for name, record in self.interned.items()},
        }
        return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> EnvironmentRecord:
        try:
            parsed: Any = json.loads(data)
            interned = {
                name: InternedDistribution(
                    name, str(item["version"]), tuple(item["packages"]), str(item["metadata"])
                )
                for name, item in parsed.get("interned", {}).items()
            }
            return cls(
                str(parsed["python"]),
                parsed.get("torch"),
                dict(parsed.get("distributions", {})),
                dict(parsed.get("modules", {})),
                interned,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidRecordError(
                f"{ENVIRONMENT_RECORD} is not a valid record: {error}"
            ) from None

    def mismatches(self) -> list[EnvironmentMismatch]:
        """What this interpreter has that differs from the record, one entry per difference."""
        found: list[EnvironmentMismatch] = []
        here = platform.python_version()
        if _minor(here) != _minor(self.python):
            found.append(EnvironmentMismatch("python", self.python, here))
        if self.torch is not None and installed_version("torch") != self.torch:
            found.append(EnvironmentMismatch("torch", self.torch, installed_version("torch")))
        for name, version in self.distributions.items():
            if name == "torch":
                continue
            installed = installed_version(name)
            if installed != version:
                found.append(EnvironmentMismatch(name, version, installed))
        return found

    def lines(self) -> list[str]:
        """The record as text, for ``torchpkg info``."""
        lines = [f"python {self.python}", f"torch {self.torch or 'not recorded'}"]
        for name, version in self.distributions.items():
            users = sorted(module for module, dist in self.modules.items() if dist == name)
            lines.append(f"{name} {version or '?'} ({len(users)} extern modules)")
        for name, record in self.interned.items():
            lines.append(f"{name} {record.version} (interned: {', '.join(record.packages)})")
        stdlib = sorted(module for module, dist in self.modules.items() if dist is None)
        if stdlib:
            lines.append(f"standard library / no distribution: {', '.join(stdlib)}")
        return lines


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@dataclass(frozen=True)
class EnvironmentMismatch:
    """One distribution (or ``python``/``torch``) whose version differs from the record."""

    distribution: str
    packaged: str | None
    installed: str | None  # None: not installed here

    def __str__(self) -> str:
        installed = self.installed or "not installed"
        return (
            f"{self.distribution}: the package was made with {self.packaged or '?'}, "
            f"this environment has {installed}"
        )


def _describe(package: str, mismatches: Iterable[EnvironmentMismatch]) -> str:
    lines = "\n".join(f"  {mismatch}" for mismatch in mismatches)
    return (
        f"{package} was exported in a different environment:\n{lines}\n"
        "The package's extern modules come from the loading environment, so its code may "
        "behave differently here: install the recorded versions, or re-export the package "
        "with those distributions interned."
    )


class _Mismatches(Exception):
    """Carries the package and its mismatches, and pickles with them (xdist, workers)."""

    def __init__(self, package: str, mismatches: list[EnvironmentMismatch]) -> None:
        super().__init__(_describe(package, mismatches))
        self.package = package
        self.mismatches = mismatches

    def __reduce__(self) -> Any:
        return (type(self), (self.package, self.mismatches))


class EnvironmentMismatchWarning(_Mismatches, UserWarning):
    """The loading environment differs from the one the package records."""


class EnvironmentMismatchError(_Mismatches, TorchpkgError, ImportError):
    """``strict_environment=True`` and the loading environment differs from the record."""


@dataclass(frozen=True)
class SourceMap:
    """Where each interned module's source came from: a local file, and its digest then.

    Coverage counts the lines packaged code runs for that file while it is unchanged.
    """

    files: dict[str, tuple[str, str]] = field(default_factory=dict)  # record -> (path, sha256)

    @staticmethod
    def digest(source: bytes) -> str:
        return hashlib.sha256(source).hexdigest()

    def to_json(self) -> bytes:
        return (json.dumps({"format": _FORMAT, "files": self.files}, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> SourceMap:
        try:
            parsed: Any = json.loads(data)
            return cls({str(k): (str(v[0]), str(v[1])) for k, v in parsed["files"].items()})
        except (ValueError, KeyError, TypeError, IndexError) as error:
            raise InvalidRecordError(f"{SOURCES_RECORD} is not a valid record: {error}") from None

    def unchanged_file(self, record: str, source: bytes) -> str | None:
        """The local file ``record`` came from, if it still holds exactly ``source``."""
        entry = self.files.get(record)
        if entry is None or entry[1] != self.digest(source):
            return None
        path = entry[0]
        try:
            with open(path, "rb") as file:
                return path if self.digest(file.read()) == entry[1] else None
        except OSError:
            return None


@dataclass(frozen=True)
class Manifest:
    """The digest of each record, in the order they were written, and the algorithm.

    The exporter writes it after every other record but ``.data/serialization_id``
    (which is derived from the names and CRCs of all the others, the manifest
    included), so it covers everything a loader reads.
    """

    digests: dict[str, str] = field(default_factory=dict)  # record -> hex digest
    algorithm: DigestAlgorithm = WRITTEN

    def to_json(self) -> bytes:
        data = {"format": _FORMAT, "algorithm": self.algorithm.value, "records": self.digests}
        return (json.dumps(data, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            parsed: Any = json.loads(data)
            algorithm = DigestAlgorithm.named(parsed["algorithm"])
            digests = {str(name): str(digest) for name, digest in parsed["records"].items()}
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise InvalidRecordError(f"{MANIFEST_RECORD} is not a valid record: {error}") from None
        return cls(digests, algorithm)
