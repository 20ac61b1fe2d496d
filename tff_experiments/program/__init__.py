"""The program logic every federated run shares, from ``tff.program``'s parts.

- ``training``: ``train_model(track, ...)``, the one loop of every run: resume from a state
  manager, one server step after the other, releases of the metrics and models, checkpoints;
- ``output_folder``: ``train_in_folder(track, out, ...)``, a command line's run in its output
  folder (its state manager and release managers, the progress bar);
- ``checkpoints``: the run's whole state for exact resume (``Checkpointer``, and
  ``CheckpointStateManager``, the same as a ``tff.program.ProgramStateManager``);
- ``metrics``: ``metrics.csv`` with TensorBoard, ``events.csv``; ``export``: the final model;
  ``progress``: a progress bar over virtual time; ``run_dir``: the output folder's layout;
  ``sync``: ``run_sync``, a coroutine run from synchronous code.

A track (what a run is: ``tff_experiments.asynchronous.experiment.AsynchronousExperiment``,
``tff_experiments.robust.experiment.RobustExperiment``) provides the hooks; nothing here
imports a track. The names below import their module (and TensorFlow) on first use.
"""
from tff_experiments.lazy_names import lazy_getattr
from tff_experiments.program.progress import VirtualTimeProgress, progress_enabled
from tff_experiments.program.run_dir import run_paths
from tff_experiments.program.sync import run_sync
from tff_experiments.program.training import train_model

_LAZY = {
    "CheckpointStateManager": "checkpoints",
    "Checkpointer": "checkpoints",
    "EventLog": "metrics",
    "MetricsLogger": "metrics",
    "export_keras_and_savedmodel": "export",
    "read_metrics": "metrics",
    "train_in_folder": "output_folder",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "CheckpointStateManager",
    "Checkpointer",
    "EventLog",
    "MetricsLogger",
    "VirtualTimeProgress",
    "export_keras_and_savedmodel",
    "progress_enabled",
    "read_metrics",
    "run_paths",
    "run_sync",
    "train_in_folder",
    "train_model",
]
