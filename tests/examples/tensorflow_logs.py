"""What counts as a TensorFlow C++ log line in a command line's output (the quiet-start tests of the
demo and of the federated command lines)."""
import re

# TensorFlow's own format (TF 2.14), absl's (TF 2.21), absl's warning before its first line, and
# the second line of the CPU feature note.
TF_LOG_LINE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
    r"|[IWEF]\d{4} \d\d:\d\d:\d\d[\d.]*\s+\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:)")


def tensorflow_log_lines(text):
    """The TensorFlow C++ log lines in ``text``."""
    return [line for line in text.splitlines() if TF_LOG_LINE.match(line)]


def environment_without_log_level(environ, **more):
    """``environ`` as a user's shell has it, without ``TF_CPP_MIN_LOG_LEVEL`` (the test run sets
    it), plus ``more``."""
    env = {k: v for k, v in environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(more)
    return env
