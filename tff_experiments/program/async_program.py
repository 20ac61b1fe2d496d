r"""Program logic for the asynchronous processes, in the style of ``tff.learning.programs.train_model``.

``train_asynchronous_model`` drives any ``build_stale_model_process`` process along a
``Schedule`` with TFF's program components: the clients' data come from a
``tff.program.FederatedDataSource`` (:class:`ScheduleDataSource`), the state is saved by a
``tff.program.ProgramStateManager`` (e.g. ``FileProgramStateManager``) and the metrics and the
final model go to ``tff.program`` release managers (``CSVFileReleaseManager``,
``TensorBoardReleaseManager``, ``MemoryReleaseManager``, ...). Run again after a kill, it loads
the latest saved state and ends exactly where the uninterrupted run ends: the schedule, the
batches (seeded per client and local work) and the stale model versions kept in the program
state determine every later step.

It is a coroutine, as TFF's: ``asyncio.run(train_asynchronous_model(...))``. It runs in TFF's
synchronous execution contexts (the default local one, or executor services on other machines:
``tff_experiments.asynchronous.remote``), one server step at a time
(``AsynchronousDriver.run_step``, the step every run of this project takes). The command line
``python -m tff_experiments.asynchronous`` is this function with the release managers of
``tff_experiments.asynchronous.run_outputs``. TFF 0.87's ``tff.program.NativeFederatedContext``
does not take it yet: it rebuilds a ``CLIENTS`` argument from the parameter type and turns a list of
structured client values (here the stale models with their data) into one structure
(``InvalidNonAllEqualValueError``); TFF's own ``train_model`` only passes data-source values there.

Differences from ``train_model``, and why: the participants of a server step are the schedule's
(not ``k`` clients drawn at random), each with the stale model it was sent and its weight
:math:`d_i`, so ``next`` takes ``<model_weights, data, weight>@CLIENTS`` (see
``tff_experiments.asynchronous.process``); a step without a counted update still advances the
schedule (the process leaves the state unchanged).
"""
import collections
import json

import numpy as np
import tensorflow_federated as tff

from tff_experiments.asynchronous import schedule as schedule_lib
from tff_experiments.asynchronous.driver import AsynchronousDriver
from tff_experiments.program import checkpoints


class ScheduleDataSourceIterator(tff.program.FederatedDataSourceIterator):
    """Yields, step after step, the data of the local works a schedule aggregates.

    ``to_bytes`` / ``from_bytes`` (TFF's ``Serializable`` contract, as its own iterators) hold
    everything that determines the remaining selections: the next step, the schedule, the batch
    settings and the clients' data, a generated data set by its settings
    (``SyntheticClientData.config()``), any other by its clients' arrays (elements: a mapping of
    fields, as the project's ``ClientData``).
    """

    def __init__(self, source, next_step=0):
        self._source = source
        self.next_step = int(next_step)

    @property
    def federated_type(self):
        return self._source.federated_type

    def select(self, k=None):
        """The next server step's local works: a list of ``(contribution, data)``, data the K
        batches (a ``tf.data.Dataset``, or arrays ``(K, b, ...)`` when ``arrays``)."""
        step = self._source.schedule.steps[self.next_step]
        if k is not None and k != len(step.contributions):
            raise ValueError(f"server step {self.next_step} aggregates {len(step.contributions)} "
                             f"local works, not {k}")
        local = self._source.local_batches
        batches = local.batch_arrays if self._source.arrays else local.dataset
        self.next_step += 1
        return [(c, batches(c.client, c.work_index)) for c in step.contributions]

    def to_bytes(self):
        source, local = self._source, self._source.local_batches
        header = collections.OrderedDict(
            format=1, next_step=self.next_step, arrays=source.arrays,
            schedule=_schedule_to_json(source.schedule),
            batches=dict(local_steps=local.local_steps, batch_size=local.batch_size, seed=local.seed,
                         client_ids=list(local.client_ids)))
        config = getattr(local.client_data, "config", None)
        if getattr(local.client_data, "generates_clients", False) and config is not None:
            header["synthetic"], leaves = config(), []
        else:  # the clients' arrays, in client order
            fields = list(local.arrays(0))
            header["fields"] = fields
            leaves = [np.asarray(local.arrays(i)[f]) for i in range(local.num_clients) for f in fields]
        headers, buffer = checkpoints._encode(leaves)
        header["leaves"] = headers
        text = json.dumps(header).encode()
        return len(text).to_bytes(8, "little") + text + buffer.tobytes()

    @classmethod
    def from_bytes(cls, buffer):
        from tff_experiments.asynchronous.local_data import LocalBatches

        size = int.from_bytes(buffer[:8], "little")
        header = json.loads(bytes(buffer[8:8 + size]).decode())
        if header.get("format") != 1:
            raise ValueError("not the bytes of a ScheduleDataSourceIterator")
        batches = header["batches"]
        if "synthetic" in header:
            from tff_experiments.data.synthetic import synthetic_client_data_from_config

            client_data = synthetic_client_data_from_config(header["synthetic"])
        else:
            from tff_experiments.data.common import array_client_data

            leaves = checkpoints._decode(header["leaves"], np.frombuffer(bytes(buffer[8 + size:]), np.uint8))
            fields, ids = header["fields"], batches["client_ids"]
            client_data = array_client_data(collections.OrderedDict(
                (cid, collections.OrderedDict(zip(fields, leaves[i * len(fields):(i + 1) * len(fields)])))
                for i, cid in enumerate(ids)))
        local = LocalBatches(client_data, batches["local_steps"], batches["batch_size"], seed=batches["seed"],
                             client_ids=batches["client_ids"])
        source = ScheduleDataSource(_schedule_from_json(header["schedule"]), local, arrays=header["arrays"])
        return cls(source, header["next_step"])

    def __eq__(self, other):
        if self is other:
            return True
        if not isinstance(other, ScheduleDataSourceIterator):
            return NotImplemented
        return self.federated_type == other.federated_type and self.to_bytes() == other.to_bytes()


def _schedule_to_json(schedule):
    return dict(scheme=schedule.scheme, policy=schedule.policy, horizon=schedule.horizon,
                importance=np.asarray(schedule.importance).tolist(),
                mean_times=np.asarray(schedule.mean_times).tolist(),
                steps=[[s.index, s.time, [[c.client, c.sent_version, c.work_index, c.weight]
                                          for c in s.contributions]] for s in schedule.steps])


def _schedule_from_json(value):
    steps = tuple(schedule_lib.ServerStep(index, time, tuple(schedule_lib.Contribution(*c) for c in contributions))
                  for index, time, contributions in value["steps"])
    return schedule_lib.Schedule(value["scheme"], value["policy"], value["horizon"], steps,
                                 np.array(value["importance"], dtype=np.float64),
                                 np.array(value["mean_times"], dtype=np.float64))


class ScheduleDataSource(tff.program.FederatedDataSource):
    """The clients' data of a schedule's local works, as a ``tff.program.FederatedDataSource``.

    Args:
      schedule: the ``Schedule`` (who works when, from which model version, with what weight).
      local_batches: a ``LocalBatches`` over the user's ``tff.simulation.datasets.ClientData``.
      arrays: yield NumPy arrays (for processes built with ``clients_per_group``).
    """

    def __init__(self, schedule, local_batches, arrays=False):
        self.schedule, self.local_batches, self.arrays = schedule, local_batches, bool(arrays)
        spec = local_batches.client_data.element_type_structure
        batched = tff.types.tensorflow_to_type(spec)
        self._federated_type = tff.FederatedType(tff.SequenceType(batched), tff.CLIENTS)

    @property
    def federated_type(self):
        return self._federated_type

    def iterator(self, next_step=0):
        return ScheduleDataSourceIterator(self, next_step)


def _releasable(value):
    """Plain Python/NumPy structure (release managers take no TFF containers)."""
    if hasattr(value, "_asdict"):
        value = value._asdict()
    if isinstance(value, dict):
        return collections.OrderedDict((k, _releasable(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_releasable(v) for v in value]
    return value


async def train_asynchronous_model(*, train_process, train_data_source, program_state_manager,
                                   model_output_manager=None, train_metrics_manager=None,
                                   global_model_manager=None, checkpoint_every=100, stop_after=None):
    """Runs ``train_data_source.schedule`` with ``train_process``, resuming from the latest state
    of ``program_state_manager``.

    Args:
      train_process: a ``build_stale_model_process`` process.
      train_data_source: a :class:`ScheduleDataSource`.
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
      stop_after: stop once this many steps are done (a scheduled interruption; default: all).

    Every release of a step happens before its state is saved: a run killed at any moment and
    resumed repeats the releases after the saved step, in order, and none before.

    Returns:
      The number of server steps done.
    """
    schedule = train_data_source.schedule
    driver = AsynchronousDriver(train_process, schedule, train_data_source.local_batches)
    initial = await tff.program.materialize_value(train_process.initialize())
    saved, _ = await program_state_manager.load_latest(driver.program_state_template(initial))
    if saved is None:
        run_state = driver.initial_state(initial)
        if global_model_manager is not None:
            await global_model_manager.release(_model_release(driver, run_state, 0.0), key=0)
        await program_state_manager.save(driver.to_program_state(run_state), version=0)
    else:
        run_state = driver.from_program_state(saved)
    iterator = train_data_source.iterator(next_step=run_state.next_step)
    stop = len(schedule) if stop_after is None else min(stop_after, len(schedule))
    while run_state.next_step < stop:
        step = schedule.steps[run_state.next_step]
        works = iterator.select(len(step.contributions))
        run_state, record = driver.run_step(run_state, works)
        released = collections.OrderedDict(virtual_time=step.time, clients=len(works))
        if record.train_metrics is not None:
            released.update(_releasable(record.train_metrics["client_work"]["train"]))
        if train_metrics_manager is not None:
            await train_metrics_manager.release(released, key=run_state.next_step)
        if global_model_manager is not None:
            await global_model_manager.release(_model_release(driver, run_state, step.time),
                                               key=run_state.next_step)
        if run_state.next_step % checkpoint_every == 0 or run_state.next_step == stop:
            await program_state_manager.save(driver.to_program_state(run_state), version=run_state.next_step)
    if model_output_manager is not None and run_state.next_step == len(schedule):
        await model_output_manager.release(
            _releasable(driver.model_weights(run_state)), key="final_model")
    return run_state.next_step


def _model_release(driver, run_state, virtual_time):
    return collections.OrderedDict(virtual_time=virtual_time,
                                   model_weights=_releasable(driver.model_weights(run_state)))
