"""Safe loading of one pickle: every global is judged before anything runs, and again
when the unpickler resolves it.

Before the unpickler starts, the pickle is replayed with inert stand-ins (fast:
the C unpickler reads the opcodes) and every name it would look up is judged;
one refusal stops the load and the error lists every refused global with its
offset. While loading, ``find_class`` judges each name once more and checks
the object it finds: never a module, a class where only classes are allowed,
and an object that is what its own name says (``pkg.mod.system`` that is
really ``os.system`` is refused as ``os.system``).
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import IO, TYPE_CHECKING, Any

from torchpkg._pickle_scan import GlobalReference, replay_globals, scan_references
from torchpkg.errors import TorchpkgError
from torchpkg.mangling import demangle, get_mangle_prefix, is_mangled
from torchpkg.security._rules import Allowlist, Basis, Risk, Verdict, judge
from torchpkg.security._scan import Finding, PickleScan, archive_contents, scan_pickle

if TYPE_CHECKING:
    from torchpkg.importer import PackageImporter

__all__ = ["PickleGuard", "UnsafePickleError"]


class UnsafePickleError(TorchpkgError, pickle.UnpicklingError):
    """Safe loading refused a pickle: it references globals that are not allowed,
    or it is malformed, or it failed while loading (``problem`` says which).

    ``findings`` lists every refused global with the offset of the opcode that
    names it; ``offset`` and ``global_name`` are those of the first.
    """

    def __init__(
        self,
        record: str,
        archive: str,
        findings: Sequence[Finding],
        *,
        problem: str | None = None,
        before_load: bool = True,
    ) -> None:
        self.record = record
        self.archive = archive
        self.findings: tuple[Finding, ...] = tuple(findings)
        self.problem = problem
        first = self.findings[0] if self.findings else None
        self.offset: int | None = first.reference.offset if first is not None else None
        self.global_name: str | None = first.global_name if first is not None else None
        lines = [f"safe loading refused {record} in {archive}:"]
        if problem is not None:
            lines.append(f"  the pickle {problem}")
        lines += [f"  {finding.line()}" for finding in self.findings]
        scan = f"`torchpkg scan {archive}`" if archive != "<binary>" else "`torchpkg scan`"
        lines.append(
            ("Nothing in the pickle ran. " if before_load else "")
            + f"Look inside the package first with {scan}."
        )
        reviewable = [
            f.global_name
            for f in self.findings
            if f.verdict.risk is Risk.REVIEW and f.reference.spelled
        ]
        if reviewable:
            names = ", ".join(f'"{name}"' for name in dict.fromkeys(reviewable))
            lines.append(f"If you trust the extern names above, pass allow=[{names}].")
        if any(f.verdict.risk is Risk.DANGEROUS for f in self.findings) or (
            problem and before_load
        ):
            lines.append(
                "A pickle that needs the dangerous names above can run anything on this "
                "machine: do not allow them unless you made the package."
            )
        super().__init__("\n".join(lines))


class PickleGuard:
    """The checks of safe loading for one pickle record of one importer."""

    def __init__(
        self,
        record: str,
        data: bytes | bytearray | memoryview,
        importer: PackageImporter,
        allow: Allowlist,
    ) -> None:
        self.record = record
        self._data = data
        self._archive = importer.filename
        self._parent = importer.id()
        # The scan's own view of the archive: one judgement for both.
        self._contents = archive_contents(importer.zip_reader)
        self._allow = allow
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._scan: PickleScan | None = None

    def verdict(self, module: str, name: str) -> Verdict:
        key = (module, name)
        found = self._verdicts.get(key)
        if found is None:
            found = self._verdicts[key] = judge(module, name, self._contents, self._allow)
        return found

    def check_pickle(self) -> None:
        """Refuse the pickle, listing every refused global, before any of it runs."""
        try:  # the replay only takes what the opcode scan accepts (it bounds the memo)
            references = scan_references(self._data)
        except ValueError:
            names = None
        else:
            # The unpickler serves extension codes from a cache, past find_class: a
            # pickle with any is judged by the scan alone, reference by reference.
            extension = any(ref.extension_code is not None for ref in references)
            names = None if extension else replay_globals(self._data)
        if names is not None and all(self.verdict(*pair).allowed for pair in names):
            return
        scan = self._scanned()
        if scan.problem is not None or scan.refused:
            raise UnsafePickleError(self.record, self._archive, scan.refused, problem=scan.problem)

    @contextmanager
    def loading(self, stream: IO[bytes]) -> Iterator[None]:
        """Around the load: a pickle that passed the checks and still fails (malformed
        in a way the scan cannot see, or an allowed function that rejects its
        arguments) fails with an ``UnsafePickleError``, whatever the unpickler raised."""
        try:
            yield
        except TorchpkgError:
            raise
        except Exception as error:
            raise UnsafePickleError(
                self.record,
                self._archive,
                (),
                problem=f"failed to load after byte {stream.tell()}: "
                f"{type(error).__name__}: {error}",
                before_load=False,
            ) from error

    def check_name(self, module: str, name: str) -> Verdict:
        """``find_class``, before it imports anything."""
        verdict = self.verdict(module, name)
        if not verdict.allowed:
            self._refuse(module, name, verdict)
        return verdict

    def check_object(self, module: str, name: str, verdict: Verdict, obj: Any) -> None:
        """``find_class``, on what it found: is it what its name promised?"""
        problem = self._object_problem(module, name, verdict, obj)
        if problem is not None:
            self._refuse(module, name, Verdict(Risk.DANGEROUS, False, Basis.DANGEROUS, problem))

    def _object_problem(self, module: str, name: str, verdict: Verdict, obj: Any) -> str | None:
        if isinstance(obj, ModuleType):
            return f"it is the module {obj.__name__}: a pickle reaches everything through it"
        if verdict.classes_only and not isinstance(obj, type):
            return f"it is a {type(obj).__name__}, where only classes are allowed"
        canonical = _canonical(obj)
        if canonical is None:
            return None  # a plain value (a dtype, an enum member): nothing to call
        own_module, qualname = canonical
        if is_mangled(own_module):
            if get_mangle_prefix(own_module) == self._parent and self._contents.is_packaged(
                demangle(own_module)
            ):
                return None  # defined in this package
            return f"it is defined in another package ({own_module}.{qualname})"
        if (own_module, qualname) == (module, name):
            return None
        if own_module.partition(".")[0] == module.partition(".")[0] and not (
            self._contents.is_packaged(module)
        ):
            return None  # a library handing out its own object under another name
        own = self.verdict(own_module, qualname)
        if own.allowed:
            return None
        return f"it is {own_module}.{qualname}: {own.reason}"

    def _scanned(self) -> PickleScan:
        if self._scan is None:
            self._scan = scan_pickle(self._data, self._contents, self._allow, self.record)
        return self._scan

    def _refuse(self, module: str, name: str, verdict: Verdict) -> None:
        """Raise for one global, at the offset where the pickle names it."""
        where = next(
            (
                finding.reference
                for finding in self._scanned().findings
                if (finding.reference.module, finding.reference.name) == (module, name)
            ),
            GlobalReference(module, name, "find_class", None),
        )
        raise UnsafePickleError(
            self.record, self._archive, [Finding(where, verdict)], before_load=False
        )


def _canonical(obj: Any) -> tuple[str, str] | None:
    """The name an object gives itself: a class's or function's own, a callable
    instance's class's; None for values that cannot be called."""
    if isinstance(obj, type) or inspect.isroutine(obj):
        module = getattr(obj, "__module__", None)
        qualname = getattr(obj, "__qualname__", None)
    elif callable(obj):
        module, qualname = type(obj).__module__, type(obj).__qualname__
    else:
        return None
    if not isinstance(module, str) or not isinstance(qualname, str):
        return None
    return module, qualname
