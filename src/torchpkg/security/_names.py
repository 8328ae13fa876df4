"""The names safe loading knows: what it allows by default, and what is dangerous.

``CURATED`` and ``TENSOR_REBUILDERS`` are allowed without asking; classes in
``CURATED_CLASS_MODULES`` too (the loader checks they are classes). The
dangerous list only says *why* a refused name is refused: leaving a name off
it never lets the name through (``_rules.judge`` is an allowlist).
"""

from __future__ import annotations

from torchpkg.glob import GlobGroup

__all__ = [
    "CURATED",
    "CURATED_CLASS_MODULES",
    "TENSOR_REBUILDERS",
    "TORCH_VALUES",
    "dangerous_reason",
]

TENSOR_REBUILDERS = frozenset(
    f"torch._utils.{name}"
    for name in (
        "_rebuild_tensor",
        "_rebuild_tensor_v2",
        "_rebuild_tensor_v3",
        "_rebuild_parameter",
        "_rebuild_parameter_with_state",
        "_rebuild_sparse_tensor",
        "_rebuild_nested_tensor",
        "_rebuild_meta_tensor_no_storage",
        "_rebuild_wrapper_subclass",
        "_rebuild_qtensor",
        "_rebuild_device_tensor_from_cpu_tensor",
        "_rebuild_device_tensor_from_numpy",
        "_rebuild_xla_tensor",
    )
) | {
    "torch._tensor._rebuild_from_type",
    "torch._tensor._rebuild_from_type_v2",
    "torch.serialization._get_layout",
}

# Attributes of `torch` that pickles name: dtypes, layouts, memory formats, qschemes and
# storage classes. A test keeps this in step with the installed torch.
_DTYPES = (
    "bfloat16", "bit", "bits16", "bits1x8", "bits2x4", "bits4x2", "bits8", "bool", "cdouble",
    "cfloat", "chalf", "complex128", "complex32", "complex64", "double", "float", "float16",
    "float32", "float4_e2m1fn_x2", "float64", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2",
    "float8_e5m2fnuz", "float8_e8m0fnu", "half", "int", "int1", "int16", "int2", "int3", "int32",
    "int4", "int5", "int6", "int64", "int7", "int8", "long", "qint32", "qint8", "quint2x4",
    "quint4x2", "quint8", "short", "uint1", "uint16", "uint2", "uint3", "uint32", "uint4",
    "uint5", "uint6", "uint64", "uint7", "uint8",
)  # fmt: skip
_LAYOUTS_AND_FORMATS = (
    "channels_last", "channels_last_3d", "contiguous_format", "preserve_format",
    "legacy_contiguous_format", "jagged", "sparse_bsc", "sparse_bsr", "sparse_coo", "sparse_csc",
    "sparse_csr", "strided", "_mkldnn", "per_channel_affine", "per_channel_affine_float_qparams",
    "per_channel_symmetric", "per_tensor_affine", "per_tensor_symmetric",
)  # fmt: skip
_STORAGES = (
    "BFloat16Storage", "BoolStorage", "ByteStorage", "CharStorage", "ComplexDoubleStorage",
    "ComplexFloatStorage", "DoubleStorage", "FloatStorage", "HalfStorage", "IntStorage",
    "LongStorage", "QInt32Storage", "QInt8Storage", "QUInt2x4Storage", "QUInt4x2Storage",
    "QUInt8Storage", "ShortStorage", "TypedStorage", "UntypedStorage",
)  # fmt: skip
_TORCH_TYPES = ("Size", "device", "dtype", "layout", "memory_format", "qscheme", "Tensor")
TORCH_VALUES = frozenset(_DTYPES + _LAYOUTS_AND_FORMATS + _STORAGES + _TORCH_TYPES)
_BUILTINS = (
    "set", "frozenset", "bytearray", "bytes", "complex", "slice", "range", "object", "int",
    "float", "str", "bool", "list", "dict", "tuple",
)  # fmt: skip

CURATED = (
    frozenset(f"torch.{name}" for name in TORCH_VALUES)
    | frozenset(f"builtins.{name}" for name in _BUILTINS)
    | {
        "torch.storage.TypedStorage",
        "torch.storage.UntypedStorage",
        "torch._tensor.Tensor",
        "collections.OrderedDict",
        "collections.defaultdict",
        "collections.Counter",
        "collections.deque",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "_codecs.encode",
        "datetime.date",
        "datetime.time",
        "datetime.datetime",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "types.SimpleNamespace",
        "argparse.Namespace",
        "re._compile",
        "pathlib.PosixPath",
        "pathlib.PurePosixPath",
        "pathlib.WindowsPath",
        "pathlib.PureWindowsPath",
    }
)

# torch's module classes: any class in these modules, never their functions.
CURATED_CLASS_MODULES = GlobGroup(("torch.nn.modules.**", "torch.nn.parameter"))

_SYSTEM = "operating-system access: commands, processes, files, the environment"
_RUNS_CODE = "runs Python code it is given"
_IMPORTS = "imports any module"
_UNCHECKED = "loads a nested pickle without these checks"
_NETWORK = "network access"
_DANGEROUS: tuple[tuple[str, str], ...] = (
    ("os.**", _SYSTEM),
    ("posix.**", _SYSTEM),
    ("nt.**", _SYSTEM),
    ("subprocess.**", "starts processes"),
    ("_posixsubprocess.**", "starts processes"),
    ("pty.**", "starts processes"),
    ("multiprocessing.**", "starts processes"),
    ("asyncio.**", "starts processes and opens connections"),
    ("signal.**", "changes how the process handles signals"),
    ("builtins.eval", _RUNS_CODE),
    ("builtins.exec", _RUNS_CODE),
    ("builtins.compile", "compiles code objects"),
    ("builtins.__import__", _IMPORTS),
    (
        "builtins.getattr",
        "reaches any attribute of any object (pickles of protocol 2-3 use it for nested "
        "classes: re-export with pickle_protocol=4 to load those safely)",
    ),
    ("builtins.setattr", "changes any attribute of any object"),
    ("builtins.delattr", "changes any attribute of any object"),
    ("builtins.open", "opens files"),
    ("builtins.input", "reads the terminal"),
    ("builtins.breakpoint", "starts a debugger"),
    ("builtins.globals", "reaches the interpreter's namespaces"),
    ("builtins.locals", "reaches the interpreter's namespaces"),
    ("builtins.vars", "reaches the interpreter's namespaces"),
    ("builtins.exit", "stops the interpreter"),
    ("builtins.quit", "stops the interpreter"),
    ("importlib.**", _IMPORTS),
    ("_frozen_importlib.**", _IMPORTS),
    ("_frozen_importlib_external.**", _IMPORTS),
    ("zipimport.**", _IMPORTS),
    ("pkgutil.**", _IMPORTS),
    ("runpy.**", _RUNS_CODE),
    ("code.**", _RUNS_CODE),
    ("codeop.**", _RUNS_CODE),
    ("timeit.**", _RUNS_CODE),
    ("cProfile.**", _RUNS_CODE),
    ("profile.**", _RUNS_CODE),
    ("trace.**", _RUNS_CODE),
    ("pdb.**", "starts a debugger"),
    ("bdb.**", "starts a debugger"),
    ("types.FunctionType", "builds functions from code objects"),
    ("types.CodeType", "builds code objects"),
    ("types.LambdaType", "builds functions from code objects"),
    ("types.MethodType", "binds functions to objects"),
    ("types.ModuleType", "builds modules"),
    ("marshal.**", "loads code objects"),
    ("pickle.**", _UNCHECKED),
    ("_pickle.**", _UNCHECKED),
    ("shelve.**", _UNCHECKED),
    ("dill.**", _UNCHECKED),
    ("cloudpickle.**", _UNCHECKED),
    ("joblib.**", _UNCHECKED),
    ("torch.load", _UNCHECKED),
    ("torch.serialization.load", _UNCHECKED),
    ("torch.jit.load", "loads TorchScript code"),
    ("torch.hub.**", "downloads and runs code"),
    ("torch.package.**", "loads packaged code without these checks"),
    ("torch.utils.cpp_extension.**", "compiles and loads native code"),
    ("torch.fx.graph_module.reduce_graph_module", _RUNS_CODE),
    ("torch.fx.graph_module.reduce_deploy_graph_module", _RUNS_CODE),
    ("torch.fx.graph_module._exec_with_source", _RUNS_CODE),
    ("numpy.load", _UNCHECKED),
    ("numpy.lib.npyio.**", _UNCHECKED),
    ("operator.attrgetter", "reaches any attribute by name"),
    ("operator.methodcaller", "calls any method by name"),
    ("sys.**", "the interpreter's state: modules, hooks, exit"),
    ("gc.**", "reaches every object in the process"),
    ("ctypes.**", "calls native code"),
    ("_ctypes.**", "calls native code"),
    ("cffi.**", "calls native code"),
    ("io.**", "opens files"),
    ("_io.**", "opens files"),
    ("shutil.**", "copies, moves and deletes files"),
    ("pathlib.*.*", "reads, writes and deletes files (a method of a path class)"),
    ("tempfile.**", "creates files"),
    ("socket.**", _NETWORK),
    ("ssl.**", _NETWORK),
    ("http.**", _NETWORK),
    ("urllib.**", _NETWORK),
    ("ftplib.**", _NETWORK),
    ("smtplib.**", _NETWORK),
    ("webbrowser.**", "opens URLs"),
    ("builtins.help", "runs pydoc"),
    ("pydoc.**", "runs pydoc"),
    ("ensurepip.**", "installs packages"),
    ("pip.**", "installs packages"),
    ("venv.**", "creates environments"),
)
_DANGEROUS_GROUPS = tuple((GlobGroup(pattern), why) for pattern, why in _DANGEROUS)


def dangerous_reason(full_name: str) -> str | None:
    """Why a global is known to be dangerous, or None if it is not on that list."""
    for group, why in _DANGEROUS_GROUPS:
        if group.matches(full_name):
            return why
    return None
