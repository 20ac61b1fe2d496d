"""The arguments both federated command lines share, and the checks of their values.

``check_number`` raises a one-line ``UsageError`` that names the flag: the tracks' settings
(``AsynchronousSettings``, ``RobustSettings``) check every value with it, once, when built.
Nothing here imports TensorFlow, so ``--help`` and bad input answer at once.
"""
import math

from tff_experiments.command_line.errors import CliArgumentParser, UsageError


def command_line_parser(module, description):
    """The ``CliArgumentParser`` of ``python -m module``."""
    return CliArgumentParser(prog=f"python -m {module}", description=description,
                             epilog="Re-running the same command with the same --out resumes a killed run exactly.")


def add_run_arguments(parser, *, eval_every, checkpoint_every):
    """The ``run`` group both command lines share: ``--out``, ``--eval-every`` (``eval_every``:
    ``(type, default, help)``), ``--checkpoint-every`` (its default), ``--progress``. Returns it."""
    kind, default, text = eval_every
    run = parser.add_argument_group("run")
    run.add_argument("--out", required=True,
                     help="output folder (resumes the run found there; locked while a run uses it)")
    run.add_argument("--eval-every", type=kind, default=default, help=text)
    run.add_argument("--checkpoint-every", type=int, default=checkpoint_every,
                     help=f"checkpoint every N steps (default {checkpoint_every})")
    run.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="force the progress bar (default: shown on a terminal)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    return run


def flag(name):
    """``'client_lr'`` -> ``'--client-lr'``: settings fields are named as their flags."""
    return "--" + name.replace("_", "-")


def check_number(name, value, *, low=None, high=None, low_open=False, high_open=False, integer=False):
    """Raises ``UsageError`` naming the flag unless ``value`` is a finite number in the range.

    ``None`` passes (an unset optional setting). ``low_open``/``high_open`` exclude the bound.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value):
        raise UsageError(f"{flag(name)} must be {'an integer' if integer else 'a number'}, got {value!r}")
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high}")
        raise UsageError(f"{flag(name)} must be a finite number{' ' + ' and '.join(bounds) if bounds else ''}, "
                         f"got {value}")
