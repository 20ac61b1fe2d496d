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

The rule is ``rules.AsyncRule``, played on the virtual clock (``virtual_clock``).
"""
import numpy as np

from tff_experiments.asynchronous import population as population_lib
from tff_experiments.asynchronous import rules as rules_lib
from tff_experiments.asynchronous import schedule as schedule_lib
from tff_experiments.asynchronous import virtual_clock


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
    importance = np.asarray(importance, dtype=np.float64)
    weights = async_weights(importance, times.mean_times, concurrency) if policy == "weight" else None
    steps = virtual_clock.play(rules_lib.AsyncRule(rules_lib.Weighting(policy, weights)), times, horizon,
                               concurrency=concurrency, seed=seed)
    name = "async" + population_lib.scheme_suffix(concurrency, num_clients)
    return schedule_lib.Schedule(name, policy, horizon, steps, importance, times.mean_times)


def async_weights(importance, mean_times, concurrency=None):
    r"""The ``weight`` policy's :math:`d_i = p_i \sum_j \lambda_j / \lambda_i`
    (:math:`\big(\sum_j 1/\tau_j\big) \tau_i p_i` with C = P).

    Args:
      importance: :math:`p_i`, the clients' importance.
      mean_times: :math:`\tau_i`, the clients' mean local-work times.
      concurrency: C, the most clients training at once; ``None``: all P.
    """
    importance = np.asarray(importance, dtype=np.float64)
    tau = np.asarray(mean_times, dtype=np.float64)
    concurrency = population_lib.check_concurrency(concurrency, len(tau))
    if concurrency == len(tau):
        return np.sum(1.0 / tau) * tau * importance
    rates = population_lib.steady_state_rates(tau, concurrency)
    return importance * (np.sum(rates) / rates)
