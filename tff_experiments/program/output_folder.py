"""A command line's run in its output folder, as ``tff.program`` components around ``train_model``.

``train_in_folder(track, out, ...)`` runs (or resumes) a track with
``tff_experiments.program.training.train_model`` and these components (the folder's layout:
``tff_experiments.program.run_dir``):

- ``CheckpointStateManager`` (the program state manager): ``checkpoints/``;
- ``TrainMetricsReleaseManager`` (training metrics): a row of ``events.csv`` per server step
  and a row of ``updates.csv`` per client update, for a track that has ``event_fields`` and
  ``update_fields``;
- ``EvaluationReleaseManager`` (the model after each step): the track's evaluation at step 0
  and whenever one is due, into ``metrics.csv`` and TensorBoard, and the progress bar;
- ``ExportReleaseManager`` (the final model): ``model/`` (Keras and SavedModel).

Besides ``train_model``'s hooks, a track provides for its folder: ``run_config`` (the settings
that determine the result: a resume must match them), ``horizon``, ``progress_unit`` and
``clock(steps_done)`` (where the progress bar stands), ``progress_fields(row)``,
``event_fields`` (``None``: no ``events.csv``) and ``event(steps_done, train_metrics)``,
``update_fields`` (``None``: no ``updates.csv``) and ``updates(steps_done)`` (the step's rows),
``evaluation_due(steps_done)``, ``metrics(steps_done, model, train_metrics)`` (the
``metrics.csv`` row; ``train_metrics``: those of the steps since the previous row, empty at
step 0) and ``export(final_model, model_dir)``.

The files are opened at the first release, once the state manager knows the step the run
resumes from: what lies after that step (written before a kill) is dropped, so a resumed run
writes exactly the rows of an uninterrupted one.
"""
import tensorflow_federated as tff

from tff_experiments.program.checkpoints import Checkpointer, CheckpointStateManager
from tff_experiments.program.metrics import EventLog, MetricsLogger
from tff_experiments.program.progress import VirtualTimeProgress
from tff_experiments.program.run_dir import UPDATES_CSV, run_paths
from tff_experiments.program.training import train_model


class RunOutputs:
    """``metrics.csv`` with TensorBoard, ``events.csv`` and the progress bar of ``track``'s run in
    ``out``, opened when first needed; a context manager (closes them).

    Args:
      track: the run's track (its folder hooks).
      out: the output folder.
      state_manager: the run's ``CheckpointStateManager`` (it knows the step resumed from).
      progress: ``True``/``False`` forces the progress bar on or off; ``None``: on a terminal.
    """

    def __init__(self, track, out, state_manager, progress=None):
        self.track, self.out, self.state_manager, self.progress = track, out, state_manager, progress
        self.metrics = self.events = self.updates = self.bar = None
        self.last_row = {}
        self.train_since_row = []  # the training metrics of the steps since the last metrics row

    def open(self):
        if self.metrics is None:
            resume = self.state_manager.resumed_from
            self.metrics = MetricsLogger(self.out, resume_step=resume)
            if self.track.event_fields:
                self.events = EventLog(self.out, self.track.event_fields, resume_step=resume)
            if self.track.update_fields:
                self.updates = EventLog(self.out, self.track.update_fields, resume_step=resume,
                                        filename=UPDATES_CSV)
            self.bar = VirtualTimeProgress(self.track.horizon, initial=self.track.clock(resume or 0),
                                           desc=self.track.progress_unit, force=self.progress)
        return self

    def close(self):
        for part in (self.events, self.updates, self.metrics, self.bar):
            if part is not None:
                part.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


class TrainMetricsReleaseManager(tff.program.ReleaseManager):
    """Writes the ``events.csv`` row of each released step's training metrics and its
    ``updates.csv`` rows, and keeps the metrics for the next ``metrics.csv`` row.

    Args:
      outputs: the run's ``RunOutputs``.
    """

    def __init__(self, outputs):
        self.outputs = outputs

    async def release(self, value, key):
        outputs = self.outputs.open()
        if outputs.events is not None:
            outputs.events.append(outputs.track.event(int(key), value))
        if outputs.updates is not None:
            outputs.updates.extend(outputs.track.updates(int(key)))
        outputs.train_since_row.append(value)


class EvaluationReleaseManager(tff.program.ReleaseManager):
    """Evaluates the released model when an evaluation is due (``metrics.csv``, TensorBoard) and
    moves the progress bar.

    Args:
      outputs: the run's ``RunOutputs``.
    """

    def __init__(self, outputs):
        self.outputs = outputs

    async def release(self, value, key):
        outputs, step = self.outputs.open(), int(key)
        track = outputs.track
        if step == 0 or track.evaluation_due(step):
            outputs.last_row = track.metrics(step, value, outputs.train_since_row)
            outputs.metrics.log(step, outputs.last_row)
            outputs.train_since_row = []
        outputs.bar.advance_to(track.clock(step), **track.progress_fields(outputs.last_row))


class ExportReleaseManager(tff.program.ReleaseManager):
    """Exports the released final model to ``out/model`` (``model.keras`` and a SavedModel).

    Args:
      track: the run's track (its ``export``).
      out: the output folder.
    """

    def __init__(self, track, out):
        self.track, self.out = track, out

    async def release(self, value, key):
        self.track.export(value, run_paths(self.out)["model"])


async def train_in_folder(track, out, *, checkpoint_every, progress=None):
    """Runs (or resumes) ``track`` into the output folder ``out`` with ``train_model``.

    Args:
      track: the run (``train_model``'s hooks and the folder's, see the module docstring).
      out: the output folder (``pathlib.Path``).
      checkpoint_every: save the state every this many server steps.
      progress: ``True``/``False`` forces the progress bar on or off; ``None``: on a terminal.

    Returns:
      The number of server steps done.
    """
    state_manager = CheckpointStateManager(Checkpointer(out, every=checkpoint_every, config=track.run_config))
    with RunOutputs(track, out, state_manager, progress) as outputs:
        return await train_model(
            track, program_state_manager=state_manager,
            train_metrics_manager=TrainMetricsReleaseManager(outputs),
            model_manager=EvaluationReleaseManager(outputs),
            model_output_manager=ExportReleaseManager(track, out),
            checkpoint_every=checkpoint_every)
