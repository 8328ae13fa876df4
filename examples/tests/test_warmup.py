from __future__ import annotations

import pytest
import torch
from modelzoo import warmup
from modelzoo.warmup import WARMUP_STEPS, WarmupMLP


@pytest.fixture
def warmed_up() -> WarmupMLP:
    """A model past its warm-up (calls made by fixtures are not the ones checked)."""
    model = WarmupMLP(width=8)
    with torch.no_grad():
        for _ in range(WARMUP_STEPS):
            model(torch.zeros(1, 8))
    return model


def test_full_strength_after_warmup(warmed_up: WarmupMLP) -> None:
    assert warmup.step >= WARMUP_STEPS
    assert warmed_up(torch.randn(4, 8)).shape == (4, 8)
