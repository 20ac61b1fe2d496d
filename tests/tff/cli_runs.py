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
