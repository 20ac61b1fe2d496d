"""The asynchronous server loop over Flower's ``Grid``.

The server pushes the current model to every node, then polls: ``grid.pull_messages`` returns
whatever replies have come (it does not wait for the others), each matched to its message by
``metadata.reply_to_message_id``. Every reply goes to the scheme's rule
(``tff_experiments.asynchronous.rules``) with the time it came, the version its node was sent
and its local-work counter; the rule says which server steps to make now (with which updates
and weights) and which nodes are free to start again; FedFix's rule also asks for a step at
its deadlines, whatever came. A step applies :math:`\\sum_i d_i \\Delta_i` through the server
optimizer, evaluates the new model on the held-out data, logs and checkpoints; the freed nodes
get the new model. A node's update is relative to the weights it was sent, so no old model
version needs to be kept.

A node's work that fails (an error reply, or no reply within ``reply-timeout``) is logged as a
warning and counted (``node_failures``); nothing of it is aggregated, the rule is told
(``rule.failed``) and the node is sent the current model again, unless it failed
``max-consecutive-failures`` times in a row: then it is dropped. The run fails, in one line,
only when fewer nodes are left than the scheme needs (FedBuff: its c; synchronous FedAvg, as
Flower's FedAvg with its minimum of available nodes: ``min-nodes``; the others: one).

The clock is seconds since the run started, continued by a resumed run (the checkpoint holds
it), so that FedFix's periods and the logged times go on from where they were.
"""
import collections
import logging
import time

import numpy as np

from flower_async import tasks
from flower_async.node_failures import NodeFailures
from flower_async.run_log import RunLog
from flower_async.server_optimizer import ServerOptimizer
from tff_experiments.asynchronous import rules as rules_lib
from tff_experiments.asynchronous.async_fedavg import async_weights
from tff_experiments.asynchronous.fedavg import fedavg_weights
from tff_experiments.asynchronous.fedbuff import fedbuff_weights
from tff_experiments.asynchronous.fedfix import fedfix_weights
from tff_experiments.asynchronous.schedule import client_importance

POLL_SECONDS = 0.1

_LOGGER = logging.getLogger(__name__)


class NodeStatistics:
    """What the server learns of the nodes as they reply: data sizes, round-trip times, updates;
    the ``weight`` policy's estimates of :math:`p_i` and :math:`\\tau_i` come from them, over
    the nodes still in the run (a dropped node leaves the objective).

    Args:
      settings: the run's ``Settings``.
      failures: the run's ``NodeFailures`` (which nodes were dropped), or ``None``.
    """

    def __init__(self, settings, failures=None):
        self.settings, self.failures = settings, failures
        self.sizes, self.times, self.updates = {}, collections.defaultdict(list), collections.Counter()

    def record(self, node, num_examples, round_trip):
        """A reply of ``node``: its data size and the time from push to reply.

        Args:
          node: the node's id.
          num_examples: its number of training examples.
          round_trip: seconds from the push to the reply.
        """
        self.sizes[node] = num_examples
        self.times[node].append(round_trip)
        self.updates[node] += 1

    def weight(self, node):
        """The ``weight`` policy's :math:`d_i` of ``node``, by the scheme's formula with the
        current estimates (the nodes heard from so far)."""
        dropped = self.failures.dropped if self.failures is not None else ()
        nodes = sorted(n for n in self.sizes if n == node or n not in dropped)
        i = nodes.index(node)
        importance = client_importance(self.settings.importance, [self.sizes[n] for n in nodes])
        tau = np.array([np.mean(self.times[n]) for n in nodes])
        algorithm = self.settings.algorithm
        if algorithm == "fedavg":
            return fedavg_weights(importance)[i]
        if algorithm == "async":
            return async_weights(importance, tau)[i]
        if algorithm == "fedfix":
            return fedfix_weights(importance, tau, self.settings.delta_t)[i]
        counts = np.array([self.updates[n] for n in nodes])
        steps = counts.sum() / self.settings.buffer_size
        return fedbuff_weights(importance, self.settings.buffer_size, counts=counts, num_steps=steps)[i]


def wait_for_nodes(grid, count, timeout):
    """The ids of the nodes connected, once there are ``count`` (sorted).

    Args:
      grid: the ``Grid``.
      count: the nodes to wait for.
      timeout: seconds before giving up.
    """
    end = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= count:
            return nodes
        if time.monotonic() > end:
            raise TimeoutError(f"{len(nodes)} of {count} nodes connected after {timeout:g} s")
        time.sleep(1.0)


def train_message(content, node, group):
    """Flower's ``Message`` of a local work for ``node`` (inside a ServerApp's run).

    Args:
      content: the ``RecordDict``.
      node: the node's id.
      group: the group id (the model version).
    """
    from flwr.app import Message

    return Message(content=content, dst_node_id=node, message_type="train", group_id=group)


def serve(grid, settings, progress=print, new_message=train_message):
    """Runs the scheme until ``settings.aggregations`` steps are made; returns the final weights
    and the task (the run's output folder holds the rest, see ``run_log``).

    Args:
      grid: Flower's ``Grid`` (the ServerApp's).
      settings: the run's ``Settings``.
      progress: called with a line per step.
      new_message: makes a message ``(content, node, group id)`` (``train_message``).
    """
    from flwr.app import ArrayRecord, ConfigRecord, RecordDict

    task = tasks.build_task(settings)
    log = RunLog(settings.out)
    optimizer = ServerOptimizer(settings.server_optimizer, settings.server_lr, settings.server_momentum)
    loaded = log.load()
    failures = NodeFailures(settings.max_consecutive_failures)
    if loaded is None:
        weights, version, clock, history = task.initial_weights(), 0, 0.0, []
    else:
        weights, optimizer_state, state = loaded
        optimizer.load(optimizer_state)
        version, clock, history = state["version"], state["clock"], state["history"]
        if "failures" in state:
            failures.load(state["failures"])
        progress(f"resuming at version {version} (clock {clock:.1f} s)")
    if version >= settings.aggregations:
        return weights, task
    connected = wait_for_nodes(grid, settings.min_nodes, settings.reply_timeout)
    nodes = failures.live(connected)
    x_test, y_test = tasks.test_data(settings, len(connected))
    statistics = NodeStatistics(settings, failures)
    weighting = rules_lib.Weighting(settings.policy, statistics.weight if settings.policy == "weight" else None)
    rule = rules_lib.build_rule(settings.algorithm, weighting, delta_t=settings.delta_t,
                                buffer_size=settings.buffer_size, version=version)
    if isinstance(rule, rules_lib.PeriodRule):
        rule.origin = clock
    # synchronous FedAvg's rounds need min-nodes nodes, as Flower's FedAvg's min_available_nodes
    needed = max(rule.min_clients, settings.min_nodes) if rule.name == "fedavg" else rule.min_clients
    start = time.monotonic() - clock

    def now():
        return time.monotonic() - start

    in_flight = {}  # message id -> (node, version sent, push time)
    works = collections.Counter()  # each node's local works sent
    returned = {}  # (node, work) -> (update, metrics, round trip)
    partitions = {}

    def send(node):
        content = RecordDict({"arrays": ArrayRecord([np.asarray(w) for w in weights]),
                              "config": ConfigRecord({"version": rule.version, "work": works[node]})})
        (message_id,) = grid.push_messages([new_message(content, node, str(rule.version))])
        rule.started(node)
        in_flight[message_id] = (node, rule.version, now())
        works[node] += 1

    def apply(decision):
        # the new model first, to the freed nodes; then evaluation, logs and checkpoint, which
        # the nodes' work overlaps
        nonlocal weights, clock_at_last_step
        made = []
        for step in decision.steps:
            update = [np.zeros_like(w, dtype=np.float64) for w in weights]
            rows = []
            for c in step.contributions:
                delta, _, round_trip = returned.pop((c.client, c.work_index))
                update = [u + c.weight * np.asarray(d, dtype=np.float64) for u, d in zip(update, delta)]
                rows.append({"step": step.index, "time": round(step.time, 3), "node": c.client,
                             "partition": partitions[c.client], "sent_version": c.sent_version,
                             "staleness": step.index - c.sent_version, "weight": c.weight,
                             "round_trip": round(round_trip, 3)})
            weights = optimizer.apply(weights, update)
            made.append((step, rows, weights, optimizer.state()))
        for node in decision.freed:
            if rule.version < settings.aggregations and node in nodes:  # a dropped node is not sent
                send(node)
        for step, rows, step_weights, optimizer_state in made:
            loss, accuracy = task.evaluate(step_weights, x_test, y_test)
            metrics = {"step": step.index, "time": round(step.time, 3), "loss": loss, "accuracy": accuracy,
                       "updates": len(rows)}
            history.append({"step": step.index, "time": step.time,
                            "contributions": [[r["node"], r["sent_version"], r["staleness"], r["weight"]]
                                              for r in rows]})
            log.log_step(rows, metrics)
            log.save(step_weights, optimizer_state, {"version": step.index + 1, "clock": step.time,
                                                     "history": history, "failures": failures.state()})
            clock_at_last_step = step.time
            progress(f"step {step.index + 1}/{settings.aggregations} at {step.time:.1f} s: "
                     f"{len(rows)} update(s), staleness {[r['staleness'] for r in rows]}, "
                     f"loss {loss:.4f}, accuracy {accuracy:.3f}")

    def check_enough_nodes():
        if len(nodes) < needed:
            raise RuntimeError(
                f"{rule.name} cannot go on: {len(nodes)} node(s) left, it needs {needed} "
                f"(dropped after {settings.max_consecutive_failures} failures in a row: "
                f"{sorted(failures.dropped)})")

    def fail(node, sent, reason):
        # the work is lost; the node gets the current model again unless it failed too often
        dropped = failures.failed(node)
        _LOGGER.warning("node %s failed its work from version %s (%d in a row, %d in all): %s", node, sent,
                        failures.in_a_row[node], failures.total[node], " ".join(str(reason).split()))
        if dropped:
            _LOGGER.warning("node %s dropped from the run after %d failures in a row", node,
                            failures.in_a_row[node])
            nodes.remove(node)
            # the counts survive a restart even before the next step's checkpoint
            log.save(weights, optimizer.state(), {"version": rule.version, "clock": clock_at_last_step,
                                                  "history": history, "failures": failures.state()})
            check_enough_nodes()
        apply(rule.failed(node, sent, now()))

    check_enough_nodes()
    clock_at_last_step = clock
    for node in nodes:
        send(node)
    while rule.version < settings.aggregations:
        replies = list(grid.pull_messages(list(in_flight)))
        for reply in replies:
            if reply.metadata.reply_to_message_id not in in_flight:
                continue  # a reply that came after its work timed out
            node, sent, pushed = in_flight.pop(reply.metadata.reply_to_message_id)
            if reply.has_error():
                fail(node, sent, reply.error.reason)
                if rule.version >= settings.aggregations:
                    break
                continue
            failures.replied(node)
            arrived = now()
            metrics = reply.content["metrics"]
            statistics.record(node, int(metrics["num-examples"]), arrived - pushed)
            partitions[node] = int(metrics["partition-id"])
            work = works[node] - 1
            returned[(node, work)] = (reply.content["arrays"].to_numpy_ndarrays(), metrics, arrived - pushed)
            apply(rule.arrived(node, sent, arrived, work))
            if rule.version >= settings.aggregations:
                break
        late = [m for m, (_, _, pushed) in in_flight.items() if now() - pushed > settings.reply_timeout]
        for message_id in late:
            if rule.version < settings.aggregations:
                node, sent, _ = in_flight.pop(message_id)
                fail(node, sent, f"no reply in {settings.reply_timeout:g} s")
        deadline = rule.deadline()
        if deadline is not None and rule.version < settings.aggregations and now() >= deadline:
            apply(rule.tick(now()))
        if not replies:
            time.sleep(POLL_SECONDS)
    return weights, task
