"""Process hygiene for TFF 0.87.

TFF's local C++ execution context starts a ``worker_binary`` subprocess and only stops it in a
``__del__`` that does not run at interpreter exit. The orphan keeps the parent's stdout and
stderr open, so anything that pipes our output (CI, ``| tee``) waits for it forever.
``install_reaper()`` (done on import of ``tff_experiments``) ends, at exit, the workers that
this process started, and only those. A SIGTERM (``kill``, job schedulers, CI timeouts) would end
Python without running exit hooks, so it is turned into ``SystemExit``: ``finally`` blocks and
the reaper run, and the exit status is 143 as for a plain SIGTERM.
"""
import atexit
import os
import signal
import time

WORKER_NAME = "worker_binary"
_installed = False


def _worker_children(pid):
    """PIDs of the worker_binary processes whose parent is ``pid``."""
    try:
        import psutil
    except ImportError:  # fall back to /proc (Linux)
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if int(fields[1]) == pid and os.path.basename(cmdline) == WORKER_NAME:
                found.append(int(entry))
        return found
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


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def install_reaper():
    global _installed
    if not _installed:
        atexit.register(reap_worker_binaries)
        # Only where nobody else handles SIGTERM, and only the main thread may set handlers.
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            try:
                signal.signal(signal.SIGTERM, _exit_on_sigterm)
            except ValueError:  # not the main thread
                pass
        _installed = True
