"""Find the globals a pickle references, without unpickling it.

The exporter needs the modules a pickled object will import at load time, and
the security scan needs every place a pickle names a global, with its offset.
``GLOBAL`` and ``INST`` name theirs in their argument; ``STACK_GLOBAL``
(protocol 4+) takes module and name from the stack, where they arrive as string
opcodes or, when repeated, as memo reads. So the scan keeps a shadow of the
unpickler's stack and memo that holds only what it needs: the value of each
string, and ``None`` for every other object. ``EXT1/2/4`` name a global by a
number that ``copyreg``'s extension registry of the loading process maps to it.
"""

from __future__ import annotations

import copyreg
import io
import pickle
import pickletools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeAlias

__all__ = [
    "GlobalReference",
    "replay_globals",
    "scan_globals",
    "scan_globals_fast",
    "scan_references",
]

# Opcodes that push a str (the unpickler decodes the protocol 0-2 byte strings too).
_STRING_OPS = frozenset(
    {
        "SHORT_BINUNICODE",
        "BINUNICODE",
        "BINUNICODE8",
        "UNICODE",
        "SHORT_BINSTRING",
        "BINSTRING",
        "STRING",
    }
)
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_EXT_OPS = frozenset({"EXT1", "EXT2", "EXT4"})

_Value: TypeAlias = str | None

# Stack effect of each opcode, precomputed from pickletools' documentation of it:
# (pops back to the last MARK first, then pops this many, then pushes this many).
_EFFECTS = {
    op.name: (
        pickletools.markobject in op.stack_before,
        op.stack_before.index(pickletools.markobject)
        if pickletools.markobject in op.stack_before
        else len(op.stack_before),
        len(op.stack_after),
    )
    for op in pickletools.opcodes
}


@dataclass(frozen=True)
class GlobalReference:
    """One place where a pickle names a global.

    ``module`` and ``name`` are ``None`` when the pickle does not spell them:
    a ``STACK_GLOBAL`` whose operands are built while unpickling (no pickler
    writes one), or an extension code this process's registry does not know.
    """

    module: str | None
    name: str | None
    opcode: str  # GLOBAL, INST, STACK_GLOBAL, EXT1, EXT2 or EXT4
    offset: int | None  # of the opcode; None when only a replay of the pickle saw it
    extension_code: int | None = None

    @property
    def spelled(self) -> bool:
        """Whether the pickle itself says which global this is."""
        return self.module is not None and self.name is not None


def scan_globals_fast(data: bytes | bytearray | memoryview) -> list[tuple[str, str]]:
    """``scan_globals`` at the speed of the C unpickler, for the pickles we write.

    The pickle is replayed with every global and persistent id standing for an
    inert object that accepts whatever the opcodes do to it, so nothing of the
    pickle runs; ``find_class`` records the names. Anything unusual (out-of-band
    buffers, an opcode the stand-in cannot take) falls back to the opcode scan.
    """
    found = replay_globals(data)
    if found is None:  # the replay failed: scan the opcodes instead
        return scan_globals(data)
    return list(dict.fromkeys(found))


def replay_globals(data: bytes | bytearray | memoryview) -> list[tuple[str, str]] | None:
    """The ``(module, name)`` pairs the unpickler would look up, in order; None if
    the replay fails (a pickle that does something the stand-ins cannot take).

    Exactly what ``find_class`` will be asked, computed names included, since the
    real unpickler reads the opcodes; nothing of the pickle runs. Only for pickles
    ``scan_references`` accepts (it refuses the memo keys for which the C unpickler
    would allocate gigabytes) and, if untrusted, that have no extension codes.
    """
    recorder = _Recorder(io.BytesIO(data))
    # The unpickler takes an extension code it has seen from copyreg's cache, without
    # find_class: the real function an earlier unpickling cached would be called, and
    # the stand-in must not stay cached for later ones. Another thread may still fill
    # the cache meanwhile, hence: no untrusted pickles with extension codes.
    cache: dict[int, Any] = copyreg._extension_cache  # type: ignore[attr-defined]
    cached = dict(cache)
    cache.clear()
    try:
        recorder.load()
    except Exception:  # any failure means: no answer from the replay
        return None
    finally:
        cache.clear()
        cache.update(cached)
    return recorder.found


class _Inert:
    """Whatever a global or persistent id stands for during a replay."""

    def __new__(cls, *args: object, **kwargs: object) -> _Inert:
        return object.__new__(cls)

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Inert:
        return _Inert()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, item: object) -> None:
        pass

    def extend(self, items: object) -> None:
        pass


class _Recorder(pickle.Unpickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.found: list[tuple[str, str]] = []

    def find_class(self, module_name: str, name: str) -> type[_Inert]:
        self.found.append((module_name, name))
        return _Inert

    def persistent_load(self, pid: object) -> _Inert:
        return _Inert()


def scan_globals(data: bytes | bytearray | memoryview) -> list[tuple[str, str]]:
    """Return ``(module, qualname)`` for each global ``data`` references.

    First-seen order, without duplicates. Raises ``ValueError`` for a malformed
    pickle, and for a ``STACK_GLOBAL`` whose operands are computed at load time
    (no pickler writes one; it cannot be resolved without running the pickle).
    Extension codes are left out: no pickler of packages writes them.
    """
    found: dict[tuple[str, str], None] = {}
    for ref in scan_references(data):
        if ref.opcode in _EXT_OPS:
            continue
        if ref.module is None or ref.name is None:
            raise ValueError(
                f"unscannable pickle: STACK_GLOBAL at byte {ref.offset} takes its module or "
                "name from a value built at load time, not from a string in the pickle"
            )
        found[ref.module, ref.name] = None
    return list(found)


def scan_references(data: bytes | bytearray | memoryview) -> list[GlobalReference]:
    """Every place ``data`` names a global, in order, repeats included.

    Raises ``ValueError`` for a malformed pickle; a global whose name is built
    at load time is returned with ``module`` and ``name`` set to ``None``.
    """
    shadow = _ShadowStack(len(data))
    references = []
    for opcode, arg, pos in _genops(data):
        ref = shadow.step(opcode.name, arg, pos)
        if ref is not None:
            references.append(ref)
    return references


class _ShadowStack:
    """The unpickler's stack, metastack and memo, holding strings and ``None`` for the rest.

    ``None`` stands for any value that is not a string constant of the pickle (a
    REDUCE could build a str, but its value is unknown until load time).
    """

    def __init__(self, size: int) -> None:
        # Picklers number memo entries from 0, one per PUT; the C unpickler sizes its memo
        # by the largest key, so a far larger key is gigabytes of memory, not a pickle.
        self.max_memo_key = size
        # Where the current FRAME ends: picklers end frames between opcodes. One that
        # ends inside an opcode makes the C unpickler of Python 3.10 and 3.11 raise
        # MemoryError and leave a freed buffer exported.
        self.frame_end: int | None = None
        # Like the unpickler: MARK saves the current stack on `metastack` and starts a new one.
        self.stack: list[_Value] = []
        self.metastack: list[list[_Value]] = []
        self.memo: dict[int, _Value] = {}

    def step(self, name: str, arg: Any, pos: int | None) -> GlobalReference | None:
        """Apply opcode ``name``; return the global it references, if any."""
        if self.frame_end is not None and pos is not None and pos >= self.frame_end:
            if pos > self.frame_end:
                raise ValueError(
                    f"malformed pickle: the opcode before byte {pos} runs past the end of "
                    f"its frame at byte {self.frame_end}"
                )
            self.frame_end = None
        if name == "FRAME" and pos is not None:
            self.frame_end = pos + 9 + arg  # the opcode, its 8-byte length, the frame
        elif name in _STRING_OPS:
            self.stack.append(arg)
        elif name in ("GLOBAL", "INST"):
            module, _, qualname = str(arg).partition(" ")
            if name == "INST":
                self._pop_mark(name, pos)
            self.stack.append(None)
            return GlobalReference(module, qualname, name, pos)
        elif name == "STACK_GLOBAL":
            pushed_module, pushed_qualname = self._pop(2, name, pos)
            self.stack.append(None)
            if pushed_module is None or pushed_qualname is None:
                return GlobalReference(None, None, name, pos)
            return GlobalReference(pushed_module, pushed_qualname, name, pos)
        elif name in _EXT_OPS:
            self.stack.append(None)
            # What the unpickler of this process would look the code up as.
            known: tuple[str, str] | None = copyreg._inverted_registry.get(arg)  # type: ignore[attr-defined]
            if known is None:
                return GlobalReference(None, None, name, pos, extension_code=arg)
            return GlobalReference(known[0], known[1], name, pos, extension_code=arg)
        elif name == "MEMOIZE" or name in _PUT_OPS:
            if not self.stack:
                raise ValueError(f"malformed pickle: {name} at byte {pos} with an empty stack")
            key = len(self.memo) if name == "MEMOIZE" else arg
            if key > self.max_memo_key:
                raise ValueError(
                    f"malformed pickle: {name} at byte {pos} writes memo key {key}, more than "
                    "the pickle has bytes: no pickler numbers its memo that way"
                )
            self.memo[key] = self.stack[-1]
        elif name in _GET_OPS:
            if arg not in self.memo:
                raise ValueError(
                    f"malformed pickle: {name} at byte {pos} reads memo key {arg}, never written"
                )
            self.stack.append(self.memo[arg])
        elif name == "DUP":
            self.stack.extend(self._pop(1, name, pos) * 2)
        elif name == "MARK":
            self.metastack.append(self.stack)
            self.stack = []
        elif name == "POP" and not self.stack:
            self._pop_mark(name, pos)  # POP on an empty stack discards the MARK, as unpickling does
        else:  # every other opcode pushes values that are not string constants
            pops_mark, pops, pushes = _EFFECTS[name]
            if pops_mark:
                self._pop_mark(name, pos)
            if pops:
                self._pop(pops, name, pos)
            if pushes:
                self.stack.extend([None] * pushes)
        return None

    def _pop(self, count: int, opname: str, pos: int | None) -> list[_Value]:
        stack = self.stack
        if count > len(stack):
            raise ValueError(
                f"malformed pickle: {opname} at byte {pos} needs {count} item(s) on the stack, "
                f"found {len(stack)}"
            )
        popped = stack[len(stack) - count :]
        del stack[len(stack) - count :]
        return popped

    def _pop_mark(self, opname: str, pos: int | None) -> None:
        if not self.metastack:
            raise ValueError(f"malformed pickle: {opname} at byte {pos} finds no MARK to pop to")
        self.stack = self.metastack.pop()


def _genops(
    data: bytes | bytearray | memoryview,
) -> Iterator[tuple[pickletools.OpcodeInfo, Any, int | None]]:
    """``pickletools.genops``, with any error it raises on bad input as a ``ValueError``."""
    ops = pickletools.genops(io.BytesIO(data))
    while True:
        try:
            op = next(ops)
        except StopIteration:
            return
        except Exception as exc:  # genops raises several types on garbage input
            raise ValueError(f"malformed pickle: {exc}") from exc
        yield op
