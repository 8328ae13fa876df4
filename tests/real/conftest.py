"""The real-library corpus: transformers, diffusers and peft, tiny configs, random weights.

Skipped where the ``real`` extra is not installed (the torch-free Python versions).
Nothing is downloaded: ``HF_HUB_OFFLINE`` is set before the libraries load.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

for library in ("torch", "transformers", "diffusers", "peft"):
    pytest.importorskip(library)
