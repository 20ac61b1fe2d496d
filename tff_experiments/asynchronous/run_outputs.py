"""The output folder of ``python -m tff_experiments.asynchronous`` as ``tff.program`` components.

The command line runs ``train_asynchronous_model`` (``tff_experiments.program.async_program``)
with:

- ``CheckpointStateManager``: a ``tff.program.ProgramStateManager`` over the run's
  ``Checkpointer`` (``checkpoints/``: the settings checked on resume, a damaged checkpoint set
  aside for the previous one);
- ``EventsReleaseManager`` (``train_metrics_manager``): a row of ``events.csv`` per server step;
- ``EvaluationReleaseManager`` (``global_model_manager``): the global model evaluated at step 0,
  every ``--eval-every`` of virtual time and at the end, into ``metrics.csv`` and TensorBoard,
  and the progress bar;
- ``ExportReleaseManager`` (``model_output_manager``): ``model/`` (Keras and SavedModel).

The files are opened at the first release, once the state manager knows the step the run
resumes from: what lies after that step (written before a kill) is dropped, so a resumed run
writes exactly the rows of an uninterrupted one.
"""
import tensorflow_federated as tff

from tff_experiments.asynchronous.driver import _as_model_weights
from tff_experiments.program.metrics import EventLog, MetricsLogger
from tff_experiments.program.progress import VirtualTimeProgress
from tff_experiments.program.run_dir import run_paths


class CheckpointStateManager(tff.program.ProgramStateManager):
    """A ``tff_experiments.program.checkpoints.Checkpointer`` as a ``tff.program.ProgramStateManager``;
    ``resumed_from``: the step of the state ``load_latest`` found (``None``: a fresh run)."""

    def __init__(self, checkpointer):
        self.checkpointer = checkpointer
        self.resumed_from = None

    async def get_versions(self):
        return self.checkpointer.versions() or None

    async def load(self, version, structure):
        if version not in self.checkpointer.versions():
            raise tff.program.ProgramStateNotFoundError(version)
        return self.checkpointer.load(version, structure)

    async def load_latest(self, structure):
        state, step = self.checkpointer.load_latest(structure)
        self.resumed_from = step if state is not None else None
        return state, step

    async def save(self, program_state, version):
        self.checkpointer.save(program_state, version)


class RunOutputs:
    """``metrics.csv`` with TensorBoard, ``events.csv`` and the progress bar of ``experiment``'s run
    in ``out``, opened when first needed; a context manager (closes them)."""

    def __init__(self, experiment, out, state_manager, progress=None):
        self.experiment, self.out, self.state_manager, self.progress = experiment, out, state_manager, progress
        self.metrics = self.events = self.bar = None
        self.last_row = {}

    def open(self):
        if self.metrics is None:
            resume = self.state_manager.resumed_from
            self.metrics = MetricsLogger(self.out, resume_step=resume)
            self.events = EventLog(self.out, self.experiment.event_fields, resume_step=resume)
            self.bar = VirtualTimeProgress(self.experiment.horizon, initial=self.experiment.clock(resume or 0),
                                           desc=self.experiment.progress_unit, force=self.progress)
        return self

    def close(self):
        for part in (self.events, self.metrics, self.bar):
            if part is not None:
                part.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


class EventsReleaseManager(tff.program.ReleaseManager):
    """Writes the ``events.csv`` row of each released step's training metrics."""

    def __init__(self, outputs):
        self.outputs = outputs

    async def release(self, value, key):
        outputs = self.outputs.open()
        outputs.events.append(outputs.experiment.event(int(key), value))


class EvaluationReleaseManager(tff.program.ReleaseManager):
    """Evaluates the released global model when an evaluation is due (``metrics.csv``,
    TensorBoard) and moves the progress bar."""

    def __init__(self, outputs):
        self.outputs = outputs

    async def release(self, value, key):
        outputs, step = self.outputs.open(), int(key)
        experiment = outputs.experiment
        if step == 0 or experiment.evaluation_due(step):
            outputs.last_row = experiment.metrics(step, _as_model_weights(value["model_weights"]))
            outputs.metrics.log(step, outputs.last_row)
        outputs.bar.advance_to(experiment.clock(step), **experiment.progress_fields(outputs.last_row))


class ExportReleaseManager(tff.program.ReleaseManager):
    """Exports the released final model to ``out/model`` (``model.keras`` and a SavedModel)."""

    def __init__(self, experiment, out):
        self.experiment, self.out = experiment, out

    async def release(self, value, key):
        self.experiment.export(_as_model_weights(value), run_paths(self.out)["model"])


async def train_in_folder(experiment, out, *, checkpoint_every, progress=None):
    """Runs (or resumes) ``experiment`` into the output folder ``out`` with
    ``train_asynchronous_model``; returns the number of server steps done."""
    from tff_experiments.program.async_program import ScheduleDataSource, train_asynchronous_model
    from tff_experiments.program.checkpoints import Checkpointer

    checkpointer = Checkpointer(out, every=checkpoint_every, config=experiment.run_config)
    state_manager = CheckpointStateManager(checkpointer)
    process = experiment.driver.process
    source = ScheduleDataSource(experiment.schedule, experiment.driver.local_batches,
                                arrays=bool(getattr(process, "clients_per_group", None)))
    with RunOutputs(experiment, out, state_manager, progress) as outputs:
        return await train_asynchronous_model(
            train_process=process, train_data_source=source, program_state_manager=state_manager,
            model_output_manager=ExportReleaseManager(experiment, out),
            train_metrics_manager=EventsReleaseManager(outputs),
            global_model_manager=EvaluationReleaseManager(outputs),
            checkpoint_every=checkpoint_every)
