r"""FedBuff (Nguyen et al., AISTATS 2022, arXiv 2106.06639), as Fraboni et al. (JMLR 2023) run it
and as Nguyen et al. define it.

The server aggregates once c updates are in its buffer.

* ``keep_training=False`` (the authors' ``FedBuff-c``): the step aggregates the c earliest
  returns, at the latest of their return times; those c clients wait for it and restart from
  :math:`\theta^{n+1}`.
* ``keep_training=True`` (Nguyen et al.): a returning client drops its update in the buffer
  and restarts at once from the current global model; the server aggregates when the
  buffer holds c updates (a fast client may have several in one buffer).

Weights: ``identical`` :math:`d = 1/c`; ``staleness`` :math:`d = s(\tau)/c` with FedBuff's
:math:`s(\tau) = 1/\sqrt{1+\tau}` (see ``schedule``); ``weight``
:math:`d_i = p_i / (\text{fraction of the steps that aggregate client } i)` (over the whole
schedule, as the authors compute it; with ``keep_training`` each update counts), which makes
every client's share of the aggregation weight :math:`p_i`.

The authors start a step while their earliest pending return is :math:`\le T`, so their last
step may end after T; here a step's time (its last return) must be :math:`\le T`.

**Population and concurrency** (``population``). Nguyen et al. run FedBuff on a population of
P clients (342,477 for Stack Overflow) of which C (e.g. 1,000) train at once. With C given:

* ``keep_training=True``: the returning client frees its slot on return (its update waits in
  the buffer, not the client); the slot goes at once to a client drawn uniformly at random
  among the clients not training (the returning one included), which starts from the current
  model (:math:`\theta^{n+1}` if that return filled the buffer). Nguyen et al.'s abstract: the
  server "aggregates client updates in a private buffer until K updates have been received,
  at which point a server model update is immediately performed"; clients never wait for it
  (and in FLSim, Meta's simulator that implements FedBuff, the start of a client does not depend on the server's steps
  at all: new clients arrive at a ``training_rate``).
* ``keep_training=False``: the c returned clients hold their slots until the step that
  aggregates them, as they wait for it without concurrency; then c clients are drawn, one at a
  time, among the clients not training (those c included), and start from
  :math:`\theta^{n+1}`. So c must be at most C.

With C = P both are the schedules above (every freed client restarts). The ``weight`` policy
becomes, with :math:`\lambda_i = \pi_i / h_i` client i's long-run rate of starting works
(``population.steady_state_rates``, :math:`h_i` its mean time holding a slot),

.. math::

    d_i = \frac{p_i}{r_i}, \qquad r_i = c\,\frac{\lambda_i}{\sum_j \lambda_j}
    \quad (\text{its expected number of updates per step}),

so that the expected shares are :math:`p_i` (a step's weights sum to 1 on average). With
``keep_training`` (:math:`h_i = \tau_i`) this is exact in the stationary regime, whatever the
law of the durations given their means. Without it a client also holds its slot while it waits
for the step, and the in-flight set is no longer of the product form: :math:`h_i = \tau_i +
\bar w`, :math:`\bar w` the schedule's mean wait from a return to its step, approximates the
rates (1-9% off at P = 8, C = 4, c = 2-3 in simulations; nearer as C/P or c shrink). The
empirical fractions that the authors use without concurrency are not used with it: with P much
larger than the number of updates most clients never take part, and weights p_i/(observed
fraction) would shrink every step by the importance of the clients never seen.
"""
import numpy as np

from tff_experiments.asynchronous import population as population_lib
from tff_experiments.asynchronous import rules as rules_lib
from tff_experiments.asynchronous import schedule as schedule_lib
from tff_experiments.asynchronous import virtual_clock


def fedbuff_schedule(times, horizon, importance, policy="weight", *, buffer_size, keep_training=False,
                     concurrency=None, seed=0):
    """Steps of ``buffer_size`` updates until the next one would end after ``horizon``.

    Args:
      times: the clients' ``ClientTimes`` (P = ``times.num_clients``).
      horizon: the virtual time to schedule up to.
      importance: :math:`p_i`, the clients' importance.
      policy: ``"weight"``, ``"identical"`` or ``"staleness"``.
      buffer_size: c, the updates per step.
      keep_training: Nguyen et al.'s FedBuff (a client restarts as soon as it returns) rather
        than the authors' FedBuff-c (it waits for the step).
      concurrency: C, the most clients training at once; ``None``: all P, always.
      seed: seeds the draws of the clients that start (``population.sampling_rng``).
    """
    schedule_lib.check_policy(policy)
    num_clients = times.num_clients
    concurrency = population_lib.check_concurrency(concurrency, num_clients)
    # the weight policy's weights need the whole schedule: set after it
    weighting = rules_lib.Weighting(policy, None)
    rule = rules_lib.BufferRule(weighting, buffer_size, keep_training)
    if buffer_size > concurrency and not keep_training:
        raise ValueError(f"FedBuff buffer size {buffer_size} is larger than the number of clients "
                         + (f"({num_clients})" if concurrency == num_clients
                            else f"training at once ({concurrency})"))
    steps = virtual_clock.play(rule, times, horizon, concurrency=concurrency, seed=seed)
    importance = np.asarray(importance, dtype=np.float64)
    if policy == "weight":
        mean_wait = 0.0 if keep_training or not steps else rule.waited / (len(steps) * buffer_size)
        counts = np.bincount([c.client for step in steps for c in step.contributions], minlength=num_clients)
        weights = fedbuff_weights(importance, buffer_size, concurrency=concurrency, counts=counts,
                                  num_steps=len(steps), mean_times=times.mean_times, mean_wait=mean_wait)
        steps = schedule_lib.with_weights(steps, weights)
    name = (f"fedbuff-{buffer_size}" + ("-keep-training" if keep_training else "")
            + population_lib.scheme_suffix(concurrency, num_clients))
    return schedule_lib.Schedule(name, policy, horizon, steps, importance, times.mean_times)


def fedbuff_weights(importance, buffer_size, *, concurrency=None, counts=None, num_steps=None,
                    mean_times=None, mean_wait=0.0):
    r"""The ``weight`` policy's :math:`d_i = p_i / r_i`, :math:`r_i` client i's updates per step.

    With every client always training (C = P), :math:`r_i` is the fraction of the steps that
    aggregate client i, counted (the authors' rule; 0 for a client never aggregated); with
    C < P, :math:`r_i = c\,\lambda_i / \sum_j \lambda_j` from the long-run rates of
    ``population.steady_state_rates`` with holding times :math:`\tau_i + \bar w`.

    Args:
      importance: :math:`p_i`, the clients' importance.
      buffer_size: c.
      concurrency: C, the most clients training at once; ``None``: all P.
      counts: with C = P, each client's number of aggregated updates.
      num_steps: with C = P, the number of steps that made them.
      mean_times: with C < P, :math:`\tau_i`, the clients' mean local-work times.
      mean_wait: with C < P, :math:`\bar w`, the mean wait from a return to its step (0 with
        ``keep_training``).
    """
    importance = np.asarray(importance, dtype=np.float64)
    concurrency = population_lib.check_concurrency(concurrency, len(importance))
    if concurrency == len(importance):
        fraction = np.asarray(counts, dtype=np.float64) / max(num_steps, 1)
        with np.errstate(divide="ignore"):
            return np.where(fraction > 0, importance / fraction, 0.0)
    rates = population_lib.steady_state_rates(np.asarray(mean_times, dtype=np.float64) + mean_wait, concurrency)
    return importance * np.sum(rates) / (buffer_size * rates)
