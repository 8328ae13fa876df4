"""Hostile pickles, each in a package archive built here, and the sentinel each would touch.

Every payload, if it ran, would create its sentinel file; none needs torch. A case is
``live`` when loading it *without* safe loading really does create the sentinel
(test_hostile_pickles proves that in a subprocess), so a refusal is a real save.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

from _archives import write_records

# -- pickle opcodes ---------------------------------------------------------------------

PROTO4 = b"\x80\x04"
MARK, TUPLE, EMPTY_TUPLE, LIST = b"(", b"t", b")", b"l"
REDUCE, BUILD, STOP, POP = b"R", b"b", b".", b"0"
STACK_GLOBAL, MEMOIZE, INST, OBJ, NEWOBJ = b"\x93", b"\x94", b"i", b"o", b"\x81"
EMPTY_DICT, SETITEM = b"}", b"s"
EXTENSION_CODE = 0xF1  # registered for the EXT1 case only while it is loaded


def glob(module: str, name: str) -> bytes:
    """GLOBAL: module and name spelled in the opcode's argument."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(value: str) -> bytes:
    """BINUNICODE: a str (protocol 2 and up)."""
    data = value.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def put(key: int) -> bytes:
    return b"q" + bytes([key])


def get(key: int) -> bytes:
    return b"h" + bytes([key])


def call(function: bytes, *args: bytes) -> bytes:
    """function(*args) through REDUCE."""
    return function + MARK + b"".join(args) + TUPLE + REDUCE


def stack_global(module: bytes, name: bytes) -> bytes:
    return module + name + STACK_GLOBAL


def pickled(body: bytes, proto: bytes = PROTO4) -> bytes:
    return proto + body + STOP


def shell(path: str) -> str:
    return f"touch '{path}'"


def python(path: str) -> str:
    return f"open({path!r}, 'w').close()"


# -- the package the pickles come with ---------------------------------------------------

# A packaged module that is harmless itself but imports os: pickles try to reach through it.
UTIL = """\
import os
from os import system as run
alias = os.system
opaque = getattr(os, "sys" + "tem")


class Thing:
    def __init__(self, *args):
        pass


def helper():
    return 1
"""

# Everything a payload reaches is listed as extern, as an attacker's exporter would write it.
EXTERNS = (
    "builtins", "os", "posix", "subprocess", "importlib", "pickle", "collections", "copyreg",
    "functools", "operator", "timeit", "time", "runpy", "shutil", "io", "pathlib",
)  # fmt: skip


def archive_bytes(pickle_data: bytes, resource: str = "data.pkl") -> bytes:
    out = io.BytesIO()
    write_records(
        out,
        {
            "pkg/__init__.py": b"",
            "pkg/util.py": UTIL.encode(),
            f"pkg/{resource}": pickle_data,
            ".data/extern_modules": "".join(f"{name}\n" for name in EXTERNS).encode(),
            ".data/version": b"6\n",
        },
        "hostile",
    )
    return out.getvalue()


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[str], bytes]  # sentinel path -> pickle
    target: str | None  # the global the refusal names; None: built at load time
    live: bool = True  # loading it unsafely creates the sentinel
    resource: str = "data.pkl"
    # False where only the loader can tell (the scan cannot run the packaged code that
    # makes the name): the scan then marks the global for review instead of refusing it.
    scan_refuses: bool = True


def _nested_pickle(path: str) -> bytes:
    inner = pickled(call(glob("os", "system"), text(shell(path))))
    return call(glob("pickle", "loads"), b"B" + struct.pack("<I", len(inner)) + inner)


def _getattr_chain(path: str) -> bytes:
    # getattr(getattr(pkg.util.helper, "__globals__")["os"]...): dict.get, then system.
    getattr_ = glob("builtins", "getattr")
    globals_ = call(getattr_, glob("pkg.util", "helper"), text("__globals__"))
    get = call(getattr_, globals_, text("get"))
    os_module = get + MARK + text("os") + TUPLE + REDUCE
    system = call(getattr_, os_module, text("system"))
    return system + MARK + text(shell(path)) + TUPLE + REDUCE


def _memo_overwrite(path: str) -> bytes:
    # A decoy module name stored under memo key 0, then overwritten with "os" before use.
    decoy = text("collections") + put(0) + POP
    real = text("os") + put(0) + POP
    return decoy + real + call(stack_global(get(0), text("system")), text(shell(path)))


def _memo_decoy(path: str) -> bytes:
    # The two string opcodes right before the second STACK_GLOBAL are "OrderedDict" and
    # "call"; its module comes from the memo: a scanner that reads recent strings is fooled.
    stored = text("subprocess") + MEMOIZE + POP
    decoy = stack_global(text("collections"), text("OrderedDict")) + POP
    argv = MARK + text("touch") + text(path) + LIST  # LIST: ["touch", path]
    return stored + decoy + call(stack_global(get(0), text("call")), argv)


def _computed(path: str) -> bytes:
    # The module name is str("os"), built at load time: no string in the pickle spells it.
    module = call(glob("builtins", "str"), text("os"))
    return call(stack_global(module, text("system")), text(shell(path)))


def _planted_setstate(path: str) -> bytes:
    # An allowed packaged object, then BUILD {"__setstate__": os.system}, then BUILD cmd.
    thing = glob("pkg.util", "Thing") + EMPTY_TUPLE + NEWOBJ
    plant = EMPTY_DICT + text("__setstate__") + glob("os", "system") + SETITEM + BUILD
    return thing + plant + text(shell(path)) + BUILD


def _reconstructor(path: str) -> bytes:
    # copyreg._reconstructor is allowed; the classes it is handed (Popen) are not.
    popen = glob("subprocess", "Popen")
    argv = MARK + text("touch") + text(path) + LIST
    return call(glob("copyreg", "_reconstructor"), popen, popen, argv)


def _partial(path: str) -> bytes:
    bound = call(glob("functools", "partial"), glob("os", "system"), text(shell(path)))
    return bound + EMPTY_TUPLE + REDUCE


def _methodcaller(path: str) -> bytes:
    caller = call(glob("operator", "methodcaller"), text("system"), text(shell(path)))
    os_module = call(glob("importlib", "import_module"), text("os"))
    return caller + MARK + os_module + TUPLE + REDUCE


def _path_touch(path: str) -> bytes:
    # pathlib.PosixPath is a curated class; its method Path.touch is not.
    posix_path = call(glob("pathlib", "PosixPath"), text(path))
    return call(glob("pathlib", "Path.touch"), posix_path)


CASES = (
    Case("os_system", lambda p: call(glob("os", "system"), text(shell(p))), "os.system"),
    Case("posix_system", lambda p: call(glob("posix", "system"), text(shell(p))), "posix.system"),
    Case(
        "builtins_eval", lambda p: call(glob("builtins", "eval"), text(python(p))), "builtins.eval"
    ),
    Case(
        "builtins_exec", lambda p: call(glob("builtins", "exec"), text(python(p))), "builtins.exec"
    ),
    Case(
        "builtins_open",
        lambda p: call(glob("builtins", "open"), text(p), text("w")),
        "builtins.open",
    ),
    Case(
        "python2_builtin_name",
        lambda p: call(glob("__builtin__", "eval"), text(python(p))),
        "__builtin__.eval",  # Python 2's name: mapped to builtins.eval, as the unpickler does
    ),
    Case(
        "dunder_import_then_getattr",
        lambda p: call(
            call(
                glob("builtins", "getattr"),
                call(glob("builtins", "__import__"), text("os")),
                text("system"),
            ),
            text(shell(p)),
        ),
        "builtins.getattr",
    ),
    Case(
        "subprocess_call",
        lambda p: call(glob("subprocess", "call"), MARK + text("touch") + text(p) + LIST),
        "subprocess.call",
    ),
    Case(
        "obj_opcode_popen",
        lambda p: MARK + glob("subprocess", "Popen") + MARK + text("touch") + text(p) + LIST + OBJ,
        "subprocess.Popen",
    ),
    Case("inst_opcode", lambda p: MARK + text(shell(p)) + INST + b"os\nsystem\n", "os.system"),
    Case(
        "importlib_then_getattr",
        lambda p: call(
            call(
                glob("builtins", "getattr"),
                call(glob("importlib", "import_module"), text("os")),
                text("system"),
            ),
            text(shell(p)),
        ),
        "builtins.getattr",
    ),
    Case("nested_pickle_loads", _nested_pickle, "pickle.loads"),
    Case("getattr_chain_through_globals", _getattr_chain, "builtins.getattr"),
    Case(
        "stack_global",
        lambda p: call(stack_global(text("os"), text("system")), text(shell(p))),
        "os.system",
    ),
    Case("stack_global_memo_overwrite", _memo_overwrite, "os.system"),
    Case("stack_global_memo_decoy", _memo_decoy, "subprocess.call"),
    Case("stack_global_computed_name", _computed, None),
    Case(
        "ext1_registered_code",
        lambda p: b"\x82" + bytes([EXTENSION_CODE]) + MARK + text(shell(p)) + TUPLE + REDUCE,
        "os.system",
    ),
    Case(
        "ext2_unregistered_code",
        lambda p: b"\x83" + struct.pack("<H", 0xBEEF) + MARK + text(shell(p)) + TUPLE + REDUCE,
        None,
        live=False,  # the unpickler itself refuses an unknown code
    ),
    Case(
        "reach_through_packaged_import",
        lambda p: call(glob("pkg.util", "os.system"), text(shell(p))),
        "pkg.util.os.system",
    ),
    Case(
        "packaged_from_import_reexport",
        lambda p: call(glob("pkg.util", "run"), text(shell(p))),
        "pkg.util.run",
    ),
    Case(
        "packaged_alias",
        lambda p: call(glob("pkg.util", "alias"), text(shell(p))),
        "pkg.util.alias",
    ),
    Case(
        "packaged_computed_alias",
        lambda p: call(glob("pkg.util", "opaque"), text(shell(p))),
        "pkg.util.opaque",
        scan_refuses=False,
    ),
    Case(
        "packaged_module_object",
        lambda p: glob("pkg", "util") + EMPTY_DICT + text("helper") + text(p) + SETITEM + BUILD,
        "pkg.util",
        live=False,  # tampers with a module instead of running code
    ),
    Case("planted_setstate", _planted_setstate, "os.system"),
    Case("reconstructor_base_popen", _reconstructor, "subprocess.Popen"),
    Case("functools_partial", _partial, "functools.partial"),
    Case("operator_methodcaller", _methodcaller, "operator.methodcaller"),
    Case(
        "timeit_code_string",
        lambda p: call(
            glob("timeit", "timeit"),
            text(python(p)),
            text("pass"),
            glob("time", "perf_counter"),
            b"K\x01",  # BININT1: number=1
        ),
        "timeit.timeit",
    ),
    Case(
        "runpy_code_string",
        lambda p: call(glob("runpy", "_run_code"), text(python(p)), EMPTY_DICT),
        "runpy._run_code",
    ),
    Case(
        "shutil_copy",
        lambda p: call(glob("shutil", "copyfile"), text("/dev/null"), text(p)),
        "shutil.copyfile",
    ),
    Case("io_open", lambda p: call(glob("io", "open"), text(p), text("w")), "io.open"),
    Case("method_of_allowed_class", _path_touch, "pathlib.Path.touch"),
    Case(
        "protocol0_pickle_in_a_non_pkl_resource",
        lambda p: b"cos\nsystem\n(V" + shell(p).encode() + b"\ntR.",
        "os.system",
        resource="weights.bin",
    ),
)


def hostile_pickle(case: Case, sentinel: str) -> bytes:
    body = case.build(sentinel)
    if body.endswith(STOP):
        return body  # a whole pickle already (protocol 0 has no PROTO opcode)
    return pickled(body, PROTO4)
