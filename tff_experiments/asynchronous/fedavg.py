r"""Synchronous FedAvg (McMahan et al., AISTATS 2017) on the virtual clock.

Every step aggregates all M clients, each from the current global model, with
:math:`d_i = p_i`; a round lasts as long as its slowest client,
:math:`t_{n+1} = t_n + \max_i D_i^{(n)}` (:math:`= \max_i \tau_i` for clockwork clients, the
authors' ``FL`` scheme). With :math:`\eta_g = 1` the server update
:math:`\theta^{n+1} = \theta^n + \sum_i p_i (\theta_i^{\text{local}} - \theta^n)` is TFF's
``build_weighted_fed_avg`` with client weights :math:`p_i`.
"""
import numpy as np

from tff_experiments.asynchronous import schedule as schedule_lib


def fedavg_schedule(times, horizon, importance, policy="weight"):
    """Rounds until the next one would end after ``horizon``. ``policy="identical"`` gives
    :math:`d_i = 1/M` (the same as ``weight`` with uniform importance)."""
    schedule_lib.check_policy(policy)
    steps, now, n = [], 0.0, 0
    clients = range(times.num_clients)
    while True:
        end = now + max(times.duration(i, n) for i in clients)
        if end > horizon:
            break
        steps.append(schedule_lib.ServerStep(
            n, end, tuple(schedule_lib.Contribution(i, n, n) for i in clients)))
        now, n = end, n + 1
    weights = np.asarray(importance, dtype=np.float64) if policy == "weight" else None
    return schedule_lib.Schedule("fedavg", policy, horizon, schedule_lib.with_weights(steps, weights),
                                 np.asarray(importance, dtype=np.float64), times.mean_times)
