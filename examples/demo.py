"""Package every model of the example zoo, load it back, and compare outputs.

Run with `make demo`. Exits non-zero if any model does not survive packaging.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from modelzoo.convnet import ConvNet
from modelzoo.mlp import MLP, MLPConfig

from torchpkg import PackageExporter, PackageImporter


def check(name: str, model: torch.nn.Module, inputs: torch.Tensor, folder: Path) -> bool:
    model.eval()
    path = folder / f"{name}.pt"
    with PackageExporter(path) as exporter:
        exporter.intern("modelzoo.**")
        exporter.save_pickle("model", "model.pkl", model)
    with PackageImporter(path) as importer:
        clone = importer.load_pickle("model", "model.pkl")
        with torch.no_grad():
            same = torch.equal(model(inputs), clone(inputs))
        print(
            f"{name:<8} {'OK' if same else 'MISMATCH':<9} {path.stat().st_size:>8} bytes  "
            f"interned={len(exporter.interned_modules())} "
            f"extern={len(exporter.externed_modules())}  loaded as {type(clone).__module__}"
        )
    return same


def main() -> int:
    torch.manual_seed(0)
    cases = {
        "mlp": (MLP(MLPConfig()), torch.randn(5, 16)),
        "convnet": (ConvNet(), torch.randn(2, 3, 8, 8)),
    }
    with tempfile.TemporaryDirectory() as folder:
        results = [check(name, m, x, Path(folder)) for name, (m, x) in cases.items()]
    print(f"{sum(results)} of {len(results)} models survive packaging")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
