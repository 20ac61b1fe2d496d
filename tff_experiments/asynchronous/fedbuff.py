r"""FedBuff (Nguyen et al., AISTATS 2022, arXiv 2106.06639), as Fraboni et al. (JMLR 2023) run it
and as Nguyen et al. define it.

The server aggregates once c updates are in its buffer.

* ``keep_training=False`` (the authors' ``FedBuff-c``): the step aggregates the c earliest
  returns, at the latest of their return times; those c clients wait for it and restart from
  :math:`\theta^{n+1}`.
* ``keep_training=True`` (Nguyen et al.): a returning client drops its update in the buffer
  and restarts at once from the current global model; the server aggregates when the
  buffer holds c updates (a fast client may have several in one buffer).

Weights: ``identical`` :math:`d = 1/c`; ``weight``
:math:`d_i = p_i / (\text{fraction of the steps that aggregate client } i)` (over the whole
schedule, as the authors compute it; with ``keep_training`` each update counts), which makes
every client's share of the aggregation weight :math:`p_i`.

The authors start a step while their earliest pending return is :math:`\le T`, so their last
step may end after T; here a step's time (its last return) must be :math:`\le T`.
"""
import heapq

import numpy as np

from tff_experiments.asynchronous import schedule as schedule_lib


def fedbuff_schedule(times, horizon, importance, policy="weight", *, buffer_size, keep_training=False):
    schedule_lib.check_policy(policy)
    num_clients = times.num_clients
    if not isinstance(buffer_size, (int, np.integer)) or not 1 <= buffer_size:
        raise ValueError(f"FedBuff buffer size must be a positive integer, got {buffer_size!r}")
    if buffer_size > num_clients and not keep_training:
        raise ValueError(f"FedBuff buffer size {buffer_size} is larger than the number of clients "
                         f"({num_clients})")
    pending = [(times.duration(i, 0), i) for i in range(num_clients)]  # (return time, client)
    heapq.heapify(pending)
    sent = [0] * num_clients
    works = [0] * num_clients
    steps = []
    if keep_training:
        buffer = []
        while pending and pending[0][0] <= horizon:
            now, i = heapq.heappop(pending)
            n = len(steps)
            buffer.append(schedule_lib.Contribution(i, sent[i], works[i]))
            if len(buffer) == buffer_size:
                steps.append(schedule_lib.ServerStep(n, now, tuple(buffer)))
                buffer, n = [], n + 1
            sent[i], works[i] = n, works[i] + 1  # the current model, new if i filled the buffer
            heapq.heappush(pending, (now + times.duration(i, works[i]), i))
    else:
        while True:
            earliest = heapq.nsmallest(buffer_size, pending)
            now = earliest[-1][0]
            if now > horizon:
                break
            for entry in earliest:
                pending.remove(entry)
            n = len(steps)
            steps.append(schedule_lib.ServerStep(
                n, now, tuple(schedule_lib.Contribution(i, sent[i], works[i]) for _, i in earliest)))
            for _, i in earliest:
                sent[i], works[i] = n + 1, works[i] + 1
                pending.append((now + times.duration(i, works[i]), i))
            heapq.heapify(pending)
    weights = None
    if policy == "weight":
        counts = np.zeros(num_clients)
        for step in steps:
            for c in step.contributions:
                counts[c.client] += 1
        fraction = counts / max(len(steps), 1)
        with np.errstate(divide="ignore"):
            weights = np.where(fraction > 0, np.asarray(importance, dtype=np.float64) / fraction, 0.0)
    name = f"fedbuff-{buffer_size}" + ("-keep-training" if keep_training else "")
    return schedule_lib.Schedule(name, policy, horizon, schedule_lib.with_weights(steps, weights),
                                 np.asarray(importance, dtype=np.float64), times.mean_times)
