"""``python -m tff_experiments.monna``: the former name of ``python -m tff_experiments.robust``
(MoNNA and Byzantine-robust peer-to-peer learning), kept as an alias; see ``tff_experiments.robust.cli``."""
if __name__ == "__main__":
    from tff_experiments.command_line.launch import quiet_tensorflow

    quiet_tensorflow()  # before TensorFlow is imported

from tff_experiments.robust.cli import MODULE, build_parser, main, run, settings_from  # noqa: E402,F401
from tff_experiments.command_line.errors import UsageError, run_cli  # noqa: E402,F401

if __name__ == "__main__":
    run_cli(main, isolate=True)
