"""``torchpkg`` / ``python -m torchpkg``: look inside package archives from a shell.

Inspection never imports torch and never runs packaged code, except ``verify``,
which imports every packaged module (and so may import torch).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from torchpkg._archive_reader import open_archive
from torchpkg.errors import TorchpkgError
from torchpkg.file_tree import directory_from_records
from torchpkg.records import ENVIRONMENT_RECORD, EnvironmentRecord

__all__ = ["main"]


def _cmd_tree(args: argparse.Namespace) -> int:
    with open_archive(args.archive) as reader:
        print(directory_from_records(args.archive, reader.records(), args.include, args.exclude))
    return 0


def _modules(records: Sequence[str]) -> list[str]:
    names = []
    for record in records:
        if record.endswith(".py") and not record.startswith(".data/"):
            parts = record[:-3].split("/")
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return sorted(names)


def _cmd_info(args: argparse.Namespace) -> int:
    with open_archive(args.archive) as reader:
        records = reader.records()
        externs = reader.read(".data/extern_modules").decode().split()
        python = (
            reader.read(".data/python_version").decode().strip()
            if reader.has_record(".data/python_version")
            else None
        )
        info = {
            "archive": args.archive,
            "format_version": reader.version(),
            "python_version": python,
            "records": len(records),
            "storages": sum(
                1 for r in records if r.startswith(".data/") and r.endswith(".storage")
            ),
            "modules": _modules(records),
            "extern_modules": externs,
            "pickles": [r for r in records if r.endswith(".pkl")],
            "environment": (
                EnvironmentRecord.from_json(reader.read(ENVIRONMENT_RECORD)).lines()
                if reader.has_record(ENVIRONMENT_RECORD)
                else ["not recorded (the archive was written by another tool or an older torchpkg)"]
            ),
        }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    for key, value in info.items():
        if isinstance(value, list):
            print(f"{key} ({len(value)}):")
            for item in value:
                print(f"  {item}")
        else:
            print(f"{key}: {value}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from torchpkg.importer import PackageImporter

    failures: list[str] = []
    with PackageImporter(args.archive) as importer:
        for name in _modules(importer.zip_reader.records()):
            try:
                importer.import_module(name)
            except Exception as error:  # every failure is reported, not raised
                failures.append(f"module {name}: {type(error).__name__}: {error}")
        for record in importer.zip_reader.records():
            if record.endswith(".pkl") and args.pickles:
                package, _, resource = record.rpartition("/")
                try:
                    importer.load_pickle(package.replace("/", "."), resource)
                except Exception as error:
                    failures.append(f"pickle {record}: {type(error).__name__}: {error}")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"{args.archive}: {'OK' if not failures else f'{len(failures)} problem(s)'}")
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="torchpkg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    tree = commands.add_parser("tree", help="print the archive's file tree")
    tree.add_argument("archive")
    tree.add_argument("--include", action="append", default=None, help="glob, repeatable")
    tree.add_argument("--exclude", action="append", default=[], help="glob, repeatable")
    tree.set_defaults(func=_cmd_tree)
    info = commands.add_parser("info", help="summarise modules, externs, pickles")
    info.add_argument("archive")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=_cmd_info)
    verify = commands.add_parser("verify", help="import every packaged module (runs its code)")
    verify.add_argument("archive")
    verify.add_argument("--pickles", action="store_true", help="also load every .pkl record")
    verify.set_defaults(func=_cmd_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "include", None) is None and args.command == "tree":
        args.include = "**"
    try:
        code: int = args.func(args)
    except (TorchpkgError, OSError) as error:
        print(f"torchpkg: {error}", file=sys.stderr)
        return 2
    return code
