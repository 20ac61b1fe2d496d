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
"""
import heapq

import numpy as np

from tff_experiments.asynchronous import schedule as schedule_lib


def async_fedavg_schedule(times, horizon, importance, policy="weight"):
    """One step per return, while the next return is at or before ``horizon``; ties go to the
    lowest client index (as the authors' ``argmin``)."""
    schedule_lib.check_policy(policy)
    num_clients = times.num_clients
    pending = [(times.duration(i, 0), i) for i in range(num_clients)]  # (return time, client)
    heapq.heapify(pending)
    sent = [0] * num_clients
    works = [0] * num_clients
    steps = []
    while pending and pending[0][0] <= horizon:
        now, i = heapq.heappop(pending)
        n = len(steps)
        steps.append(schedule_lib.ServerStep(n, now, (schedule_lib.Contribution(i, sent[i], works[i]),)))
        sent[i], works[i] = n + 1, works[i] + 1
        heapq.heappush(pending, (now + times.duration(i, works[i]), i))
    weights = None
    if policy == "weight":
        tau = times.mean_times
        weights = np.sum(1.0 / tau) * tau * np.asarray(importance, dtype=np.float64)
    return schedule_lib.Schedule("async", policy, horizon, schedule_lib.with_weights(steps, weights),
                                 np.asarray(importance, dtype=np.float64), times.mean_times)
