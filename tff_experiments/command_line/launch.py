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
import fcntl
import os
import sys
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


def quiet_tensorflow():
    """No TensorFlow C++ log lines (grappler's "Starting new session", the CUDA plugin and CPU
    feature notes) unless the user asked for them with their own ``TF_CPP_MIN_LOG_LEVEL``.

    Call it before TensorFlow is imported. Level 3 also hides TF 2.14's spurious "Unable to
    register cuDNN factory" ERROR lines; real failures still reach the user as exceptions.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def start_command_line():
    """What a command line does first, before TensorFlow or TFF is imported: stop TFF's
    ``worker_binary`` at exit and make SIGTERM end the run through ``finally`` blocks
    (``runtime.install_reaper``), and keep TensorFlow quiet (``quiet_tensorflow``)."""
    from tff_experiments import runtime

    runtime.install_reaper()
    quiet_tensorflow()


def warn(message):
    print(f"warning: {message}", file=sys.stderr, flush=True)


def launch(run, settings, *, module, argv, isolate, private_network=True):
    """Checks and locks ``settings.out``, then ``run(settings, out)``, in a private namespace when
    ``isolate`` (the command line) and the OS allows one (re-running ``python -m module argv``
    there; this process waits as its supervisor). Returns the exit status."""
    from tff_experiments import runtime

    out = prepare_output(settings.out)
    with RunLock(out) as lock:
        if isolate and not runtime.inside_namespace():
            unavailable = runtime.namespace_unavailable(private_network)
            if unavailable is None:
                if not private_network:
                    warn("remote workers need the real network: TFF's local executor service listens on all "
                         "interfaces during the run; keep the workers on a network you control (docs/async_fl.md)")
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
