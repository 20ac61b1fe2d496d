"""What a federated command line does around its run: prepares its process, checks ``--out``,
locks it, and runs the simulation in a private namespace.

``start_command_line()`` is each command line's first step, before TensorFlow is imported: the
worker reaper (``tff_experiments.runtime.install_reaper``) and no TensorFlow C++ log lines
(``quiet_tensorflow``). Process-wide changes belong to command lines only: importing
``tff_experiments`` makes none.

``launch(...)`` is each command line's last step: it checks and creates the output folder,
locks it (a second run on the same folder is refused), and runs the simulation in a private
namespace (``tff_experiments.runtime``) or, where there is none, in this process. It imports
neither TensorFlow nor TFF, so bad input fails fast and in one line.
"""
import contextlib
import fcntl
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile
from pathlib import Path

from tff_experiments.command_line.errors import UsageError

LOCK_FILE = ".lock"
LOCK_FD_ENV = "KERAS_OPTIM_LOCK_FD"  # the lock a supervising process took and handed down


def prepare_output(out):
    """Checks ``--out`` and creates the folder; returns its ``Path``. One-line errors for an empty
    name, a file, a path under a file, or a place where this user cannot write."""
    if out is None or not str(out).strip():
        raise UsageError("--out must name a folder, got an empty string")
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {out} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # NotADirectoryError (under a file), PermissionError, read-only, ...
        raise UsageError(f"--out {out}: cannot create the folder ({error.strerror or type(error).__name__})") from None
    return path


class RunLock:
    """An exclusive ``flock`` on ``out/.lock`` for the life of the run (released by the kernel
    when the run ends, however it ends). Creating it is also the test that ``out`` is writable."""

    def __init__(self, out):
        self.path = Path(out) / LOCK_FILE
        inherited = os.environ.pop(LOCK_FD_ENV, None)
        if inherited is not None and self._holds(int(inherited)):
            self.fd = int(inherited)  # our supervisor holds it for us (same open file)
            return
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UsageError(f"--out {out}: cannot write there ({error.strerror or type(error).__name__})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            os.close(self.fd)
            raise UsageError(f"--out {out} is in use by another run{f' (pid {owner})' if owner else ''}: wait for it "
                             "or choose another folder") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def _holds(self, fd):
        try:
            mine, theirs = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


LOG_LEVEL_ENV = "TF_CPP_MIN_LOG_LEVEL"
# A TensorFlow C++ log line and its severity (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL), in TensorFlow's
# own format (TF 2.14: "2026-12-07 18:12:18.392474: I tensorflow/core/...") or absl's (TF 2.21:
# "I0000 00:00:1796667477.517589   10933 port.cc:153] ...").
_LOG_LINE = re.compile(rb"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tf>[IWEF]) "
                       rb"|(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+(?:\.\d+)?\s+\d+ \S+:\d+\] )")
_SEVERITIES = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}
# absl prints it before its first line until someone calls absl::InitializeLog (TensorFlow never does).
_ABSL_PREAMBLE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
# The second line of cpu_feature_guard's note ("This TensorFlow binary is optimized to use ...").
_CONTINUATIONS = (b"To enable the following instructions:",)


def quiet_tensorflow():
    """No TensorFlow C++ log lines (grappler's "Starting new session", the CUDA plugin, oneDNN and
    CPU feature notes, TF-TRT's warning) unless the user asks for them with their own
    ``TF_CPP_MIN_LOG_LEVEL`` (``TF_CPP_MIN_LOG_LEVEL=0`` shows them all).

    Call it before TensorFlow is imported (it imports nothing). It sets ``TF_CPP_MIN_LOG_LEVEL=3``
    unless the user set it: level 3 also hides TF 2.14's spurious "Unable to register cuDNN
    factory" ERROR lines; real failures still reach the user as exceptions. TensorFlow 2.21 prints
    some lines while it loads whatever the level (absl's "All log messages before
    absl::InitializeLog() ..." and INFO lines from port.cc and cudart_stub.cc, twice): the first
    ``import tensorflow`` runs with file descriptor 2 captured, and the lines it printed are
    written back without the log lines below the level (``without_tensorflow_logs``). Only a
    command line calls it: it changes the environment and ``sys.meta_path``.
    """
    os.environ.setdefault(LOG_LEVEL_ENV, "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietImport())


def _min_log_level():
    try:
        return int(os.environ.get(LOG_LEVEL_ENV, "0"))
    except ValueError:
        return 0


def without_tensorflow_logs(text, level):
    """``text`` (bytes) without the TensorFlow C++ log lines whose severity is below ``level``
    (0 INFO, 1 WARNING, 2 ERROR, 3 FATAL: ``TF_CPP_MIN_LOG_LEVEL``'s meaning); everything else
    is kept as it was."""
    if level <= 0:
        return text
    kept, dropped = [], False
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            dropped = _SEVERITIES[match.group("tf") or match.group("absl")] < level
        elif line.rstrip(b"\r\n") == _ABSL_PREAMBLE:
            dropped = True
        elif not (dropped and line.startswith(_CONTINUATIONS)):
            dropped = False
        if not dropped:
            kept.append(line)
    return b"".join(kept)


class _QuietImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once (as the other finders do) and has its loader run the module with
    file descriptor 2 captured and filtered (``_filtered_stderr``); then leaves ``sys.meta_path``."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # The module keeps its real loader (importlib.resources and the like ask it).
        module.__loader__ = module.__spec__.loader = self.loader
        with _filtered_stderr(_min_log_level()):
            self.loader.exec_module(module)


@contextlib.contextmanager
def _filtered_stderr(level):
    """Runs the block with file descriptor 2 (C++ and Python writes alike) going to a temporary
    file, then writes it to the real one without TensorFlow's log lines below ``level``."""
    try:
        capture = tempfile.TemporaryFile()
        saved = os.dup(2)
    except OSError:  # no stderr, or nowhere to put the lines: leave them alone
        yield
        return
    with capture:
        _flush_stderr()
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush_stderr()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            _write_all(2, without_tensorflow_logs(capture.read(), level))


def _flush_stderr():
    for stream in (sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()


def _write_all(fd, data):
    while data:
        try:
            data = data[os.write(fd, data):]
        except OSError:
            return


def start_command_line():
    """What a command line does first, before TensorFlow or TFF is imported: stop TFF's
    ``worker_binary`` at exit and make SIGTERM end the run through ``finally`` blocks
    (``runtime.install_reaper``), and keep TensorFlow quiet (``quiet_tensorflow``)."""
    from tff_experiments import runtime

    runtime.install_reaper()
    quiet_tensorflow()


def warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def launch(run, settings, *, module, argv, isolate, network_needed_for=None):
    """Checks and locks ``settings.out``, then ``run(settings, out)``, in a private namespace when
    ``isolate`` (the command line) and the OS allows one (re-running ``python -m module argv``
    there; this process waits as its supervisor). Returns the exit status.

    ``network_needed_for``: why the run needs the real network (remote workers, a download), or
    ``None``: then the namespace has a network of its own, and the run reaches nothing outside.
    With a reason the run keeps its PID namespace only, and says why."""
    from tff_experiments import runtime

    out = prepare_output(settings.out)
    with RunLock(out) as lock:
        if isolate and not runtime.inside_namespace():
            private_network = network_needed_for is None
            unavailable = runtime.namespace_unavailable(private_network)
            if unavailable is None:
                if not private_network:
                    warn(f"{network_needed_for} need the real network: the run keeps its PID namespace, not the "
                         "network one")
                os.environ[LOCK_FD_ENV] = str(lock.fd)
                try:
                    argv = sys.argv[1:] if argv is None else list(argv)
                    return runtime.run_in_namespace([sys.executable, "-m", module, *argv],
                                                    private_network=private_network, pass_fds=[lock.fd])
                finally:
                    os.environ.pop(LOCK_FD_ENV, None)
            warn(f"no private namespace here ({unavailable}): TFF's executor service listens on all interfaces "
                 "during the run")
        runtime.prepare_namespace()  # (start_command_line installed the worker reaper)
        return run(settings, out)
