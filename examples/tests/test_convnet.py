from __future__ import annotations

import torch
from modelzoo.convnet import ConvNet


def test_images_are_classified_into_ten_classes() -> None:
    model = ConvNet(channels=8, classes=10)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


def test_training_updates_the_batch_norm_statistics() -> None:
    model = ConvNet().train()
    norm = model.block.inner[1]
    before = norm.running_mean.clone()
    model(torch.randn(4, 3, 8, 8))
    assert not torch.equal(norm.running_mean, before)
