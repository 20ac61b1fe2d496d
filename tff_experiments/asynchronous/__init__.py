r"""Asynchronous federated learning in TFF: synchronous FedAvg, async FedAvg, FedBuff, FedFix.

Fraboni, Vidal, Kameni, Lorenzi, "A General Theory for Federated Optimization with Asynchronous
and Heterogeneous Clients Updates", JMLR 2023 (arXiv 2206.10189); reference code
Accenture/Labs-Federated-Learning, branch ``asynchronous_FL``.

- ``client_times``: the clients' computation times (scenario ``F-X``, random laws).
- ``rules``: each scheme's rule, online: fed the clients' returns, it says when the server
  aggregates, which updates with which weights, and who starts again (the one source of the
  schemes, also driven by Flower's ServerApp in ``flower_async``); ``virtual_clock`` plays a
  rule with ``ClientTimes``.
- ``fedavg``, ``async_fedavg``, ``fedfix``, ``fedbuff``: each scheme's schedule on the virtual
  clock (who is aggregated, when, from which model) and its aggregation weights.
- ``algorithms``: the schemes by name (``build_schedule``).
- ``process``: the shared server step as a ``tff.learning.templates.LearningProcess``.
- ``local_data``: the K batches of each local work. ``driver``: runs a schedule with the process,
  one server step at a time, keeping the stale model versions still in flight.
- ``data_source``, ``program``: the run as ``tff.program`` components and a track of the shared
  program logic (``train_asynchronous_model``).
- ``settings``, ``experiment``, ``cli``: the command line ``python -m tff_experiments.asynchronous``
  (its settings, checked once; its experiment, the track it runs into its output folder).

Typical use::

    times = ClientTimes.from_scenario(20, "F-80")
    schedule = build_schedule("fedfix", times, horizon=200, importance=p, delta_t=0.5)
    process = build_stale_model_process(model_fn, tff.learning.optimizers.build_sgdm(0.01, 0.9))
    driver = AsynchronousDriver(process, schedule, LocalBatches(client_data, local_steps=10))
    state = driver.run()
"""
from tff_experiments.asynchronous.algorithms import ALGORITHMS, build_schedule, expected_server_steps
from tff_experiments.asynchronous.client_times import ClientTimes, scenario_mean_times
from tff_experiments.asynchronous.schedule import (
    IMPORTANCES,
    POLICIES,
    Contribution,
    Schedule,
    ServerStep,
    client_importance,
)
from tff_experiments.lazy_names import lazy_getattr


# The TFF parts are imported on first use: the schedules need neither TF nor TFF.
_LAZY = {
    "AsynchronousDriver": "driver",
    "LocalBatches": "local_data",
    "ScheduleDataSource": "data_source",
    "build_stale_model_process": "process",
    "train_asynchronous_model": "program",
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "ALGORITHMS", "IMPORTANCES", "POLICIES", "AsynchronousDriver", "ClientTimes", "Contribution",
    "LocalBatches", "Schedule", "ScheduleDataSource", "ServerStep", "build_schedule",
    "build_stale_model_process", "client_importance", "expected_server_steps", "scenario_mean_times",
    "train_asynchronous_model",
]
