"""The clients' data of a schedule's local works, as a ``tff.program.FederatedDataSource``.

``ScheduleDataSource`` hands ``train_asynchronous_model`` (``tff_experiments.asynchronous.program``)
the data of each server step's local works, in the order of the schedule; its iterator saves and
restores itself as bytes (TFF's ``Serializable`` contract), with everything that determines the
remaining selections.
"""
import collections
import json

import numpy as np
import tensorflow_federated as tff

from tff_experiments.asynchronous import schedule as schedule_lib
from tff_experiments.asynchronous.local_data import LocalBatches, StepWorks
from tff_experiments.data.in_memory import array_client_data
from tff_experiments.data.synthetic_federated import synthetic_client_data_from_config
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
        """The next server step's local works: a sequence of ``(contribution, data)``
        (``StepWorks``: each work's data made when read), data the K batches (a
        ``tf.data.Dataset``, or arrays ``(K, b, ...)`` when ``arrays``)."""
        step = self._source.schedule.steps[self.next_step]
        if k is not None and k != len(step.contributions):
            raise ValueError(f"server step {self.next_step} aggregates {len(step.contributions)} "
                             f"local works, not {k}")
        local = self._source.local_batches
        batches = local.batch_arrays if self._source.arrays else local.dataset
        self.next_step += 1
        return StepWorks(step.contributions, batches)

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
        headers, buffer = checkpoints.encode_leaves(leaves)
        header["leaves"] = headers
        text = json.dumps(header).encode()
        return len(text).to_bytes(8, "little") + text + buffer.tobytes()

    @classmethod
    def from_bytes(cls, buffer):
        size = int.from_bytes(buffer[:8], "little")
        header = json.loads(bytes(buffer[8:8 + size]).decode())
        if header.get("format") != 1:
            raise ValueError("not the bytes of a ScheduleDataSourceIterator")
        batches = header["batches"]
        if "synthetic" in header:
            client_data = synthetic_client_data_from_config(header["synthetic"])
        else:
            leaves = checkpoints.decode_leaves(header["leaves"], np.frombuffer(bytes(buffer[8 + size:]), np.uint8))
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
