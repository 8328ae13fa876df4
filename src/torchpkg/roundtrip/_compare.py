"""Recursive comparison of a model's outputs (and state_dicts) with its clone's.

The clone's classes live under a mangle parent (``<torch_package_N>.pkg.Out``),
so containers are matched by their demangled type names, never by identity.
Other objects are equal when ``==`` says so, else when their state (what pickling
would save) is, attribute by attribute: the clone's copy of a class, or a class
whose ``__eq__`` is identity (torch.distributions' Transforms), never compares
equal otherwise. Functions and classes compare by their demangled names. Every
differing leaf is reported with its path (``output.transforms[0].loc``); a
tensor leaf says how many elements differ and by how much. torch is only
touched when a value is a tensor, and then it is already imported.
"""

from __future__ import annotations

import cmath
import dataclasses
import enum
import functools
import math
import sys
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torchpkg._main_module import as_main
from torchpkg.mangling import demangle
from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind

__all__ = [
    "Difference",
    "Tolerance",
    "compare_state_dicts",
    "compare_values",
    "output_diagnostics",
    "state_dict_of",
    "type_name",
]

_MAX_DEPTH = 64
_MAX_DIFFERENCES = 100
_MAX_LEAF_DIAGNOSTICS = 5


@dataclass(frozen=True)
class Tolerance:
    """Both ``None``: exact. Else ``|a - b| <= atol + rtol * |b|``, a missing one being 0."""

    rtol: float | None = None
    atol: float | None = None

    @property
    def exact(self) -> bool:
        return self.rtol is None and self.atol is None

    @property
    def pair(self) -> tuple[float, float]:
        return (self.rtol or 0.0, self.atol or 0.0)

    def describe(self) -> str:
        if self.exact:
            return "exact comparison"
        rtol, atol = self.pair
        return f"rtol={rtol:g}, atol={atol:g}"


@dataclass(frozen=True)
class Difference:
    """One leaf (or container shape) that differs between original and clone."""

    path: str
    message: str
    count: int | None = None  # differing elements, for tensors
    max_abs: float | None = None
    max_rel: float | None = None


def type_name(obj: Any) -> str:
    """``module.Qualname`` of ``obj``'s class, as the caller knows it (no mangle parent)."""
    cls = type(obj)
    return as_main(demangle(f"{cls.__module__}.{cls.__qualname__}"))


def compare_values(
    original: Any, clone: Any, tolerance: Tolerance, root: str = "output"
) -> list[Difference]:
    """Every difference between ``original`` and ``clone``, leaf by leaf."""
    comparer = _Comparer(tolerance)
    comparer.compare(original, clone, root, 0)
    return comparer.differences


def compare_state_dicts(
    original: Mapping[str, Any], clone: Mapping[str, Any], tolerance: Tolerance
) -> list[Difference]:
    """Keys first (missing, extra), then every tensor under the same key."""
    differences: list[Difference] = []
    missing = [key for key in original if key not in clone]
    extra = [key for key in clone if key not in original]
    if missing:
        differences.append(Difference("state_dict", f"keys missing in the clone: {missing}"))
    if extra:
        differences.append(Difference("state_dict", f"keys only the clone has: {extra}"))
    comparer = _Comparer(tolerance)
    for key in original:
        if key in clone:
            comparer.compare(original[key], clone[key], f"state_dict[{key!r}]", 0)
    return differences + comparer.differences


def _short(value: Any, limit: int = 80) -> str:
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the difference
        text = f"<{type_name(value)} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Compared by their demangled names (and a bound method's ``__self__``).
_NAMED = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType)
_OBJECT_GETSTATE = getattr(object, "__getstate__", None)  # Python 3.11+
_NO_STATE: Any = object()


def _qualified_name(obj: Any) -> str:
    if isinstance(obj, types.ModuleType):
        return demangle(obj.__name__)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", "?")
    module = getattr(obj, "__module__", None)
    return as_main(demangle(f"{module}.{name}")) if module else str(name)


def _is_true(result: Any) -> bool:
    if result is True:
        return True
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(result, numpy.bool_) and bool(result)


def _state(obj: Any) -> Any:
    """What pickling would save: ``__getstate__()`` where the class overrides it, else
    the instance dict and ``__slots__`` values; ``_NO_STATE`` when there is none."""
    getstate = getattr(type(obj), "__getstate__", None)
    if getstate is not None and getstate is not _OBJECT_GETSTATE:
        return obj.__getstate__()
    attributes = getattr(obj, "__dict__", None)
    slots = _slot_names(type(obj))
    if not slots:
        return attributes if isinstance(attributes, dict) else _NO_STATE
    state = dict(attributes) if isinstance(attributes, dict) else {}
    for name in slots:
        value = getattr(obj, name, _NO_STATE)
        if value is not _NO_STATE:  # else a slot never set
            state[name] = value
    return state


def _slot_names(cls: type) -> list[str]:
    names = []
    for klass in cls.__mro__:
        slots = vars(klass).get("__slots__", ())
        for slot in (slots,) if isinstance(slots, str) else slots:
            if slot in ("__dict__", "__weakref__"):
                continue
            private = slot.startswith("__") and not slot.endswith("__")  # name-mangled
            names.append(f"_{klass.__name__.lstrip('_')}{slot}" if private else slot)
    return names


def _attribute_path(path: str, name: Any) -> str:
    return (
        f"{path}.{name}" if isinstance(name, str) and name.isidentifier() else f"{path}[{name!r}]"
    )


def _is_namedtuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and isinstance(getattr(obj, "_fields", None), tuple)


def _is_mapping_like(obj: Any) -> bool:
    """dicts, and HF-style ``ModelOutput`` objects (``keys()`` + ``to_tuple()``)."""
    if isinstance(obj, Mapping):
        return True
    if isinstance(obj, type):  # a ModelOutput class, not an instance
        return False
    return callable(getattr(obj, "keys", None)) and callable(getattr(obj, "to_tuple", None))


class _Comparer:
    def __init__(self, tolerance: Tolerance) -> None:
        self.tolerance = tolerance
        self.differences: list[Difference] = []
        self._active: set[tuple[int, int]] = set()

    def add(self, difference: Difference) -> None:
        if len(self.differences) < _MAX_DIFFERENCES:
            self.differences.append(difference)

    def compare(self, a: Any, b: Any, path: str, depth: int) -> None:
        if len(self.differences) >= _MAX_DIFFERENCES or depth > _MAX_DEPTH:
            return
        torch = sys.modules.get("torch")
        if torch is not None and (isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor)):
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
                self.compare_tensors(torch, a, b, path)
            else:
                self.add(Difference(path, f"type differs: {type_name(a)} vs {type_name(b)}"))
            return
        if type_name(a) != type_name(b):
            self.add(Difference(path, f"type differs: {type_name(a)} vs {type_name(b)}"))
            return
        if (
            a is None
            or isinstance(a, (str, bytes, bytearray, range))
            or (torch is not None and isinstance(a, (torch.Size, torch.dtype, torch.device)))
        ):
            if a != b:
                self.add(Difference(path, f"{_short(a)} vs {_short(b)}"))
            return
        if isinstance(a, (bool, int, float, complex)):
            self.compare_numbers(a, b, path)
            return
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(a, numpy.ndarray):
            self.compare_arrays(numpy, a, b, path)
            return
        key = (id(a), id(b))
        if key in self._active:  # a reference cycle: already being compared further up
            return
        self._active.add(key)
        try:
            self.compare_structure(a, b, path, depth)
        finally:
            self._active.discard(key)

    def compare_structure(self, a: Any, b: Any, path: str, depth: int) -> None:
        if _is_mapping_like(a):
            keys_a, keys_b = list(a.keys()), list(b.keys())
            missing = [k for k in keys_a if k not in keys_b]
            extra = [k for k in keys_b if k not in keys_a]
            if missing or extra:
                self.add(
                    Difference(
                        path,
                        f"keys differ: only the original has {missing}, only the clone has {extra}",
                    )
                )
            for k in keys_a:
                if k in keys_b:
                    self.compare(a[k], b[k], f"{path}[{k!r}]", depth + 1)
            return
        if _is_namedtuple(a):
            for name, x, y in zip(a._fields, a, b, strict=False):
                self.compare(x, y, f"{path}.{name}", depth + 1)
            return
        if dataclasses.is_dataclass(a) and not isinstance(a, type):
            for field in dataclasses.fields(a):
                self.compare(
                    getattr(a, field.name, None),
                    getattr(b, field.name, None),
                    f"{path}.{field.name}",
                    depth + 1,
                )
            return
        if isinstance(a, (list, tuple)):
            if len(a) != len(b):
                self.add(Difference(path, f"length differs: {len(a)} vs {len(b)}"))
                return
            for index, (x, y) in enumerate(zip(a, b, strict=True)):
                self.compare(x, y, f"{path}[{index}]", depth + 1)
            return
        if isinstance(a, (set, frozenset)):
            if a != b:
                self.add(
                    Difference(
                        path,
                        f"only the original has {_short(a - b)}, "
                        f"only the clone has {_short(b - a)}",
                    )
                )
            return
        self.compare_object(a, b, path, depth)

    def compare_object(self, a: Any, b: Any, path: str, depth: int) -> None:
        """By value, never by identity: ``==`` when it says equal, else the state."""
        if isinstance(a, _NAMED):
            self.compare_named(a, b, path, depth)
            return
        if isinstance(a, functools.partial):
            for name in ("func", "args", "keywords"):
                self.compare(getattr(a, name), getattr(b, name), f"{path}.{name}", depth + 1)
            return
        if isinstance(a, weakref.ref):
            self.compare(a(), b(), f"{path}()", depth + 1)  # a dead reference is None
            return
        if isinstance(a, enum.Enum):
            if a.name != b.name:
                self.add(Difference(path, f"{_short(a)} vs {_short(b)}"))
            return
        try:
            equal: Any = a == b
        except Exception as error:  # tensors inside, say
            equal = error
        if _is_true(equal):
            return
        try:
            state_a, state_b = _state(a), _state(b)
        except Exception as error:
            self.add(Difference(path, f"cannot read the state of {type_name(a)}: {error}"))
            return
        if state_a is _NO_STATE or state_b is _NO_STATE:
            if isinstance(equal, Exception):
                message = f"cannot compare {type_name(a)} values: {equal}"
            else:
                message = f"{_short(a)} vs {_short(b)}"
            self.add(Difference(path, message))
        elif isinstance(state_a, dict) and isinstance(state_b, dict):
            self.compare_attributes(state_a, state_b, path, depth)
        else:
            self.compare(state_a, state_b, path, depth + 1)

    def compare_named(self, a: Any, b: Any, path: str, depth: int) -> None:
        name_a, name_b = _qualified_name(a), _qualified_name(b)
        if name_a != name_b:
            self.add(Difference(path, f"{name_a} vs {name_b}"))
            return
        owner = getattr(a, "__self__", None)
        # A builtin function's __self__ is its module; a method's is what it is bound to.
        if isinstance(a, (types.MethodType, types.BuiltinFunctionType)) and not isinstance(
            owner, types.ModuleType | None
        ):
            self.compare(owner, getattr(b, "__self__", None), f"{path}.__self__", depth + 1)

    def compare_attributes(
        self, a: dict[Any, Any], b: dict[Any, Any], path: str, depth: int
    ) -> None:
        missing = [name for name in a if name not in b]
        extra = [name for name in b if name not in a]
        if missing or extra:
            self.add(
                Difference(
                    path,
                    f"attributes differ: only the original has {missing}, "
                    f"only the clone has {extra}",
                )
            )
        for name, value in a.items():
            if name in b:
                self.compare(value, b[name], _attribute_path(path, name), depth + 1)

    def compare_numbers(self, a: complex, b: complex, path: str) -> None:
        if isinstance(a, bool) or isinstance(b, bool) or self.tolerance.exact:
            same = a == b or (_is_nan(a) and _is_nan(b))
        else:
            rtol, atol = self.tolerance.pair
            same = (_is_nan(a) and _is_nan(b)) or cmath.isclose(a, b, rel_tol=rtol, abs_tol=atol)
        if not same:
            abs_diff = abs(a - b) if not (_is_nan(a) or _is_nan(b)) else math.nan
            self.add(
                Difference(
                    path,
                    f"{a!r} vs {b!r} (abs diff {abs_diff:.6g}, {self.tolerance.describe()})",
                    count=1,
                    max_abs=float(abs_diff),
                )
            )

    def compare_arrays(self, numpy: Any, a: Any, b: Any, path: str) -> None:
        if a.dtype != b.dtype or a.shape != b.shape:
            self.add(
                Difference(
                    path,
                    f"array dtype/shape differs: {a.dtype}{list(a.shape)} vs "
                    f"{b.dtype}{list(b.shape)}",
                )
            )
            return
        torch = sys.modules.get("torch")
        if torch is not None and a.dtype.kind in "biufc":
            self.compare_tensors(torch, torch.from_numpy(a), torch.from_numpy(b), path)
            return
        if not numpy.array_equal(a, b):
            self.add(Difference(path, "array values differ"))

    def compare_tensors(self, torch: Any, a: Any, b: Any, path: str) -> None:
        a, b = a.detach(), b.detach()
        for what, x, y in (
            ("dtype", a.dtype, b.dtype),
            ("shape", tuple(a.shape), tuple(b.shape)),
            ("device", a.device, b.device),
            ("layout", a.layout, b.layout),
        ):
            if x != y:
                self.add(Difference(path, f"tensor {what} differs: {x} vs {y}"))
                return
        if a.layout != torch.strided:
            a, b = a.to_dense(), b.to_dense()
        if a.is_quantized:
            a, b = a.dequantize(), b.dequantize()
        if a.numel() == 0:
            return
        differ = self._differing(torch, a, b)
        count = int(differ.sum())
        if count == 0:
            return
        wide = torch.complex128 if a.is_complex() else torch.float64
        x, y = a.to(wide), b.to(wide)
        gap = (x - y).abs()
        rel = gap / y.abs()
        max_abs = _max_finite(torch, gap[differ])
        max_rel = _max_finite(torch, rel[differ])
        first = tuple(int(i) for i in differ.nonzero()[0].tolist())
        where = f"[{', '.join(map(str, first))}]" if first else "[]"
        self.add(
            Difference(
                path,
                f"{count} of {a.numel()} elements differ (max abs diff {max_abs:.6g}, "
                f"max rel diff {max_rel:.6g}, {self.tolerance.describe()}); first at "
                f"{where}: {a[first].item()!r} vs {b[first].item()!r}",
                count=count,
                max_abs=max_abs,
                max_rel=max_rel,
            )
        )

    def _differing(self, torch: Any, a: Any, b: Any) -> Any:
        if a.dtype == torch.bool:
            return a != b
        inexact = a.is_floating_point() or a.is_complex()
        if self.tolerance.exact:
            same = a == b
            if inexact:
                same = same | (torch.isnan(a) & torch.isnan(b))
            return ~same
        rtol, atol = self.tolerance.pair
        if not inexact:
            a, b = a.to(torch.float64), b.to(torch.float64)
        return ~torch.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)


def _is_nan(value: complex) -> bool:
    return isinstance(value, (float, complex)) and cmath.isnan(value)


def _max_finite(torch: Any, values: Any) -> float:
    """The largest finite value; inf when only infinities differ, nan when only NaNs do."""
    if values.numel() == 0:
        return math.nan
    finite = values[torch.isfinite(values)]
    if finite.numel():
        return float(finite.max())
    return math.inf if bool(torch.isinf(values).any()) else math.nan


# --- diagnostics from differences ------------------------------------------------------


def _leaf_diagnostics(kind: DiagnosticKind, differences: list[Difference]) -> list[Diagnostic]:
    if kind is DiagnosticKind.OUTPUT_MISMATCH:
        next_step = (
            "if the difference is numerical noise, allow it with rtol=/atol= (or torchpkg_rtol "
            "/ torchpkg_atol, @pytest.mark.torchpkg(rtol=..., atol=...)); otherwise the clone "
            "computes something else: see the other diagnostics (module globals, isinstance "
            "across namespaces), and look for randomness outside torch/random/numpy or state "
            "the model reads from outside itself."
        )
    else:
        next_step = (
            "the clone's parameters or buffers differ after the same call: look for buffer "
            "updates that depend on state outside the model (module globals, caches, "
            "randomness outside torch/random/numpy); for numerical noise pass rtol=/atol=."
        )
    diagnostics = [
        Diagnostic(kind, f"{difference.path}: {difference.message}", next_step, difference.path)
        for difference in differences[:_MAX_LEAF_DIAGNOSTICS]
    ]
    rest = differences[_MAX_LEAF_DIAGNOSTICS:]
    if rest:
        paths = ", ".join(difference.path for difference in rest[:10])
        more = ", ..." if len(rest) > 10 else ""
        diagnostics.append(
            Diagnostic(kind, f"{len(rest)} more differences: {paths}{more}", next_step)
        )
    return diagnostics


def state_dict_of(obj: Any) -> Mapping[str, Any] | None:
    """``obj.state_dict()`` when it has one that works."""
    method = getattr(obj, "state_dict", None)
    if not callable(method):
        return None
    try:
        state = method()
    except Exception:
        return None
    return state if isinstance(state, Mapping) else None


def output_diagnostics(
    expected: Any,
    actual: Any,
    *,
    state: Mapping[str, Any] | None,
    clone_state: Mapping[str, Any] | None,
    tolerance: Tolerance,
    compare: Callable[[Any, Any], Diagnostic | None] | None,
) -> list[Diagnostic]:
    """Output differences (or the custom ``compare``'s verdict), then state_dict differences."""
    if compare is not None:
        custom = compare(expected, actual)
        diagnostics = [custom] if custom is not None else []
    else:
        differences = compare_values(expected, actual, tolerance)
        diagnostics = _leaf_diagnostics(DiagnosticKind.OUTPUT_MISMATCH, differences)
    if state is not None and clone_state is not None:
        differences = compare_state_dicts(state, clone_state, tolerance)
        diagnostics += _leaf_diagnostics(DiagnosticKind.STATE_DICT_MISMATCH, differences)
    return diagnostics
