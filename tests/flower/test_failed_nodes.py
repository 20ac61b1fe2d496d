"""A failed node does not fail the run (as Flower's strategies accept failures): over the
in-process grid of test_server_loop, a node whose replies are errors (or that never replies)
is warned about, never aggregated, sent the current model again, and dropped after
``max-consecutive-failures`` failures in a row; the others finish the run, whose model is the
initial one plus the weighted updates of the nodes that replied (replayed from the grid's own
records). The run fails, in one line, only when fewer nodes are left than the scheme needs.
Needs flwr's records (in .venv); skipped elsewhere."""
import json
import logging
import re
import types

import numpy as np
import pytest

pytest.importorskip("flwr", reason="flwr is not installed: the Flower tests run in .venv (requirements/keras3.txt)")

from flower_async.server_loop import serve  # noqa: E402
from tests.flower.test_server_loop import DelayGrid, fake_message, replay, rows, settings_for  # noqa: E402

FAILING = 303


class FailingGrid(DelayGrid):
    """``DelayGrid`` whose node ``FAILING`` answers its first ``errors`` works with an error
    reply (or, ``silent``, with nothing), then trains as the others."""

    def __init__(self, settings, delays, errors, silent=False):
        super().__init__(settings, delays)
        self.errors, self.silent, self.pushed = errors, silent, []

    def push_messages(self, messages):
        ids = []
        for message in messages:
            self.pushed.append(message.dst_node_id)
            if message.dst_node_id == FAILING and self.pushed.count(FAILING) <= self.errors:
                message_id = f"m{next(self.ids)}"
                if not self.silent:
                    reply = types.SimpleNamespace(
                        metadata=types.SimpleNamespace(reply_to_message_id=message_id), has_error=lambda: True,
                        error=types.SimpleNamespace(code=0, reason="<class 'OSError'>:<'disk\nfull'>"))
                    self.pending[message_id] = (0.0, reply)
                ids.append(message_id)
            else:
                ids.extend(super().push_messages([message]))
        return ids


DELAYS = {101: 0.05, 202: 0.08, 303: 0.05}
SCHEMES = [dict(algorithm="fedavg"), dict(algorithm="async"), dict(algorithm="fedbuff", buffer_size=2),
           dict(algorithm="fedbuff-keep-training", buffer_size=2), dict(algorithm="fedfix", delta_t=0.15)]


def warnings_of(caplog):
    return [r.getMessage() for r in caplog.records
            if r.name == "flower_async.server_loop" and r.levelno == logging.WARNING]


def run(settings, grid):
    return serve(grid, settings, progress=lambda line: None, new_message=fake_message)


@pytest.mark.parametrize("scheme", SCHEMES, ids=[s["algorithm"] for s in SCHEMES])
def test_a_node_that_always_fails_is_dropped_and_the_others_finish_the_run(tmp_path, caplog, scheme):
    settings = settings_for(tmp_path, min_nodes=2, aggregations=4, max_consecutive_failures=2,
                            policy="identical", **scheme)
    grid = FailingGrid(settings, DELAYS, errors=10**6)
    weights, _ = run(settings, grid)
    updates = rows(tmp_path / "server" / "updates.csv")
    assert len(rows(tmp_path / "server" / "metrics.csv")) == 4
    assert {r["node"] for r in updates} == {"101", "202"}
    if scheme["algorithm"] != "fedbuff-keep-training":  # its nodes send several updates of a version
        for got, want in zip(weights, replay(settings, [grid])):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert grid.pushed.count(FAILING) == 2  # sent again once after its first failure, then dropped
    first, second, dropped = warnings_of(caplog)
    assert first == "node 303 failed its work from version 0 (1 in a row, 1 in all): <class 'OSError'>:<'disk full'>"
    # the version of its second work depends on what came back before its second error
    assert re.fullmatch(r"node 303 failed its work from version \d+ \(2 in a row, 2 in all\): "
                        r"<class 'OSError'>:<'disk full'>", second)
    assert dropped == "node 303 dropped from the run after 2 failures in a row"
    failures = json.loads((tmp_path / "server" / "state.json").read_text())["failures"]
    assert failures == {"total": {"303": 2}, "in_a_row": {"303": 2}, "dropped": [303]}


def test_synchronous_fedavg_makes_its_round_of_the_replies_that_came_and_retries_the_node(tmp_path, caplog):
    settings = settings_for(tmp_path, algorithm="fedavg", policy="identical", aggregations=3)
    grid = FailingGrid(settings, DELAYS, errors=1)
    weights, _ = run(settings, grid)
    by_step = [sorted(r["node"] for r in rows(tmp_path / "server" / "updates.csv") if r["step"] == str(n))
               for n in range(3)]
    assert by_step == [["101", "202"], ["101", "202", "303"], ["101", "202", "303"]]
    assert all(float(r["weight"]) == pytest.approx(1 / 2) for r in rows(tmp_path / "server" / "updates.csv")
               if r["step"] == "0")
    for got, want in zip(weights, replay(settings, [grid])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert len(warnings_of(caplog)) == 1
    failures = json.loads((tmp_path / "server" / "state.json").read_text())["failures"]
    assert failures == {"total": {"303": 1}, "in_a_row": {}, "dropped": []}


def test_a_node_that_never_replies_times_out_and_is_dropped(tmp_path, caplog):
    settings = settings_for(tmp_path, algorithm="fedavg", min_nodes=2, aggregations=3, reply_timeout=0.5,
                            max_consecutive_failures=2)
    grid = FailingGrid(settings, DELAYS, errors=10**6, silent=True)
    run(settings, grid)
    assert {r["node"] for r in rows(tmp_path / "server" / "updates.csv")} == {"101", "202"}
    assert len(rows(tmp_path / "server" / "metrics.csv")) == 3
    assert warnings_of(caplog)[0] == "node 303 failed its work from version 0 (1 in a row, 1 in all): no reply in 0.5 s"
    assert warnings_of(caplog)[-1] == "node 303 dropped from the run after 2 failures in a row"


def test_a_resumed_run_keeps_the_counts_and_the_dropped_node_out(tmp_path):
    first = settings_for(tmp_path, algorithm="async", min_nodes=2, aggregations=3, max_consecutive_failures=1)
    grid_one = FailingGrid(first, DELAYS, errors=10**6)
    run(first, grid_one)
    second = settings_for(tmp_path, algorithm="async", min_nodes=2, aggregations=6, max_consecutive_failures=1)
    grid_two = FailingGrid(second, DELAYS, errors=0)  # the node would work now: it stays dropped
    weights, _ = run(second, grid_two)
    assert FAILING not in grid_two.pushed
    failures = json.loads((tmp_path / "server" / "state.json").read_text())["failures"]
    assert failures["total"] == {"303": 1} and failures["dropped"] == [303]
    for got, want in zip(weights, replay(second, [grid_one, grid_two])):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scheme, message", [
    (dict(algorithm="fedbuff", buffer_size=3, min_nodes=3), "fedbuff cannot go on: 2 node(s) left, it needs 3 "),
    (dict(algorithm="fedavg", min_nodes=3), "fedavg cannot go on: 2 node(s) left, it needs 3 "),
])
def test_the_run_fails_in_one_line_when_too_few_nodes_are_left(tmp_path, scheme, message):
    settings = settings_for(tmp_path, aggregations=20, max_consecutive_failures=2, **scheme)
    with pytest.raises(RuntimeError) as raised:
        run(settings, FailingGrid(settings, DELAYS, errors=10**6))
    assert str(raised.value) == message + "(dropped after 2 failures in a row: [303])"
    failures = json.loads((tmp_path / "server" / "state.json").read_text())["failures"]
    assert failures["dropped"] == [303]


def test_a_dropped_node_leaves_the_weight_policys_estimates(tmp_path):
    """The ``weight`` policy estimates :math:`p_i` over the nodes still in the run: after a drop,
    synchronous FedAvg's weights of the others are their data shares among themselves (n_i / sum
    over the live nodes), summing to 1, as before the node was ever heard from."""
    from flower_async.node_failures import NodeFailures
    from flower_async.server_loop import NodeStatistics

    settings = settings_for(tmp_path, algorithm="fedavg", policy="weight", importance="data-size")
    failures = NodeFailures(max_consecutive=1)
    statistics = NodeStatistics(settings, failures)
    sizes = {101: 30, 202: 10, 303: 60}
    for node, size in sizes.items():
        statistics.record(node, size, 1.0)
    assert failures.failed(FAILING)
    weights = {node: statistics.weight(node) for node in (101, 202)}
    np.testing.assert_allclose([weights[101], weights[202]], [30 / 40, 10 / 40], rtol=1e-12)
