"""torchpkg: hermetic packages of PyTorch code and data."""

from torchpkg.errors import EmptyMatchError, PackagingError

__all__ = ["EmptyMatchError", "PackagingError"]
