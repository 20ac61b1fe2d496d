"""Process hygiene and isolation for TFF 0.87.

Every TFF run starts ``worker_binary --port=N``, an unauthenticated executor service that
listens on *all* interfaces and runs any TensorFlow graph sent to it (graphs read and write
files through ``tf.io``); it has no flag to bind to loopback. TFF also stops it only in a
``__del__`` that does not run at interpreter exit, and restarts it when a call fails, so a
killed run can leave it behind holding the parent's stdout (``| tee`` never returns).

Both are settled at the root by ``run_in_namespace``: the command lines run the whole
simulation in a private user, network and PID namespace (``unshare --user --map-root-user
--net --pid --fork --kill-child --mount-proc``, loopback brought up inside). The service is
then reachable from this namespace only, and when the run's first process ends the kernel
kills every process of the namespace, so no worker can outlive the run. With remote workers
(``--workers``) the run needs the real network: it keeps the PID namespace (nothing outlives
it) but not the network one, and says so in one line. Where the OS allows no namespace
(no unprivileged user namespaces, no ``unshare``, macOS) the run goes on in this process, as
before, with a one-line warning.

In this process (library use, the fallback), ``install_reaper()`` ends, at exit, the workers
that this process started, and only those. A SIGTERM (``kill``, job schedulers, CI timeouts)
would end Python without running exit hooks, so it is turned into ``SystemExit``: ``finally``
blocks and the reaper run, and the exit status is 143 as for a plain SIGTERM. A signal that lands
while Python runs a garbage-collector callback or a ``__del__`` (where exceptions are dropped) is
delivered again once it has left it.

Importing ``tff_experiments`` installs none of this: an exit hook, a SIGTERM handler and
``sys.unraisablehook`` are the process's, not a library's. The command lines install the reaper
first thing (``command_line.launch.start_command_line``, before TensorFlow is imported), and so
do the examples that run TFF in their own process. A program of your own that starts TFF runtimes
calls ``tff_experiments.runtime.install_reaper()`` itself if it wants it (early, from its main
thread), or ``reap_worker_binaries()`` when it is done with TFF.
"""
import atexit
import ctypes
import fcntl
import functools
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

WORKER_NAME = "worker_binary"
_installed = False


def _children_of(pid):
    """PIDs of the processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


def _command_name(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0")[0].decode(errors="replace"))
    except OSError:
        return None


def _worker_children(pid):
    """PIDs of the worker_binary processes whose parent is ``pid``."""
    try:
        import psutil
    except ImportError:  # fall back to /proc (Linux)
        return [child for child in _children_of(pid) if _command_name(child) == WORKER_NAME]
    children = []
    for child in psutil.Process(pid).children(recursive=False):
        try:
            if WORKER_NAME in child.name() or any(WORKER_NAME in a for a in child.cmdline()[:1]):
                children.append(child.pid)
        except psutil.Error:
            continue
    return children


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # reap it if it is our zombie
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def reap_worker_binaries(timeout=5.0):
    """Stops the TFF worker_binary processes started by this process; returns their PIDs."""
    pids = _worker_children(os.getpid())
    for sig in (signal.SIGINT, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        if not any(_alive(p) for p in pids):
            break
    _forget_stopped_services(pids)
    return pids


def _forget_stopped_services(pids):
    """TFF's ServiceManager.__del__ would signal the worker again during interpreter shutdown
    (and print an ignored exception): tell the managers their process is gone."""
    if not pids:
        return
    import gc

    for obj in gc.get_objects():
        if type(obj).__name__ == "ServiceManager" and getattr(getattr(obj, "_process", None), "pid", None) in pids:
            obj._process = None


def _reap_at_exit():
    reap_worker_binaries()
    # Every worker is gone: TFF's ServiceManager.__del__ has nothing left to stop, and run during
    # interpreter shutdown (modules already torn down) it only prints an ignored AttributeError.
    import gc

    for cls in {type(obj) for obj in gc.get_objects() if type(obj).__name__ == "ServiceManager"}:
        cls.__del__ = lambda self: None


class SignalExit(SystemExit):
    """``SystemExit(128 + signum)`` raised by a signal handler; it remembers its signal."""

    def __init__(self, signum):
        super().__init__(128 + signum)
        self.signum = signum


def _exit_on_sigterm(signum, frame):
    raise SignalExit(signum)


def _redeliver_swallowed_signal(unraisable, _previous_hook):
    """A signal's exception raised while Python runs a garbage-collector callback (jax registers
    one), a ``__del__`` or a weakref callback is printed as "Exception ignored" and dropped, so the
    run would go on after SIGTERM or Ctrl-C. Deliver the signal again from a thread, once the main
    thread has left that callback (a pending signal is handled at its next bytecode)."""
    _previous_hook(unraisable)
    if isinstance(unraisable.exc_value, SignalExit):
        signum = unraisable.exc_value.signum
    elif isinstance(unraisable.exc_value, KeyboardInterrupt):
        signum = signal.SIGINT
    else:
        return
    import _thread
    import threading

    timer = threading.Timer(0.05, _thread.interrupt_main, args=(signum,))
    timer.daemon = True
    timer.start()


def install_reaper():
    """Makes this process stop the ``worker_binary`` processes it started when it exits (an
    ``atexit`` hook), turns SIGTERM into ``SignalExit`` (where nobody handles SIGTERM yet) and
    delivers again a signal whose exception Python dropped (``sys.unraisablehook``). For a
    program's main path, not for a library's import; calling it again does nothing."""
    global _installed
    if not _installed:
        atexit.register(_reap_at_exit)
        sys.unraisablehook = functools.partial(_redeliver_swallowed_signal, _previous_hook=sys.unraisablehook)
        # Only where nobody else handles SIGTERM, and only the main thread may set handlers.
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            try:
                signal.signal(signal.SIGTERM, _exit_on_sigterm)
            except ValueError:  # not the main thread
                pass
        _installed = True


# ---------------------------------------------------------------------------------------------
# Namespaces

NAMESPACE_ENV = "KERAS_OPTIM_NAMESPACE"  # "off": never isolate; "inside": set for the run inside
_UNSHARE_FLAGS = ("--user", "--map-root-user", "--pid", "--fork", "--kill-child", "--mount-proc")
_PR_SET_PDEATHSIG = 1
# struct ifreq: 16 bytes of name, then a union of 24 bytes whose first field is the short flags.
_IFREQ = "16sH22x"
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def inside_namespace():
    return os.environ.get(NAMESPACE_ENV) == "inside"


def _unshare_command(private_network):
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    return [unshare, *_UNSHARE_FLAGS, *(["--net"] if private_network else [])]


def namespace_unavailable(private_network=True):
    """``None`` where ``run_in_namespace`` can work here, else why not (a short phrase)."""
    if os.environ.get(NAMESPACE_ENV) == "off":
        return f"{NAMESPACE_ENV}=off"
    if not sys.platform.startswith("linux"):
        return f"no Linux namespaces on {sys.platform}"
    command = _unshare_command(private_network)
    if command is None:
        return "no unshare command"
    try:
        probe = subprocess.run([*command, "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"unshare failed ({type(error).__name__})"
    if probe.returncode != 0:
        reason = " ".join(probe.stderr.split())[:120] or f"exit status {probe.returncode}"
        return f"unshare failed: {reason}"
    return None


def bring_up_loopback():
    """Sets ``lo`` up (a new network namespace starts with it down); what ``ip link set lo up`` does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack(_IFREQ, b"lo", 0)
        flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        if not flags & _IFF_UP:
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack(_IFREQ, b"lo", flags | _IFF_UP))


def _die_with_parent():
    # In the unshare child, before exec: SIGKILL it if this (supervising) process dies, so
    # that --kill-child then ends the run and the namespace goes with it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def run_in_namespace(argv, private_network=True, pass_fds=()):
    """Runs ``argv`` (a Python command) in new user + PID (+ network) namespaces; returns its
    exit status.

    This process stays outside as a small supervisor: it forwards SIGINT, SIGTERM and SIGHUP
    to the run (``unshare`` itself ignores them), SIGKILLs the namespace on a second signal,
    and returns the run's exit status (128 + N for a run ended by signal N). The run sees
    ``KERAS_OPTIM_NAMESPACE=inside``.
    """
    env = dict(os.environ, **{NAMESPACE_ENV: "inside"})
    if private_network:
        env[NAMESPACE_ENV + "_NET"] = "1"
    unshare = subprocess.Popen([*_unshare_command(private_network), *argv], env=env, pass_fds=tuple(pass_fds),
                               preexec_fn=_die_with_parent, process_group=0)
    received = []

    def forward(signum, frame):
        received.append(signum)
        run = _children_of(unshare.pid)
        if len(received) > 1 or not run:  # a second signal, or the run is not started yet
            _kill(unshare.pid, signal.SIGKILL)  # --kill-child takes the run and its namespace
        else:
            for pid in run:
                _kill(pid, signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                code = unshare.wait()
                break
            except InterruptedError:
                continue
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - code if code < 0 else code


def _kill(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def prepare_namespace():
    """Inside ``run_in_namespace``: brings loopback up, and makes SIGHUP end the run like SIGTERM
    (as PID 1 of its namespace, the run ignores the signals it has no handler for)."""
    if not inside_namespace():
        return
    if os.environ.get(NAMESPACE_ENV + "_NET") == "1":
        bring_up_loopback()
    if signal.getsignal(signal.SIGHUP) is signal.SIG_DFL:
        signal.signal(signal.SIGHUP, _exit_on_sigterm)
