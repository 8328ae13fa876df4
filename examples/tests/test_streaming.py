from __future__ import annotations

import torch
from modelzoo.streaming import StreamingNormalizer


def test_running_mean_tracks_the_stream() -> None:
    model = StreamingNormalizer(width=8)
    first, second = torch.randn(4, 8), torch.randn(6, 8)
    model(first)
    model(second)
    assert torch.allclose(model.stats.mean, torch.cat([first, second]).mean(dim=0), atol=1e-6)
