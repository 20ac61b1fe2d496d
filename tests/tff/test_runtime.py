"""TFF 0.87's worker_binary outlives Python and holds its stdout: importing tff_experiments
must reap it, so that a piped run ends and leaves no process behind."""
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow_federated")

SCRIPT = """
import os, sys
{prelude}
import tensorflow as tf, tensorflow_federated as tff

@tff.tensorflow.computation(tf.int32)
def add_one(x):
    return x + 1

assert add_one(3) == 4
print("pid", os.getpid(), flush=True)
"""


def _workers():
    out = subprocess.run(["pgrep", "-f", "worker_binary"], capture_output=True, text=True)
    return [int(pid) for pid in out.stdout.split()]


def test_piped_run_ends_and_leaves_no_worker():
    # stdout is a pipe: communicate() returns only when every holder of the pipe has exited.
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(prelude="import tff_experiments")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        out, _ = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the piped TFF run did not end: a worker_binary kept the pipe open")
    assert proc.returncode == 0
    assert "pid" in out


def test_without_the_reaper_the_worker_is_left_behind():
    """The failure the reaper exists for (and proof that the test above can fail)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(prelude="")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    pid = int(proc.stdout.readline().split()[1])
    proc.wait(timeout=240)
    orphans = [w for w in _workers() if _session_of(w) == pid]
    try:
        assert orphans, "expected TFF to leave its worker_binary running"
    finally:
        for w in orphans:
            os.kill(w, signal.SIGKILL)
        proc.stdout.close()


def test_sigterm_ends_the_run_and_its_worker():
    """`kill PID` (SIGTERM) skips exit hooks unless handled: the run must still reap its worker."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT.format(prelude="import tff_experiments") + "import time; time.sleep(300)"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    pid = int(proc.stdout.readline().split()[1])
    workers = [w for w in _workers() if _session_of(w) == pid]
    assert workers, "the script started no worker_binary: nothing to test"
    os.kill(pid, signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        for w in workers:
            os.kill(w, signal.SIGKILL)
        pytest.fail("the terminated TFF run did not end: a worker_binary kept the pipe open")
    assert proc.returncode == 128 + signal.SIGTERM
    left = [w for w in _workers() if w in workers]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "SIGTERM left the worker_binary running"


def _session_of(pid):
    # The script ran as a session leader (start_new_session): its worker shares its session id.
    try:
        return os.getsid(pid)
    except ProcessLookupError:
        return None
