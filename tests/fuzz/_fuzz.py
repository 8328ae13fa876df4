"""Fuzz targets for the archive reader, safe loading and the pickle scan, and their mutators.

Shared by the in-suite Hypothesis tests (tests/fuzz) and the long-running driver
(fuzz/run.py). A target takes one input's bytes and either returns or raises; what
it may raise is ``EXPECTED`` (torchpkg's typed errors), anything else is a finding.
Mutators take a ``random.Random``: the driver passes a seeded one, Hypothesis its
own (``st.randoms()``), so its failures shrink and replay.

Nothing here needs torch or Hypothesis; the seeds that hold tensors are made only
where torch imports.
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import glob
import io
import itertools
import os
import pickle
import pickletools
import random
import signal
import struct
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from _archives import write_records
from _hostile import CASES, EXTENSION_CODE, EXTERNS, UTIL, archive_bytes, hostile_pickle
from torchpkg import PackageImporter
from torchpkg._archive_reader import open_archive
from torchpkg._pickle_scan import replay_globals, scan_globals, scan_references
from torchpkg.errors import TorchpkgError
from torchpkg.security import scan_archive

__all__ = [
    "EXPECTED",
    "SENTINEL",
    "TARGETS",
    "Hang",
    "Outcome",
    "Target",
    "payload_marks",
    "run_input",
    "time_limit",
]

# What a target may raise: torchpkg's typed errors, each saying what was wrong.
EXPECTED: tuple[type[BaseException], ...] = (TorchpkgError,)


class Hang(BaseException):
    """A target ran past its time limit on one input. Not an ``Exception``: code under
    test that catches those (the replay, safe loading's wrapper) must not hide it."""


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``Hang`` in the main thread after ``seconds`` (a pure-Python loop included)."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no result after {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# Where a hostile payload would leave its mark: one per process. An input kept from
# another process names that one's, so every name with the prefix is checked.
_SENTINEL_PREFIX = os.path.join(tempfile.gettempdir(), "torchpkg-fuzz-sentinel-")
SENTINEL = f"{_SENTINEL_PREFIX}{os.getpid()}"


def payload_marks() -> set[str]:
    """Every sentinel a payload left, this process's or one a kept input names."""
    return set(glob.glob(glob.escape(_SENTINEL_PREFIX) + "*"))


# -- seeds: small valid packages ------------------------------------------------------------

SHAPES = b"""\
class Point:
    def __init__(self, x=0, y=0):
        self.x, self.y = x, y
"""


def _text(value: str) -> bytes:
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def point_pickle() -> bytes:
    """A protocol 4 pickle of a packaged ``Point`` in a dict, spelled opcode by opcode
    (pickle.dumps would look the class up in this process, where it does not exist)."""
    point = b"\x8c\x0apkg.shapes\x8c\x05Point\x93)\x81}(" + _text("x") + b"K\x01"
    point += _text("y") + b"K\x02ub"
    body = b"}(" + _text("point") + point + _text("items") + b"](K\x01K\x02e" + b"u."
    return b"\x80\x04" + body


PLAIN = {
    "ints": [0, 1, -1, 255, 65536, 1 << 40, -(1 << 70)],
    "text": ("a", "é", ""),
    "raw": b"\x00\xff",
    "nested": {"set": {1, 2}, "frozen": frozenset({3}), "float": 1.5, "none": None},
}


def plain_pickles() -> list[bytes]:
    """Builtin data in every protocol: each protocol spells it with other opcodes."""
    return [pickle.dumps(PLAIN, protocol) for protocol in range(6)]


# The hostile corpus's externs, and what the benign pickles need (tensors, protocol 2 bytes).
EXTERNS_HERE = (*EXTERNS, "_codecs", "torch")


def package(records: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    base = {
        "pkg/__init__.py": b"",
        "pkg/shapes.py": SHAPES,
        "pkg/util.py": UTIL.encode(),  # what the hostile pickles try to reach through
        ".data/extern_modules": "".join(f"{name}\n" for name in EXTERNS_HERE).encode(),
        ".data/version": b"6\n",
    }
    write_records(out, {**base, **records}, "seed")
    return out.getvalue()


@functools.cache
def torch_package() -> bytes | None:
    """A package written by PackageExporter with tensors; None without torch."""
    try:
        import torch
    except ImportError:
        return None
    from torchpkg import PackageExporter

    out = io.BytesIO()
    weights = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(2, dtype=torch.int8)}
    with PackageExporter(out) as exporter:
        exporter.save_source_string("pkg.shapes", SHAPES.decode())
        exporter.save_pickle("pkg", "data.pkl", {"weights": weights, "shape": [2, 3]})
    return out.getvalue()


@functools.cache
def benign_pickles() -> tuple[bytes, ...]:
    seeds = [point_pickle(), *plain_pickles()]
    with_tensors = torch_package()
    if with_tensors is not None:
        with zipfile.ZipFile(io.BytesIO(with_tensors)) as archive:
            seeds += [archive.read(n) for n in archive.namelist() if n.endswith("data.pkl")]
    return tuple(seeds)


@functools.cache
def hostile_pickles() -> tuple[bytes, ...]:
    """The hostile corpus's payloads: mutants of them must never get to run either."""
    return tuple(hostile_pickle(case, SENTINEL) for case in CASES)


@functools.cache
def benign_archives() -> tuple[bytes, ...]:
    seeds = [package({"pkg/data.pkl": point_pickle(), "pkg/plain.pkl": plain_pickles()[2]})]
    with_tensors = torch_package()
    if with_tensors is not None:
        seeds.append(with_tensors)
    return tuple(seeds)


@functools.cache
def hostile_archives() -> tuple[bytes, ...]:
    return tuple(archive_bytes(pickle) for pickle in hostile_pickles()[:6])


# -- byte-level mutations ---------------------------------------------------------------------

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 31, 1 << 63)


def _flip(rng: random.Random, data: bytearray) -> None:
    if data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _set_byte(rng: random.Random, data: bytearray) -> None:
    if data:
        data[rng.randrange(len(data))] = rng.choice((0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256)))


def _truncate(rng: random.Random, data: bytearray) -> None:
    del data[rng.randrange(len(data) + 1) :]


def _insert(rng: random.Random, data: bytearray) -> None:
    at = rng.randrange(len(data) + 1)
    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))


def _delete(rng: random.Random, data: bytearray) -> None:
    if data:
        at = rng.randrange(len(data))
        del data[at : at + rng.randrange(1, 65)]


def _duplicate(rng: random.Random, data: bytearray) -> None:
    if data:
        at = rng.randrange(len(data))
        chunk = data[at : at + rng.randrange(1, 257)]
        to = rng.randrange(len(data) + 1)
        data[to:to] = chunk


def _set_int(rng: random.Random, data: bytearray) -> None:
    """An interesting little-endian integer of 2, 4 or 8 bytes over any position."""
    width = rng.choice((2, 4, 8))
    if len(data) >= width:
        at = rng.randrange(len(data) - width + 1)
        data[at : at + width] = (rng.choice(_INTERESTING) % (1 << (8 * width))).to_bytes(
            width, "little"
        )


BYTE_MUTATIONS = (_flip, _set_byte, _truncate, _insert, _delete, _duplicate, _set_int)


# -- zip-aware mutations ----------------------------------------------------------------------

# Signature, and offsets of the 2- and 4-byte fields worth lying in (sizes, counts, offsets).
_HEADERS = {
    b"PK\x03\x04": ((4, 6, 8, 26, 28), (14, 18, 22)),  # local header
    b"PK\x01\x02": ((4, 6, 8, 10, 28, 30, 32, 34), (16, 20, 24, 38, 42)),  # central directory
    b"PK\x05\x06": ((4, 6, 8, 10, 20), (12, 16)),  # end of central directory
    b"PK\x06\x06": ((), (24, 28)),  # zip64 end of central directory (8-byte fields, low halves)
    b"PK\x06\x07": ((), (4, 8)),  # zip64 locator
}


def _header_field(rng: random.Random, data: bytearray) -> None:
    """Lie in a size, offset, count or length field of one zip header."""
    starts = [(i, sig) for sig in _HEADERS for i in _find_all(data, sig)]
    if not starts:
        return _set_int(rng, data)
    at, signature = rng.choice(starts)
    shorts, longs = _HEADERS[signature]
    width, offsets = rng.choice([(2, shorts), (4, longs)] if shorts else [(4, longs)])
    field = at + rng.choice(offsets)
    if field + width > len(data):
        return None
    old = int.from_bytes(data[field : field + width], "little")
    value = rng.choice((0, 1, old - 1, old + 1, old * 2, rng.choice(_INTERESTING)))
    data[field : field + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
    return None


def _find_all(data: bytearray, needle: bytes) -> list[int]:
    found, at = [], data.find(needle)
    while at != -1:
        found.append(at)
        at = data.find(needle, at + 1)
    return found


def _records(data: bytes) -> list[tuple[str, bytes]] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [(info.filename, archive.read(info)) for info in archive.infolist()]
    except Exception:  # a seed mutated past reading: fall back to byte mutation
        return None


_NAMES = (
    "seed/../evil.py", "/abs.py", "seed/pkg//x.py", "seed/./pkg/x.py", "seed/pkg\\..\\x",
    "seed/.data/version", "seed/.data/extern_modules", "seed/pkg/data.pkl", "seed/pkg/",
    "seed/.data/0.storage", "other/pkg/y.py", "seed/pkg/é.py", "C:/x.py", "seed/.data/",
)  # fmt: skip

_RECORD_CONTENT = (
    b"", b"\xff\xfe", b"6\n", b"999\n", b"-1\n", b"\x00" * 16, b"builtins\nos\n",
    b"{}", b"[1, 2]", b'{"python": 3}', b"\x80\x04N.", b"import os\n",
)  # fmt: skip


def _rebuild(rng: random.Random, data: bytearray) -> None:
    """Rename, duplicate, drop, replace or compress records and zip the archive anew."""
    records = _records(bytes(data))
    if not records:
        return _header_field(rng, data)
    index = rng.randrange(len(records))
    name, content = records[index]
    kind = rng.randrange(6)
    if kind == 0:
        renamed = (*_NAMES, name.upper(), name + "x", name.removeprefix("seed/"))
        records[index] = (rng.choice(renamed), content)
    elif kind == 1:
        records.insert(rng.randrange(len(records) + 1), (name, rng.choice((content, b"x"))))
    elif kind == 2:
        del records[index]
    elif kind == 3:
        records[index] = (name, rng.choice(_RECORD_CONTENT))
    elif kind == 4:
        records[index] = (name, mutate_pickle(rng, content))
    compression = zipfile.ZIP_DEFLATED if kind == 5 or rng.random() < 0.1 else zipfile.ZIP_STORED
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate names we write
        with zipfile.ZipFile(out, "w", compression) as archive:
            for record_name, record_data in records:
                archive.writestr(record_name, record_data)
    data[:] = out.getvalue()
    return None


def mutate_archive(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        if rng.random() < 0.15:
            _rebuild(rng, data)
        elif rng.random() < 0.4:
            _header_field(rng, data)
        else:
            rng.choice(BYTE_MUTATIONS)(rng, data)
    return bytes(data)


# -- opcode-level mutations of pickles -------------------------------------------------------


def _ops(data: bytes) -> list[bytes]:
    """The pickle cut into its opcodes (with their arguments); the unreadable tail last."""
    cuts: list[int] = []
    # Garbage after a point: keep what was read, the rest as one piece.
    with contextlib.suppress(Exception):
        for _, _, pos in pickletools.genops(data):
            cuts.append(pos or 0)
    bounds = [*cuts, len(data)] if cuts else [0, len(data)]
    if bounds[-1] != len(data):
        bounds.append(len(data))
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _arg(rng: random.Random, kind: str) -> bytes:
    """A random argument of a pickletools argument kind, sometimes malformed."""
    number = rng.choice((0, 1, 2, 3, 255, 256, 65535, -1, 1 << 31, rng.randrange(1 << 16)))
    text = rng.choice(("os", "system", "builtins", "pkg.shapes", "Point", "x", "", "é", "a b"))
    raw = text.encode()
    fixed = {"uint1": 1, "uint2": 2, "int4": 4, "uint4": 4, "uint8": 8, "float8": 8}
    if kind in fixed:
        width = fixed[kind]
        return (number % (1 << (8 * width))).to_bytes(width, "little")
    if kind in ("decimalnl_short", "decimalnl_long", "floatnl"):
        return str(number).encode() + rng.choice((b"\n", b"L\n", b".5\n", b""))
    if kind in ("stringnl", "stringnl_noescape", "unicodestringnl"):
        return (repr(text) if kind == "stringnl" else text).encode() + b"\n"
    if kind == "stringnl_noescape_pair":
        return raw + b"\n" + rng.choice((b"system", b"Point", b"")) + b"\n"
    length_width = {"1": 1, "4": 4, "8": 8}.get(kind[-1])
    if length_width is not None:  # a length, then that many bytes (or a lie about them)
        length = rng.choice((len(raw), len(raw), len(raw) + 1, number % 256))
        return (length % (1 << (8 * length_width))).to_bytes(length_width, "little") + raw
    return b""


def _new_op(rng: random.Random) -> bytes:
    op = rng.choice(pickletools.opcodes)
    code = op.code.encode("latin-1")
    return code if op.arg is None else code + _arg(rng, op.arg.name)


def mutate_pickle(rng: random.Random, seed: bytes, donors: Sequence[bytes] = ()) -> bytes:
    """Delete, duplicate, swap, replace or insert whole opcodes; splice in other pickles'
    opcodes; now and then a plain byte mutation on top."""
    ops = _ops(seed)
    for _ in range(rng.choice((1, 1, 2, 3, 4))):
        if not ops:
            ops.append(_new_op(rng))
        at = rng.randrange(len(ops))
        kind = rng.randrange(7)
        if kind == 0:
            del ops[at]
        elif kind == 1:
            ops.insert(rng.randrange(len(ops) + 1), ops[at])
        elif kind == 2:
            other = rng.randrange(len(ops))
            ops[at], ops[other] = ops[other], ops[at]
        elif kind == 3:
            ops[at] = _new_op(rng)
        elif kind == 4:
            ops.insert(at, _new_op(rng))
        elif kind == 5 and donors:
            donor = _ops(rng.choice(donors))
            start = rng.randrange(len(donor)) if donor else 0
            ops[at:at] = donor[start : start + rng.randrange(1, 6)]
        else:
            piece = bytearray(ops[at])
            rng.choice(BYTE_MUTATIONS)(rng, piece)
            ops[at] = bytes(piece)
    return b"".join(ops)


# -- targets ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _archive_file(data: bytes) -> Iterator[str]:
    """The input as a real file: the mmap path of the reader is only taken for one."""
    fd, path = tempfile.mkstemp(prefix="torchpkg-fuzz-", suffix=".pt")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        yield path
    finally:
        os.unlink(path)


def read_archive(data: bytes) -> None:
    """Open the archive as a loader does, list it, and read every record every way."""
    for source in (io.BytesIO(data), None):
        with contextlib.ExitStack() as stack:
            if source is None:
                path = stack.enter_context(_archive_file(data))
                reader = stack.enter_context(open_archive(path))
            else:
                reader = stack.enter_context(open_archive(source, mmap=False))
            views = reader.views()
            for record in reader.records():
                reader.record_size(record)
                reader.record_offset(record)
                reader.read(record)
                bytes(views.view(record))


def load_archive(data: bytes) -> None:
    """What a user does with a package they did not write: look, scan, load safely."""
    with PackageImporter(io.BytesIO(data), allow=[]) as importer:
        str(importer.file_structure())
        importer.python_version()
        importer.environment()
        scanned = scan_archive(importer.zip_reader)
        for scan in scanned.pickles:
            package, _, resource = scan.record.rpartition("/")
            importer.load_pickle(package.replace("/", "."), resource)


# What the inspect-only commands may answer: success, a finding (scan, verify), an error.
_EXIT_CODES = (0, 1, 2)


class UnexpectedExit(Exception):
    """The CLI ended with another exit code than its documented ones."""


def inspect_cli(data: bytes) -> None:
    """``torchpkg tree/info/deps/scan/verify``, as text and JSON: an exit code, no traceback."""
    from torchpkg.cli import main

    with _archive_file(data) as path:
        for command in ("tree", "info", "deps", "scan", "verify"):
            for json in ((), ("--json",)):
                out = io.StringIO()
                with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                    code = main([command, path, *json])
                if code not in _EXIT_CODES:
                    raise UnexpectedExit(f"torchpkg {command} {' '.join(json)}: exit {code}")


def load_pickle(data: bytes) -> None:
    """Safe loading of one pickle, in the seed package (with tensor records when torch is here)."""
    with PackageImporter(io.BytesIO(_pickle_package(data)), allow=[]) as importer:
        scan_archive(importer.zip_reader)
        importer.load_pickle("pkg", "data.pkl")


def scan_pickle(data: bytes) -> None:
    """The scanner's own contract: a list of references, or ``ValueError`` for a malformed
    pickle; the replay (of what the scan accepts) returns None rather than raise."""
    try:
        scan_references(data)
    except ValueError:
        return
    with contextlib.suppress(ValueError):  # a name built at load time
        scan_globals(data)
    replay_globals(data)


@functools.cache
def _storages() -> dict[str, bytes]:
    """The storage records of the seed with tensors (none without torch)."""
    with_tensors = torch_package()
    if with_tensors is None:
        return {}
    with zipfile.ZipFile(io.BytesIO(with_tensors)) as archive:
        return {
            name.partition("/")[2]: archive.read(name)
            for name in archive.namelist()
            if name.endswith(".storage")
        }


def _pickle_package(data: bytes) -> bytes:
    return package({"pkg/data.pkl": data, **_storages()})


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    benign: Callable[[], tuple[bytes, ...]]  # seeds that load
    hostile: Callable[[], tuple[bytes, ...]]  # seeds that safe loading refuses
    mutate: Callable[[random.Random, bytes, Sequence[bytes]], bytes]

    def seeds(self) -> tuple[bytes, ...]:
        return self.benign() + self.hostile()


def _mutate_archive(rng: random.Random, seed: bytes, donors: Sequence[bytes]) -> bytes:
    return mutate_archive(rng, seed)


TARGETS = {
    target.name: target
    for target in (
        Target("read_archive", read_archive, benign_archives, hostile_archives, _mutate_archive),
        Target("load_archive", load_archive, benign_archives, hostile_archives, _mutate_archive),
        Target("inspect_cli", inspect_cli, benign_archives, hostile_archives, _mutate_archive),
        Target("load_pickle", load_pickle, benign_pickles, hostile_pickles, mutate_pickle),
        Target("scan_pickle", scan_pickle, benign_pickles, hostile_pickles, mutate_pickle),
    )
}


@dataclass(frozen=True)
class Outcome:
    """What one input did: ``error`` is None when it was fine. ``printed`` holds errors
    the interpreter printed instead of raising (a dealloc that found its object in use)."""

    error: BaseException | None
    ran_payload: bool = False
    printed: tuple[str, ...] = ()

    @property
    def finding(self) -> bool:
        untyped = self.error is not None and not isinstance(self.error, EXPECTED)
        return self.ran_payload or bool(self.printed) or untyped


def run_input(target: Target, data: bytes, seconds: float | None = 10.0) -> Outcome:
    """Run ``target`` on ``data``, for at most ``seconds`` (None: no limit of its own, for
    atheris, whose libFuzzer owns SIGALRM); payloads that ran leave the sentinel."""
    Path(SENTINEL).unlink(missing_ok=True)
    copyreg_code = _register_extension()
    error: BaseException | None = None
    limit = time_limit(seconds) if seconds is not None else contextlib.nullcontext()
    printed: list[str] = []
    excepthook = sys.excepthook
    sys.excepthook = lambda kind, value, tb: printed.append(f"{kind.__name__}: {value}")
    try:
        with warnings.catch_warnings(), limit:
            warnings.simplefilter("ignore")  # environment mismatch warnings are fine
            target.run(data)
    except (Exception, Hang) as exc:
        error = exc
    finally:
        sys.excepthook = excepthook
        _unregister_extension(copyreg_code)
    ran = os.path.exists(SENTINEL)
    Path(SENTINEL).unlink(missing_ok=True)
    return Outcome(error, ran, tuple(printed))


def _register_extension() -> bool:
    """The EXT1 hostile case's code, registered as a process that loads it might have it;
    False where it already was (by whoever will remove it)."""
    if copyreg._extension_registry.get(("os", "system")) == EXTENSION_CODE:  # type: ignore[attr-defined]
        return False
    try:
        copyreg.add_extension("os", "system", EXTENSION_CODE)
    except ValueError:  # the code or the name is taken: run without it
        return False
    return True


def _unregister_extension(registered: bool) -> None:
    if registered:
        copyreg.remove_extension("os", "system", EXTENSION_CODE)
