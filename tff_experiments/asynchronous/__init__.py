r"""Asynchronous federated learning in TFF: synchronous FedAvg, async FedAvg, FedBuff, FedFix.

Fraboni, Vidal, Kameni, Lorenzi, "A General Theory for Federated Optimization with Asynchronous
and Heterogeneous Clients Updates", JMLR 2023 (arXiv 2206.10189); reference code
Accenture/Labs-Federated-Learning, branch ``asynchronous_FL``.

- ``client_times``: the clients' computation times (scenario ``F-X``, random laws).
- ``fedavg``, ``async_fedavg``, ``fedfix``, ``fedbuff``: each scheme's schedule on the virtual
  clock (who is aggregated, when, from which model) and its aggregation weights.
- ``process``: the shared server step as a ``tff.learning.templates.LearningProcess``.
- ``local_data``: the K batches of each local work. ``driver``: runs a schedule with the process.

Typical use::

    times = ClientTimes.from_scenario(20, "F-80")
    schedule = build_schedule("fedfix", times, horizon=200, importance=p, delta_t=0.5)
    process = build_stale_model_process(model_fn, tff.learning.optimizers.build_sgdm(0.01, 0.9))
    driver = AsynchronousDriver(process, schedule, LocalBatches(client_data, local_steps=10))
    state = driver.run()
"""
from tff_experiments.asynchronous.async_fedavg import async_fedavg_schedule
from tff_experiments.asynchronous.client_times import ClientTimes, scenario_mean_times
from tff_experiments.asynchronous.fedavg import fedavg_schedule
from tff_experiments.asynchronous.fedbuff import fedbuff_schedule
from tff_experiments.asynchronous.fedfix import fedfix_schedule
from tff_experiments.asynchronous.schedule import (
    IMPORTANCES,
    POLICIES,
    Contribution,
    Schedule,
    ServerStep,
    client_importance,
)

ALGORITHMS = ("fedavg", "async", "fedfix", "fedbuff", "fedbuff-keep-training")


def build_schedule(algorithm, times, horizon, importance, policy="weight", *, delta_t=None,
                   buffer_size=None):
    """The schedule of ``algorithm`` (one of ``ALGORITHMS``) up to virtual time ``horizon``.

    ``delta_t`` is FedFix's aggregation period, ``buffer_size`` FedBuff's c.
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
    """About how many server steps ``build_schedule`` makes (clients' mean times ``mean_times``):
    a bound to check before building a schedule, which holds every step in memory."""
    import numpy as np

    returns_per_time = float(np.sum(1.0 / np.asarray(mean_times, dtype=np.float64)))
    if algorithm == "fedavg":
        return horizon / float(np.max(mean_times))
    if algorithm == "fedfix":
        return horizon / delta_t
    if algorithm.startswith("fedbuff"):
        return horizon * returns_per_time / buffer_size
    return horizon * returns_per_time


def __getattr__(name):
    # The TFF parts are imported on first use: the schedules need neither TF nor TFF.
    if name == "build_stale_model_process":
        from tff_experiments.asynchronous.process import build_stale_model_process
        return build_stale_model_process
    if name == "AsynchronousDriver":
        from tff_experiments.asynchronous.driver import AsynchronousDriver
        return AsynchronousDriver
    if name == "LocalBatches":
        from tff_experiments.asynchronous.local_data import LocalBatches
        return LocalBatches
    raise AttributeError(name)


__all__ = [
    "ALGORITHMS", "IMPORTANCES", "POLICIES", "AsynchronousDriver", "ClientTimes", "Contribution",
    "LocalBatches", "Schedule", "ServerStep", "build_schedule", "build_stale_model_process",
    "client_importance", "expected_server_steps", "scenario_mean_times",
]
