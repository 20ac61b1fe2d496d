"""The asynchronous schemes by name: their schedules, and how many server steps they make."""
import numpy as np

from tff_experiments.asynchronous.async_fedavg import async_fedavg_schedule
from tff_experiments.asynchronous.fedavg import fedavg_schedule
from tff_experiments.asynchronous.fedbuff import fedbuff_schedule
from tff_experiments.asynchronous.fedfix import fedfix_schedule
from tff_experiments.asynchronous.population import check_concurrency, steady_state_rates
from tff_experiments.asynchronous.rules import ALGORITHMS


def build_schedule(algorithm, times, horizon, importance, policy="weight", *, delta_t=None,
                   buffer_size=None, concurrency=None, seed=0):
    r"""The schedule of ``algorithm`` (one of ``ALGORITHMS``) up to virtual time ``horizon``.

    Args:
      algorithm: one of ``ALGORITHMS``.
      times: the clients' ``ClientTimes``: the population, P = ``times.num_clients``.
      horizon: the virtual time to schedule up to (> 0).
      importance: :math:`p_i`, the clients' importance (``client_importance``).
      policy: the aggregation weights, ``"weight"`` (every scheme optimizes the federated
        objective), ``"identical"`` (:math:`1/|S_n|`) or ``"staleness"`` (FedBuff's
        :math:`1/(\sqrt{1+\tau}\,|S_n|)`).
      delta_t: FedFix's aggregation period.
      buffer_size: FedBuff's c.
      concurrency: C, the most clients training at once (Nguyen et al.'s concurrency; FedAvg:
        the clients of a round), each new one drawn uniformly at random among the clients not
        training (``population``); ``None``: all P clients, always (C = P).
      seed: seeds those draws (one generator, consumed in event order).
    """
    if not horizon > 0:
        raise ValueError(f"the horizon must be > 0, got {horizon!r}")
    sampling = dict(concurrency=concurrency, seed=seed)
    if algorithm == "fedavg":
        return fedavg_schedule(times, horizon, importance, policy, **sampling)
    if algorithm == "async":
        return async_fedavg_schedule(times, horizon, importance, policy, **sampling)
    if algorithm == "fedfix":
        if delta_t is None:
            raise ValueError("FedFix needs delta_t")
        return fedfix_schedule(times, horizon, importance, policy, delta_t=delta_t, **sampling)
    if algorithm in ("fedbuff", "fedbuff-keep-training"):
        if buffer_size is None:
            raise ValueError("FedBuff needs buffer_size")
        return fedbuff_schedule(times, horizon, importance, policy, buffer_size=buffer_size,
                                keep_training=algorithm == "fedbuff-keep-training", **sampling)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")


def expected_server_steps(algorithm, mean_times, horizon, *, delta_t=None, buffer_size=None,
                          concurrency=None):
    r"""About how many server steps ``build_schedule`` makes: a bound to check before building a
    schedule, which holds every step in memory.

    With a concurrency C < P: clients return at the long-run rate
    :math:`\sum_i \pi_i/\tau_i` (``population.steady_state_rates``; an upper bound for FedBuff
    without ``keep_training``, whose clients also wait for the step), and FedAvg's rounds last
    the expected longest of C mean times drawn without replacement.

    Args:
      algorithm: one of ``ALGORITHMS``.
      mean_times: :math:`\tau_i`, the clients' mean local-work times.
      horizon: the virtual time to schedule up to.
      delta_t: FedFix's aggregation period.
      buffer_size: FedBuff's c.
      concurrency: C, the most clients training at once; ``None``: all of them.
    """
    mean_times = np.asarray(mean_times, dtype=np.float64)
    concurrency = check_concurrency(concurrency, len(mean_times))
    if algorithm == "fedfix":
        return horizon / delta_t
    if algorithm == "fedavg":
        if concurrency == len(mean_times):
            return horizon / float(np.max(mean_times))
        return horizon / _expected_round_time(mean_times, concurrency)
    if concurrency == len(mean_times):
        returns_per_time = float(np.sum(1.0 / mean_times))
    else:
        returns_per_time = float(np.sum(steady_state_rates(mean_times, concurrency)))
    if algorithm.startswith("fedbuff"):
        return horizon * returns_per_time / buffer_size
    return horizon * returns_per_time


def _expected_round_time(mean_times, concurrency):
    """E[max of C of the mean times drawn without replacement]: the k-th smallest of P is the
    largest drawn with probability (binom(k, C) - binom(k-1, C)) / binom(P, C)."""
    tau = np.sort(mean_times)
    total = len(tau)
    k = np.arange(1, total + 1, dtype=np.float64)
    # log binom(k, C) / binom(P, C) = sum_{j=k+1}^{P} log(1 - C/j), -inf for k < C
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = np.log1p(-concurrency / k)
    tail = np.concatenate([np.cumsum(steps[::-1])[::-1][1:], [0.0]])
    at_most = np.where(k >= concurrency, np.exp(tail), 0.0)  # Pr[max <= tau_(k)]
    return float(np.sum(tau * np.diff(np.concatenate([[0.0], at_most]))))
