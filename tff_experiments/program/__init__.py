"""What the federated command lines (``python -m tff_experiments.asynchronous``, ``python -m
tff_experiments.robust``) share: ``loop`` (the run loop: resume, metrics, checkpoints, progress,
export), ``cli`` (checks of numbers and ``--out``, the lock, the private namespace), one-line
errors, run folder layout, metrics and event logs, checkpoints with exact resume, model export,
progress over virtual time.

The submodules import TensorFlow/TFF only where they need them; ``cli``, ``errors`` and
``progress`` import neither, so ``--help`` and bad-input errors stay fast.
"""
from tff_experiments.program.errors import CliArgumentParser, UsageError, run_cli
from tff_experiments.program.progress import VirtualTimeProgress, progress_enabled
from tff_experiments.program.run_dir import run_paths

__all__ = [
    "CliArgumentParser",
    "UsageError",
    "VirtualTimeProgress",
    "progress_enabled",
    "run_cli",
    "run_paths",
]
