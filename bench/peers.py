"""The tools compared: how each one saves a model to a file and loads it back.

A :class:`Format` is one way of writing a file (one "export" row); each of its
:class:`Loader` s is one way of reading that file back (one "load" row). Tools
are imported inside the functions, so a child process that measures one loader
imports only that loader's tool.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = [
    "CODE_EXPORTERS",
    "FORMATS",
    "TORCHPKG",
    "TORCHPKG_NO_FSYNC",
    "CodeExporter",
    "Format",
    "Loaded",
    "Loader",
    "loader_named",
    "tensors_of",
    "touch",
]

TORCHPKG = "torchpkg"
TORCHPKG_NO_FSYNC = "torchpkg (durable=False)"
PACKAGE = "model"
RESOURCE = "model.pkl"


@dataclass
class Loaded:
    """What a loader returned, and how to release what it holds open (an importer)."""

    obj: Any
    close: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True)
class Loader:
    name: str
    load: Callable[[Path], Loaded]


@dataclass(frozen=True)
class Format:
    """One file format: the export row ``name`` and the loaders that read it."""

    name: str
    suffix: str
    save: Callable[[nn.Module, Path], None]
    loaders: tuple[Loader, ...]


@contextmanager
def _quiet_torch_package() -> Iterator[None]:
    """torch.package warns that TypedStorage is deprecated on every storage."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="TypedStorage is deprecated", category=UserWarning
        )
        yield


def _intern_patterns(obj: Any) -> list[str]:
    root = type(obj).__module__.partition(".")[0]
    return [root, f"{root}.**"]


# --- torchpkg ---------------------------------------------------------------------


def torchpkg_export(obj: Any, path: Path, *, durable: bool = True) -> None:
    from torchpkg import PackageExporter

    with PackageExporter(path, durable=durable) as exporter:
        exporter.intern(_intern_patterns(obj))
        exporter.extern("torch.**")
        exporter.save_pickle(PACKAGE, RESOURCE, obj)


def _torchpkg_export_without_fsync(obj: Any, path: Path) -> None:
    torchpkg_export(obj, path, durable=False)


def _torchpkg_loader(mmap: bool) -> Callable[[Path], Loaded]:
    def load(path: Path) -> Loaded:
        from torchpkg import PackageImporter

        importer = PackageImporter(path, mmap=mmap)
        return Loaded(importer.load_pickle(PACKAGE, RESOURCE), importer.close)

    return load


# --- torch.package ----------------------------------------------------------------


def torch_package_export(obj: Any, path: Path) -> None:
    with _quiet_torch_package():
        from torch.package.package_exporter import PackageExporter

        with PackageExporter(str(path)) as exporter:
            exporter.intern(_intern_patterns(obj))
            exporter.extern("torch.**")
            exporter.save_pickle(PACKAGE, RESOURCE, obj)


def _torch_package_load(path: Path) -> Loaded:
    with _quiet_torch_package():
        from torch.package.package_importer import PackageImporter

        return Loaded(PackageImporter(str(path)).load_pickle(PACKAGE, RESOURCE))


# --- torch.save / torch.load ------------------------------------------------------


def _torch_save_model(model: nn.Module, path: Path) -> None:
    torch.save(model, path)


def _torch_save_state_dict(model: nn.Module, path: Path) -> None:
    torch.save(model.state_dict(), path)


def _torch_loader(*, weights_only: bool, mmap: bool) -> Callable[[Path], Loaded]:
    def load(path: Path) -> Loaded:
        return Loaded(torch.load(path, weights_only=weights_only, mmap=mmap))

    return load


# --- safetensors ------------------------------------------------------------------


def _safetensors_save(model: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(path))


def _safetensors_load(path: Path) -> Loaded:
    from safetensors.torch import load_file

    return Loaded(load_file(str(path)))


# --- raw bytes: the floor ---------------------------------------------------------


def _raw_write(model: nn.Module, path: Path) -> None:
    with open(path, "wb") as file:
        for tensor in model.state_dict().values():
            file.write(memoryview(tensor.detach().numpy()).cast("B"))


def _raw_read(path: Path) -> Loaded:
    with open(path, "rb", buffering=0) as file:
        buffer = bytearray(path.stat().st_size)
        file.readinto(buffer)
    return Loaded(buffer)


FORMATS: tuple[Format, ...] = (
    Format(
        TORCHPKG,
        ".pt",
        torchpkg_export,
        (
            Loader(TORCHPKG, _torchpkg_loader(mmap=True)),
            Loader("torchpkg (mmap=False)", _torchpkg_loader(mmap=False)),
        ),
    ),
    # As the other tools write: no fsync (the atomic rename stays). Export only.
    Format(TORCHPKG_NO_FSYNC, ".pt", _torchpkg_export_without_fsync, ()),
    Format(
        "torch.package",
        ".pt",
        torch_package_export,
        (Loader("torch.package", _torch_package_load),),
    ),
    Format(
        "torch.save(model)",
        ".pth",
        _torch_save_model,
        (
            Loader("torch.load(model)", _torch_loader(weights_only=False, mmap=False)),
            Loader("torch.load(model, mmap=True)", _torch_loader(weights_only=False, mmap=True)),
        ),
    ),
    Format(
        "torch.save(state_dict)",
        ".pth",
        _torch_save_state_dict,
        (
            Loader("torch.load(state_dict)", _torch_loader(weights_only=True, mmap=False)),
            Loader(
                "torch.load(state_dict, mmap=True)", _torch_loader(weights_only=True, mmap=True)
            ),
        ),
    ),
    Format(
        "safetensors",
        ".safetensors",
        _safetensors_save,
        (Loader("safetensors", _safetensors_load),),
    ),
    Format("raw write", ".bin", _raw_write, (Loader("raw read", _raw_read),)),
)


def loader_named(name: str) -> Loader:
    for loader in itertools.chain.from_iterable(fmt.loaders for fmt in FORMATS):
        if loader.name == name:
            return loader
    raise KeyError(name)


def tensors_of(obj: Any) -> list[torch.Tensor]:
    """The tensors a loader returned: a module's, a state_dict's, or raw bytes as one."""
    if isinstance(obj, nn.Module):
        return [*obj.parameters(), *obj.buffers()]
    if isinstance(obj, dict):
        return [value for value in obj.values() if isinstance(value, torch.Tensor)]
    if isinstance(obj, bytearray):
        return [torch.frombuffer(obj, dtype=torch.float32)] if obj else []
    raise TypeError(f"cannot find tensors in a {type(obj).__name__}")


def touch(obj: Any) -> float:
    """Read every byte of every tensor (a lazy loader pays for its pages here)."""
    with torch.no_grad():
        return float(sum(float(tensor.sum()) for tensor in tensors_of(obj)))


@dataclass(frozen=True)
class CodeExporter:
    """A tool in the code workload: only the package tools resolve dependencies."""

    name: str
    export: Callable[[Any, Path], None]


CODE_EXPORTERS: tuple[CodeExporter, ...] = (
    CodeExporter(TORCHPKG, torchpkg_export),
    CodeExporter("torch.package", torch_package_export),
)
