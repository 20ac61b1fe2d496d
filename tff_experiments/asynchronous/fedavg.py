r"""Synchronous FedAvg (McMahan et al., AISTATS 2017) on the virtual clock.

Every step aggregates all M clients, each from the current global model, with
:math:`d_i = p_i`; a round lasts as long as its slowest client,
:math:`t_{n+1} = t_n + \max_i D_i^{(n)}` (:math:`= \max_i \tau_i` for clockwork clients, the
authors' ``FL`` scheme). With :math:`\eta_g = 1` the server update
:math:`\theta^{n+1} = \theta^n + \sum_i p_i (\theta_i^{\text{local}} - \theta^n)` is TFF's
``build_weighted_fed_avg`` with client weights :math:`p_i`.

The rule is ``rules.SynchronousRule``, played on the virtual clock (``virtual_clock``). With a
population of P clients and concurrency C (``population``), every round is C clients
drawn uniformly at random without replacement from the P (all idle between rounds), listed in
increasing index order; it lasts as long as the slowest of them. Client i is in a round with
probability C/P, so the ``weight`` policy is

.. math::

    d_i = \frac{P}{C}\, p_i,

which keeps every client's expected share of the aggregation weight at :math:`p_i`, exactly
(the sum of a round's weights is 1 on average, as FedAvg's unbiased estimate with client
sampling); ``identical`` and ``staleness`` give :math:`1/C`.
"""
import numpy as np

from tff_experiments.asynchronous import population as population_lib
from tff_experiments.asynchronous import rules as rules_lib
from tff_experiments.asynchronous import schedule as schedule_lib
from tff_experiments.asynchronous import virtual_clock


def fedavg_schedule(times, horizon, importance, policy="weight", *, concurrency=None, seed=0):
    """Rounds until the next one would end after ``horizon``.

    Args:
      times: the clients' ``ClientTimes`` (P = ``times.num_clients``); each local work lasts
        ``times.duration(client, work_index)``, the client's own work counter.
      horizon: the virtual time to schedule up to.
      importance: :math:`p_i`, the clients' importance.
      policy: ``"weight"`` (:math:`d_i = (P/C) p_i`), ``"identical"`` or ``"staleness"``
        (:math:`1/C`; the same as ``weight`` with uniform importance).
      concurrency: C, the clients of a round, drawn from the P; ``None``: all of them.
      seed: seeds the draws of the rounds' clients (``population.sampling_rng``).
    """
    schedule_lib.check_policy(policy)
    num_clients = times.num_clients
    concurrency = population_lib.check_concurrency(concurrency, num_clients)
    importance = np.asarray(importance, dtype=np.float64)
    weighting = rules_lib.Weighting(policy, fedavg_weights(importance, concurrency))
    steps = virtual_clock.play(rules_lib.SynchronousRule(weighting), times, horizon,
                               concurrency=concurrency, seed=seed)
    name = "fedavg" + population_lib.scheme_suffix(concurrency, num_clients)
    return schedule_lib.Schedule(name, policy, horizon, steps, importance, times.mean_times)


def fedavg_weights(importance, concurrency=None):
    r"""The ``weight`` policy's :math:`d_i = (P/C)\, p_i` (:math:`p_i` with C = P).

    Args:
      importance: :math:`p_i`, the clients' importance.
      concurrency: C, the clients of a round; ``None``: all P.
    """
    importance = np.asarray(importance, dtype=np.float64)
    num_clients = len(importance)
    concurrency = population_lib.check_concurrency(concurrency, num_clients)
    return importance * (num_clients / concurrency) if concurrency < num_clients else importance
