r"""FedFix (Fraboni et al., JMLR 2023, arXiv 2206.10189, Section 5).

The server aggregates at fixed times :math:`(n+1)\Delta t`, whoever is back: every client whose
return time is :math:`\le (n+1)\Delta t` (possibly nobody), and only those restart, from
:math:`\theta^{n+1}`, at :math:`(n+1)\Delta t`. A client of time :math:`\tau_i` is aggregated
once every :math:`\lceil \tau_i/\Delta t \rceil` steps, hence the ``weight`` policy

.. math::

    d_i = \lceil \tau_i / \Delta t \rceil \, p_i,

which makes every client's expected share of the aggregation weight :math:`p_i`: FedFix
optimizes the true federated objective while, unlike synchronous FedAvg, it never waits for the
slowest client. ``identical`` (not in the authors' code): :math:`d_i = 1/|S_n|`, the mean of
the updates received.

The authors' schedule has :math:`\lfloor T/\Delta t \rfloor` steps; their recorded step times
are :math:`n\Delta t`, shifted by one :math:`\Delta t` from when step n aggregates; here a step's
time is the aggregation time :math:`(n+1)\Delta t`.
"""
import math

import numpy as np

from tff_experiments.asynchronous import schedule as schedule_lib


def fedfix_schedule(times, horizon, importance, policy="weight", *, delta_t):
    schedule_lib.check_policy(policy)
    if not delta_t > 0:
        raise ValueError(f"FedFix needs delta_t > 0, got {delta_t!r}")
    num_clients = times.num_clients
    returns = np.array([times.duration(i, 0) for i in range(num_clients)])
    sent = np.zeros(num_clients, dtype=np.int64)
    works = np.zeros(num_clients, dtype=np.int64)
    steps = []
    for n in range(int(horizon / delta_t)):
        now = (n + 1) * delta_t
        back = np.where(returns <= now)[0]
        steps.append(schedule_lib.ServerStep(
            n, now, tuple(schedule_lib.Contribution(int(i), int(sent[i]), int(works[i])) for i in back)))
        for i in back:
            sent[i], works[i] = n + 1, works[i] + 1
            returns[i] = now + times.duration(i, works[i])
    weights = None
    if policy == "weight":
        weights = np.array([math.ceil(t / delta_t) for t in times.mean_times]) * np.asarray(
            importance, dtype=np.float64)
    return schedule_lib.Schedule(f"fedfix-{delta_t:g}", policy, horizon,
                                 schedule_lib.with_weights(steps, weights),
                                 np.asarray(importance, dtype=np.float64), times.mean_times)
