"""Third-party models used directly: each survives packaging with no configuration."""

from __future__ import annotations

import pytest
import torch
from _real_models import THIRD_PARTY

from torchpkg.roundtrip import roundtrip

# peft calls a transformers method that transformers 5 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing`:FutureWarning")


@pytest.mark.parametrize("name", sorted(THIRD_PARTY))
def test_a_third_party_model_passes_with_the_default_policy(name: str) -> None:
    torch.manual_seed(0)
    model, args, kwargs = THIRD_PARTY[name]()
    result = roundtrip(model, *args, kwargs=kwargs)
    assert result.passed, result.report()
    assert result.interned == ()  # nothing of the repository: the libraries are extern
    library = type(model).__module__.partition(".")[0]
    assert library in result.distributions
