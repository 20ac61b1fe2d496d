r"""The plain-Python driver: walks a schedule on the virtual clock and calls the TFF process.

For server step n of a ``Schedule`` the driver hands ``process.next`` one
``client_input(model_weights, data, weight)`` per aggregated local work: the global model
version :math:`\rho_i(n)` the client was sent (kept here until no pending work needs it), the
batches of that work (``LocalBatches``, seeded by client and work index) and :math:`d_i`.
TFF runs the local works as one ``federated_map`` and applies the server update; the new
global model becomes version n+1. A step nobody contributes to (FedFix when no client is back)
leaves the model as it is. A step of more than ``works_per_call`` works of a grouped process runs
in calls of that many works (``step_sums``), their sums added up here and applied by one last
call (``apply_sums``): memory holds one part of the step at a time, each work's batches made
when its part is packed. The result is the one-call step's up to the order of float additions
(the sums of the parts are added in the model's dtype); a step of at most ``works_per_call``
works is one ``next`` call, as before.

Everything a step needs is in ``RunState`` (next step, TFF state, the live stale versions) or
derived from the schedule and seeds, so a run restored from a checkpoint continues exactly as
the uninterrupted run would have (``to_program_state`` / ``from_program_state``).
"""
import collections
import dataclasses
import functools
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.asynchronous.local_data import StepWorks
from tff_experiments.asynchronous.process import pack_client_values, takes_arrays, work_data

# Local works per TFF call of a grouped process: a call holds ~20 KB per work of Synthetic's
# logistic model at once (its batches, their packed groups, TFF's copies in this process and in
# its worker), so a FedFix step of 10^5 works in one call took 2 GB more, in calls of 4,096 works
# ~0.1 GB; the call's fixed cost is paid once per 4,096 works.
WORKS_PER_CALL = 4096


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
    """Runs ``schedule`` with ``process`` (``build_stale_model_process``) on ``local_batches``.

    Args:
      process: the server step, ``build_stale_model_process``.
      schedule: the run's ``Schedule``.
      local_batches: the clients' ``LocalBatches``.
      works_per_call: the most local works of a grouped process per TFF call (see the module
        docstring).
    """

    def __init__(self, process, schedule, local_batches, works_per_call=WORKS_PER_CALL):
        if local_batches.num_clients != len(schedule.importance):
            raise ValueError(f"the schedule has {len(schedule.importance)} clients, the data "
                             f"{local_batches.num_clients}")
        if int(works_per_call) != works_per_call or works_per_call < 1:
            raise ValueError(f"works_per_call must be an integer >= 1, got {works_per_call!r}")
        self.works_per_call = int(works_per_call)
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

        ``works``: the step's local works as a sequence of ``(contribution, data)`` pairs, e.g.
        from ``ScheduleDataSource``; by default their batches come from ``local_batches``. The
        one server step of every run (``train_asynchronous_model``, the command line, ``run``).

        Args:
          run_state: the ``RunState`` before the step.
          works: see above.
        """
        n = run_state.next_step
        step = self.schedule.steps[n]
        if works is None:
            works = StepWorks(step.contributions, work_data(self.process, self.local_batches))
        process_state, metrics = run_state.process_state, None
        if len(works):  # a step without work: the process would leave the state as it is; save the call
            output = self._step(run_state, works)
            process_state, metrics = output.state, output.metrics
        return self.advance(run_state, process_state), StepRecord(step, metrics)

    def _step(self, run_state, works):
        """The process' output of a step of ``works`` (one call, or parts and their sum)."""
        state, size = run_state.process_state, self.works_per_call

        def values(part):
            return pack_client_values(
                self.process, [(run_state.versions[c.sent_version], data, c.weight) for c, data in part])

        if len(works) <= size or not takes_arrays(self.process):
            return self.process.next(state, values(works[:]))
        total = None
        for start in range(0, len(works), size):
            sums = self.process.step_sums(state, values(works[start:start + size]))
            total = sums if total is None else tf.nest.map_structure(np.add, total, sums)
        return self.process.apply_sums(state, *total)

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
