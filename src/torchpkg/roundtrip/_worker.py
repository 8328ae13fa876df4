"""Clones run in a worker process, so checking a model never changes the caller's session.

Loading a package runs its modules, and their imports may write into extern
libraries (``AutoConfig.register``, torch's DataPipe names, any registry).
In the caller's interpreter that would change what later code sees. Here the
clone runs elsewhere: one server process per caller (started on first use,
reused) imports torch and the package's installed dependencies once, then
forks a child per clone, so every clone starts from the same fresh state, the
way a package loads on another machine. A child that hangs is killed after
the timeout; one that crashes is reported with its last output. Where ``fork``
is missing (or ``TORCHPKG_WORKER_START=spawn``) each clone gets a new process.

Frames on the pipes are a length and a pickle. The server never unpickles
user objects: the job travels as bytes that only the child opens. The
repository's modules a child had to import to open its job (its inputs'
classes) are imported by the server afterwards, for the next children, while
their files and the import path stay as they were (see :class:`_Repository`).
"""

from __future__ import annotations

import atexit
import faulthandler
import importlib
import io
import marshal
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FunctionType, ModuleType
from typing import IO, Any

from torchpkg._importlib import cache_code, cached_code
from torchpkg._main_module import MainModule, as_main, names_main
from torchpkg._pickle_scan import scan_globals_fast
from torchpkg.environment import sys_importer
from torchpkg.mangling import demangle, is_mangled
from torchpkg.roundtrip._clone import (
    CloneJob,
    CloneOutcome,
    Stage,
    measure_registries,
    run_clone,
)
from torchpkg.roundtrip._diagnostics import Diagnostic, DiagnosticKind
from torchpkg.roundtrip._trace import in_repository

__all__ = ["DEFAULT_TIMEOUT", "run_in_worker", "shutdown", "warm_up"]

DEFAULT_TIMEOUT = 300.0
_HEADER = struct.Struct(">Q")
_LOG_TAIL = 2000
_LEARNED = ".learned"
_REPOSITORY = ".repository"
_CODE = ".code"
# What a child leaves for the server next to its outcome.
_REPORTS = (_LEARNED, _REPOSITORY, _CODE)
_START_ENV = "TORCHPKG_WORKER_START"
# Not ``-m``: the classes on the pipes must be this module's, not ``__main__``'s.
_ENTRY = "import sys; from torchpkg.roundtrip._worker import main; main(sys.argv[1:])"


@dataclass(frozen=True)
class _Request:
    job: bytes | None  # a pickled CloneJob, opened in the child only; None: preload only
    sys_path: tuple[str, ...]
    cwd: str
    preload: tuple[str, ...]  # installed modules the server imports once for every child
    timeout: float
    # What the job's inputs need from the caller's `__main__` (a script's or a notebook's
    # classes), as source: the child's `__main__` is not the caller's.
    main_source: str | None = None


@dataclass(frozen=True)
class _Response:
    outcome: bytes | None  # a pickled CloneOutcome
    failure: str | None  # why there is none: "timeout", "signal N", "exit N"
    log: str  # the tail of what the child printed


def _write_frame(stream: IO[bytes], data: bytes) -> None:
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_exactly(stream: IO[bytes], size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError("the worker pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(stream: IO[bytes]) -> bytes:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return _read_exactly(stream, size)


def _import_attribute(module: str, qualname: str) -> Any:
    """The caller's own class or function that a packaged one was loaded from."""
    value: Any = importlib.import_module(module)
    for part in qualname.split("."):
        value = getattr(value, part)
    return value


class _Demangling(pickle.Pickler):
    """Pickles the clone's outcome so that classes and functions of the package come back
    as the caller's own (``pickle`` cannot even find them: mangled names have no parent),
    those of the packaged ``__main__`` and of the child's copy of it as the caller's
    ``__main__``'s."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, FunctionType)):
            module = getattr(obj, "__module__", None)
            if isinstance(module, str) and (is_mangled(module) or module == "__main__"):
                return _import_attribute, (as_main(demangle(module)), obj.__qualname__)
        return NotImplemented


class _CallersMain(pickle.Unpickler):
    """Opens a job whose inputs hold objects of the caller's ``__main__``: they are found
    in a module made from their source (classes there still say ``__main__``)."""

    def __init__(self, data: bytes, source: str) -> None:
        super().__init__(io.BytesIO(data))
        self._main = ModuleType("__main__")
        exec(compile(source, "<the caller's __main__>", "exec"), vars(self._main))

    def find_class(self, module_name: str, name: str) -> Any:
        if module_name != "__main__":
            return super().find_class(module_name, name)
        value: Any = self._main
        for part in name.split("."):
            value = getattr(value, part)
        return value


def _main_source(job: bytes) -> str | None:
    """What the pickled job names of the caller's ``__main__``, as the source of a module
    (what cannot be had is left out: the child then says which name it lacks)."""
    if not names_main(memoryview(job)):
        return None
    main = vars(sys.modules["__main__"])
    scanned = {
        name.partition(".")[0] for module, name in scan_globals_fast(job) if module == "__main__"
    }
    names = [name for name in scanned if name in main]
    if not names:
        return None
    module = MainModule(sys_importer)
    module.add({name: main[name] for name in names})
    return module.source()


def _dumps_outcome(outcome: CloneOutcome) -> bytes:
    buffer = io.BytesIO()
    _Demangling(buffer, protocol=5).dump(outcome)
    return buffer.getvalue()


# --- the caller's side -------------------------------------------------------------------


class _Client:
    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self) -> subprocess.Popen[bytes]:
        self.close()
        self._log = tempfile.TemporaryFile(prefix="torchpkg-worker-")  # noqa: SIM115 (kept open)
        here = str(Path(__file__).resolve().parents[2])  # the folder that holds torchpkg
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])
        command = [sys.executable, "-c", _ENTRY]
        if "torch" in sys.modules:
            command.append("--torch")
        self._process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, env=env
        )
        return self._process

    def request(self, request: _Request) -> _Response:
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                process = self._start()
            assert process.stdin is not None
            assert process.stdout is not None
            try:
                _write_frame(process.stdin, pickle.dumps(request, protocol=5))
                # Generous: the server bounds the clone; this bounds its own imports.
                deadline = request.timeout * 2 + 120
                if os.name == "posix":
                    ready, _, _ = select.select([process.stdout], [], [], deadline)
                    if not ready:
                        raise TimeoutError(f"the worker did not answer in {deadline:.0f} s")
                response: _Response = pickle.loads(_read_frame(process.stdout))
                return response
            except (OSError, EOFError, TimeoutError, pickle.UnpicklingError) as error:
                log = self._log_tail()
                self.close()
                return _Response(None, f"the worker process failed ({error})", log)

    def warm_up(self, preload: tuple[str, ...]) -> None:
        """Start the worker and have it import ``preload`` while the caller goes on."""
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None:
                process = self._start()
            assert process.stdin is not None
            request = _Request(None, tuple(sys.path), os.getcwd(), preload, 0.0)
            try:
                _write_frame(process.stdin, pickle.dumps(request, protocol=5))
            except OSError:  # the next request starts a new worker
                self.close()

    def _log_tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - _LOG_TAIL))
        return self._log.read().decode(errors="replace")

    def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None


_client = _Client()
atexit.register(_client.close)


def warm_up(preload: tuple[str, ...]) -> None:
    """Start the worker now and preload installed modules (e.g. what the tests imported)."""
    _client.warm_up(preload)


def shutdown() -> None:
    """Stop the worker process (a later roundtrip starts a new one)."""
    _client.close()


def run_in_worker(
    job: CloneJob, preload: tuple[str, ...], timeout: float = DEFAULT_TIMEOUT
) -> CloneOutcome:
    """Run ``run_clone(job)`` in the worker process; the outcome's outputs come back with
    the caller's classes in place of the package's."""
    start = time.perf_counter()
    data = pickle.dumps(job, protocol=5)
    request = _Request(data, tuple(sys.path), os.getcwd(), preload, timeout, _main_source(data))
    response = _client.request(request)
    if response.outcome is not None:
        try:
            outcome: CloneOutcome = pickle.loads(response.outcome)
            # What the worker cost beyond the clone's own load and run: the job and the
            # outcome on the pipes, the fork, opening the job.
            spent = time.perf_counter() - start
            outcome.timings["worker"] = spent - sum(outcome.timings.values())
            return outcome
        except Exception as error:
            failure = f"its outcome could not be read here: {type(error).__name__}: {error}"
            return _failed(failure, response.log)
    return _failed(response.failure or "unknown", response.log, timeout)


def _failed(failure: str, log: str, timeout: float | None = None) -> CloneOutcome:
    tail = f"\nlast output of the clone:\n{log.strip()}" if log.strip() else ""
    if failure == "timeout":
        diagnostic = Diagnostic(
            DiagnosticKind.CLONE_TIMEOUT,
            f"the clone did not finish loading and running in {timeout:g} s; it was stopped{tail}",
            "look for a loop or a wait that depends on state the package does not carry, or "
            "raise the limit (torchpkg_timeout ini key, roundtrip(..., timeout=...)).",
        )
    else:
        diagnostic = Diagnostic(
            DiagnosticKind.CLONE_CRASHED,
            f"the process running the clone ended without an answer: {failure}{tail}",
            "the clone crashed the interpreter (a signal, os._exit, a C extension fault): load "
            "the package with torchpkg.PackageImporter in a fresh interpreter to reproduce it.",
        )
    return CloneOutcome(Stage.WORKER_FAILED, [diagnostic])


# --- the worker's side -------------------------------------------------------------------


def _child(request: _Request, result: str) -> None:
    """In the forked (or spawned) child: open the job, run it, write the outcome, and the
    modules of the preloaded libraries it had to import (the server imports them next)."""
    faulthandler.enable()
    sys.path[:] = request.sys_path
    os.chdir(request.cwd)
    importlib.invalidate_caches()
    before = set(sys.modules)
    compiled_before = {key for key, _ in cached_code()}
    assert request.job is not None
    job: CloneJob = (
        pickle.loads(request.job)
        if request.main_source is None
        else _CallersMain(request.job, request.main_source).load()
    )
    with ExitStack() as stack:
        outcome = run_clone(job, stack)
        try:
            data = _dumps_outcome(outcome)
        except Exception as error:
            outcome.outputs = outcome.state = None
            outcome.stage = Stage.RUN_FAILED
            outcome.diagnostics.append(
                Diagnostic(
                    DiagnosticKind.RUN_ERROR,
                    f"the clone ran, but its outputs cannot be sent back from the worker "
                    f"process: {type(error).__name__}: {error}",
                    "return tensors, containers and picklable objects from forward(), or "
                    "check this model in-process (roundtrip(..., isolation='in-process')).",
                )
            )
            data = _dumps_outcome(outcome)
    with open(result, "wb") as stream:
        stream.write(data)
    libraries = {name.partition(".")[0] for name in request.preload}
    learned = [
        name for name in sys.modules if name not in before and name.partition(".")[0] in libraries
    ]
    with open(result + _LEARNED, "w") as stream:
        stream.write("\n".join(learned))
    # The repository's modules the job needed (its inputs' and outputs' classes).
    roots = tuple(os.path.join(root, "") for root in job.roots)
    repository = [
        name
        for name, module in list(sys.modules.items())
        if name not in before and not is_mangled(name) and _repository_file(module, roots)
    ]
    with open(result + _REPOSITORY, "w") as stream:
        stream.write("\n".join(repository))
    # What the package's modules compiled to: the next children load the same sources.
    compiled = [(key, code) for key, code in cached_code() if key not in compiled_before]
    with open(result + _CODE, "wb") as stream:
        marshal.dump(compiled, stream)


def _repository_file(module: object, roots: tuple[str, ...]) -> str | None:
    file = getattr(module, "__file__", None)
    return file if isinstance(file, str) and in_repository(file, roots) else None


class _Repository:
    """The repository's modules the server imported for later children (each child
    imported them to open its job: the classes of the inputs and outputs). Never run,
    only imported, they are what a child would import itself, as long as their files
    and the import path stay as they were: checked before every fork, and all of them
    dropped when anything moved (pytester-style suites rewrite modules per test)."""

    def __init__(self) -> None:
        self._stamps: dict[str, tuple[str, int, int]] = {}
        self._where: tuple[tuple[str, ...], str] = ((), "")

    def refresh(self, request: _Request) -> None:
        where = (request.sys_path, request.cwd)
        if self._stamps and (where != self._where or any(map(_moved, self._stamps.values()))):
            for name in self._stamps:
                sys.modules.pop(name, None)
            self._stamps.clear()
        self._where = where

    def learn(self, names: Iterable[str]) -> None:
        _import_all(names)
        for name in names:
            file = getattr(sys.modules.get(name), "__file__", None)
            stamp = _stamp(file) if isinstance(file, str) else None
            if stamp is not None:
                self._stamps[name] = stamp


def _stamp(file: str) -> tuple[str, int, int] | None:
    try:
        status = os.stat(file)
    except OSError:
        return None
    return (file, status.st_mtime_ns, status.st_size)


def _moved(stamp: tuple[str, int, int]) -> bool:
    return _stamp(stamp[0]) != stamp


def _tail(log: bytes) -> str:
    """The end of what a child printed, without faulthandler's list of loaded extension
    modules (a line as long as the tail, which would push the child's output out)."""
    lines = log.decode(errors="replace").splitlines(keepends=True)
    kept = "".join(line for line in lines if not line.startswith("Extension modules:"))
    return kept[-_LOG_TAIL:]


def _import_all(names: Iterable[str]) -> None:
    for name in names:
        if name in sys.modules:  # every request lists them all again
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # a child meets it again and reports it
            continue


def _wait(pid: int, timeout: float) -> int | None:
    """The child's wait status, or None after killing it at the timeout."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None:  # Linux: woken the moment the child ends, not polled
        try:
            fd = pidfd_open(pid)
        except OSError:
            pass
        else:
            try:
                ready, _, _ = select.select([fd], [], [], timeout)
            finally:
                os.close(fd)
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            return os.waitpid(pid, 0)[1]
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _run_forked(request: _Request, result: str, log: str) -> str | None:
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            _child(request, result)
        except BaseException:
            traceback.print_exc()
            code = 70
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    status = _wait(pid, request.timeout)
    if status is None:
        return "timeout"
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        return f"killed by signal {number} ({signal.Signals(number).name})"
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else f"exit status {code}"


def _run_spawned(request: _Request, result: str, log: str) -> str | None:
    job = result + ".job"
    with open(job, "wb") as stream:
        pickle.dump(request, stream, protocol=5)
    with open(log, "wb") as output:
        command = [sys.executable, "-c", _ENTRY, "--job", job, result]
        child = subprocess.Popen(command, stdout=output, stderr=output, stdin=subprocess.DEVNULL)
        try:
            code = child.wait(timeout=request.timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            return "timeout"
    if code < 0:
        return f"killed by signal {-code} ({signal.Signals(-code).name})"
    return None if code == 0 else f"exit status {code}"


def _serve(protocol_in: IO[bytes], protocol_out: IO[bytes]) -> None:
    forking = hasattr(os, "fork") and os.environ.get(_START_ENV, "fork") == "fork"
    repository = _Repository()
    with tempfile.TemporaryDirectory(prefix="torchpkg-worker-") as folder:
        result, log = os.path.join(folder, "outcome"), os.path.join(folder, "log")
        while True:
            try:
                request: _Request = pickle.loads(_read_frame(protocol_in))
            except EOFError:
                return
            sys.path[:] = request.sys_path
            _import_all(request.preload)
            if request.job is None:
                continue
            repository.refresh(request)
            if forking:  # once here for every child, while nothing new is imported
                measure_registries()
            for path in (result, log, *(result + suffix for suffix in _REPORTS)):
                if os.path.exists(path):
                    os.unlink(path)
            run = _run_forked if forking else _run_spawned
            failure = run(request, result, log)
            outcome = None
            if failure is None and os.path.exists(result):
                with open(result, "rb") as stream:
                    outcome = stream.read()
            elif failure is None:
                failure = "it wrote no outcome"
            with open(log, "rb") if os.path.exists(log) else open(os.devnull, "rb") as stream:
                text = _tail(stream.read())
            _write_frame(protocol_out, pickle.dumps(_Response(outcome, failure, text)))
            if os.path.exists(result + _LEARNED):  # while the caller goes on
                with open(result + _LEARNED) as stream:
                    _import_all(stream.read().split())
            if forking and os.path.exists(result + _REPOSITORY):  # spawned children import
                with open(result + _REPOSITORY) as stream:
                    repository.learn(stream.read().split())
            if forking and os.path.exists(result + _CODE):
                with open(result + _CODE, "rb") as stream:
                    cache_code(marshal.load(stream))


def main(argv: list[str]) -> None:
    if argv[:1] == ["--job"]:  # a spawned child
        with open(argv[1], "rb") as stream:
            request: _Request = pickle.load(stream)
        _child(request, argv[2])
        return
    # The pipes carry frames only: what anything prints goes to stderr (the log).
    protocol_in = os.fdopen(os.dup(0), "rb")
    protocol_out = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(2, 1)
    if "--torch" in argv:
        import torch  # noqa: F401  (once here rather than in every child)
    _serve(protocol_in, protocol_out)
