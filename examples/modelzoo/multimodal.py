"""An encoder that routes each kind of batch to its own layer, through a class registry.

Broken on purpose: ``forward`` dispatches with ``isinstance`` against the
registered batch classes. A package has its own copies of those classes, so
batches built by the caller's code match none of them in the packaged model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

BATCH_TYPES: dict[str, type] = {}
T = TypeVar("T", bound=type)


def batch_type(name: str) -> Callable[[T], T]:
    """Register a batch class under the name of the layer that encodes it."""

    def register(cls: T) -> T:
        BATCH_TYPES[name] = cls
        return cls

    return register


@batch_type("text")
@dataclass
class TextBatch:
    tokens: torch.Tensor  # (batch, length) token ids


@batch_type("image")
@dataclass
class ImageBatch:
    pixels: torch.Tensor  # (batch, 3, 4, 4)


class MultiModalEncoder(nn.Module):
    def __init__(self, vocabulary: int = 32, width: int = 8) -> None:
        super().__init__()
        self.text = nn.EmbeddingBag(vocabulary, width)
        self.image = nn.Linear(3 * 4 * 4, width)

    def forward(self, batch: TextBatch | ImageBatch) -> torch.Tensor:
        if isinstance(batch, BATCH_TYPES["text"]):
            return self.text(batch.tokens)
        if isinstance(batch, BATCH_TYPES["image"]):
            return self.image(batch.pixels.flatten(1))
        raise TypeError(f"no encoder for a {type(batch).__name__}")
