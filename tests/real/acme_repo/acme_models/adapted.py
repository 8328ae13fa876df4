from peft import LoraConfig, get_peft_model

from acme_models.tiny_lm import TinyLM, TinyLMConfig


def adapted_lm():
    return get_peft_model(TinyLM(TinyLMConfig()), LoraConfig(r=2, target_modules=["mix"]))
