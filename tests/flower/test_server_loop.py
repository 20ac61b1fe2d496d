"""The ServerApp's loop (``flower_async.server_loop.serve``) over an in-process grid whose nodes
reply after fixed delays (NumPy clients): the global model is the initial one plus the weighted
updates the grid returned (replayed here from the nodes' own updates), FedBuff's and FedFix's
steps hold what their rules say, and a restarted server resumes from its checkpoint without
repeating a step. Needs flwr's records (in .venv); skipped elsewhere."""
import csv
import itertools
import json
import math
import time
import types

import numpy as np
import pytest

pytest.importorskip("flwr", reason="flwr is not installed: the Flower tests run in .venv (requirements/keras3.txt)")

from flwr.app import ArrayRecord, MetricRecord, RecordDict  # noqa: E402

from flower_async import tasks  # noqa: E402
from flower_async.server_loop import serve  # noqa: E402
from flower_async.settings import Settings  # noqa: E402

NODES = (101, 202, 303)


class DelayGrid:
    """Nodes that train at once (NumPy logistic) and reply after ``delays[node]`` seconds."""

    def __init__(self, settings, delays):
        self.settings, self.delays = settings, delays
        self.task = tasks.build_task(settings)
        self.pending, self.updates, self.ids = {}, {}, itertools.count()

    def get_node_ids(self):
        return list(NODES)

    def push_messages(self, messages):
        ids = []
        for message in messages:
            node, content = message.dst_node_id, message.content
            weights = content["arrays"].to_numpy_ndarrays()
            version, work = int(content["config"]["version"]), int(content["config"]["work"])
            k = NODES.index(node)
            x, y = tasks.partition(self.settings, k, len(NODES))
            local, loss = self.task.train(weights, *tasks.local_batches(x, y, self.settings, [k, work]))
            update = [a - b for a, b in zip(local, weights)]
            self.updates[(node, version)] = update
            message_id = f"m{next(self.ids)}"
            reply = types.SimpleNamespace(
                metadata=types.SimpleNamespace(reply_to_message_id=message_id), has_error=lambda: False,
                content=RecordDict({"arrays": ArrayRecord(update), "metrics": MetricRecord(
                    {"num-examples": len(x), "train-loss": loss, "partition-id": k})}))
            self.pending[message_id] = (time.monotonic() + self.delays[node], reply)
            ids.append(message_id)
        return ids

    def pull_messages(self, message_ids):
        now = time.monotonic()
        ready = [i for i in message_ids if i in self.pending and self.pending[i][0] <= now]
        return [self.pending.pop(i)[1] for i in ready]


def fake_message(content, node, group):
    return types.SimpleNamespace(content=content, dst_node_id=node, group_id=group)


def settings_for(tmp_path, **overrides):
    values = dict(model="numpy-logistic", dataset="synthetic", min_nodes=3, out=str(tmp_path / "server"),
                  export=False, aggregations=6, client_lr=0.2, local_steps=3, batch_size=8)
    values.update(overrides)
    return Settings(**values)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def replay(settings, grids):
    """The initial weights plus every step's weighted updates, from the grids' own records."""
    weights = [w.astype(np.float64) for w in tasks.build_task(settings).initial_weights()]
    updates = {k: v for grid in grids for k, v in grid.updates.items()}
    by_step = {}
    for row in rows(f"{settings.out}/updates.csv"):
        by_step.setdefault(int(row["step"]), []).append(row)
    for step in sorted(by_step):
        for row in by_step[step]:
            delta = updates[(int(row["node"]), int(row["sent_version"]))]
            weights = [w + float(row["weight"]) * d for w, d in zip(weights, delta)]
    return weights


def test_fedbuff_steps_are_the_staleness_weighted_sums_of_c_updates(tmp_path):
    settings = settings_for(tmp_path, algorithm="fedbuff", buffer_size=2, policy="staleness")
    grid = DelayGrid(settings, {101: 0.05, 202: 0.1, 303: 0.35})
    weights, _ = serve(grid, settings, progress=lambda line: None, new_message=fake_message)
    updates = rows(tmp_path / "server" / "updates.csv")
    assert len(updates) == 6 * 2
    for row in updates:
        assert float(row["weight"]) == pytest.approx(1 / math.sqrt(1 + int(row["staleness"])) / 2)
    assert any(int(r["staleness"]) > 0 for r in updates)  # the slow node's updates come late
    for got, want in zip(weights, replay(settings, [grid])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fedfix_aggregates_at_its_deadlines_whoever_is_back(tmp_path):
    settings = settings_for(tmp_path, algorithm="fedfix", delta_t=0.4, policy="identical", aggregations=5)
    grid = DelayGrid(settings, {101: 0.05, 202: 0.05, 303: 0.6})
    serve(grid, settings, progress=lambda line: None, new_message=fake_message)
    metrics = rows(tmp_path / "server" / "metrics.csv")
    for n, row in enumerate(metrics):
        assert float(row["time"]) >= (n + 1) * 0.4
    updates = rows(tmp_path / "server" / "updates.csv")
    fast = [r for r in updates if r["node"] != "303"]
    slow = [r for r in updates if r["node"] == "303"]
    assert len(fast) == 2 * 5 and 1 <= len(slow) <= 3  # the slow node misses deadlines
    for step, group in itertools.groupby(updates, key=lambda r: r["step"]):
        group = list(group)
        assert all(float(r["weight"]) == pytest.approx(1 / len(group)) for r in group)


def test_a_restarted_server_resumes_from_its_checkpoint(tmp_path):
    first = settings_for(tmp_path, algorithm="async", policy="identical", aggregations=3)
    delays = {101: 0.05, 202: 0.1, 303: 0.2}
    grid_one = DelayGrid(first, delays)
    serve(grid_one, first, progress=lambda line: None, new_message=fake_message)
    lines = []
    second = settings_for(tmp_path, algorithm="async", policy="identical", aggregations=6)
    grid_two = DelayGrid(second, delays)
    weights, _ = serve(grid_two, second, progress=lines.append, new_message=fake_message)
    assert lines[0].startswith("resuming at version 3")
    assert [int(r["step"]) for r in rows(tmp_path / "server" / "metrics.csv")] == list(range(6))
    assert [int(r["step"]) for r in rows(tmp_path / "server" / "updates.csv")] == list(range(6))
    state = json.loads((tmp_path / "server" / "state.json").read_text())
    assert state["version"] == 6 and [h["step"] for h in state["history"]] == list(range(6))
    # the second server sent version 3 to every node: replay the first run's updates, then these
    for got, want in zip(weights, replay(second, [grid_one, grid_two])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_the_weight_policy_uses_the_schemes_formula_with_the_nodes_estimated_times(tmp_path):
    settings = settings_for(tmp_path, algorithm="async", policy="weight", importance="uniform", aggregations=8)
    serve(DelayGrid(settings, {101: 0.05, 202: 0.15, 303: 0.3}), settings, progress=lambda line: None,
          new_message=fake_message)
    seen = {}
    for row in rows(tmp_path / "server" / "updates.csv"):
        seen.setdefault(row["node"], []).append(float(row["round_trip"]))
        tau = {node: np.mean(times) for node, times in seen.items()}
        # async FedAvg: d_i = (sum_j 1/tau_j) tau_i p_i over the nodes heard from, p uniform
        want = sum(1 / t for t in tau.values()) * tau[row["node"]] / len(tau)
        assert float(row["weight"]) == pytest.approx(want, rel=0.02)
