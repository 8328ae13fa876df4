"""Third-party libraries interned unpatched: the model runs on the packaged copy of its library.

Each library reads its own folder (transformers lists ``models/``), imports
submodules lazily by mangled name and probes distribution metadata; none of
it is patched here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from _real_models import THIRD_PARTY

from torchpkg import PackageExporter, PackageImporter
from torchpkg.roundtrip import roundtrip

pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")

LIBRARIES = {
    "gpt2": ("transformers",),
    "bert": ("transformers",),
    "t5": ("transformers",),
    "vit": ("transformers",),
    "lora-gpt2": ("peft", "transformers"),
    "unet2d": ("diffusers",),
}


@pytest.mark.parametrize("name", sorted(LIBRARIES))
def test_a_model_passes_the_roundtrip_with_its_library_interned(name: str) -> None:
    torch.manual_seed(0)
    model, args, kwargs = THIRD_PARTY[name]()
    libraries = LIBRARIES[name]
    result = roundtrip(model, *args, kwargs=kwargs, intern=[f"{lib}.**" for lib in libraries])
    assert result.passed, result.report()
    for library in libraries:
        assert f"{library}.__init__" not in result.interned  # modules, not files
        assert library in result.interned
        assert library not in result.distributions  # packaged, so not needed where it loads


def _export_gpt2(path: Path) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    model, args, _ = THIRD_PARTY["gpt2"]()
    with PackageExporter(path) as exporter:
        exporter.intern("transformers.**")
        exporter.extern("**")
        exporter.save_pickle("model", "model.pkl", model)
    return model, args


def test_interned_transformers_runs_on_its_packaged_modules_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHPKG_CACHE_DIR", str(tmp_path / "cache"))
    model, args = _export_gpt2(tmp_path / "gpt2.pt")
    installed = sys.modules["transformers"]
    with PackageImporter(tmp_path / "gpt2.pt", materialize=True) as importer:
        clone = importer.load_pickle("model", "model.pkl")
        with torch.no_grad():
            torch.testing.assert_close(clone(*args).logits, model(*args).logits)
        packaged = importer.import_module("transformers")
        classes = {
            cls.__module__ for cls in type(clone).__mro__ if "transformers" in cls.__module__
        }
        assert classes
        assert all(module.startswith(importer.id()) for module in classes)
        assert packaged is not installed
        # its own lazy lookups went to the packaged copy, by mangled name
        assert packaged.GenerationMixin.__module__.startswith(importer.id())
    assert sys.modules["transformers"] is installed  # the process still sees the installed one


def test_interned_transformers_sees_the_metadata_it_was_packaged_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCHPKG_CACHE_DIR", str(tmp_path / "cache"))
    _export_gpt2(tmp_path / "gpt2.pt")
    with PackageImporter(tmp_path / "gpt2.pt", materialize=True) as importer:
        importer.load_pickle("model", "model.pkl")
        utils = importer.import_module("transformers.utils.import_utils")
        metadata = utils.importlib.metadata
        assert metadata is not sys.modules["importlib.metadata"]
        packaged = importer.environment()
        assert packaged is not None
        assert metadata.version("transformers") == packaged.interned["transformers"].version
        assert metadata.packages_distributions()["transformers"] == ["transformers"]
