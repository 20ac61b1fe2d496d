"""The asynchronous schemes by name: their schedules, and how many server steps they make."""
import numpy as np

from tff_experiments.asynchronous.async_fedavg import async_fedavg_schedule
from tff_experiments.asynchronous.fedavg import fedavg_schedule
from tff_experiments.asynchronous.fedbuff import fedbuff_schedule
from tff_experiments.asynchronous.fedfix import fedfix_schedule

ALGORITHMS = ("fedavg", "async", "fedfix", "fedbuff", "fedbuff-keep-training")


def build_schedule(algorithm, times, horizon, importance, policy="weight", *, delta_t=None,
                   buffer_size=None):
    """The schedule of ``algorithm`` (one of ``ALGORITHMS``) up to virtual time ``horizon``.

    Args:
      algorithm: one of ``ALGORITHMS``.
      times: the clients' ``ClientTimes``.
      horizon: the virtual time to schedule up to (> 0).
      importance: :math:`p_i`, the clients' importance (``client_importance``).
      policy: the aggregation weights, ``"weight"`` (every scheme optimizes the federated
        objective) or ``"identical"`` (:math:`1/|S_n|`).
      delta_t: FedFix's aggregation period.
      buffer_size: FedBuff's c.
    """
    if not horizon > 0:
        raise ValueError(f"the horizon must be > 0, got {horizon!r}")
    if algorithm == "fedavg":
        return fedavg_schedule(times, horizon, importance, policy)
    if algorithm == "async":
        return async_fedavg_schedule(times, horizon, importance, policy)
    if algorithm == "fedfix":
        if delta_t is None:
            raise ValueError("FedFix needs delta_t")
        return fedfix_schedule(times, horizon, importance, policy, delta_t=delta_t)
    if algorithm in ("fedbuff", "fedbuff-keep-training"):
        if buffer_size is None:
            raise ValueError("FedBuff needs buffer_size")
        return fedbuff_schedule(times, horizon, importance, policy, buffer_size=buffer_size,
                                keep_training=algorithm == "fedbuff-keep-training")
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")


def expected_server_steps(algorithm, mean_times, horizon, *, delta_t=None, buffer_size=None):
    """About how many server steps ``build_schedule`` makes: a bound to check before building a
    schedule, which holds every step in memory.

    Args:
      algorithm: one of ``ALGORITHMS``.
      mean_times: :math:`\\tau_i`, the clients' mean local-work times.
      horizon: the virtual time to schedule up to.
      delta_t: FedFix's aggregation period.
      buffer_size: FedBuff's c.
    """
    returns_per_time = float(np.sum(1.0 / np.asarray(mean_times, dtype=np.float64)))
    if algorithm == "fedavg":
        return horizon / float(np.max(mean_times))
    if algorithm == "fedfix":
        return horizon / delta_t
    if algorithm.startswith("fedbuff"):
        return horizon * returns_per_time / buffer_size
    return horizon * returns_per_time
