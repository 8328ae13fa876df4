"""A small convolutional classifier with batch-norm buffers."""

from __future__ import annotations

import torch
from torch import nn

from modelzoo.layers import Residual


class ConvNet(nn.Module):
    def __init__(self, channels: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.block = Residual(
            nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels))
        )
        self.head = nn.Linear(channels, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.block(torch.relu(self.stem(images)))
        return self.head(features.mean(dim=(2, 3)))
