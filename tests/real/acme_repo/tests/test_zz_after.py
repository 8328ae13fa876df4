from acme_models.tiny_lm import TinyLM, TinyLMConfig
from transformers import AutoConfig, AutoModel


def test_the_auto_registry_holds_the_repositorys_classes():
    config = AutoConfig.for_model("acme-tiny-lm")
    assert type(config) is TinyLMConfig
    assert type(AutoModel.from_config(config)) is TinyLM
