"""``tree``, ``info`` and ``verify``: what a package holds, and whether it is intact and loads."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict, dataclass

from torchpkg._archive_reader import ArchiveReader
from torchpkg.cli._common import (
    FINDINGS,
    OK,
    emit_json,
    extern_modules,
    human_bytes,
    open_package,
    packaged_modules,
    pickle_records,
    python_version,
    storage_records,
)
from torchpkg.file_tree import directory_from_records, select_records
from torchpkg.records import ENVIRONMENT_RECORD, MANIFEST_RECORD, EnvironmentRecord, Manifest
from torchpkg.security import IntegrityReport, check_integrity

__all__ = ["run_info", "run_tree", "run_verify"]

UNVERIFIED = "unverified (no manifest: written by torch.package or an older torchpkg)"


def run_tree(args: argparse.Namespace) -> int:
    include = args.include or ["**"]
    with open_package(args.package) as reader:
        records = reader.records()
    private = args.include_private
    if args.json:
        selected = select_records(records, include, args.exclude, include_private=private)
        emit_json({"package": args.package, "records": selected})
    else:
        tree = directory_from_records(
            args.package, records, include, args.exclude, include_private=private
        )
        print(tree, end="")
    return OK


@dataclass(frozen=True)
class PackageInfo:
    package: str
    format_version: int
    python_version: str | None
    torch_version: str | None
    package_bytes: int
    records: int
    record_bytes: int
    storages: int
    storage_bytes: int
    modules: list[str]
    mocked_modules: list[str]
    extern_modules: list[str]
    pickles: list[str]
    environment: list[str] | None  # None: not recorded (another tool, an older torchpkg)
    manifest: bool  # whether it has an integrity manifest (`verify` checks it)
    manifest_digest: str | None  # its algorithm (BLAKE3, SHA-256); None without one


def package_info(path: str) -> PackageInfo:
    with open_package(path) as reader:
        records = reader.records()
        sizes = {record: reader.record_size(record) for record in records}
        storages = storage_records(reader)
        modules = packaged_modules(reader)
        environment = (
            EnvironmentRecord.from_json(reader.read(ENVIRONMENT_RECORD))
            if reader.has_record(ENVIRONMENT_RECORD)
            else None
        )
        python = python_version(reader)
        return PackageInfo(
            package=path,
            format_version=reader.version(),
            python_version=python,
            torch_version=environment.torch if environment is not None else None,
            package_bytes=os.path.getsize(path) if os.path.isfile(path) else sum(sizes.values()),
            records=len(records),
            record_bytes=sum(sizes.values()),
            storages=len(storages),
            storage_bytes=sum(sizes[record] for record in storages),
            modules=[module.name for module in modules if not module.mocked],
            mocked_modules=[module.name for module in modules if module.mocked],
            extern_modules=extern_modules(reader),
            pickles=pickle_records(reader),
            environment=environment.lines() if environment is not None else None,
            manifest=reader.has_record(MANIFEST_RECORD),
            manifest_digest=_manifest_digest(reader),
        )


def _manifest_digest(reader: ArchiveReader) -> str | None:
    if not reader.has_record(MANIFEST_RECORD):
        return None
    try:
        return Manifest.from_json(reader.read(MANIFEST_RECORD)).algorithm.label
    except ValueError:  # `verify` reports it as altered
        return "unreadable"


def run_info(args: argparse.Namespace) -> int:
    info = package_info(args.package)
    if args.json:
        emit_json(asdict(info))
        return OK
    print(f"package: {info.package} ({human_bytes(info.package_bytes)})")
    print(f"format_version: {info.format_version}")
    print(f"python_version: {info.python_version or 'not recorded'}")
    print(f"torch_version: {info.torch_version or 'not recorded'}")
    print(f"records: {info.records} ({human_bytes(info.record_bytes)})")
    print(f"storages: {info.storages} ({human_bytes(info.storage_bytes)})")
    for title, items in (
        ("modules", info.modules),
        ("mocked_modules", info.mocked_modules),
        ("extern_modules", info.extern_modules),
        ("pickles", info.pickles),
    ):
        print(f"{title} ({len(items)}):")
        for item in items:
            print(f"  {item}")
    print("environment:")
    for line in info.environment or ["not recorded (written by another tool or an older torchpkg)"]:
        print(f"  {line}")
    print(
        f"integrity: {info.manifest_digest} manifest (check it with "
        "`torchpkg verify --integrity-only`)"
        if info.manifest
        else f"integrity: {UNVERIFIED}"
    )
    return OK


def run_verify(args: argparse.Namespace) -> int:
    with open_package(args.package) as reader:
        report = check_integrity(reader)
    altered = report.problems
    # Code that differs from what was exported is never run; unverified code not under --strict.
    refused = bool(altered) or (args.strict and not report.has_manifest)
    run = not (refused or args.integrity_only)
    failures = _import_everything(args) if run else []
    if args.json:
        emit_json(
            {
                "package": args.package,
                "ok": not (refused or failures),
                "integrity": _verdict(report),
                "records": {record: status.value for record, status in report.records.items()},
                "problems": failures,
            }
        )
    else:
        for record, status in altered.items():
            print(f"{status.value}: {record}")
        print(_integrity_line(report))
        for failure in failures:
            print(failure, file=sys.stderr)
        if refused:
            print(f"{args.package}: FAILED (its code was not run)")
        else:
            print(f"{args.package}: {f'{len(failures)} problem(s)' if failures else 'OK'}")
    return FINDINGS if refused or failures else OK


def _verdict(report: IntegrityReport) -> str:
    if not report.has_manifest:
        return "unverified"
    return "altered" if report.problems else "verified"


def _integrity_line(report: IntegrityReport) -> str:
    if not report.has_manifest:
        return UNVERIFIED
    if report.problems:
        return (
            f"altered: {len(report.problems)} record(s) differ from the manifest written at "
            "export; do not load it"
        )
    return f"verified: all {len(report.records)} records match the manifest"


def _import_everything(args: argparse.Namespace) -> list[str]:
    """Import every packaged module (and load every pickle): each failure, as a line."""
    from torchpkg.importer import PackageImporter

    failures: list[str] = []
    allow = (args.allow or []) if args.safe or args.allow else None
    with PackageImporter(args.package, allow=allow) as importer:
        modules = packaged_modules(importer.zip_reader)
        for module in modules:
            if module.mocked:
                continue  # a stub: importing it works, using it raises by design
            try:
                importer.import_module(module.name)
            except Exception as error:  # every failure is reported, not raised
                failures.append(f"module {module.name}: {type(error).__name__}: {error}")
        for record in pickle_records(importer.zip_reader) if args.pickles else []:
            package, _, resource = record.rpartition("/")
            try:
                importer.load_pickle(package.replace("/", "."), resource)
            except Exception as error:
                failures.append(f"pickle {record}: {type(error).__name__}: {error}")
    return failures
