"""The real-library corpus: transformers, diffusers and peft, tiny configs, random weights.

Left out where the ``real`` extra is not installed (the torch-free Python versions).
Nothing is downloaded: ``HF_HUB_OFFLINE`` is set before the libraries load.
"""

from __future__ import annotations

import importlib.util
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# A model repository that the tests copy and run pytest on; not part of this suite.
collect_ignore = ["acme_repo"]
LIBRARIES = ("torch", "transformers", "diffusers", "peft")
if any(importlib.util.find_spec(library) is None for library in LIBRARIES):
    collect_ignore_glob = ["test_*.py"]
