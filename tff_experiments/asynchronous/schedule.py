r"""A schedule: which clients the server aggregates at each step, from which model, with what weight.

Every scheme of Fraboni et al. (JMLR 2023, arXiv 2206.10189) shares one server update,

.. math::

    \theta^{n+1} = \theta^n + \eta_g \sum_{i \in S_n} d_i \,
        \big(\theta_i^{\text{local}} - \theta^{\rho_i(n)}\big),

where :math:`S_n` is the set of clients aggregated at step n, :math:`\theta^{\rho_i(n)}` the
(possibly stale) global model client i started its local work from, and
:math:`\theta_i^{\text{local}}` the model after that work. Only the clients in :math:`S_n` get
:math:`\theta^{n+1}` and restart from it. The schemes differ in :math:`S_n`, the step times, and
the weights :math:`d_i`; each lives in its own module (``fedavg``, ``async_fedavg``, ``fedfix``,
``fedbuff``) and produces the participation; this module adds the weights.

Model versions: version 0 is the initial model, version n+1 the model after step n; the
staleness of a contribution to step n is ``n - sent_version``.

Weight policies (``POLICIES``):

* ``weight``: a constant :math:`d_i` per client that makes every client's expected share of the
  aggregation weight its importance :math:`p_i` (each scheme's module says how);
* ``identical``: :math:`d_i = 1/|S_n|`, the mean of the updates received;
* ``staleness``: :math:`d_i = s(n - \rho_i(n)) / |S_n|` with FedBuff's staleness scaling
  :math:`s(\tau) = 1/\sqrt{1 + \tau}`: FedBuff (Nguyen et al., AISTATS 2022, arXiv
  2106.06639) scales each update in the buffer by a function of its staleness; FLSim, Meta's
  simulator that implements FedBuff (``FedBuffAggregator``), weighs an update by ``PolynomialStalenessWeight``
  :math:`(1+\tau)^{-a} / (1+\bar\tau)^{-a}` (``flsim/utils/async_trainer/
  async_staleness_weights.py``), and its own FedBuff tests use :math:`a = 1/2`,
  :math:`\bar\tau = 0`, which is :math:`s`; its FedBuff aggregator adds the c weighted updates
  (``ReductionType.WEIGHTED_SUM``), its server learning rate absorbing the mean's 1/c, which
  is here in :math:`d` as in ``identical``. So :math:`d = s(\tau)/c` for FedBuff,
  :math:`s(\tau)` for async FedAvg, :math:`s(\tau)/|S_n|` for FedFix and :math:`1/|S_n|` for
  FedAvg, whose updates are never stale.

A population of P clients of which at most C train at once: ``population``.
"""
import dataclasses
import math

import numpy as np

POLICIES = ("weight", "identical", "staleness")
IMPORTANCES = ("uniform", "data-size")


@dataclasses.dataclass(frozen=True)
class Contribution:
    """One client's local work, aggregated at a server step.

    Attributes:
      client: the client's index.
      sent_version: the global model version the client started from, :math:`\\rho_i(n)`.
      work_index: the client's local-work counter, 0, 1, ... (seeds its data and time).
      weight: its aggregation weight :math:`d_i`.
    """

    client: int
    sent_version: int  # the global model version the client started from
    work_index: int  # the client's local-work counter: 0, 1, ... (seeds its data and time)
    weight: float = float("nan")  # d_i


@dataclasses.dataclass(frozen=True)
class ServerStep:
    """One aggregation of the server.

    Attributes:
      index: n; this step makes global model version n + 1.
      time: the virtual time at which the server aggregates.
      contributions: the ``Contribution`` of each aggregated local work (possibly none:
        FedFix when nobody is back).
    """

    index: int  # n: this step makes global model version n + 1
    time: float  # virtual time at which the server aggregates
    contributions: tuple  # of Contribution, possibly empty (FedFix when nobody is back)

    def staleness(self):
        """The staleness :math:`n - \\rho_i(n)` of each contribution."""
        return [self.index - c.sent_version for c in self.contributions]


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Server steps up to the horizon, with the weights that were used to build them.

    Attributes:
      scheme: the algorithm that made it (``fedavg``, ``async``, ``fedfix``, ``fedbuff``, ...).
      policy: the aggregation weights' policy (one of ``POLICIES``).
      horizon: the virtual time it runs to.
      steps: the ``ServerStep``s, in time order.
      importance: :math:`p_i`, the clients' importance (sums to 1).
      mean_times: :math:`\\tau_i`, the clients' mean local-work times.
    """

    scheme: str
    policy: str
    horizon: float
    steps: tuple
    importance: np.ndarray  # p_i, sums to 1
    mean_times: np.ndarray  # tau_i

    def __len__(self):
        return len(self.steps)

    def participation_counts(self):
        """How many of each client's local works the steps aggregate (one per client)."""
        counts = np.zeros(len(self.importance), dtype=np.int64)
        for step in self.steps:
            for c in step.contributions:
                counts[c.client] += 1
        return counts

    def effective_importance(self):
        r"""Each client's share of the total aggregation weight over the run,
        :math:`r_i \propto \sum_n d_i \mathbb 1[i \in S_n]`: the client importance of the
        objective the schedule actually optimizes (the paper's surrogate objective). With the
        ``weight`` policy it is close to :math:`p_i`; with ``identical`` it leans toward the
        clients that come back most often."""
        totals = np.zeros(len(self.importance))
        for step in self.steps:
            for c in step.contributions:
                totals[c.client] += c.weight
        return totals / totals.sum() if totals.sum() > 0 else totals

    def last_use_of_versions(self):
        """``{version: index of the last step that aggregates work started from it}``."""
        last = {}
        for step in self.steps:
            for c in step.contributions:
                last[c.sent_version] = step.index
        return last

    def live_versions(self, next_step):
        """Global model versions that steps ``next_step, ...`` still need, among those that
        exist before step ``next_step`` runs (versions ``0 .. next_step``)."""
        needed = set()
        for step in self.steps[next_step:]:
            for c in step.contributions:
                if c.sent_version <= next_step:
                    needed.add(c.sent_version)
        return sorted(needed)


def client_importance(kind, num_examples):
    """:math:`p_i`: ``"uniform"`` (the paper's experiments) or ``"data-size"`` (n_i / n).

    Args:
      kind: ``"uniform"`` or ``"data-size"``.
      num_examples: :math:`n_i`, each client's number of examples.
    """
    num_examples = np.asarray(num_examples, dtype=np.float64)
    if kind == "uniform":
        return np.full(len(num_examples), 1.0 / len(num_examples))
    if kind == "data-size":
        return num_examples / num_examples.sum()
    raise ValueError(f"client importance must be one of {IMPORTANCES}, got {kind!r}")


def staleness_scale(staleness):
    r"""FedBuff's staleness scaling :math:`s(\tau) = 1/\sqrt{1 + \tau}`.

    Args:
      staleness: :math:`\tau \ge 0`, steps since the client's model was sent (a number or an
        array).
    """
    return 1.0 / np.sqrt(1.0 + np.asarray(staleness, dtype=np.float64))


def mean_weights(index, sent_versions, staleness=False):
    r"""The ``identical`` weights :math:`1/|S_n|` of a step's contributions, or with
    ``staleness`` the ``staleness`` weights :math:`s(n - \rho_i(n))/|S_n|`.

    Args:
      index: n, the step.
      sent_versions: :math:`\rho_i(n)`, the version each contribution started from.
      staleness: scale by FedBuff's :math:`s` (``staleness_scale``).
    """
    k = len(sent_versions)
    if staleness:
        return [1.0 / math.sqrt(1.0 + (index - sent)) / k for sent in sent_versions]
    return [1.0 / k] * k if k else []


def with_weights(steps, client_weights=None, staleness=False):
    r"""Attaches :math:`d_i` to every contribution.

    Args:
      steps: the ``ServerStep``s, their contributions' weights unset.
      client_weights: ``client_weights[i]`` is :math:`d_i` (the ``weight`` policies, one constant
        per client); ``None`` gives :math:`d_i = 1/|S_n|` (``identical``: the mean of the
        received updates: 1 for async FedAvg, 1/c for FedBuff).
      staleness: with ``client_weights=None``, scale :math:`1/|S_n|` by
        :math:`s(n - \rho_i(n))` (``staleness_scale``): the ``staleness`` policy.
    """
    weighted = []
    for step in steps:
        if client_weights is not None:
            weights = [float(client_weights[c.client]) for c in step.contributions]
        else:
            weights = mean_weights(step.index, [c.sent_version for c in step.contributions], staleness)
        contributions = tuple(dataclasses.replace(c, weight=d) for c, d in zip(step.contributions, weights))
        weighted.append(dataclasses.replace(step, contributions=contributions))
    return tuple(weighted)


def check_policy(policy):
    """``policy``, checked: one of ``POLICIES``.

    Args:
      policy: the aggregation weights' policy.
    """
    if policy not in POLICIES:
        raise ValueError(f"weight policy must be one of {POLICIES}, got {policy!r}")
    return policy
