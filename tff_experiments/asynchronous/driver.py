r"""The plain-Python driver: walks a schedule on the virtual clock and calls the TFF process.

For server step n of a ``Schedule`` the driver hands ``process.next`` one
``client_input(model_weights, data, weight)`` per aggregated local work: the global model
version :math:`\rho_i(n)` the client was sent (kept here until no pending work needs it), the
batches of that work (``LocalBatches``, seeded by client and work index) and :math:`d_i`.
TFF runs the local works as one ``federated_map`` and applies the server update; the new
global model becomes version n+1. A step nobody contributes to (FedFix when no client is back)
leaves the model as it is.

Everything a step needs is in ``RunState`` (next step, TFF state, the live stale versions) or
derived from the schedule and seeds, so a run restored from a checkpoint continues exactly as
the uninterrupted run would have (``to_program_state`` / ``from_program_state``).
"""
import collections
import dataclasses
import functools
from typing import Any

import numpy as np
import tensorflow_federated as tff

from tff_experiments.asynchronous.process import pack_client_values, work_data


@dataclasses.dataclass
class RunState:
    next_step: int  # index of the next server step to run
    process_state: Any  # the LearningProcess state (global model, optimizer states)
    versions: dict  # {version: ModelWeights} still needed by pending local works


@dataclasses.dataclass(frozen=True)
class StepRecord:
    step: Any  # the schedule's ServerStep
    train_metrics: Any  # the process' metrics, or None when nobody was aggregated


class AsynchronousDriver:
    """Runs ``schedule`` with ``process`` (``build_stale_model_process``) on ``local_batches``."""

    def __init__(self, process, schedule, local_batches):
        if local_batches.num_clients != len(schedule.importance):
            raise ValueError(f"the schedule has {len(schedule.importance)} clients, the data "
                             f"{local_batches.num_clients}")
        self.process = process
        self.schedule = schedule
        self.local_batches = local_batches
        self._last_use = schedule.last_use_of_versions()

    def __len__(self):
        return len(self.schedule)

    def initial_state(self, process_state=None):
        """The state before step 0; ``process_state``: the process' initial state, if already
        computed (a ``tff.program`` context returns it as a value to materialize)."""
        process_state = self.process.initialize() if process_state is None else process_state
        return RunState(0, process_state, self._keep({0: process_state.global_model_weights}, 0))

    def model_weights(self, run_state):
        """The current global model (``tff.learning.models.ModelWeights``)."""
        return run_state.process_state.global_model_weights

    def run_step(self, run_state, works=None):
        """Runs server step ``run_state.next_step``; returns the new state and its record.

        ``works``: the step's local works as ``(contribution, data)`` pairs, e.g. from
        ``ScheduleDataSource``; by default their batches come from ``local_batches``. The one
        server step of every run (``train_asynchronous_model``, the command line, ``run``).

        Args:
          run_state: the ``RunState`` before the step.
          works: see above.
        """
        n = run_state.next_step
        step = self.schedule.steps[n]
        if works is None:
            batches = work_data(self.process, self.local_batches)
            works = [(c, batches(c.client, c.work_index)) for c in step.contributions]
        process_state, metrics = run_state.process_state, None
        if works:  # a step without work: the process would leave the state as it is; save the call
            values = pack_client_values(
                self.process, [(run_state.versions[c.sent_version], data, c.weight) for c, data in works])
            output = self.process.next(process_state, values)
            process_state, metrics = output.state, output.metrics
        return self.advance(run_state, process_state), StepRecord(step, metrics)

    def advance(self, run_state, process_state):
        """The state after step ``run_state.next_step`` made ``process_state``."""
        n = run_state.next_step
        versions = dict(run_state.versions)
        versions[n + 1] = process_state.global_model_weights
        return RunState(n + 1, process_state, self._keep(versions, n + 1))

    def run(self, run_state=None, stop=None):
        """Runs the steps from ``run_state`` (default: the start) up to ``stop`` (default: all), in
        memory (no checkpoints nor outputs: ``train_asynchronous_model`` does those)."""
        run_state = run_state or self.initial_state()
        stop = len(self.schedule) if stop is None else stop
        while run_state.next_step < stop:
            run_state, _ = self.run_step(run_state)
        return run_state

    def _keep(self, versions, next_step):
        """The versions that steps ``next_step, ...`` still start from, and the current one."""
        return {v: w for v, w in versions.items()
                if v == next_step or self._last_use.get(v, -1) >= next_step}

    # Checkpoints: one fixed structure of tensors for the whole run (tff.program's state
    # managers and tff_experiments.program.Checkpointer load into a template).

    def live_versions(self, next_step):
        return sorted(set(self.schedule.live_versions(next_step)) | {next_step})

    @functools.cached_property
    def version_slots(self):
        """The most versions alive at once over the run (version v lives from step v to its
        last use): the number of model slots of a checkpoint."""
        ends = collections.Counter(self._last_use.get(v, v) for v in range(len(self.schedule) + 1))
        alive, most = 0, 1
        for n in range(len(self.schedule) + 1):
            alive += 1  # version n appears
            most = max(most, alive)
            alive -= ends.get(n, 0)  # versions whose last use (or birth, if unused) is step n
        return most

    def to_program_state(self, run_state):
        ids = self.live_versions(run_state.next_step)
        current = run_state.versions[run_state.next_step]
        padding = self.version_slots - len(ids)
        return collections.OrderedDict(
            next_step=np.int64(run_state.next_step),
            process_state=run_state.process_state,
            version_ids=np.array(ids + [-1] * padding, dtype=np.int64),
            versions=[run_state.versions[v] for v in ids] + [current] * padding,
        )

    def program_state_template(self, initial=None):
        """A structure like any ``to_program_state`` of this run, to load into (``initial``: the
        process' initial state, if already computed)."""
        initial = self.process.initialize() if initial is None else initial
        return collections.OrderedDict(
            next_step=np.int64(0),
            process_state=initial,
            version_ids=np.zeros(self.version_slots, dtype=np.int64),
            versions=[initial.global_model_weights] * self.version_slots,
        )

    def from_program_state(self, program_state):
        next_step = int(program_state["next_step"])
        versions = {
            int(v): as_model_weights(w)
            for v, w in zip(program_state["version_ids"], program_state["versions"]) if v >= 0
        }
        if set(versions) != set(self.live_versions(next_step)):
            raise ValueError("the checkpoint does not match this run's schedule")
        return RunState(next_step, as_learning_state(program_state["process_state"]), versions)


def as_model_weights(value):
    """``value`` (a released or loaded ``{'trainable', 'non_trainable'}`` structure) as
    ``tff.learning.models.ModelWeights``."""
    if isinstance(value, tff.learning.models.ModelWeights):
        return value
    trainable, non_trainable = (value["trainable"], value["non_trainable"]) if isinstance(value, dict) else value
    return tff.learning.models.ModelWeights(trainable=list(trainable), non_trainable=list(non_trainable))


def as_learning_state(value):
    if isinstance(value, tff.learning.templates.LearningAlgorithmState):
        return value._replace(global_model_weights=as_model_weights(value.global_model_weights))
    return value
