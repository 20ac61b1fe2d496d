"""The federated command lines start quietly: no TensorFlow C++ log line in their output unless the
user sets ``TF_CPP_MIN_LOG_LEVEL``, whether the run goes on in a private namespace (a second
``python -m tff_experiments.asynchronous`` or ``.robust`` under ``unshare``) or, where there is
none, in the command line's own process (its aliases ``fedfix`` and ``monna`` here). There, the
run also ends although TFF's ``worker_binary`` holds its piped output: the command line installed
the worker reaper (importing ``tff_experiments`` no longer does)."""
import os
import signal
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow_federated")

from tests.examples.tensorflow_logs import environment_without_log_level, tensorflow_log_lines  # noqa: E402
from tff_experiments.command_line.launch import without_tensorflow_logs  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ASYNCHRONOUS = ["--algorithm", "fedfix", "--delta-t", "0.5", "--dataset", "digits", "--model", "logistic",
                "--clients", "4", "--horizon", "1", "--local-steps", "1", "--batch-size", "8"]
ROBUST = ["--machines", "5", "--byzantine", "1", "--model", "logistic", "--steps", "2", "--eval-every", "2"]
IN_THIS_PROCESS = {"KERAS_OPTIM_NAMESPACE": "off"}


def run(module, args, out, **env):
    """``python -m module args --out out`` as a user runs it (no ``TF_CPP_MIN_LOG_LEVEL`` unless
    ``env`` has one); returns ``(exit status, stdout + stderr)``."""
    environ = environment_without_log_level(os.environ, PYTHONPATH=REPO, **env)
    proc = subprocess.Popen([sys.executable, "-m", module, *args, "--out", str(out), "--no-progress"], cwd=REPO,
                            env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the run and a worker_binary left holding its pipes
        proc.communicate()
        pytest.fail(f"python -m {module} did not end (a worker_binary kept its output open?)")
    return proc.returncode, stdout + stderr


@pytest.mark.parametrize("module, args, env", [
    ("tff_experiments.asynchronous", ASYNCHRONOUS, {}),
    ("tff_experiments.robust", ROBUST, {}),
    ("tff_experiments.fedfix", ASYNCHRONOUS, IN_THIS_PROCESS),
    ("tff_experiments.monna", ROBUST, IN_THIS_PROCESS),
], ids=["asynchronous", "robust", "fedfix-in-this-process", "monna-in-this-process"])
def test_a_command_line_prints_no_tensorflow_log_line(module, args, env, tmp_path):
    status, output = run(module, args, tmp_path / "out", **env)
    assert status == 0, output[-3000:]
    assert (tmp_path / "out" / "metrics.csv").exists()
    assert not tensorflow_log_lines(output), output[-3000:]


def test_the_user_can_ask_for_the_log_lines(tmp_path):
    status, output = run("tff_experiments.robust", ROBUST, tmp_path / "out", TF_CPP_MIN_LOG_LEVEL="0")
    assert status == 0, output[-3000:]
    assert len(tensorflow_log_lines(output)) > 5, output[-3000:]


# What TensorFlow 2.21 and 2.14 print while they load, as they print it.
ABSL = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796667477.517589   10933 port.cc:153] oneDNN custom operations are on.
I0000 00:00:1796667477.518074   10933 cudart_stub.cc:31] Could not find cuda drivers on your machine.
I0000 00:00:1796667658.891076   16328 cpu_feature_guard.cc:227] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
E0000 00:00:1796667664.528331   16328 cuda_platform.cc:52] failed call to cuInit: INTERNAL
"""
TF = """2026-12-07 18:20:36.769786: E tensorflow/compiler/xla/stream_executor/cuda/cuda_dnn.cc:9342] Unable to register
2026-12-07 18:20:36.778478: I tensorflow/core/platform/cpu_feature_guard.cc:182] This TensorFlow binary is optimized.
To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.
2026-12-07 18:20:37.765522: W tensorflow/compiler/tf2tensorrt/utils/py_utils.cc:38] TF-TRT Warning: Could not find TensorRT
"""
OTHER = """/venv/lib/python3.11/site-packages/keras/src/x.py:3: UserWarning: something the user should see
  warnings.warn(
Traceback (most recent call last):
To enable the following instructions: not after a log line, so kept
"""


@pytest.mark.parametrize("level, kept", [
    (0, ABSL + TF),
    (1, TF.splitlines(keepends=True)[0] + TF.splitlines(keepends=True)[3] + ABSL.splitlines(keepends=True)[-1]),
    (2, TF.splitlines(keepends=True)[0] + ABSL.splitlines(keepends=True)[-1]),
    (3, ""),
], ids=["0", "1", "2", "3"])
def test_the_loading_lines_below_the_level_are_left_out_and_nothing_else(level, kept):
    text = (ABSL + TF + OTHER).encode()
    got = without_tensorflow_logs(text, level).decode()
    assert sorted(got.splitlines()) == sorted((kept + OTHER).splitlines())
    assert got.endswith(OTHER)


PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
INFO = "I0000 00:00:1796667477.517589   10933 port.cc:153] oneDNN custom operations are on."
OWN = "the module's own line"
ERROR = "E0000 00:00:1796667664.528331   16328 cuda_platform.cc:52] failed call to cuInit"
# A stand-in ``tensorflow`` that writes to file descriptor 2 as TF 2.21 does while it loads.
FAKE_TENSORFLOW = f"""
import os, sys
os.write(2, b"{PREAMBLE}\\n{INFO}\\n")
print("{OWN}", file=sys.stderr)
os.write(2, b"{ERROR}\\n")
if os.environ.get("BREAK"):
    raise RuntimeError("broken tensorflow")
"""
IMPORT = ("from tff_experiments.command_line.launch import quiet_tensorflow; quiet_tensorflow(); import tensorflow; "
          "print(type(tensorflow.__loader__).__name__, type(tensorflow.__spec__.loader).__name__)")


def import_fake_tensorflow(folder, **env):
    (folder / "tensorflow").mkdir()
    (folder / "tensorflow" / "__init__.py").write_text(FAKE_TENSORFLOW)
    environ = environment_without_log_level(os.environ, PYTHONPATH=os.pathsep.join([str(folder), REPO]), **env)
    return subprocess.run([sys.executable, "-c", IMPORT], cwd=folder, env=environ, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("level, stderr", [
    (None, [OWN]),
    ("2", [OWN, ERROR]),
    ("0", [PREAMBLE, INFO, OWN, ERROR]),
], ids=["unset", "2", "0"])
def test_the_first_import_of_tensorflow_runs_with_its_log_lines_filtered(tmp_path, level, stderr):
    done = import_fake_tensorflow(tmp_path, **({} if level is None else {"TF_CPP_MIN_LOG_LEVEL": level}))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["SourceFileLoader", "SourceFileLoader"]  # the module keeps its own loader
    assert done.stderr.splitlines() == stderr


def test_an_import_of_tensorflow_that_fails_still_says_why(tmp_path):
    done = import_fake_tensorflow(tmp_path, BREAK="1")
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0] == OWN and lines[-1] == "RuntimeError: broken tensorflow", done.stderr
    assert not tensorflow_log_lines(done.stderr), done.stderr
