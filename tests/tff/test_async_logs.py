"""The run logs stay readable at any size: ``events.csv`` has one row per server step,
``updates.csv`` one row per client update, and both open with Python's ``csv`` module (its
default field limit: 131,072 characters) and pandas, however many clients a step aggregates."""
import csv

import numpy as np
import pytest

pytest.importorskip("tensorflow_federated")
pandas = pytest.importorskip("pandas")

from tff_experiments.asynchronous import ClientTimes, build_schedule, client_importance  # noqa: E402
from tff_experiments.asynchronous.experiment import AsynchronousExperiment, step_summary, update_rows  # noqa: E402
from tff_experiments.program.metrics import EventLog  # noqa: E402

CLIENTS = 40_000  # a FedFix step of ~40,000 clients: ~400,000 characters as one field


def write_logs(out, schedule):
    with EventLog(out, AsynchronousExperiment.event_fields) as events, \
            EventLog(out, AsynchronousExperiment.update_fields, filename="updates.csv") as updates:
        for n, step in enumerate(schedule.steps, start=1):
            events.append(step_summary(n, step, {"loss": 1.0 / n}))
            updates.extend(update_rows(n, step))


def test_a_large_run_s_logs_open_with_csv_and_pandas(tmp_path):
    schedule = build_schedule("fedfix", ClientTimes.from_scenario(CLIENTS, "F-80"), 1.0,
                              client_importance("uniform", [1] * CLIENTS), delta_t=0.5)
    assert max(len(s.contributions) for s in schedule.steps) == CLIENTS
    write_logs(tmp_path, schedule)

    with open(tmp_path / "updates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    contributions = [(n, c) for n, s in enumerate(schedule.steps, start=1) for c in s.contributions]
    assert len(rows) == len(contributions)
    for row, (n, c) in zip(rows[::997], contributions[::997]):
        assert (int(row["step"]), int(row["client"]), int(row["sent_version"])) == (n, c.client, c.sent_version)
        assert int(row["staleness"]) == n - 1 - c.sent_version and float(row["weight"]) == c.weight
    with open(tmp_path / "events.csv", newline="") as f:
        events = list(csv.DictReader(f))
    assert [int(e["clients"]) for e in events] == [len(s.contributions) for s in schedule.steps]

    frame = pandas.read_csv(tmp_path / "updates.csv")
    assert list(frame.columns) == list(AsynchronousExperiment.update_fields) and len(frame) == len(contributions)
    per_step = frame.groupby("step").agg(clients=("client", "size"), max_staleness=("staleness", "max"),
                                         total_weight=("weight", "sum"))
    summary = pandas.read_csv(tmp_path / "events.csv").set_index("step")
    np.testing.assert_array_equal(per_step["clients"], summary["clients"])
    np.testing.assert_array_equal(per_step["max_staleness"], summary["max_staleness"])
    np.testing.assert_allclose(per_step["total_weight"], summary["total_weight"], rtol=1e-12)
