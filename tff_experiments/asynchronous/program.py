r"""An asynchronous run as a track of the program logic (``tff_experiments.program.training``).

``train_asynchronous_model`` drives any ``build_stale_model_process`` process along the schedule
of a :class:`~tff_experiments.asynchronous.data_source.ScheduleDataSource` with TFF's program
components: a ``tff.program.ProgramStateManager`` (e.g. ``FileProgramStateManager``) saves the
state, ``tff.program`` release managers (``CSVFileReleaseManager``,
``TensorBoardReleaseManager``, ``MemoryReleaseManager``, ...) get the metrics and the models.
Run again after a kill, it loads the latest saved state and ends exactly where the uninterrupted
run ends: the schedule, the batches (seeded per client and local work) and the stale model
versions kept in the program state determine every later step.

It is a coroutine, as TFF's ``train_model``; from synchronous code run it with
``tff_experiments.program.sync.run_sync``, which lets Ctrl-C interrupt a step at once. It runs in
TFF's synchronous execution contexts (the default local one, or executor services on other
machines: ``tff_experiments.workers.remote``), one server step at a time
(``AsynchronousDriver.run_step``). TFF 0.87's ``tff.program.NativeFederatedContext`` does not
take it yet: it rebuilds a ``CLIENTS`` argument from the parameter type and turns a list of
structured client values (here the stale models with their data) into one structure
(``InvalidNonAllEqualValueError``).

Differences from ``train_model``, and why: the participants of a server step are the schedule's
(not ``k`` clients drawn at random), each with the stale model it was sent and its weight
:math:`d_i`; a step without a counted update still advances the schedule (the process leaves
the state unchanged).
"""
import collections

from tff_experiments.asynchronous.driver import AsynchronousDriver
from tff_experiments.program.training import train_model


def releasable(value):
    """``value`` as a plain Python/NumPy structure (release managers take no TFF containers)."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return collections.OrderedDict((k, releasable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [releasable(v) for v in value]
    return value


class ScheduleTrack:
    """``train_model``'s track for a stale-model process run along a data source's schedule.

    Args:
      process: a ``build_stale_model_process`` process.
      data_source: a ``ScheduleDataSource`` (the schedule and the clients' local batches).

    Its training metrics are ``{'virtual_time', 'clients'}`` and, when an update counted, the
    client work's ``train`` metrics; its model release is ``{'virtual_time', 'model_weights'}``
    (the global model); its final model the global model's weights.
    """

    def __init__(self, process, data_source):
        self.data_source = data_source
        self.schedule = data_source.schedule
        self.driver = AsynchronousDriver(process, self.schedule, data_source.local_batches)
        self.num_steps = len(self.schedule)
        self._initial_process_state = None
        self._iterator = None

    def clock(self, steps_done):
        """The virtual time after ``steps_done`` server steps."""
        return self.schedule.steps[steps_done - 1].time if steps_done else 0.0

    def _process_state_0(self):
        if self._initial_process_state is None:
            self._initial_process_state = self.driver.process.initialize()
        return self._initial_process_state

    def initial_state(self):
        return self.driver.initial_state(self._process_state_0())

    def program_state_template(self):
        return self.driver.program_state_template(self._process_state_0())

    def to_program_state(self, run_state):
        return self.driver.to_program_state(run_state)

    def from_program_state(self, saved):
        return self.driver.from_program_state(saved)

    def steps_done(self, run_state):
        return run_state.next_step

    def next(self, run_state):
        if self._iterator is None or self._iterator.next_step != run_state.next_step:
            self._iterator = self.data_source.iterator(next_step=run_state.next_step)
        step = self.schedule.steps[run_state.next_step]
        works = self._iterator.select(len(step.contributions))
        run_state, record = self.driver.run_step(run_state, works)
        train_metrics = collections.OrderedDict(virtual_time=step.time, clients=len(works))
        if record.train_metrics is not None:
            train_metrics.update(releasable(record.train_metrics["client_work"]["train"]))
        return run_state, train_metrics

    def model_release(self, run_state):
        return collections.OrderedDict(virtual_time=self.clock(run_state.next_step),
                                       model_weights=self.final_model(run_state))

    def final_model(self, run_state):
        return releasable(self.driver.model_weights(run_state))


async def train_asynchronous_model(*, train_process, train_data_source, program_state_manager,
                                   model_output_manager=None, train_metrics_manager=None,
                                   global_model_manager=None, checkpoint_every=100, stop_after=None):
    """Runs ``train_data_source.schedule`` with ``train_process``, resuming from the latest state
    of ``program_state_manager``.

    Args:
      train_process: a ``build_stale_model_process`` process.
      train_data_source: a ``ScheduleDataSource``.
      program_state_manager: a ``tff.program.ProgramStateManager``; the state is saved at step 0,
        every ``checkpoint_every`` steps and at the end, versioned by the number of steps done.
      model_output_manager: a ``tff.program.ReleaseManager``; gets the final model weights
        (key ``"final_model"``).
      train_metrics_manager: a ``tff.program.ReleaseManager``; gets each step's training metrics
        (``client_work/train`` with ``virtual_time`` and ``clients``), key = steps done. Steps
        without a counted update release ``{'virtual_time', 'clients': 0}`` only.
      global_model_manager: a ``tff.program.ReleaseManager``; gets ``{'virtual_time',
        'model_weights'}`` (the global model) after every step, key = steps done, and at key 0
        when the run starts afresh (e.g. to evaluate it every so often).
      checkpoint_every: save the state every this many server steps.
      stop_after: stop once this many steps are done (a scheduled interruption; default: all).

    Returns:
      The number of server steps done.
    """
    return await train_model(
        ScheduleTrack(train_process, train_data_source), program_state_manager=program_state_manager,
        train_metrics_manager=train_metrics_manager, model_manager=global_model_manager,
        model_output_manager=model_output_manager, checkpoint_every=checkpoint_every, stop_after=stop_after)
