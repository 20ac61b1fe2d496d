r"""FedFix (Fraboni et al., JMLR 2023, arXiv 2206.10189, Section 5).

The server aggregates at fixed times :math:`(n+1)\Delta t`, whoever is back: every client whose
return time is :math:`\le (n+1)\Delta t` (possibly nobody), and only those restart, from
:math:`\theta^{n+1}`, at :math:`(n+1)\Delta t`. A client of time :math:`\tau_i` is aggregated
once every :math:`k_i = \lceil \tau_i/\Delta t \rceil` steps, hence the ``weight`` policy

.. math::

    d_i = \lceil \tau_i / \Delta t \rceil \, p_i,

which makes every client's expected share of the aggregation weight :math:`p_i`: FedFix
optimizes the true federated objective while, unlike synchronous FedAvg, it never waits for the
slowest client. ``identical`` (not in the authors' code): :math:`d_i = 1/|S_n|`, the mean of
the updates received; ``staleness``: :math:`s(\text{staleness})/|S_n|` (see ``schedule``).

The authors' schedule has :math:`\lfloor T/\Delta t \rfloor` steps; their recorded step times
are :math:`n\Delta t`, shifted by one :math:`\Delta t` from when step n aggregates; here a step's
time is the aggregation time :math:`(n+1)\Delta t`. The rule is ``rules.PeriodRule``, played on
the virtual clock (``virtual_clock``).

With a population of P clients and concurrency C (``population``): C clients train at once;
a returned client waits for the next aggregation time, where it frees its slot; the freed slots
go to clients drawn one at a time, uniformly at random, among the clients not training (those
just aggregated included), which start from :math:`\theta^{n+1}`. A clockwork client holds a
slot :math:`h_i = k_i \Delta t` per work, so it starts works at the rate
:math:`\lambda_i = \pi_i / h_i` (``population.steady_state_rates``) and is aggregated
:math:`r_i = \lambda_i \Delta t = \pi_i / k_i` times per step on average; ``weight`` is

.. math::

    d_i = \frac{p_i}{r_i} = \frac{k_i}{\pi_i}\, p_i,

the weights above when C = P (:math:`\pi_i = 1`). It makes the expected shares :math:`p_i` in
the stationary regime for clockwork clients (checked against simulations); with random times,
:math:`k_i` from the mean :math:`\tau_i` is the authors' approximation, with or without
concurrency.
"""
import numpy as np

from tff_experiments.asynchronous import population as population_lib
from tff_experiments.asynchronous import rules as rules_lib
from tff_experiments.asynchronous import schedule as schedule_lib
from tff_experiments.asynchronous import virtual_clock


def fedfix_schedule(times, horizon, importance, policy="weight", *, delta_t, concurrency=None, seed=0):
    r""":math:`\lfloor T/\Delta t \rfloor` aggregations at :math:`\Delta t, 2\Delta t, \dots`.

    Args:
      times: the clients' ``ClientTimes`` (P = ``times.num_clients``).
      horizon: T, the virtual time to schedule up to.
      importance: :math:`p_i`, the clients' importance.
      policy: ``"weight"``, ``"identical"`` or ``"staleness"``.
      delta_t: :math:`\Delta t > 0`, the aggregation period.
      concurrency: C, the most clients training at once; ``None``: all P, always.
      seed: seeds the draws of the clients that start (``population.sampling_rng``).
    """
    weighting = rules_lib.Weighting(policy, None)
    rule = rules_lib.PeriodRule(weighting, delta_t)
    num_clients = times.num_clients
    concurrency = population_lib.check_concurrency(concurrency, num_clients)
    importance = np.asarray(importance, dtype=np.float64)
    if policy == "weight":
        weighting.client_weights = fedfix_weights(importance, times.mean_times, delta_t, concurrency)
    steps = virtual_clock.play(rule, times, horizon, concurrency=concurrency, seed=seed)
    name = f"fedfix-{delta_t:g}" + population_lib.scheme_suffix(concurrency, num_clients)
    return schedule_lib.Schedule(name, policy, horizon, steps, importance, times.mean_times)


def fedfix_weights(importance, mean_times, delta_t, concurrency=None):
    r"""The ``weight`` policy's :math:`d_i = (k_i/\pi_i)\, p_i`,
    :math:`k_i = \lceil \tau_i/\Delta t \rceil` (:math:`k_i p_i` with C = P).

    Args:
      importance: :math:`p_i`, the clients' importance.
      mean_times: :math:`\tau_i`, the clients' mean local-work times.
      delta_t: :math:`\Delta t`, the aggregation period.
      concurrency: C, the most clients training at once; ``None``: all P.
    """
    importance = np.asarray(importance, dtype=np.float64)
    tau = np.asarray(mean_times, dtype=np.float64)
    concurrency = population_lib.check_concurrency(concurrency, len(tau))
    periods = np.ceil(tau / delta_t)  # k_i
    weights = periods * importance
    if concurrency < len(tau):
        weights = weights / population_lib.inclusion_probabilities(periods * delta_t, concurrency)
    return weights
