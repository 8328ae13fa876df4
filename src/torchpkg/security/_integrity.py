"""Integrity: an archive compared with the manifest torchpkg wrote into it at export.

The manifest (``.data/torchpkg/manifest.json``) holds a digest of every
record (BLAKE3; SHA-256 in archives from earlier torchpkg versions) but itself
and ``.data/serialization_id``, which the writer derives from the others after
it. A record whose bytes differ, one the manifest lists that is gone, and one it
does not list are each a finding. Archives written by torch.package (or a
torchpkg from before manifests) have none: they are *unverified*, which is not
the same as altered.

A manifest detects accidental damage and changes made by tools that do not
rewrite it; it is not a signature: whoever can rewrite the archive can write
a matching manifest too.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torchpkg._archive import SERIALIZATION_ID
from torchpkg._archive_checks import UnsafeArchiveError
from torchpkg._archive_reader import ArchiveReader, RecordViews
from torchpkg.errors import ArchiveFormatError
from torchpkg.records import MANIFEST_RECORD, Manifest

__all__ = [
    "IntegrityError",
    "IntegrityReport",
    "RecordStatus",
    "UnverifiedArchiveError",
    "check_integrity",
]

# In the archive but not in its manifest, by design: the manifest cannot hash
# itself, and the serialization id is written after it.
_UNLISTED = frozenset({MANIFEST_RECORD, SERIALIZATION_ID})


class RecordStatus(enum.Enum):
    VERIFIED = "verified"
    ALTERED = "altered"  # its bytes differ from those exported
    MISSING = "missing"  # the manifest lists it; the archive no longer has it
    EXTRA = "extra"  # added after export: the manifest does not list it


_MEANING = {
    RecordStatus.ALTERED: "its bytes differ from the exported ones",
    RecordStatus.MISSING: "listed in the manifest, no longer in the archive",
    RecordStatus.EXTRA: "not in the manifest: added after export",
}


class IntegrityError(ArchiveFormatError):
    """``verify=True`` and records of the archive differ from its manifest.

    ``problems`` maps each altered, missing or extra record to its status.
    """

    def __init__(self, archive: str, problems: Mapping[str, RecordStatus]) -> None:
        self.archive = archive
        self.problems = dict(problems)
        super().__init__(self._message())

    def _message(self) -> str:
        lines = "\n".join(
            f"  {status.value}: {record} ({_MEANING[status]})"
            for record, status in self.problems.items()
        )
        return (
            f"{self.archive} does not match the manifest torchpkg wrote at export "
            f"({MANIFEST_RECORD}):\n{lines}\n"
            "It was changed after it was written, or damaged in transfer: do not load it. "
            "Get the package again from where it came from, or export it again from its source."
        )

    def __reduce__(self) -> Any:
        return (type(self), (self.archive, self.problems))


class UnverifiedArchiveError(IntegrityError):
    """``verify=True`` and the archive has no manifest to check (``problems`` is empty):
    torch.package and older torchpkg versions write none."""

    def _message(self) -> str:
        return (
            f"{self.archive} is unverified: it has no integrity manifest ({MANIFEST_RECORD}), "
            "so it was written by torch.package or an older torchpkg and whether it was "
            "altered cannot be checked. If you trust where it came from, open it with "
            "verify=False (inspect it first with `torchpkg scan`, and load its pickles with "
            "allow=[...]); re-exporting it with torchpkg adds a manifest."
        )


@dataclass(frozen=True)
class IntegrityReport:
    """An archive checked against its manifest.

    ``records`` has every record the manifest lists, then the extra ones, each
    with its status; it is empty when the archive has no manifest.
    """

    archive: str
    has_manifest: bool
    records: dict[str, RecordStatus]

    @property
    def problems(self) -> dict[str, RecordStatus]:
        return {
            r: status for r, status in self.records.items() if status is not RecordStatus.VERIFIED
        }

    @property
    def verified(self) -> bool:
        return self.has_manifest and not self.problems

    def raise_unless_verified(self) -> None:
        """An ``UnverifiedArchiveError`` without a manifest, an ``IntegrityError``
        naming every record that differs from it."""
        if not self.has_manifest:
            raise UnverifiedArchiveError(self.archive, {})
        if self.problems:
            raise IntegrityError(self.archive, self.problems)


def check_integrity(reader: ArchiveReader) -> IntegrityReport:
    """Hash every record of ``reader`` and compare it with the archive's manifest."""
    if not reader.has_record(MANIFEST_RECORD):
        return IntegrityReport(reader.name, has_manifest=False, records={})
    views = reader.views()  # mapped where the reader can: hashing copies nothing
    try:
        manifest = Manifest.from_json(bytes(_view(views, MANIFEST_RECORD) or b""))
    except ValueError:  # damaged: nothing it says can be trusted
        return IntegrityReport(reader.name, True, {MANIFEST_RECORD: RecordStatus.ALTERED})
    records: dict[str, RecordStatus] = {}
    for name, digest in manifest.digests.items():
        if not reader.has_record(name):
            records[name] = RecordStatus.MISSING
            continue
        view = _view(views, name)
        same = view is not None and manifest.algorithm.hexdigest(view) == digest
        records[name] = RecordStatus.VERIFIED if same else RecordStatus.ALTERED
    for name in reader.records():
        if name not in manifest.digests and name not in _UNLISTED:
            records[name] = RecordStatus.EXTRA
    return IntegrityReport(reader.name, True, records)


def _view(views: RecordViews, name: str) -> memoryview | None:
    """The record's bytes; None where the reader found them damaged (they changed).
    A hostile archive stays an ``UnsafeArchiveError``, not a changed record."""
    try:
        return views.view(name)
    except UnsafeArchiveError:
        raise
    except ArchiveFormatError:  # a CRC that no longer matches, a record cut short
        return None
