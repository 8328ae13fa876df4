"""``diff``: what changed between two packages: modules, pickles, tensors, resources."""

from __future__ import annotations

import argparse
import difflib
import enum
import hashlib
from dataclasses import dataclass

from torchpkg._archive_reader import ArchiveReader, RecordViews
from torchpkg._pickle_scan import scan_references
from torchpkg.cli._common import (
    FINDINGS,
    OK,
    emit_json,
    extern_modules,
    open_package,
    packaged_modules,
    pickle_records,
    python_version,
    storage_records,
)
from torchpkg.records import (
    ENVIRONMENT_RECORD,
    MANIFEST_RECORD,
    SOURCES_RECORD,
    EnvironmentRecord,
)

__all__ = ["Change", "ChangeKind", "diff_packages", "run_diff"]


class ChangeKind(enum.Enum):
    ADDED = "+"
    REMOVED = "-"
    CHANGED = "~"


@dataclass(frozen=True)
class Change:
    section: str  # modules, pickles, storages, resources, extern modules, environment
    kind: ChangeKind
    subject: str
    detail: str = ""


_FRAMEWORK = {
    ".data/version",
    ".data/extern_modules",
    ".data/python_version",
    ".data/serialization_id",
    ENVIRONMENT_RECORD,
    MANIFEST_RECORD,
    SOURCES_RECORD,
    "byteorder",
}


def _compare(
    section: str, old: dict[str, str], new: dict[str, str], detail: dict[str, str] | None = None
) -> list[Change]:
    """Keys added and removed; values that differ are changed (``detail`` says how)."""
    changes = [Change(section, ChangeKind.ADDED, key) for key in sorted(new.keys() - old.keys())]
    changes += [Change(section, ChangeKind.REMOVED, key) for key in sorted(old.keys() - new.keys())]
    changes += [
        Change(section, ChangeKind.CHANGED, key, (detail or {}).get(key, ""))
        for key in sorted(old.keys() & new.keys())
        if old[key] != new[key]
    ]
    return changes


def _digest(reader: ArchiveReader, record: str) -> str:
    return hashlib.sha256(reader.read(record)).hexdigest()


def _globals(reader: ArchiveReader, record: str) -> set[str]:
    try:
        refs = scan_references(reader.read(record))
    except ValueError:
        return set()
    return {f"{r.module}.{r.name}" for r in refs if r.module is not None and r.name is not None}


def _modules(a: ArchiveReader, b: ArchiveReader) -> list[Change]:
    def sources(reader: ArchiveReader) -> dict[str, str]:
        return {
            module.name: (
                "<mocked>"
                if module.mocked
                else reader.read(module.record).decode("utf-8", "replace")
            )
            for module in packaged_modules(reader)
        }

    old, new = sources(a), sources(b)
    detail = {}
    for name in old.keys() & new.keys():
        if old[name] != new[name]:
            lines = list(difflib.ndiff(old[name].splitlines(), new[name].splitlines()))
            plus = sum(line.startswith("+ ") for line in lines)
            minus = sum(line.startswith("- ") for line in lines)
            detail[name] = f"+{plus} -{minus} lines"
    return _compare("modules", old, new, detail)


def _pickles(a: ArchiveReader, b: ArchiveReader) -> list[Change]:
    old = {record: _digest(a, record) for record in pickle_records(a)}
    new = {record: _digest(b, record) for record in pickle_records(b)}
    detail = {}
    for record in old.keys() & new.keys():
        if old[record] != new[record]:
            before, after = _globals(a, record), _globals(b, record)
            moved = [f"+{name}" for name in sorted(after - before)]
            moved += [f"-{name}" for name in sorted(before - after)]
            detail[record] = f"globals {' '.join(moved)}" if moved else "bytes differ, same globals"
    return _compare("pickles", old, new, detail)


def _storages(a: ArchiveReader, b: ArchiveReader) -> list[Change]:
    old = {record: a.record_size(record) for record in storage_records(a)}
    new = {record: b.record_size(record) for record in storage_records(b)}
    # Sizes first; same-sized tensors are hashed straight from the archives' maps.
    views_a, views_b = a.views(), b.views()

    def fingerprint(size: int, views: RecordViews, record: str) -> str:
        return f"{size}:{hashlib.sha256(views.view(record)).hexdigest()}"

    detail = {}
    changed_old, changed_new = {}, {}
    for record in old.keys() & new.keys():
        if old[record] != new[record]:
            detail[record] = f"{old[record]} -> {new[record]} bytes"
            changed_old[record], changed_new[record] = str(old[record]), str(new[record])
        else:
            changed_old[record] = fingerprint(old[record], views_a, record)
            changed_new[record] = fingerprint(new[record], views_b, record)
            detail[record] = f"contents differ, {old[record]} bytes"
    changed_old.update(dict.fromkeys(old.keys() - new.keys(), ""))
    changed_new.update(dict.fromkeys(new.keys() - old.keys(), ""))
    return _compare("storages", changed_old, changed_new, detail)


def _resources(a: ArchiveReader, b: ArchiveReader) -> list[Change]:
    def others(reader: ArchiveReader) -> dict[str, str]:
        skip = set(pickle_records(reader)) | set(storage_records(reader)) | _FRAMEWORK
        return {
            record: _digest(reader, record)
            for record in reader.records()
            if record not in skip
            and not (record.endswith(".py") and not record.startswith(".data/"))
        }

    return _compare("resources", others(a), others(b))


def _environment(a: ArchiveReader, b: ArchiveReader) -> list[Change]:
    def versions(reader: ArchiveReader) -> dict[str, str]:
        found = {}
        python = python_version(reader)
        if python is not None:
            found["python"] = python
        if reader.has_record(ENVIRONMENT_RECORD):
            record = EnvironmentRecord.from_json(reader.read(ENVIRONMENT_RECORD))
            found["torch"] = record.torch or "not installed"
            found.update({dist: version or "?" for dist, version in record.distributions.items()})
        return found

    old, new = versions(a), versions(b)
    detail = {key: f"{old[key]} -> {new[key]}" for key in old.keys() & new.keys()}
    externs = _compare(
        "extern modules",
        dict.fromkeys(extern_modules(a), ""),
        dict.fromkeys(extern_modules(b), ""),
    )
    return externs + _compare("environment", old, new, detail)


def diff_packages(a: ArchiveReader, b: ArchiveReader) -> list[Change]:
    return [
        *_modules(a, b),
        *_pickles(a, b),
        *_storages(a, b),
        *_resources(a, b),
        *_environment(a, b),
    ]


def run_diff(args: argparse.Namespace) -> int:
    with open_package(args.old) as a, open_package(args.new) as b:
        changes = diff_packages(a, b)
    if args.json:
        emit_json(
            {
                "old": args.old,
                "new": args.new,
                "changes": [
                    {
                        "section": c.section,
                        "change": c.kind.name.lower(),
                        "subject": c.subject,
                        "detail": c.detail,
                    }
                    for c in changes
                ],
            }
        )
        return FINDINGS if changes else OK
    section = None
    for change in changes:
        if change.section != section:
            section = change.section
            print(f"{section}:")
        detail = f"  ({change.detail})" if change.detail else ""
        print(f"  {change.kind.value} {change.subject}{detail}")
    if not changes:
        print(f"{args.old} and {args.new} hold the same modules, pickles and tensors")
    return FINDINGS if changes else OK
