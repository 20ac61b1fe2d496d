"""``python -m tff_experiments.workers``: see ``tff_experiments.workers.serve``."""
from tff_experiments.command_line.errors import run_cli
from tff_experiments.workers.serve import main

run_cli(main)
