"""Tensors in packages: every storage dtype, views and shared storages, modules,
map_location, ``__reduce_package__``, storage record layout, sparse and quantized."""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from torchpkg import PackageExporter, PackageImporter, is_from_package  # noqa: E402

ALIGNMENT = 64
LOCAL_HEADER = b"PK\x03\x04"

LEGACY_STORAGE_DTYPES = [
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int8,
    torch.uint8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
    torch.complex64,
    torch.complex128,
]


def package(
    obj: Any,
    *,
    intern: str | None = None,
    path: Path | None = None,
) -> bytes:
    """Archive bytes holding ``obj`` as ``obj/obj.pkl``, written to ``path`` if given."""
    out = io.BytesIO()
    with PackageExporter(path if path is not None else out) as exporter:
        if intern is not None:
            exporter.intern(intern)
        exporter.save_pickle("obj", "obj.pkl", obj)
    return path.read_bytes() if path is not None else out.getvalue()


def load(data: bytes, map_location: Any = None) -> Any:
    return PackageImporter(io.BytesIO(data)).load_pickle("obj", "obj.pkl", map_location)


def storage_records(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [name for name in zf.namelist() if "/.data/" in name and name.endswith(".storage")]


def assert_same_tensor(loaded: Any, original: Any) -> None:
    assert type(loaded) is type(original)
    assert loaded.dtype == original.dtype
    assert loaded.shape == original.shape
    assert loaded.stride() == original.stride()
    assert loaded.storage_offset() == original.storage_offset()
    assert loaded.requires_grad == original.requires_grad
    assert torch.equal(loaded.detach(), original.detach())


# --- dtypes and layouts -----------------------------------------------------------


def sample(dtype: Any) -> Any:
    """A 3x4 tensor of ``dtype`` with distinct, exactly representable values."""
    values = torch.arange(-6, 6, dtype=torch.int64).reshape(3, 4)
    if dtype in (torch.uint8, torch.bool):
        values = values + 6
    if dtype.is_floating_point:
        return (values.to(dtype) * 0.25).requires_grad_()
    if dtype.is_complex:
        return torch.complex(values.double() * 0.5, -values.double()).to(dtype).requires_grad_()
    return values.to(dtype)


@pytest.mark.parametrize("dtype", LEGACY_STORAGE_DTYPES, ids=str)
def test_tensor_of_every_legacy_storage_dtype_round_trips_exactly(dtype: Any) -> None:
    original = sample(dtype)
    assert_same_tensor(load(package(original)), original)


def test_zero_element_tensor_round_trips_with_its_shape() -> None:
    original = torch.empty(0, 3, dtype=torch.float64)
    loaded = load(package(original))
    assert_same_tensor(loaded, original)
    assert loaded.shape == (0, 3)


def test_zero_dim_scalar_tensor_round_trips_as_a_scalar() -> None:
    original = torch.tensor(2.5)
    loaded = load(package(original))
    assert_same_tensor(loaded, original)
    assert loaded.dim() == 0
    assert loaded.item() == 2.5


def test_transposed_view_keeps_its_strides() -> None:
    original = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    assert not original.is_contiguous()
    loaded = load(package(original))
    assert_same_tensor(loaded, original)
    assert loaded.stride() == (1, 4)
    assert not loaded.is_contiguous()


def test_stepped_slice_keeps_its_strides_and_storage_offset() -> None:
    base = torch.arange(20, dtype=torch.int32)
    original = base[3::2]
    loaded = load(package(original))
    assert_same_tensor(loaded, original)
    assert loaded.stride() == (2,)
    assert loaded.storage_offset() == 3
    # The whole storage is saved, so the view is rebuilt over the same layout.
    assert loaded.untyped_storage().nbytes() == base.untyped_storage().nbytes()


# --- shared storages --------------------------------------------------------------


def test_tensors_viewing_one_storage_are_written_as_one_storage_record() -> None:
    base = torch.arange(10, dtype=torch.float32)
    data = package([base, base[2:], base.view(2, 5), base[::3]])
    assert len(storage_records(data)) == 1


def test_tensors_viewing_one_storage_share_memory_after_load(tmp_path: Path) -> None:
    base = torch.arange(10, dtype=torch.float32)
    path = tmp_path / "views.pt"
    package([base, base[2:]], path=path)
    with PackageImporter(path) as importer:
        loaded_base, loaded_tail = importer.load_pickle("obj", "obj.pkl")
        assert loaded_base.untyped_storage().data_ptr() == loaded_tail.untyped_storage().data_ptr()
        loaded_base[5] = -1.0
        assert loaded_tail[3].item() == -1.0


def test_same_tensor_in_two_modules_is_written_once_and_shared_after_load() -> None:
    table = torch.arange(6, dtype=torch.float32)
    first, second = torch.nn.Module(), torch.nn.Module()
    first.register_buffer("table", table)
    second.register_buffer("table", table)
    data = package([first, second])
    assert len(storage_records(data)) == 1

    loaded_first, loaded_second = load(data)
    assert (
        loaded_first.table.untyped_storage().data_ptr()
        == loaded_second.table.untyped_storage().data_ptr()
    )
    loaded_first.table[0] = 100.0
    assert loaded_second.table[0].item() == 100.0


@pytest.mark.parametrize("source", ["path", "buffer"])
def test_writes_into_a_loaded_tensor_do_not_reach_later_loads(tmp_path: Path, source: str) -> None:
    """Like torch.package, every load_pickle call gets storages of its own."""
    path = tmp_path / "weights.pt"
    package(torch.arange(4, dtype=torch.float32), path=path)
    opened = path if source == "path" else io.BytesIO(path.read_bytes())
    with PackageImporter(opened) as importer:
        first = importer.load_pickle("obj", "obj.pkl")
        first.add_(100)
        second = importer.load_pickle("obj", "obj.pkl")
        assert second.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_writes_into_a_loaded_tensor_do_not_reach_the_callers_buffer() -> None:
    data = package(torch.arange(4, dtype=torch.float32))
    buffer = io.BytesIO(data)
    loaded = PackageImporter(buffer).load_pickle("obj", "obj.pkl")
    loaded.add_(100)
    assert buffer.getvalue() == data


# --- nn.Module --------------------------------------------------------------------

NET_SOURCE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.scale = nn.Parameter(torch.full((3,), 2.0))
        self.register_buffer("offset", torch.arange(3, dtype=torch.float32))
        self.register_buffer("scratch", torch.full((3,), 0.5), persistent=False)

    def forward(self, x):
        return self.linear(x) * self.scale + self.offset + self.scratch
"""


@pytest.fixture
def net_pair(source_tree: Callable[..., str]) -> tuple[Any, Any]:
    """(original Net, Net loaded from its package)."""
    pkg = source_tree({"__init__.py": "", "net.py": NET_SOURCE})
    net_module = __import__(f"{pkg}.net", fromlist=["Net"])
    torch.manual_seed(0)
    original = net_module.Net()
    loaded = load(package(original, intern=f"{pkg}.**"))
    return original, loaded


def test_module_loaded_from_a_package_gives_the_same_outputs(net_pair: tuple[Any, Any]) -> None:
    original, loaded = net_pair
    assert is_from_package(loaded)
    assert type(loaded).__name__ == "Net"
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), original(x))


def test_module_parameters_stay_parameters_that_require_grad(net_pair: tuple[Any, Any]) -> None:
    original, loaded = net_pair
    original_params = dict(original.named_parameters())
    loaded_params = dict(loaded.named_parameters())
    assert list(loaded_params) == ["scale", "linear.weight", "linear.bias"]
    for name, param in loaded_params.items():
        assert type(param) is torch.nn.Parameter, name
        assert param.requires_grad, name
        assert torch.equal(param, original_params[name]), name


def test_module_keeps_persistent_and_non_persistent_buffers(net_pair: tuple[Any, Any]) -> None:
    _, loaded = net_pair
    assert dict(loaded.named_buffers()).keys() == {"offset", "scratch"}
    assert torch.equal(loaded.offset, torch.arange(3, dtype=torch.float32))
    assert torch.equal(loaded.scratch, torch.full((3,), 0.5))
    state = loaded.state_dict()
    assert "offset" in state
    assert "scratch" not in state


# --- map_location -----------------------------------------------------------------

MAPPED = torch.arange(6, dtype=torch.float32).reshape(2, 3)


@pytest.fixture(scope="module")
def mapped_archive() -> bytes:
    return package(MAPPED)


def test_map_location_none_loads_storages_where_they_were_saved(mapped_archive: bytes) -> None:
    loaded = load(mapped_archive, map_location=None)
    assert loaded.device == torch.device("cpu")
    assert torch.equal(loaded, MAPPED)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_map_location_str_moves_storages_to_that_device(mapped_archive: bytes, device: str) -> None:
    loaded = load(mapped_archive, map_location=device)
    assert loaded.device.type == device
    assert loaded.shape == MAPPED.shape
    if device == "cpu":
        assert torch.equal(loaded, MAPPED)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_map_location_torch_device_moves_storages_to_that_device(
    mapped_archive: bytes, device: str
) -> None:
    loaded = load(mapped_archive, map_location=torch.device(device))
    assert loaded.device.type == device
    assert loaded.shape == MAPPED.shape
    if device == "cpu":
        assert torch.equal(loaded, MAPPED)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_map_location_dict_maps_saved_locations_to_new_ones(
    mapped_archive: bytes, device: str
) -> None:
    loaded = load(mapped_archive, map_location={"cpu": device})
    assert loaded.device.type == device
    if device == "cpu":
        assert torch.equal(loaded, MAPPED)


def test_map_location_dict_leaves_unlisted_locations_alone(mapped_archive: bytes) -> None:
    loaded = load(mapped_archive, map_location={"cuda:0": "meta"})
    assert loaded.device == torch.device("cpu")
    assert torch.equal(loaded, MAPPED)


def test_map_location_callable_is_called_with_each_storage_and_its_saved_location(
    mapped_archive: bytes,
) -> None:
    calls: list[tuple[Any, str]] = []

    def restore(storage: Any, location: str) -> Any:
        calls.append((storage, location))
        return storage

    loaded = load(mapped_archive, map_location=restore)
    assert [location for _, location in calls] == ["cpu"]
    assert isinstance(calls[0][0], torch.UntypedStorage)
    assert calls[0][0].nbytes() == MAPPED.nbytes
    assert torch.equal(loaded, MAPPED)


def test_map_location_callable_result_is_the_storage_used(mapped_archive: bytes) -> None:
    def zeroed(storage: Any, location: str) -> Any:
        return torch.UntypedStorage(storage.nbytes()).fill_(0)

    loaded = load(mapped_archive, map_location=zeroed)
    assert torch.equal(loaded, torch.zeros_like(MAPPED))


def test_map_location_callable_returning_none_falls_back_to_the_default(
    mapped_archive: bytes,
) -> None:
    calls: list[str] = []

    def decline(storage: Any, location: str) -> None:
        calls.append(location)

    loaded = load(mapped_archive, map_location=decline)
    assert calls == ["cpu"]
    assert loaded.device == torch.device("cpu")
    assert torch.equal(loaded, MAPPED)


def test_map_location_of_an_unsupported_type_raises_type_error(mapped_archive: bytes) -> None:
    with pytest.raises(TypeError, match=r"map_location must be .*not int"):
        load(mapped_archive, map_location=3)


# --- __reduce_package__ -----------------------------------------------------------

NOTES_SOURCE = """
reduced = []
unpackaged = []


class Note:
    def __init__(self, text):
        self.text = text

    def __reduce_package__(self, exporter):
        generated = f"note-generated._{exporter.get_unique_id()}"
        exporter.save_text(generated, "note.txt", self.text + " (packaged)")
        reduced.append(generated)
        return (unpackage_note, (generated, len(self.text)))


def unpackage_note(importer, generated, length):
    unpackaged.append(importer)
    note = Note(importer.load_text(generated, "note.txt"))
    note.length = length
    return note
"""


@pytest.fixture
def notes(source_tree: Callable[..., str]) -> Any:
    """The helper module; ``notes.__name__`` is the name to intern."""
    pkg = source_tree({"__init__.py": "", "notes.py": NOTES_SOURCE})
    return __import__(f"{pkg}.notes", fromlist=["Note"])


def package_notes(notes: Any, obj: Any) -> tuple[bytes, PackageImporter]:
    data = package(obj, intern=notes.__name__.partition(".")[0] + ".**")
    return data, PackageImporter(io.BytesIO(data))


def test_reduce_package_object_is_rebuilt_by_its_unpackage_function(notes: Any) -> None:
    _, importer = package_notes(notes, notes.Note("hello"))
    loaded = importer.load_pickle("obj", "obj.pkl")
    assert is_from_package(loaded)
    assert type(loaded).__name__ == "Note"
    assert loaded.text == "hello (packaged)"
    assert loaded.length == 5


def test_reduce_package_resource_is_saved_under_the_generated_name(notes: Any) -> None:
    data, _ = package_notes(notes, notes.Note("hello"))
    assert len(notes.reduced) == 1
    generated = notes.reduced[0]
    assert generated.startswith("note-generated._")
    record = "archive/" + generated.replace(".", "/") + "/note.txt"
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert record in zf.namelist()
        assert zf.read(record) == b"hello (packaged)"


def test_distinct_objects_get_distinct_generated_names(notes: Any) -> None:
    _, importer = package_notes(notes, [notes.Note("a"), notes.Note("b")])
    assert len(set(notes.reduced)) == 2
    first, second = importer.load_pickle("obj", "obj.pkl")
    assert (first.text, second.text) == ("a (packaged)", "b (packaged)")


def test_object_referenced_twice_is_reduced_once_and_loaded_as_one_object(notes: Any) -> None:
    note = notes.Note("shared")
    _, importer = package_notes(notes, [note, {"again": note}])
    assert len(notes.reduced) == 1

    first, holder = importer.load_pickle("obj", "obj.pkl")
    assert first is holder["again"]
    packaged_notes = importer.import_module(notes.__name__)
    assert len(packaged_notes.unpackaged) == 1


def test_unpackage_function_receives_the_package_importer_first(notes: Any) -> None:
    _, importer = package_notes(notes, notes.Note("hello"))
    importer.load_pickle("obj", "obj.pkl")
    packaged_notes = importer.import_module(notes.__name__)
    assert packaged_notes is not notes
    assert len(packaged_notes.unpackaged) == 1
    assert packaged_notes.unpackaged[0] is importer


# --- storage record layout --------------------------------------------------------


def storage_record_layout(data: bytes) -> list[tuple[str, int, int]]:
    """(name, compression method from the local header, data offset) of each storage record."""
    layout = []
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            if "/.data/" not in info.filename or not info.filename.endswith(".storage"):
                continue
            start = info.header_offset
            assert data[start : start + 4] == LOCAL_HEADER
            (method,) = struct.unpack_from("<H", data, start + 8)
            name_len, extra_len = struct.unpack_from("<HH", data, start + 26)
            layout.append((info.filename, method, start + 30 + name_len + extra_len))
    return layout


@pytest.fixture(scope="module")
def odd_sized_tensors_archive() -> bytes:
    """Storages of odd byte sizes, so unpadded records would land off the alignment."""
    return package(
        [
            torch.arange(3, dtype=torch.uint8),
            torch.arange(7, dtype=torch.float32),
            torch.tensor(True),
            torch.arange(5, dtype=torch.float16),
            torch.arange(11, dtype=torch.int64),
        ]
    )


def test_storage_records_start_at_64_byte_aligned_offsets(odd_sized_tensors_archive: bytes) -> None:
    layout = storage_record_layout(odd_sized_tensors_archive)
    assert len(layout) == 5
    assert [offset % ALIGNMENT for _, _, offset in layout] == [0] * 5


def test_storage_records_are_stored_uncompressed(odd_sized_tensors_archive: bytes) -> None:
    layout = storage_record_layout(odd_sized_tensors_archive)
    assert len(layout) == 5
    assert {method for _, method, _ in layout} == {zipfile.ZIP_STORED}
    with zipfile.ZipFile(io.BytesIO(odd_sized_tensors_archive)) as zf:
        for info in zf.infolist():
            if info.filename.endswith(".storage"):
                assert info.compress_size == info.file_size


def test_storage_record_holds_the_raw_bytes_of_the_storage() -> None:
    original = torch.arange(7, dtype=torch.float32)
    data = package(original)
    (record,) = storage_records(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read(record) == original.numpy().tobytes()


# --- what comes back --------------------------------------------------------------


def test_loaded_tensor_is_a_plain_torch_tensor() -> None:
    """Package code never imports torch here: the pickle alone brings tensors back as
    the running process's ``torch.Tensor``, not a packaged copy of the class."""
    data = package({"weights": torch.tensor([1.5, -2.0, 3.25])})
    loaded = load(data)
    assert type(loaded["weights"]) is torch.Tensor
    assert loaded["weights"].tolist() == [1.5, -2.0, 3.25]


def test_sparse_coo_tensor_round_trips() -> None:
    original = torch.sparse_coo_tensor(
        [[0, 1, 2], [2, 0, 1]], [3.0, 4.0, 5.0], (3, 3), check_invariants=True
    ).coalesce()
    loaded = load(package(original))
    assert loaded.layout == torch.sparse_coo
    assert loaded.shape == original.shape
    assert loaded.is_coalesced()
    assert torch.equal(loaded.indices(), original.indices())
    assert torch.equal(loaded.values(), original.values())
    assert torch.equal(loaded.to_dense(), original.to_dense())


def _quantized() -> Any:
    with warnings.catch_warnings():
        # torch 2.13 deprecates the quantized dtypes; the archive format still has them.
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor", UserWarning)
        return torch.quantize_per_tensor(torch.tensor([-1.0, 0.0, 1.5, 3.0]), 0.5, 2, torch.quint8)


def _torch_package_round_trip(obj: Any) -> Any:
    from torch.package import PackageExporter as TorchExporter
    from torch.package import PackageImporter as TorchImporter

    out = io.BytesIO()
    with TorchExporter(out) as exporter:
        exporter.save_pickle("obj", "obj.pkl", obj)
    out.seek(0)
    return TorchImporter(out).load_pickle("obj", "obj.pkl")


def test_quantized_tensor_round_trips() -> None:
    original = _quantized()
    try:
        _torch_package_round_trip(original)
    except Exception as exc:
        pytest.skip(f"torch.package {torch.__version__} cannot round-trip quantized tensors: {exc}")
    loaded = load(package(original))
    assert loaded.is_quantized
    assert loaded.dtype == torch.quint8
    assert loaded.qscheme() == torch.per_tensor_affine
    assert loaded.q_scale() == 0.5
    assert loaded.q_zero_point() == 2
    assert torch.equal(loaded.int_repr(), original.int_repr())
    assert torch.equal(loaded.dequantize(), original.dequantize())


NEWER_DTYPES = ["float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64"]


@pytest.mark.parametrize("dtype_name", NEWER_DTYPES)
def test_tensor_of_a_dtype_without_a_legacy_storage_class_round_trips(dtype_name: str) -> None:
    """torch.package cannot save these at all; the archive records the dtype itself."""
    dtype = getattr(torch, dtype_name)
    original = torch.arange(8, dtype=torch.float32).to(dtype)

    loaded = load(package(original))

    assert loaded.dtype == dtype
    assert loaded.untyped_storage().tolist() == original.untyped_storage().tolist()
