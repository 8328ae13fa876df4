"""What a pickle may reach when loaded safely: one judgement for the loader and the scan.

It is an allowlist. A global is allowed when it is defined inside the package,
is one of a curated set of tensor rebuilders, torch types and builtins, or
matches a pattern the user passed in ``allow``; everything else is refused.
The names known to be dangerous are listed only to say *why* something is
refused (``torchpkg scan`` flags them); leaving a name off that list never
lets it through.

Judging works on names alone and never imports anything, so the scan runs
without torch; the loader adds checks on the objects it resolves
(``security._guard``).
"""

from __future__ import annotations

import enum
import keyword
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from torchpkg.glob import GlobGroup
from torchpkg.pickling import python3_name
from torchpkg.security._names import (
    CURATED,
    CURATED_CLASS_MODULES,
    TENSOR_REBUILDERS,
    dangerous_reason,
)

__all__ = ["Allowlist", "Basis", "Binding", "Contents", "Risk", "Verdict", "judge"]


class Risk(enum.Enum):
    """How much trust loading a global takes."""

    SAFE = "safe"  # the package's own code, or a curated name
    REVIEW = "review"  # code outside the package: trust it before you allow it
    DANGEROUS = "dangerous"  # runs commands or code, reaches files, or escapes these checks


class Basis(enum.Enum):
    """Why a global was judged as it was; the values are what users read."""

    PACKAGE = "defined in the package"
    TENSOR = "tensor or storage rebuilder"
    CURATED = "curated builtin or torch type"
    ALLOWED = "listed in allow"
    EXTERN = "from an extern module, not listed in allow"
    MISSING = "neither in the package nor extern"
    DANGEROUS = "dangerous"
    INVALID = "not a valid global name"
    COMPUTED = "name built while unpickling"


@dataclass(frozen=True)
class Verdict:
    risk: Risk
    allowed: bool
    basis: Basis
    reason: str  # one sentence for users: why, and what to do when refused
    classes_only: bool = False  # the loader must find a class under this name


class Binding(enum.Enum):
    """How a packaged module's source binds a top-level name (static scan only)."""

    DEFINED = "defined"  # def or class
    ASSIGNED = "assigned"
    IMPORTED = "imported"
    UNBOUND = "unbound"


@dataclass(frozen=True)
class Contents:
    """What judging needs to know about the archive a pickle comes from.

    ``bound`` (static scans only) says how a packaged module binds a top-level
    name, and for an imported one, the global it stands for.
    """

    is_packaged: Callable[[str], bool]
    is_extern: Callable[[str], bool]
    bound: Callable[[str, str], tuple[Binding, tuple[str, str] | None]] | None = None


@dataclass(frozen=True)
class Allowlist:
    """Globals beyond the defaults that safe loading lets a pickle reach.

    Patterns match ``module.qualname`` with torchpkg's globs: ``numpy.core.multiarray._reconstruct``
    names one function, ``mylib.*`` everything at the top of ``mylib``, ``mylib.**``
    everything inside it. An empty allowlist keeps the defaults only.
    """

    patterns: tuple[str, ...] = ()
    _group: GlobGroup | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        problems = []
        for pattern in self.patterns:
            if not isinstance(pattern, str) or not pattern.strip(". "):
                problems.append(f"{pattern!r} is not a dotted name pattern")
                continue
            try:
                GlobGroup(pattern)
            except ValueError as error:
                problems.append(str(error))
        if problems:
            raise ValueError(
                "allow= takes patterns of module.qualname such as "
                "'numpy.core.multiarray._reconstruct' or 'mylib.**'; " + "; ".join(problems)
            )
        object.__setattr__(self, "_group", GlobGroup(self.patterns) if self.patterns else None)

    @classmethod
    def of(cls, allow: Allowlist | str | Iterable[str]) -> Allowlist:
        """An Allowlist from what a caller passed as ``allow`` (a str is one pattern)."""
        if isinstance(allow, Allowlist):
            return allow
        return cls((allow,) if isinstance(allow, str) else tuple(allow))

    def allows(self, full_name: str) -> bool:
        return self._group is not None and self._group.matches(full_name)


def _valid(dotted: str) -> bool:
    return bool(dotted) and all(
        part.isidentifier() and not keyword.iskeyword(part) for part in dotted.split(".")
    )


def judge(module: str, name: str, contents: Contents, allow: Allowlist) -> Verdict:
    """Whether safe loading lets a pickle reach ``module.name``, and why."""
    return _judge(module, name, contents, allow, 0)


# Re-exports followed through packaged modules before giving up (a cycle ends here too).
_MAX_HOPS = 8


def _judge(module: str, name: str, contents: Contents, allow: Allowlist, hops: int) -> Verdict:
    module, name = python3_name(module, name)
    full = f"{module}.{name}"
    if not (_valid(module) and _valid(name)):
        return Verdict(
            Risk.DANGEROUS,
            False,
            Basis.INVALID,
            f"{full!r} is not a dotted Python name: no pickler writes it",
        )
    # The package's own code runs when it is imported, whatever its names are.
    if contents.is_packaged(module):
        return _judge_packaged(module, name, contents, allow, hops)
    listed = allow.allows(full)
    danger = dangerous_reason(full)
    if danger is not None:
        how = "allowed because allow= lists it" if listed else "refused"
        return Verdict(Risk.DANGEROUS, listed, Basis.DANGEROUS, f"{danger}; {how}")
    if full in TENSOR_REBUILDERS:
        return Verdict(Risk.SAFE, True, Basis.TENSOR, Basis.TENSOR.value)
    if full in CURATED:
        return Verdict(Risk.SAFE, True, Basis.CURATED, Basis.CURATED.value)
    if "." not in name and CURATED_CLASS_MODULES.matches(module):
        return Verdict(
            Risk.SAFE, True, Basis.CURATED, "a torch module class (checked to be a class)", True
        )
    if listed:
        return Verdict(Risk.REVIEW, True, Basis.ALLOWED, Basis.ALLOWED.value)
    if contents.is_extern(module):
        return Verdict(
            Risk.REVIEW,
            False,
            Basis.EXTERN,
            f"from extern module {module}: add {full!r} (or a pattern) to allow= if you trust it",
        )
    return Verdict(
        Risk.REVIEW,
        False,
        Basis.MISSING,
        f"{module} is neither in the package nor one of its extern modules",
    )


def _judge_packaged(
    module: str, name: str, contents: Contents, allow: Allowlist, hops: int
) -> Verdict:
    """Package code is trusted (importing it runs it); reaching *through* it is not."""
    first, _, rest = name.partition(".")
    if contents.is_packaged(f"{module}.{first}"):
        return _module_object(f"{module}.{first} is a packaged module")
    if contents.bound is None or hops >= _MAX_HOPS:
        return Verdict(Risk.SAFE, True, Basis.PACKAGE, Basis.PACKAGE.value)
    binding, target = contents.bound(module, first)
    if binding is Binding.IMPORTED and target is not None:
        source_module, source_name = target
        qualname = ".".join(part for part in (source_name, rest) if part)
        where = f"imported into {module} from {source_module}"
        if not qualname:
            return _module_object(where)
        inner = _judge(source_module, qualname, contents, allow, hops + 1)
        return Verdict(
            inner.risk, inner.allowed, inner.basis, f"{where}: {inner.reason}", inner.classes_only
        )
    if binding is Binding.DEFINED:
        return Verdict(Risk.SAFE, True, Basis.PACKAGE, Basis.PACKAGE.value)
    how = "assigned" if binding is Binding.ASSIGNED else "not bound by a def, class or import"
    return Verdict(
        Risk.REVIEW,
        True,
        Basis.PACKAGE,
        f"{how} at the top of {module}'s source: the loader checks that it is defined in "
        "the package",
    )


def _module_object(what: str) -> Verdict:
    return Verdict(
        Risk.DANGEROUS,
        False,
        Basis.DANGEROUS,
        f"{what}: a module object, through which a pickle reaches everything it imports",
    )
