"""Unit tests of torchpkg._pickle_scan: the globals a pickle references."""

from __future__ import annotations

import collections
import datetime
import decimal
import io
import pickle
import pickletools
import struct
from dataclasses import dataclass
from typing import Any

import pytest

from torchpkg._pickle_scan import scan_globals, scan_globals_fast

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)
THIS = __name__


@dataclass
class Point:
    x: int
    y: int


class Zebra:
    pass


class Aardvark:
    pass


class Outer:
    class Inner:
        pass


def helper() -> None:
    pass


class RecordingUnpickler(pickle.Unpickler):
    """The oracle: the globals the real unpickler looks up while loading."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.looked_up: dict[tuple[str, str], None] = {}

    def find_class(self, module: str, name: str) -> Any:
        self.looked_up[module, name] = None
        return super().find_class(module, name)


def globals_loaded(data: bytes) -> list[tuple[str, str]]:
    unpickler = RecordingUnpickler(data)
    unpickler.load()
    return list(unpickler.looked_up)


def opnames(data: bytes) -> list[str]:
    return [opcode.name for opcode, _, _ in pickletools.genops(data)]


def short_binunicode(text: str) -> bytes:
    encoded = text.encode()
    return b"\x8c" + bytes([len(encoded)]) + encoded


PROTO_4 = b"\x80\x04"
STACK_GLOBAL = b"\x93"
POP = b"0"
STOP = b"."


# -- real pickles --------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickled_class_is_found_at_every_protocol(protocol: int) -> None:
    assert scan_globals(pickle.dumps(Point, protocol=protocol)) == [(THIS, "Point")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickled_function_is_found_at_every_protocol(protocol: int) -> None:
    assert scan_globals(pickle.dumps(helper, protocol=protocol)) == [(THIS, "helper")]


@pytest.mark.parametrize("protocol", [4, 5])
def test_nested_class_is_found_by_its_dotted_qualname_from_protocol_4(protocol: int) -> None:
    data = pickle.dumps(Outer.Inner(), protocol=protocol)

    assert scan_globals(data) == [(THIS, "Outer.Inner")]


@pytest.mark.parametrize("protocol", [0, 1, 2, 3])
def test_nested_class_before_protocol_4_is_reached_through_getattr_on_its_parent(
    protocol: int,
) -> None:
    found = scan_globals(pickle.dumps(Outer.Inner, protocol=protocol))

    assert (THIS, "Outer") in found
    assert found[0][1] == "getattr"
    assert all(name != "Outer.Inner" for _, name in found)


OBJECTS = {
    "instance": Point(1, 2),
    "nested-class-instance": Outer.Inner(),
    "stdlib-objects": [
        collections.OrderedDict(a=1),
        collections.defaultdict(list, b=[2]),
        decimal.Decimal("1.5"),
        datetime.date(2024, 1, 2),
        {3, 4},
        frozenset({5}),
        bytearray(b"xy"),
        complex(1, 2),
    ],
    "strings-around-classes": {"module": ("name", Zebra), "other": [helper, "str", Aardvark]},
    "shared-instances": [Point(1, 2), Point(3, 4), Outer.Inner(), Outer.Inner(), Point],
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("obj", OBJECTS.values(), ids=OBJECTS.keys())
def test_scan_matches_the_globals_the_unpickler_looks_up(obj: object, protocol: int) -> None:
    data = pickle.dumps(obj, protocol=protocol)

    expected = globals_loaded(data)
    assert expected  # the oracle saw globals: the comparison below is not empty
    assert scan_globals(data) == expected


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_class_referenced_twice_through_the_memo_is_reported_once(protocol: int) -> None:
    found = scan_globals(pickle.dumps([Point(1, 2), Point, Point(3, 4)], protocol=protocol))

    assert found.count((THIS, "Point")) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_global_written_twice_without_memo_is_reported_once(protocol: int) -> None:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=protocol)
    pickler.fast = True  # no memo: the pickler writes the global out again
    pickler.dump([Zebra, Zebra])
    data = buffer.getvalue()
    assert sum(name in ("GLOBAL", "STACK_GLOBAL") for name in opnames(data)) == 2

    assert scan_globals(data) == [(THIS, "Zebra")]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_globals_come_in_first_seen_order(protocol: int) -> None:
    data = pickle.dumps([Zebra, Aardvark, Zebra, helper], protocol=protocol)

    assert scan_globals(data) == [(THIS, "Zebra"), (THIS, "Aardvark"), (THIS, "helper")]


@pytest.mark.parametrize("protocol", [4, 5])
def test_module_name_read_back_from_the_memo_is_used_for_the_second_class(protocol: int) -> None:
    data = pickle.dumps([Zebra, Aardvark], protocol=protocol)
    ops = opnames(data)
    second_global = len(ops) - 1 - ops[::-1].index("STACK_GLOBAL")
    assert "BINGET" in ops[ops.index("STACK_GLOBAL") : second_global]

    assert scan_globals(data) == [(THIS, "Zebra"), (THIS, "Aardvark")]


def test_scan_accepts_bytearray_and_memoryview() -> None:
    data = pickle.dumps(Point, protocol=4)

    assert scan_globals(bytearray(data)) == [(THIS, "Point")]
    assert scan_globals(memoryview(data)) == [(THIS, "Point")]


def test_pickle_of_torch_module_references_its_class_and_tensor_rebuilders() -> None:
    torch = pytest.importorskip("torch")

    found = scan_globals(pickle.dumps(torch.nn.Linear(2, 3)))

    assert ("torch.nn.modules.linear", "Linear") in found
    assert ("torch._utils", "_rebuild_tensor_v2") in found


# -- hand-built pickles: each is checked to load with the real unpickler first -------

MEMO_FLAVOURS = {
    # name: (store the top of the stack under key i, push the value stored under key i)
    "MEMOIZE/BINGET": (lambda i: b"\x94", lambda i: b"h" + bytes([i])),
    "BINPUT/BINGET": (lambda i: b"q" + bytes([i]), lambda i: b"h" + bytes([i])),
    "LONG_BINPUT/LONG_BINGET": (
        lambda i: b"r" + struct.pack("<I", i),
        lambda i: b"j" + struct.pack("<I", i),
    ),
    "PUT/GET": (lambda i: b"p%d\n" % i, lambda i: b"g%d\n" % i),
}


@pytest.mark.parametrize(("put", "get"), MEMO_FLAVOURS.values(), ids=MEMO_FLAVOURS.keys())
def test_stack_global_reads_module_and_name_back_from_the_memo(put: Any, get: Any) -> None:
    data = (
        PROTO_4
        + short_binunicode("collections")
        + put(0)
        + POP
        + short_binunicode("OrderedDict")
        + put(1)
        + POP
        + get(0)
        + get(1)
        + STACK_GLOBAL
        + STOP
    )
    assert pickle.loads(data) is collections.OrderedDict

    assert scan_globals(data) == [("collections", "OrderedDict")]


STRING_ENCODINGS = {
    "SHORT_BINUNICODE": short_binunicode,
    "BINUNICODE": lambda s: b"X" + struct.pack("<I", len(s)) + s.encode(),
    "BINUNICODE8": lambda s: b"\x8d" + struct.pack("<Q", len(s)) + s.encode(),
    "UNICODE": lambda s: b"V" + s.encode() + b"\n",
    "SHORT_BINSTRING": lambda s: b"U" + bytes([len(s)]) + s.encode(),
    "BINSTRING": lambda s: b"T" + struct.pack("<i", len(s)) + s.encode(),
    "STRING": lambda s: b"S'" + s.encode() + b"'\n",
}


@pytest.mark.parametrize("encode", STRING_ENCODINGS.values(), ids=STRING_ENCODINGS.keys())
def test_stack_global_takes_its_strings_from_any_string_opcode(encode: Any) -> None:
    data = PROTO_4 + encode("collections") + encode("deque") + STACK_GLOBAL + STOP
    assert pickle.loads(data) is collections.deque

    assert scan_globals(data) == [("collections", "deque")]


def test_stack_global_pairs_the_two_strings_pushed_last() -> None:
    # MARK, then strings that end up inside a tuple, then the pair STACK_GLOBAL uses.
    data = (
        PROTO_4
        + b"("
        + short_binunicode("decoy")
        + short_binunicode("strings")
        + b"t"
        + short_binunicode("collections")
        + short_binunicode("Counter")
        + STACK_GLOBAL
        + b"\x86"  # TUPLE2: (("decoy", "strings"), Counter)
        + STOP
    )
    assert pickle.loads(data) == (("decoy", "strings"), collections.Counter)

    assert scan_globals(data) == [("collections", "Counter")]


def test_inst_opcode_names_its_class() -> None:
    data = b"(icollections\nOrderedDict\n."
    assert pickle.loads(data) == collections.OrderedDict()

    assert scan_globals(data) == [("collections", "OrderedDict")]


def test_stack_global_with_a_name_built_at_load_time_is_rejected() -> None:
    # str("collections") computed by REDUCE: no string constant says which module loads.
    data = (
        PROTO_4
        + b"cbuiltins\nstr\n"
        + b"("
        + short_binunicode("collections")
        + b"tR"
        + short_binunicode("OrderedDict")
        + STACK_GLOBAL
        + STOP
    )
    assert pickle.loads(data) is collections.OrderedDict

    with pytest.raises(ValueError, match="unscannable pickle: STACK_GLOBAL at byte"):
        scan_globals(data)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(pickle.dumps(Point(1, 2), protocol=4)[:-8], id="truncated"),
        pytest.param(b"\x80\x04\xff.", id="unknown-opcode"),
        pytest.param(b"\x80\x04\x93.", id="stack-global-on-empty-stack"),
        pytest.param(b"\x80\x02h\x05.", id="memo-read-before-write"),
        pytest.param(b"\x80\x02\x94.", id="memoize-on-empty-stack"),
        pytest.param(b"\x80\x02K\x01t.", id="tuple-without-mark"),
    ],
)
def test_malformed_pickle_raises_value_error(data: bytes) -> None:
    with pytest.raises((pickle.UnpicklingError, EOFError)):  # the real unpickler agrees
        pickle.loads(data)

    with pytest.raises(ValueError, match="malformed pickle"):
        scan_globals(data)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("obj", OBJECTS.values(), ids=OBJECTS.keys())
def test_fast_scan_finds_the_same_globals_as_the_opcode_scan(obj: object, protocol: int) -> None:
    data = pickle.dumps(obj, protocol=protocol)

    assert scan_globals_fast(data) == scan_globals(data)


def test_fast_scan_falls_back_to_the_opcode_scan_for_out_of_band_buffers() -> None:
    data = pickle.dumps(pickle.PickleBuffer(b"abc"), protocol=5, buffer_callback=lambda _: False)

    assert scan_globals_fast(data) == scan_globals(data)
