from __future__ import annotations

import torch
from modelzoo.multimodal import ImageBatch, MultiModalEncoder, TextBatch


def test_text_batches_are_embedded() -> None:
    model = MultiModalEncoder(vocabulary=32, width=8)
    batch = TextBatch(tokens=torch.randint(0, 32, (2, 5)))
    assert model(batch).shape == (2, 8)


def test_image_batches_are_projected() -> None:
    model = MultiModalEncoder(width=8)
    batch = ImageBatch(pixels=torch.randn(3, 3, 4, 4))
    assert model(batch).shape == (3, 8)
