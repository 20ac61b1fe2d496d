"""TFF 0.87's worker_binary outlives Python and holds its stdout: ``runtime.install_reaper()`` (which
the command lines call first thing; importing tff_experiments does not) must reap it, so that a
piped run ends and leaves no process behind."""
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow_federated")

REAPER = "from tff_experiments.runtime import install_reaper; install_reaper()"
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
        [sys.executable, "-c", SCRIPT.format(prelude=REAPER)],
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
        [sys.executable, "-c", SCRIPT.format(prelude=REAPER) + "import time; time.sleep(300)"],
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


# ---------------------------------------------------------------------------------------------
# The command lines run in a private namespace: their executor service is unreachable from other
# machines, and nothing of a run outlives it, however it is stopped.

RUNS = {
    "asynchronous": ["--algorithm", "async", "--model", "logistic", "--clients", "3", "--horizon", "400",
                     "--local-steps", "1", "--batch-size", "8", "--eval-every", "100", "--checkpoint-every", "1000"],
    "robust": ["--machines", "5", "--byzantine", "1", "--batch-size", "4", "--steps", "5000", "--eval-every", "1000",
               "--checkpoint-every", "1000"],
}


def _session(leader):
    """PIDs of the live processes of the session that ``leader`` leads (its whole run)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == leader and _state(int(entry)) != "Z":
                    found.append(int(entry))
            except (ProcessLookupError, PermissionError):
                continue
    return found


def _state(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def _listening(pid):
    """``[(address, port)]`` of the TCP sockets that ``pid`` listens on (hex addresses as /proc has them)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    address, port = fields[1].split(":")
                    found.append((address, int(port, 16)))
    return found


LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def _reachable_listeners(pid):
    """The listening sockets of ``pid`` that another machine could reach."""
    listening = _listening(pid)
    if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
        with open(f"/proc/{pid}/net/dev") as f:
            interfaces = {line.split(":")[0].strip() for line in f.readlines()[2:]}
        return [] if interfaces <= {"lo"} else [(a, p, sorted(interfaces)) for a, p in listening]
    return [(a, p) for a, p in listening if a not in LOOPBACK]


def _no_namespace():
    from tff_experiments.runtime import namespace_unavailable

    return namespace_unavailable()


@pytest.mark.skipif(_no_namespace() is not None, reason=f"no private namespace here: {_no_namespace()}")
@pytest.mark.parametrize("command,signum", [("asynchronous", signal.SIGINT), ("robust", signal.SIGTERM)])
def test_a_run_listens_on_no_network_and_leaves_nothing_when_signalled(command, signum, tmp_path):
    from tests.tff import cli_runs

    out = tmp_path / "out"
    # Ten times the usual length: a run that only stopped at its end would outlast the wait below.
    longer = ["--horizon", "4000"] if command == "asynchronous" else ["--steps", "50000"]
    proc = cli_runs.start(f"tff_experiments.{command}", RUNS[command] + longer + ["--out", str(out), "--no-progress"],
                          start_new_session=True, preexec_fn=_signals_as_in_a_terminal)
    try:
        cli_runs.wait_for_checkpoint(proc, out, step=0)  # TFF has run: its worker_binary listens
        members = _session(proc.pid)
        workers = [p for p in members if _name(p) == WORKER]
        assert workers, "no worker_binary in the run: nothing to test"
        exposed = {p: _reachable_listeners(p) for p in members if _listening_or_none(p)}
        assert not any(exposed.values()), f"listening beyond loopback: {exposed}"
        os.killpg(proc.pid, signum)  # as Ctrl-C / kill of the job would
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    left = _session(proc.pid)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of the run outlived it: {[(p, _name(p)) for p in left]}"
    assert proc.returncode == (130 if signum == signal.SIGINT else 128 + signum), stderr[-2000:]


WORKER = "worker_binary"


def _signals_as_in_a_terminal():
    # A shell without job control starts background commands with SIGINT ignored (POSIX), and
    # the ignoring is inherited: a suite launched that way must not test Ctrl-C on a deaf run.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _name(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def _listening_or_none(pid):
    try:
        return _listening(pid)
    except OSError:  # ended meanwhile
        return []


SWALLOWED_SIGNAL = """
import gc, os, signal, sys, time
from tff_experiments.runtime import install_reaper
install_reaper()

sent = []

def send_inside_gc_callback(phase, info):
    # The handler runs inside this callback, where Python prints its exception and drops it
    # (jax registers such a callback: a SIGTERM during a run's start-up landed there).
    if not sent:
        sent.append(1)
        os.kill(os.getpid(), signal.{name})
        time.sleep(5)  # the handler runs here, at once (if the signal went to another thread, soon)

gc.callbacks.append(send_inside_gc_callback)
gc.collect()
gc.callbacks.remove(send_inside_gc_callback)
try:
    for _ in range(500):
        time.sleep(0.01)
    print("still running after the signal", flush=True)
    sys.exit(3)
finally:
    print("finally ran", flush=True)
"""


@pytest.mark.parametrize("name, status, last_line", [("SIGTERM", 143, "tff_experiments.runtime.SignalExit"),
                                                     ("SIGINT", 1, "KeyboardInterrupt")])
def test_signal_swallowed_by_a_gc_callback_still_ends_the_run(name, status, last_line):
    proc = subprocess.run([sys.executable, "-c", SWALLOWED_SIGNAL.format(name=name)],
                          capture_output=True, text=True, timeout=240,
                          preexec_fn=_signals_as_in_a_terminal)
    assert "Exception ignored" in proc.stderr  # the signal did land where it is dropped
    assert "still running" not in proc.stdout
    assert "finally ran" in proc.stdout
    assert proc.returncode == status, proc.stderr[-2000:]
    # SIGTERM ends quietly after the dropped exception (SystemExit); Ctrl-C with Python's own
    # KeyboardInterrupt traceback.
    assert proc.stderr.strip().splitlines()[-1].startswith(last_line)
