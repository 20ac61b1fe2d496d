"""NumPy ports of the authors' schedule and weights (Accenture/Labs-Federated-Learning, branch
asynchronous_FL: ``FL/clients_schedule.py`` ``get_tau_i`` / ``clients_time_schedule`` and
``FL/server.py`` ``clients_importances``), rewritten loop for loop in array form, independent of
tff_experiments. Differences from the authors, all marked:

- ``duration(i, w)`` replaces the constant ``tau_i[i]`` so that the same loops also check the
  random client times (with ``duration = tau_i[i]`` they are the authors' loops);
- FedBuff picks the c earliest returns by (time, client index): the authors' ``np.argpartition``
  leaves the order of ties to NumPy's selection algorithm.

Output in the authors' format: ``step_times`` and ``schedule_global`` (one row per server step,
``-1`` for clients not aggregated, else the index of the global model the client started from).
"""
import numpy as np


def tau_f_scenario(num_clients, percent_faster):
    return np.array([1 - i * percent_faster / 100 / (num_clients - 1) for i in range(num_clients)])


def authors_schedule(scheme, tau, horizon, duration=None):
    m = len(tau)
    duration = duration or (lambda i, w: tau[i])
    works = np.zeros(m, dtype=int)  # local works started so far, per client

    if scheme == "FL":
        rows, times, now, n = [], [], 0.0, 0
        while True:
            end = now + max(duration(i, n) for i in range(m))
            if end > horizon:
                break
            rows.append(np.full(m, n))
            times.append(end)
            now, n = end, n + 1
        return np.array(times), np.array(rows, dtype=int).reshape(-1, m)

    return_times = np.array([duration(i, 0) for i in range(m)], dtype=float)
    latest = np.zeros(m, dtype=int)

    if scheme == "Async":
        rows, times = [], []
        while np.min(return_times) <= horizon:
            i = int(np.argmin(return_times))
            times.append(return_times[i])
            works[i] += 1
            return_times[i] = times[-1] + duration(i, works[i])
            row = -np.ones(m, dtype=int)
            row[i] = latest[i]
            rows.append(row)
            latest[i] = len(rows)
        return np.array(times), np.array(rows, dtype=int)

    if scheme.startswith("FedFix-"):
        delta_t = float(scheme.split("-")[1])
        n_steps = int(horizon / delta_t)
        rows = -np.ones((n_steps, m), dtype=int)
        for n in range(n_steps):
            back = np.where(return_times <= (n + 1) * delta_t)[0]
            for i in back:
                works[i] += 1
                return_times[i] = (n + 1) * delta_t + duration(i, works[i])
            rows[n, back] = latest[back]
            latest[back] = n + 1
        return np.array([(n + 1) * delta_t for n in range(n_steps)]), rows

    if scheme.startswith("FedBuff-"):
        c = int(scheme.split("-")[1])
        rows, times = [], []
        while np.min(return_times) <= horizon:
            chosen = np.lexsort((np.arange(m), return_times))[:c]
            times.append(np.max(return_times[chosen]))
            for i in chosen:
                works[i] += 1
                return_times[i] = times[-1] + duration(i, works[i])
            row = -np.ones(m, dtype=int)
            row[chosen] = latest[chosen]
            rows.append(row)
            latest[chosen] = len(rows)
        times, rows = np.array(times), np.array(rows, dtype=int).reshape(-1, m)
        # The authors may start one last step whose c-th return is after the horizon;
        # tff_experiments stops at the horizon.
        keep = times <= horizon
        return times[keep], rows[keep]
    raise ValueError(scheme)


def authors_weights(scheme, policy, tau, importance, schedule_global):
    """``agg_weights`` of the authors' ``Server.clients_importances``."""
    if scheme == "FL":
        return importance
    if scheme == "Async":
        return np.ones(len(tau)) if policy == "identical" else np.sum(1 / tau) * tau * importance
    if scheme.startswith("FedFix-"):
        delta_t = float(scheme.split("-")[1])
        return np.ceil(tau / delta_t) * importance  # the authors have no FedFix `identical`
    if scheme.startswith("FedBuff-"):
        c = int(scheme.split("-")[1])
        if policy == "identical":
            return np.ones(len(tau)) / c
        fraction = (schedule_global >= 0).sum(axis=0) / len(schedule_global)
        return importance / fraction
    raise ValueError(scheme)
