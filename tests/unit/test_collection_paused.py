"""Pickling and unpickling a model run without automatic garbage collection (every
object rebuilt or memoized stays alive until they end, so collecting would only walk
them again and again), and leave collection as they found it."""

from __future__ import annotations

import gc
import io
from collections.abc import Callable, Iterator

import pytest

from torchpkg import PackageExporter, PackageImporter


class Witness:
    """Notes whether collection was enabled when it was pickled and when unpickled."""

    seen: list[bool] = []  # shared on purpose: the loaded copy reports here too

    def __reduce__(self) -> tuple[Callable[[], Witness], tuple[()]]:
        Witness.seen.append(gc.isenabled())
        return _rebuild, ()


def _rebuild() -> Witness:
    Witness.seen.append(gc.isenabled())
    return Witness()


class Unpicklable:
    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("cannot pickle this")


@pytest.fixture(autouse=True)
def fresh_witness() -> Iterator[None]:
    Witness.seen = []
    yield
    gc.enable()


def export(obj: object) -> bytes:
    out = io.BytesIO()
    with PackageExporter(out) as exporter:
        exporter.extern(__name__)
        exporter.save_pickle("obj", "obj.pkl", obj)
    return out.getvalue()


def load(archive: bytes) -> object:
    with PackageImporter(io.BytesIO(archive)) as importer:
        return importer.load_pickle("obj", "obj.pkl")


def test_pickling_runs_without_collection_and_turns_it_back_on() -> None:
    export(Witness())
    assert Witness.seen == [False]
    assert gc.isenabled()


def test_unpickling_runs_without_collection_and_turns_it_back_on() -> None:
    archive = export(Witness())
    Witness.seen = []
    load(archive)
    assert Witness.seen == [False]
    assert gc.isenabled()


def test_a_pickling_error_turns_collection_back_on() -> None:
    with pytest.raises(TypeError, match="cannot pickle this"):
        export(Unpicklable())
    assert gc.isenabled()


def test_collection_turned_off_by_the_caller_stays_off() -> None:
    gc.disable()
    load(export(Witness()))
    assert not gc.isenabled()
