"""``python -m tff_experiments.robust``: see ``tff_experiments.robust.cli``."""
from tff_experiments.command_line.launch import start_command_line

start_command_line()  # the worker reaper and quiet TensorFlow, before TensorFlow is imported

from tff_experiments.robust.cli import main  # noqa: E402
from tff_experiments.command_line.errors import run_cli  # noqa: E402

run_cli(main, isolate=True)
