from __future__ import annotations

import torch
from modelzoo.calibrated import CalibratedClassifier


def test_temperature_softens_the_probabilities() -> None:
    soft = CalibratedClassifier(temperature=2.0)
    sharp = CalibratedClassifier(temperature=1.0)
    sharp.load_state_dict(soft.state_dict())
    x = torch.randn(6, 16)
    soft_top = soft(x).softmax(dim=-1).max(dim=-1).values
    sharp_top = sharp(x).softmax(dim=-1).max(dim=-1).values
    assert torch.all(soft_top <= sharp_top)
