"""Where things live inside an archive."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath

__all__ = ["module_path", "record_path"]


def record_path(package: str, resource: str) -> str:
    if PurePosixPath(resource).is_absolute() or PureWindowsPath(resource).anchor:
        raise ValueError(f"resource {resource!r} must be a relative path, not an absolute one")
    resource = resource.replace("\\", "/")
    if not resource or any(part in ("", ".", "..") for part in resource.split("/")):
        raise ValueError(
            f"resource {resource!r} must be a relative path without empty, '.' or '..' parts"
        )
    package_path = package.replace(".", "/")
    return f"{package_path}/{resource}" if package_path else resource


def module_path(module: str, is_package: bool) -> str:
    base = module.replace(".", "/")
    return f"{base}/__init__.py" if is_package else f"{base}.py"
