r"""The schemes' rules, online: fed the clients' returns as they happen, a rule says when the
server aggregates, which updates the step counts, with which weights, and which clients are
free to start again from the new model.

One rule object per run, used by two drivers:

* ``virtual_clock.play`` feeds it the returns of ``ClientTimes`` on the virtual clock; the
  schedules of ``fedavg``, ``async_fedavg``, ``fedfix`` and ``fedbuff`` are what it decides;
* Flower's ServerApp (``flower_async``) feeds it the replies of real nodes as they arrive, with
  wall-clock times.

The protocol, for a driver:

1. ``started(client)`` whenever a client is sent the current model (version ``rule.version``);
2. ``arrived(client, sent_version, time)`` when its update comes back;
3. ``tick(time)`` once the clock reaches ``deadline()`` (FedFix's aggregation times; the other
   schemes have none): on the virtual clock before any return later than the deadline, a return
   at the deadline itself first;
4. ``failed(client, sent_version, time)`` when a client's work will not come back (its node
   failed or did not reply in time): nothing of it is aggregated. A client the driver drops
   from the run is one it does not start again; the driver stops the run once fewer than
   ``min_clients`` clients are left.

``arrived``, ``tick`` and ``failed`` return a ``Decision``: the server steps to make now (each with its
contributions and their weights :math:`d_i`, the server update of ``schedule``) and the clients
whose slots are freed, which start from the model after those steps. Versions: version 0 is
the initial model, step n makes version n + 1, and a contribution's staleness at step n is
``n - sent_version``.
"""
import dataclasses
import math

import numpy as np

from tff_experiments.asynchronous import schedule as schedule_lib

ALGORITHMS = ("fedavg", "async", "fedfix", "fedbuff", "fedbuff-keep-training")


@dataclasses.dataclass(frozen=True)
class Decision:
    """What a rule decides on a return or a tick.

    Attributes:
      steps: the server steps (``ServerStep``) to make now, in order (weights set unless the policy's
        client weights are only known after the run: FedBuff's ``weight`` on the virtual clock).
      freed: the clients whose slots are free now, in order: they (or, in a population, as
        many clients drawn from the idle ones) start from the model after ``steps``.
    """

    steps: tuple = ()
    freed: tuple = ()


NOTHING = Decision()


class Weighting:
    r"""The aggregation weights :math:`d_i` of a step's contributions, by policy.

    Args:
      policy: one of ``schedule.POLICIES``.
      client_weights: the ``weight`` policy's constant :math:`d_i` per client: a sequence
        indexed by client, a callable ``client -> d_i`` (evaluated at every step, for weights
        estimated as a run goes) or ``None`` (weights set after the run: the contributions'
        weights stay NaN).
    """

    def __init__(self, policy, client_weights=None):
        self.policy = schedule_lib.check_policy(policy)
        self.client_weights = client_weights

    def __call__(self, index, contributions):
        """``contributions`` with their weights at step ``index``.

        Args:
          index: n, the step.
          contributions: the step's ``Contribution`` objects.
        """
        if self.policy == "weight":
            if self.client_weights is None:
                return tuple(contributions)
            lookup = self.client_weights if callable(self.client_weights) else self.client_weights.__getitem__
            weights = [float(lookup(c.client)) for c in contributions]
        else:
            weights = schedule_lib.mean_weights(index, [c.sent_version for c in contributions],
                                                staleness=self.policy == "staleness")
        return tuple(dataclasses.replace(c, weight=d) for c, d in zip(contributions, weights))


class Rule:
    """The shared bookkeeping of a rule: the model version, the clients in flight.

    Args:
      weighting: the ``Weighting`` of the steps.
      version: the current global model version (a resumed run starts from it).
    """

    #: the scheme's name, as ``algorithms.ALGORITHMS`` spells it
    name = ""
    #: the fewest clients with which the rule still makes steps (FedBuff's clients wait for c)
    min_clients = 1

    def __init__(self, weighting, version=0):
        self.weighting = weighting
        self.version = int(version)
        self.in_flight = {}  # client -> the version it was sent

    def started(self, client):
        """``client`` was sent the current model and works from it.

        Args:
          client: the client's index.
        """
        if client in self.in_flight:
            raise ValueError(f"client {client} is already working")
        self.in_flight[client] = self.version

    def arrived(self, client, sent_version, time, work_index=0):
        """``client``'s update, computed from version ``sent_version``, came back at ``time``.

        Args:
          client: the client's index.
          sent_version: the version it was sent.
          time: when it came back.
          work_index: the client's local-work counter (recorded in the contribution).
        """
        if self.in_flight.pop(client, None) != sent_version:
            raise ValueError(f"client {client} was not working from version {sent_version}")
        return self._arrived(schedule_lib.Contribution(client, sent_version, work_index), time)

    def _arrived(self, contribution, time):
        raise NotImplementedError

    def failed(self, client, sent_version, time):
        """``client``'s work from version ``sent_version`` will not come back (an error, or no
        reply in time): it leaves the clients in flight and no step counts it. The returned
        ``Decision`` frees the client when it may start again (at once, except in a synchronous
        round: at the round's end).

        Args:
          client: the client's index.
          sent_version: the version it was sent.
          time: when the failure was noticed.
        """
        if self.in_flight.pop(client, None) != sent_version:
            raise ValueError(f"client {client} was not working from version {sent_version}")
        return self._failed(client, time)

    def _failed(self, client, time):
        return Decision((), (client,))

    def deadline(self, horizon=None):
        """The time at which the rule aggregates whatever has come back (``tick``), or ``None``.

        Args:
          horizon: the virtual time a schedule runs to (``None``: no end).
        """
        return None

    def tick(self, time):
        """The clock reached ``deadline()``.

        Args:
          time: the time now.
        """
        return NOTHING

    def _step(self, contributions, time):
        """The next server step, of ``contributions``, at ``time``; bumps the version."""
        step = schedule_lib.ServerStep(self.version, time, self.weighting(self.version, contributions))
        self.version += 1
        return step


class SynchronousRule(Rule):
    """Synchronous FedAvg: a step once every client sent the current model has come back or
    failed, of the returns (contributions in increasing client order), at the last of them; the
    round's clients, failed ones included, are freed. A round whose clients all failed makes no
    step (as Flower's FedAvg accepting failures)."""

    name = "fedavg"

    def __init__(self, weighting, version=0):
        super().__init__(weighting, version)
        self.round = []
        self.round_failed = []

    def _arrived(self, contribution, time):
        self.round.append(contribution)
        return NOTHING if self.in_flight else self._end_round(time)

    def _failed(self, client, time):
        self.round_failed.append(client)
        return NOTHING if self.in_flight else self._end_round(time)

    def _end_round(self, time):
        contributions = sorted(self.round, key=lambda c: c.client)
        freed = tuple(sorted([c.client for c in contributions] + self.round_failed))
        self.round, self.round_failed = [], []
        steps = (self._step(contributions, time),) if contributions else ()
        return Decision(steps, freed)


class AsyncRule(Rule):
    """Asynchronous FedAvg: a step per return, of that return alone; the client is freed."""

    name = "async"

    def _arrived(self, contribution, time):
        return Decision((self._step((contribution,), time),), (contribution.client,))


class BufferRule(Rule):
    """FedBuff: a step once ``buffer_size`` updates have come back, at the last of them.

    Args:
      weighting: the ``Weighting`` of the steps.
      buffer_size: c, the updates per step.
      keep_training: a client is freed as soon as it returns, its update waiting in the buffer
        (Nguyen et al.'s FedBuff); otherwise the c clients wait for the step (FedBuff-c of
        Fraboni et al.).
      version: the current global model version.
    """

    def __init__(self, weighting, buffer_size, keep_training=False, version=0):
        super().__init__(weighting, version)
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
            raise ValueError(f"FedBuff buffer size must be a positive integer, got {buffer_size!r}")
        self.buffer_size = int(buffer_size)
        self.keep_training = bool(keep_training)
        # the c updates of a step come from c clients unless a client works on while its update waits
        self.min_clients = 1 if self.keep_training else self.buffer_size
        self.name = "fedbuff-keep-training" if keep_training else "fedbuff"
        self.buffer = []  # (contribution, return time)
        self.waited = 0.0  # sum over the aggregated updates of (step time - return time)

    def _arrived(self, contribution, time):
        self.buffer.append((contribution, time))
        steps = ()
        if len(self.buffer) == self.buffer_size:
            self.waited += sum(time - back for _, back in self.buffer)
            steps = (self._step(tuple(c for c, _ in self.buffer), time),)
            if not self.keep_training:
                freed = tuple(c.client for c, _ in self.buffer)
                self.buffer = []
                return Decision(steps, freed)
            self.buffer = []
        return Decision(steps, (contribution.client,) if self.keep_training else ())


class PeriodRule(Rule):
    r"""FedFix: a step at every :math:`(n+1)\Delta t` of whatever came back since the last
    one (possibly nothing), contributions in increasing client order; those clients are freed.

    Args:
      weighting: the ``Weighting`` of the steps.
      delta_t: :math:`\Delta t > 0`, the aggregation period.
      version: the current global model version.
      origin: the time of step 0's period start (a resumed run's clock).
    """

    name = "fedfix"

    def __init__(self, weighting, delta_t, version=0, origin=0.0):
        super().__init__(weighting, version)
        if isinstance(delta_t, bool) or not isinstance(delta_t, (int, float, np.integer, np.floating)) \
                or not 0 < delta_t < math.inf:
            raise ValueError(f"FedFix needs delta_t > 0, got {delta_t!r}")
        self.delta_t = delta_t
        self.origin = float(origin)
        self.first = int(version)  # the version at time origin
        self.back = []

    def _arrived(self, contribution, time):
        self.back.append(contribution)
        return NOTHING

    def deadline(self, horizon=None):
        """:math:`(n+1)\\Delta t` after the origin for the next step n, while the horizon holds
        :math:`\\lfloor T/\\Delta t \\rfloor` periods (the authors' number of steps).

        Args:
          horizon: T, the virtual time a schedule runs to (``None``: no end).
        """
        n = self.version - self.first
        if horizon is not None and n >= int(horizon / self.delta_t):
            return None
        return self.origin + (n + 1) * self.delta_t

    def tick(self, time):
        """The step of the period that ends now, of every client back since the last step.

        Args:
          time: the time now (the deadline on the virtual clock).
        """
        contributions = sorted(self.back, key=lambda c: c.client)  # the authors' order: by client
        self.back = []
        return Decision((self._step(contributions, time),), tuple(c.client for c in contributions))


def build_rule(algorithm, weighting, *, delta_t=None, buffer_size=None, version=0):
    """The rule of ``algorithm``.

    Args:
      algorithm: one of ``ALGORITHMS``.
      weighting: the ``Weighting`` of its steps.
      delta_t: FedFix's aggregation period.
      buffer_size: FedBuff's c.
      version: the current global model version (a resumed run's).
    """
    if algorithm == "fedavg":
        return SynchronousRule(weighting, version)
    if algorithm == "async":
        return AsyncRule(weighting, version)
    if algorithm == "fedfix":
        if delta_t is None:
            raise ValueError("FedFix needs delta_t")
        return PeriodRule(weighting, delta_t, version)
    if algorithm in ("fedbuff", "fedbuff-keep-training"):
        if buffer_size is None:
            raise ValueError("FedBuff needs buffer_size")
        return BufferRule(weighting, buffer_size, algorithm == "fedbuff-keep-training", version)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")
