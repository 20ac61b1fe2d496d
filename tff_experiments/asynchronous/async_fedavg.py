r"""Asynchronous FedAvg (Fraboni et al., JMLR 2023, arXiv 2206.10189, the authors' ``Async``).

Clients work continuously; the server aggregates each client as soon as it returns, alone,
and sends it the new global model: :math:`S_n = \{\text{the next client to return}\}`. A
client's work was started from the model it last received, so it is stale by the number of
steps other clients made meanwhile. Weights:

* ``weight``: :math:`d_i = \big(\sum_j 1/\tau_j\big) \, \tau_i \, p_i`. Client i returns at rate
  :math:`1/\tau_i`, so its expected share of the aggregation weight is
  :math:`\propto p_i`: the scheme optimizes the true federated objective
  :math:`\sum_i p_i F_i`.
* ``identical``: :math:`d_i = 1`; the fast clients then count :math:`\propto 1/\tau_i` times more.
* ``staleness``: :math:`d_i = 1/\sqrt{1 + \text{staleness}}` (see ``schedule``).

With a population of P clients and concurrency C (``population``): C clients train at once;
the returning client frees its slot, which goes to a client drawn uniformly at random among the
clients not training (the returning one included), and starts from the new model
:math:`\theta^{n+1}`. In the long run client i starts works at the rate
:math:`\lambda_i = \pi_i/\tau_i` (``population.steady_state_rates``, :math:`\pi_i` the
conditional Poisson inclusion probabilities of size C with odds :math:`\tau_i`), so ``weight``
is

.. math::

    d_i = p_i \, \frac{\sum_j \lambda_j}{\lambda_i},

which makes every client's expected share :math:`p_i` in the stationary regime, whatever the
law of the durations given their means :math:`\tau_i` (the start, C clients drawn uniformly,
is a transient). With C = P, :math:`\lambda_i = 1/\tau_i`: the weights above.
"""
import heapq

import numpy as np

from tff_experiments.asynchronous import population as population_lib
from tff_experiments.asynchronous import schedule as schedule_lib


def async_fedavg_schedule(times, horizon, importance, policy="weight", *, concurrency=None, seed=0):
    """One step per return, while the next return is at or before ``horizon``; ties go to the
    lowest client index (as the authors' ``argmin``).

    Args:
      times: the clients' ``ClientTimes`` (P = ``times.num_clients``).
      horizon: the virtual time to schedule up to.
      importance: :math:`p_i`, the clients' importance.
      policy: ``"weight"``, ``"identical"`` or ``"staleness"``.
      concurrency: C, the most clients training at once; ``None``: all P, always.
      seed: seeds the draws of the clients that start (``population.sampling_rng``).
    """
    schedule_lib.check_policy(policy)
    num_clients = times.num_clients
    concurrency = population_lib.check_concurrency(concurrency, num_clients)
    idle, pending = population_lib.first_works(times, concurrency, seed)  # (return time, client, sent version)
    works = [0] * num_clients
    steps = []
    while pending and pending[0][0] <= horizon:
        now, i, sent = heapq.heappop(pending)
        n = len(steps)
        steps.append(schedule_lib.ServerStep(n, now, (schedule_lib.Contribution(i, sent, works[i]),)))
        works[i] += 1
        (i,) = population_lib.replacements(idle, [i])
        heapq.heappush(pending, (now + times.duration(i, works[i]), i, n + 1))
    importance = np.asarray(importance, dtype=np.float64)
    tau, weights = times.mean_times, None
    if policy == "weight" and concurrency == num_clients:
        weights = np.sum(1.0 / tau) * tau * importance
    elif policy == "weight":
        rates = population_lib.steady_state_rates(tau, concurrency)
        weights = importance * (np.sum(rates) / rates)
    name = "async" + population_lib.scheme_suffix(concurrency, num_clients)
    return schedule_lib.Schedule(name, policy, horizon, schedule_lib.policy_weights(steps, policy, weights),
                                 importance, tau)
