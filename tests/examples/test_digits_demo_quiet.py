"""The demo (``bash scripts/demo.sh`` runs ``examples/digits_demo.py``) starts quietly: no TensorFlow
C++ log lines (TF 2.21 prints absl's "All log messages before absl::InitializeLog() ..." and
oneDNN/CUDA INFO lines while it loads, whatever ``TF_CPP_MIN_LOG_LEVEL`` says) unless the user
sets ``TF_CPP_MIN_LOG_LEVEL``."""
import os
import subprocess
import sys

from tests.examples.tensorflow_logs import environment_without_log_level, tensorflow_log_lines

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_demo_prints_no_tensorflow_log_line(tmp_path):
    # One epoch: the run's length does not matter, TensorFlow's start does.
    command = [sys.executable, os.path.join("examples", "digits_demo.py"), "--epochs", "1", "--out", str(tmp_path)]
    done = subprocess.run(command, cwd=ROOT, env=environment_without_log_level(os.environ), capture_output=True,
                          text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "test accuracy" in done.stdout
    output = done.stdout + done.stderr
    assert not tensorflow_log_lines(output), output[-3000:]
