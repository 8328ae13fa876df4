"""Programs run as ``__main__`` in a fresh interpreter (a script, ``python -c``, IPython
cells) that export what they define, and loading their archives elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

# Appended to a program to export `obj` (an expression); with --report, print the problems
# of a failed export instead of raising. In IPython it is a cell of its own.
_EXPORT = """
# cell
import sys as _sys
from torchpkg import PackageExporter as _PackageExporter, PackagingError as _PackagingError
try:
    with _PackageExporter(_sys.argv[1]) as _exporter:
        _exporter.save_pickle("main", "obj.pkl", {obj})
except _PackagingError as _error:
    if "--report" not in _sys.argv:
        raise
    import json as _json
    print(_json.dumps([[p.reason.name, p.subject, p.context] for p in _error.problems]))
"""

_LOAD = """
import sys
from torchpkg import PackageImporter
with PackageImporter(sys.argv[1]) as importer:
    obj = importer.load_pickle("main", sys.argv[3])
    print(eval(sys.argv[2]))
"""

# IPython runs each cell as it would in a notebook: `__main__` is its user namespace.
_IPYTHON = """
import json, sys
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
for cell in json.loads(sys.argv[-1]):
    shell.run_cell(cell, store_history=True).raise_error()
"""


@dataclass(frozen=True)
class Main:
    """Programs run as ``__main__``: a script, ``python -c``, IPython cells."""

    directory: Path

    def export(self, source: str, obj: str, how: str = "script") -> Path:
        """Run ``source`` as ``how`` says and export ``obj``; the archive's path.

        The script is deleted afterwards: loading must not need it.
        """
        archive = self.directory / "main.pt"
        self.run(textwrap.dedent(source) + _EXPORT.format(obj=obj), how, str(archive))
        assert archive.exists()
        return archive

    def problems(self, source: str, obj: str, how: str = "script") -> list[list[str | None]]:
        """The problems ``[reason, subject, context]`` of an export that must fail."""
        archive = self.directory / "main.pt"
        program = textwrap.dedent(source) + _EXPORT.format(obj=obj)
        out = self.run(program, how, str(archive), "--report")
        assert not archive.exists()
        problems: list[list[str | None]] = json.loads(out)
        return problems

    def load(self, archive: Path, expression: str, resource: str = "obj.pkl") -> str:
        """``expression`` about ``obj``, loaded from ``main/resource`` in a fresh
        interpreter elsewhere."""
        elsewhere = self.directory / "elsewhere"
        elsewhere.mkdir(exist_ok=True)
        return _python(["-c", _LOAD, str(archive), expression, resource], elsewhere)

    def run(self, source: str, how: str = "script", *args: str) -> str:
        """Run ``source`` as a script, with ``-c`` or as IPython cells (split at ``# cell``
        lines); its output."""
        program = textwrap.dedent(source)
        if how == "-c":
            return _python(["-c", program, *args], self.directory)
        if how == "ipython":
            cells = program.split("\n# cell\n")
            argv = f"import sys; sys.argv[1:] = {list(args)!r}"
            # A profile of its own: IPython's history database is one SQLite file, which
            # shells of parallel tests would lock each other out of.
            env = {"IPYTHONDIR": str(self.directory / ".ipython")}
            cells_json = json.dumps([argv, *cells])
            return _python(["-c", _IPYTHON, *args, cells_json], self.directory, env)
        script = self.directory / "script.py"
        script.write_text(program)
        try:
            return _python([str(script), *args], self.directory)
        finally:
            script.unlink()


def _python(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()
