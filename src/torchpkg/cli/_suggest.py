"""``suggest``: the export policy a roundtrip would use, ready to paste.

The roundtrip applies the user's rules, externs test tooling, then decides
every other module by provenance (``ProvenancePolicy``): code of the
repository is interned, installed code externed. Here the resolver runs
with that policy over the module's source (nothing is imported) or, for
``module:attr``, over what the object needs (the module is imported to get it).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import io
import sys
from dataclasses import asdict, dataclass
from typing import Any

from torchpkg._pickle_scan import scan_globals_fast
from torchpkg.cli._common import (
    FINDINGS,
    OK,
    CommandError,
    emit_json,
    is_module_name,
    modules_of_this_folder,
)
from torchpkg.environment import _getattribute, find_spec_without_running, sys_importer
from torchpkg.glob import GlobGroup
from torchpkg.pickling import Kind, classify, create_pickler
from torchpkg.policy import Action, Policy
from torchpkg.provenance import ProvenancePolicy
from torchpkg.resolver import Resolver
from torchpkg.roundtrip._export import TOOLING_EXTERNS

__all__ = ["Suggestion", "run_suggest", "suggest_policy"]


@dataclass(frozen=True)
class Suggestion:
    target: str
    intern: list[str]  # patterns, as exporter.intern() takes them
    extern: list[str]
    interned_modules: list[str]
    extern_modules: list[str]
    implicit: list[str]  # extern without a rule: the standard library, torch
    problems: list[str]  # what would still fail the export


def _object_modules(target: str, module: str, attr: str) -> list[str]:
    try:
        owner = importlib.import_module(module)
    except Exception as error:  # the user's module failed to import: say so, no traceback
        raise CommandError(f"importing {module} failed: {type(error).__name__}: {error}") from error
    try:
        obj = _getattribute(owner, attr)
    except AttributeError:
        raise CommandError(f"{module} has no attribute {attr!r} (from {target})") from None
    if isinstance(obj, type) or inspect.isroutine(obj):
        return [obj.__module__]
    return [type(obj).__module__, *_pickled_modules(obj)]


def _pickled_modules(obj: Any) -> list[str]:
    """The modules whose globals a pickle of ``obj`` names (storages stay out)."""

    def persistent_id(value: Any) -> str | None:
        return "storage" if classify(type(value)) is Kind.STORAGE else None

    buffer = io.BytesIO()
    try:
        create_pickler(buffer, 4, persistent_id, sys_importer).dump(obj)
    except Exception:  # unpicklable: its class's module is still a fair answer
        return []
    return [module for module, _ in scan_globals_fast(buffer.getvalue())]


def _patterns(chosen: list[str], other: list[str]) -> list[str]:
    """``top.**`` for a top-level package whose modules all go one way, else names."""
    mixed = {name.partition(".")[0] for name in other}
    patterns: dict[str, None] = {}
    for name in chosen:
        top = name.partition(".")[0]
        patterns[name if top in mixed else f"{top}.**"] = None
    return sorted(patterns)


def suggest_policy(target: str, roots: list[str]) -> Suggestion:
    module, colon, attr = target.partition(":")
    if not is_module_name(module) or (colon and not is_module_name(attr)):
        raise CommandError(
            f"{target!r} is not a module or module:attr name; pass e.g. mypkg.models or "
            "mypkg.models:Model"
        )
    if find_spec_without_running(module) is None:
        raise CommandError(
            f"no module named {module!r} is importable from here; run from the folder that "
            "holds it, or install it"
        )
    modules = _object_modules(target, module, attr) if attr else [module]
    policy = Policy()
    policy.add(Action.EXTERN, TOOLING_EXTERNS)
    policy.fallback = ProvenancePolicy(roots)
    resolver = Resolver(policy, sys_importer)
    for name in dict.fromkeys(modules):
        resolver.require(name)
    tooling = GlobGroup(TOOLING_EXTERNS)
    nodes = resolver.graph.nodes.values()
    interned = sorted(n.name for n in nodes if n.action is Action.INTERN and not n.is_pickle)
    extern = sorted(
        n.name
        for n in nodes
        if n.action is Action.EXTERN and not n.implicit and not tooling.matches(n.name)
    )
    implicit = sorted({n.name.partition(".")[0] for n in nodes if n.implicit})
    problems = []
    for p in resolver.problems():
        about = "; ".join(text for text in (p.context, p.detail) if text)
        problems.append(f"{p.subject}: {p.reason.value}" + (f" ({about})" if about else ""))
    return Suggestion(
        target,
        _patterns(interned, extern),
        _patterns(extern, interned),
        interned,
        extern,
        implicit,
        problems,
    )


def _python_list(patterns: list[str]) -> str:
    return "[" + ", ".join(f'"{pattern}"' for pattern in patterns) + "]"


def run_suggest(args: argparse.Namespace) -> int:
    with modules_of_this_folder():
        suggestion = suggest_policy(args.target, args.root or [])
    if args.json:
        emit_json(asdict(suggestion))
        return FINDINGS if suggestion.problems else OK
    print(f"# The export policy a roundtrip of {suggestion.target} uses:")
    print("# your rules first, then repository code interned and installed code externed.")
    if suggestion.intern:
        print(f"exporter.intern({_python_list(suggestion.intern)})")
    if suggestion.extern:
        print(f"exporter.extern({_python_list(suggestion.extern)})")
    if suggestion.implicit:
        print(f"# No rule needed (standard library, torch): {', '.join(suggestion.implicit)}")
    print("\n# pytest.ini ([tool.pytest.ini_options] in pyproject.toml takes lists):")
    print("[pytest]")
    for key, patterns in (
        ("torchpkg_intern", suggestion.intern),
        ("torchpkg_extern", suggestion.extern),
    ):
        if patterns:
            print(f"{key} =")
            for pattern in patterns:
                print(f"    {pattern}")
    for problem in suggestion.problems:
        print(f"torchpkg: the export would still fail: {problem}", file=sys.stderr)
    return FINDINGS if suggestion.problems else OK
