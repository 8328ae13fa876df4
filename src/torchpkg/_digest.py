"""The digests an integrity manifest may name: BLAKE3 (written) and SHA-256 (read).

BLAKE3 is the written one for speed: on one core it hashes a gigabyte in about a
quarter of SHA-256's time, which is what lets the manifest be computed beside
the write of a large model instead of after it. Manifests written by earlier
torchpkg versions name SHA-256 and still verify.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import Enum
from typing import Protocol, TypeAlias

__all__ = ["WRITTEN", "DigestAlgorithm", "Hasher"]

# Below this size a second BLAKE3 thread costs more than it saves.
_THREADED_BYTES = 16 << 20


Buffer: TypeAlias = bytes | bytearray | memoryview


class Hasher(Protocol):
    def update(self, data: Buffer, /) -> object: ...

    def hexdigest(self) -> str: ...


class DigestAlgorithm(Enum):
    """A digest as a manifest names it (the enum's value is the name)."""

    BLAKE3 = "blake3"
    SHA256 = "sha256"

    @property
    def label(self) -> str:
        """The name people write: ``BLAKE3``, ``SHA-256``."""
        return "SHA-256" if self is DigestAlgorithm.SHA256 else "BLAKE3"

    def new(self, size: int = 0) -> Hasher:
        """A fresh hasher for ``size`` bytes (a large input may use several cores)."""
        if self is DigestAlgorithm.SHA256:
            return hashlib.sha256()
        import blake3  # a dependency; imported here so importing torchpkg stays cheap

        threads = blake3.blake3.AUTO if size >= _THREADED_BYTES else 1
        return blake3.blake3(max_threads=threads)

    def hexdigest(self, data: Buffer) -> str:
        hasher = self.new(len(data) if isinstance(data, (bytes, bytearray)) else data.nbytes)
        hasher.update(data)
        return hasher.hexdigest()

    def hexdigest_function(self) -> Callable[[Buffer], str]:
        """``hexdigest`` for small inputs, without its per-call dispatch: what the
        writer calls for each of thousands of small records."""
        if self is DigestAlgorithm.SHA256:
            return lambda data: hashlib.sha256(data).hexdigest()
        from blake3 import blake3

        return lambda data: blake3(data).hexdigest()

    @classmethod
    def named(cls, name: str) -> DigestAlgorithm:
        """The algorithm a manifest names; ``ValueError`` for one this version cannot check."""
        try:
            return cls(name)
        except ValueError:
            known = ", ".join(algorithm.value for algorithm in cls)
            raise ValueError(
                f"unknown digest algorithm {name!r} (this torchpkg checks {known}); "
                "upgrade torchpkg to verify this archive"
            ) from None


WRITTEN = DigestAlgorithm.BLAKE3
