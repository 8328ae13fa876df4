"""Every global each pickle of a package references, judged as safe loading judges it.

Nothing here unpickles anything: the opcodes are read (``_pickle_scan``), and
replayed with inert stand-ins for every global so that names the opcodes
alone cannot tell are still seen exactly as the unpickler would see them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from torchpkg._archive_reader import ArchiveReader
from torchpkg._module_tree import ModuleNode
from torchpkg._pickle_scan import GlobalReference, replay_globals, scan_references
from torchpkg.security._bindings import Bound, top_level_bindings
from torchpkg.security._rules import (
    Allowlist,
    Basis,
    Binding,
    Contents,
    Risk,
    Verdict,
    judge,
)

__all__ = [
    "ArchiveScan",
    "Finding",
    "PickleScan",
    "archive_contents",
    "is_pickle_record",
    "scan_archive",
    "scan_pickle",
]

# What torch.package and torchpkg pickles start with: PROTO 2 to 5.
_PICKLE_STARTS = tuple(bytes([0x80, protocol]) for protocol in range(2, 6))
_SNIFF_LIMIT = 1 << 20  # larger resources are read as views, not copies


@dataclass(frozen=True)
class Finding:
    """One global a pickle references, where, and the verdict on it."""

    reference: GlobalReference
    verdict: Verdict

    @property
    def global_name(self) -> str:
        ref = self.reference
        if ref.module is None or ref.name is None:
            if ref.extension_code is not None:
                return f"<extension code {ref.extension_code}>"
            return "<computed>"
        return f"{ref.module}.{ref.name}"

    @property
    def where(self) -> str:
        ref = self.reference
        at = f"byte {ref.offset}" if ref.offset is not None else "replay"
        return f"{at} {ref.opcode}"

    def line(self) -> str:
        return f"{self.where} {self.global_name}: {self.verdict.risk.value}: {self.verdict.reason}"


@dataclass(frozen=True)
class PickleScan:
    """The findings of one pickle record; ``problem`` when it cannot be read at all."""

    record: str
    findings: tuple[Finding, ...]
    problem: str | None = None

    @property
    def refused(self) -> tuple[Finding, ...]:
        """What safe loading would refuse."""
        return tuple(finding for finding in self.findings if not finding.verdict.allowed)

    @property
    def loads_safely(self) -> bool:
        return self.problem is None and not self.refused


@dataclass(frozen=True)
class ArchiveScan:
    archive: str
    pickles: tuple[PickleScan, ...]

    @property
    def loads_safely(self) -> bool:
        return all(scan.loads_safely for scan in self.pickles)

    def count(self, risk: Risk) -> int:
        return sum(f.verdict.risk is risk for scan in self.pickles for f in scan.findings)


def _unspelled(ref: GlobalReference) -> Verdict:
    if ref.extension_code is not None:
        why = (
            f"extension code {ref.extension_code} names a global through copyreg's registry, "
            "which has no entry for it in this process; no pickler of packages writes one"
        )
    else:
        why = (
            "its module and name are built while unpickling, which only a pickle written to "
            "evade scanners does"
        )
    return Verdict(Risk.DANGEROUS, False, Basis.COMPUTED, why)


def scan_pickle(
    data: bytes | bytearray | memoryview,
    contents: Contents,
    allow: Allowlist,
    record: str = "<pickle>",
) -> PickleScan:
    """Judge every global ``data`` references, in order, without running any of it."""
    try:
        references = scan_references(data)
    except ValueError as error:
        return PickleScan(record, (), f"cannot be read: {error}")
    spelled = {(ref.module, ref.name) for ref in references}
    # The replay sees what the opcodes alone cannot (it reads them as the unpickler does);
    # not with extension codes, which the unpickler may serve from its cache, unreplayed.
    extension = any(ref.extension_code is not None for ref in references)
    replayed = (None if extension else replay_globals(data)) or []
    references += [
        GlobalReference(module, name, "find_class", None)
        for module, name in dict.fromkeys(replayed)
        if (module, name) not in spelled
    ]
    findings = tuple(
        Finding(
            ref,
            judge(ref.module, ref.name, contents, allow)
            if ref.module is not None and ref.name is not None
            else _unspelled(ref),
        )
        for ref in references
    )
    return PickleScan(record, findings)


def is_pickle_record(reader: ArchiveReader, record: str) -> bool:
    """Whatever ``load_pickle`` would unpickle: ``.pkl`` records, and any other resource
    that reads as a pickle (protocol 0 and 1 pickles have no header to sniff).

    ``.data/`` holds TorchScript's pickles, which torch's own loader reads.
    """
    if record.startswith(".data/") or record.endswith(".py"):
        return False
    if record.endswith(".pkl"):
        return True
    size = reader.record_size(record)
    if size < 2:
        return False
    data = reader.read(record) if size <= _SNIFF_LIMIT else reader.read_view(record)
    if bytes(data[:2]) in _PICKLE_STARTS:
        return True
    try:
        scan_references(data)  # a whole pickle, from first opcode to STOP
    except ValueError:
        return False
    return True


def archive_contents(reader: ArchiveReader, *, sources: bool = True) -> Contents:
    """The package's modules as judging needs them; ``sources`` reads packaged modules'
    top-level bindings (the static scan's view of re-exports)."""
    externs = reader.read_text(".data/extern_modules").split()
    root = ModuleNode.from_archive(reader.records(), externs)

    def is_packaged(module: str) -> bool:
        node = root.find(module)
        return node is not None and not node.extern

    def is_extern(module: str) -> bool:
        node = root.find(module)
        return node is not None and node.extern

    cache: dict[str, dict[str, Bound]] = {}

    def bound(module: str, name: str) -> Bound:
        if module not in cache:
            node = root.find(module)
            source = (
                reader.read(node.source_file)
                if node is not None and node.source_file is not None
                else None
            )
            cache[module] = (
                top_level_bindings(source, module, node.is_package)
                if source is not None and node is not None
                else {}
            )
        return cache[module].get(name, (Binding.UNBOUND, None))

    return Contents(is_packaged, is_extern, bound if sources else None)


def scan_archive(
    reader: ArchiveReader, allow: Allowlist | Iterable[str] = (), name: str | None = None
) -> ArchiveScan:
    """Scan every pickle of an open archive."""
    allowlist = Allowlist.of(allow)
    contents = archive_contents(reader)
    pickles = tuple(
        scan_pickle(reader.read(record), contents, allowlist, record)
        for record in reader.records()
        if is_pickle_record(reader, record)
    )
    return ArchiveScan(name or reader.name, pickles)
