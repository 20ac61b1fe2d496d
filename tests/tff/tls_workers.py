"""Starting ``python -m tff_experiments.workers`` (a TFF executor service behind a
mutual-TLS front, in its own namespace) from tests, and stopping it."""
import os
import signal
import subprocess
import sys
import time

from tests.tff.cli_runs import REPO


def start_tls_worker(port, certificates, host="", prefix=(), log=None):
    """Starts the worker command on ``port`` with the worker's certificate of ``certificates``
    (``tests.tff.certificates.make_certificates``); returns the ``Popen`` once it serves.

    Args:
      port: the TLS port.
      certificates: the paths of the test's certificates.
      host: the address it listens on (default every interface).
      prefix: a command to run it under (``nsenter ...``).
      log: a file for its stderr (one line per refused client).
    """
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [*prefix, sys.executable, "-m", "tff_experiments.workers", "--port", str(port), "--host", host,
         "--tls-ca", certificates["ca"], "--tls-cert", certificates["worker_cert"],
         "--tls-key", certificates["worker_key"]],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, text=True,
        start_new_session=True)
    line = process.stdout.readline()  # "worker ready on ..." (or nothing: it failed)
    if not line.startswith("worker ready"):
        process.wait(timeout=30)
        raise RuntimeError(f"the TLS worker did not start (exit status {process.returncode})")
    return process


def stop_tls_worker(process, timeout=20):
    """SIGTERM (the command stops its namespace), then SIGKILL of its session."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    process.stdout.close()


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
