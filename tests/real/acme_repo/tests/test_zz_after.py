from acme_models.tiny_lm import TinyLM, TinyLMConfig
from transformers import AutoConfig, AutoModel


def test_the_auto_registry_holds_the_repositorys_classes():
    config = AutoConfig.for_model("acme-tiny-lm")
    assert type(config) is TinyLMConfig
    assert type(AutoModel.from_config(config)) is TinyLM


def test_the_import_system_and_the_trace_hook_are_as_without_the_plugin():
    import sys

    assert sys.gettrace() is None  # the recorder's tracer ended with the call it traced
    assert not [f for f in sys.meta_path if type(f).__module__.startswith("torchpkg")]
    assert not [name for name in sys.modules if name.startswith("<torch_package_")]
