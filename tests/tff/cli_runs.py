"""Running a command line of tff_experiments in a child process, as a user would, and killing
it mid-run (with TFF's worker_binary) to test resuming."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import tensorflow as tf

REPO = Path(__file__).resolve().parents[2]
TF_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] ")


def start(module, args, env=None, **popen):
    """``python -m module *args`` from the repository root, with piped text output, as a user
    starts it (TensorFlow's log level left to the command line); ``env``: more variables."""
    env = dict({k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, **(env or {}))
    env["PYTHONPATH"] = str(REPO)
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def tensorflow_log_lines(text):
    """The TensorFlow C++ log lines (``2026-01-01 12:00:00.000: I tensorflow/...``) in ``text``."""
    return [line for line in text.splitlines() if TF_LOG_LINE.match(line)]


def wait_for_checkpoint(process, out, step, timeout=240):
    """Waits until `process` has a checkpoint of step >= `step` on disk (and still runs)."""
    deadline = time.monotonic() + timeout
    while not [p for p in (out / "checkpoints").glob("step_*")
               if p.name[5:].isdigit() and int(p.name[5:]) >= step]:
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.02)
    assert process.poll() is None, "the run ended before the checkpoint was seen: nothing to test"


def kill_after_checkpoint(process, out, step, timeout=240):
    """SIGKILLs `process` and its children once a checkpoint of step >= `step` is on disk."""
    try:
        wait_for_checkpoint(process, out, step, timeout)
    finally:
        try:
            children = psutil.Process(process.pid).children(recursive=True)  # TFF's worker_binary
        except psutil.NoSuchProcess:  # already ended and reaped: keep the assertion's message
            children = []
        process.send_signal(signal.SIGKILL)
        process.wait()
        for child in children:
            try:
                child.kill()
                child.wait(5)
            except psutil.NoSuchProcess:
                pass


def assert_same_exported_weights(out, reference):
    want = tf.keras.models.load_model(reference / "model" / "model.keras").get_weights()
    got = tf.keras.models.load_model(out / "model" / "model.keras").get_weights()
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


# How long a lost worker may take to end the run (the documented bound).
LOST_WORKER_SECONDS = 60


def lose_a_worker_then_resume(module, args, out, workers, ports, step):
    """``python -m module args`` (a run on the ``worker_binary`` processes ``workers`` at
    localhost ``ports``) loses ``workers[0]`` once its checkpoint of ``step`` is on disk: checks
    that the run ends within ``LOST_WORKER_SECONDS`` with one line naming that worker, no
    traceback and nothing exported; then starts the worker again (in ``workers[0]``) and reruns
    the same command to its end. Returns the rerun's stderr."""
    from tff_experiments.workers.remote import stop
    from tff_experiments.workers.service import start_worker_binary

    address = f"localhost:{ports[0]}"
    run = start(module, args)
    try:
        wait_for_checkpoint(run, out, step=step)
        stop(workers[:1])
        lost = time.monotonic()
        _, stderr = run.communicate(timeout=LOST_WORKER_SECONDS + 60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    waited = time.monotonic() - lost
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and len(errors) == 1 and address in errors[0], stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert waited < LOST_WORKER_SECONDS, f"the lost worker ended the run after {waited:.0f} s"
    assert not (out / "model").exists()

    workers[0] = start_worker_binary(ports[0])
    rerun = start(module, args)
    _, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]
    return stderr
