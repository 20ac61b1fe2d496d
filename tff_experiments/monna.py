"""``python -m tff_experiments.monna``: the former name of ``python -m tff_experiments.robust``
(MoNNA and Byzantine-robust peer-to-peer learning), kept as an alias; see ``tff_experiments.robust.cli``."""
if __name__ == "__main__":  # the command line; importing the module changes nothing
    from tff_experiments.command_line.launch import start_command_line

    start_command_line()  # the worker reaper and quiet TensorFlow, before TensorFlow is imported

from tff_experiments.robust.cli import MODULE, build_parser, main, run, settings_from  # noqa: E402,F401
from tff_experiments.command_line.errors import UsageError, run_cli  # noqa: E402,F401

if __name__ == "__main__":
    run_cli(main, isolate=True)
