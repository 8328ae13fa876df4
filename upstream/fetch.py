"""``python -m upstream fetch``: download, extract and install each suite's pinned sdist."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from upstream.suites import REPO, WORKDIR, Suite

__all__ = ["fetch", "installed_from"]

DIST: Path = WORKDIR / "dist"
WHEELS: Path = Path("/opt/wheels")


def _pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)


def _find_links() -> list[str]:
    return ["--find-links", str(WHEELS)] if WHEELS.is_dir() else []


def constraints() -> Path:
    """A constraints file that keeps the running torch: the venv's, or one written here."""
    venv = REPO / ".venv" / "constraints.txt"
    if venv.is_file() and Path(sys.prefix).resolve() == venv.parent.resolve():
        return venv
    path = WORKDIR / "constraints.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch = f"torch=={importlib.metadata.version('torch')}\n"
    except importlib.metadata.PackageNotFoundError:
        torch = ""
    path.write_text(torch, encoding="utf-8")
    return path


def _archive(suite: Suite) -> Path | None:
    names = {suite.name, suite.name.replace("-", "_"), suite.name.replace("_", "-")}
    for name in sorted(names):
        for ext in (".tar.gz", ".zip"):
            path = DIST / f"{name}-{suite.version}{ext}"
            if path.is_file():
                return path
    return None


def _download(suite: Suite) -> Path:
    archive = _archive(suite)
    if archive is None:
        DIST.mkdir(parents=True, exist_ok=True)
        _pip("download", "--no-binary", ":all:", "--no-deps", suite.requirement, "-d", str(DIST))
        archive = _archive(suite)
    if archive is None:
        raise SystemExit(f"{suite.requirement}: pip download left no sdist in {DIST}")
    return archive


def _extract(suite: Suite, archive: Path) -> None:
    """Unpack into WORKDIR; the archive's top folder is NAME-VERSION."""
    print(f"extracting {archive.name} into {WORKDIR}", flush=True)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(WORKDIR)
    else:
        with tarfile.open(archive) as tarred:
            tarred.extractall(WORKDIR, filter="data")
    if not suite.folder.is_dir():
        raise SystemExit(f"{archive.name} did not unpack into {suite.folder}")


def installed_from(suite: Suite) -> Path | None:
    """The folder the suite's distribution is installed editable from, if it is."""
    try:
        dist = importlib.metadata.distribution(suite.name)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != suite.version:
        return None
    direct = dist.read_text("direct_url.json")
    if not direct:
        return None
    data = json.loads(direct)
    url = str(data.get("url", ""))
    if not data.get("dir_info", {}).get("editable") or not url.startswith("file://"):
        return None
    return Path(url.removeprefix("file://")).resolve()


def _install(suite: Suite) -> None:
    if installed_from(suite) == suite.folder.resolve():
        print(f"{suite.requirement}: installed (editable) from {suite.folder}", flush=True)
        return
    _pip("install", "-q", "-c", str(constraints()), *_find_links(), "-e", str(suite.folder))


def _drop_torchvision() -> None:
    """torchvision's only wheel here is a CUDA build that breaks CPU torch."""
    try:
        importlib.metadata.distribution("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return
    _pip("uninstall", "-y", "-q", "torchvision")


def fetch(suites: list[Suite]) -> None:
    for suite in suites:
        if suite.fetched():
            print(f"{suite.requirement}: extracted in {suite.folder}", flush=True)
        else:
            _extract(suite, _download(suite))
        _install(suite)
    _drop_torchvision()
