"""The online rules (``tff_experiments.asynchronous.rules``), fed fake arrival times by a driver
of this test, against the NumPy ports of the authors' schedules and weights
(tests/tff/async_reference.py): the same steps, staleness and weights as the TFF schedules.
Flower's ServerApp drives the same rule objects with real replies. TF-free: runs in every
environment."""
import math

import numpy as np
import pytest

from tests.tff.async_reference import authors_schedule, authors_weights, tau_f_scenario
from tff_experiments.asynchronous import rules
from tff_experiments.asynchronous.async_fedavg import async_weights
from tff_experiments.asynchronous.fedavg import fedavg_weights
from tff_experiments.asynchronous.fedfix import fedfix_weights

HORIZON = 12.0


def drive(rule, duration, num_clients, horizon):
    """Every client always trains; its k-th work lasts ``duration(i, k)``. Returns the steps."""
    returns = np.full(num_clients, np.inf)
    sent = np.zeros(num_clients, dtype=int)
    works = np.zeros(num_clients, dtype=int)
    for i in range(num_clients):
        rule.started(i)
        returns[i] = duration(i, 0)
    steps = []
    while True:
        first = int(np.argmin(returns))  # ties: the lowest index
        deadline = rule.deadline(horizon)
        if deadline is not None and deadline < returns[first]:
            now, decision = deadline, rule.tick(deadline)
        elif returns[first] <= horizon:
            now = float(returns[first])
            returns[first] = np.inf
            decision = rule.arrived(first, int(sent[first]), now)
        else:
            return steps
        steps.extend(decision.steps)
        for i in decision.freed:
            works[i] += 1
            rule.started(i)
            sent[i] = rule.version
            returns[i] = now + duration(i, works[i])


def as_rows(steps, num_clients):
    rows = -np.ones((len(steps), num_clients), dtype=int)
    weights = np.zeros(num_clients)
    for n, step in enumerate(steps):
        assert step.index == n
        for c in step.contributions:
            rows[n, c.client] = c.sent_version
            weights[c.client] = c.weight
    return np.array([s.time for s in steps]), rows, weights


SCHEMES = [("FL", "fedavg", {}), ("Async", "async", {}), ("FedFix-0.5", "fedfix", dict(delta_t=0.5)),
           ("FedFix-0.8", "fedfix", dict(delta_t=0.8)), ("FedBuff-2", "fedbuff", dict(buffer_size=2)),
           ("FedBuff-3", "fedbuff", dict(buffer_size=3))]


def weight_policy(algorithm, importance, tau, kwargs):
    if algorithm == "fedavg":
        return fedavg_weights(importance)
    if algorithm == "async":
        return async_weights(importance, tau)
    return fedfix_weights(importance, tau, kwargs["delta_t"])


@pytest.mark.parametrize("scenario", [0, 80])
@pytest.mark.parametrize("authors_name,algorithm,kwargs", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_fake_arrivals_give_the_authors_steps_and_weights(authors_name, algorithm, kwargs, scenario):
    num_clients = 6
    tau = tau_f_scenario(num_clients, scenario)
    importance = np.random.default_rng(scenario).dirichlet(np.ones(num_clients))
    want_times, want_rows = authors_schedule(authors_name, tau, HORIZON)
    policies = ("identical", "staleness") if algorithm == "fedbuff" else ("weight", "identical")
    for policy in policies:
        client_weights = weight_policy(algorithm, importance, tau, kwargs) if policy == "weight" else None
        rule = rules.build_rule(algorithm, rules.Weighting(policy, client_weights), **kwargs)
        steps = drive(rule, lambda i, k: tau[i], num_clients, HORIZON)
        got_times, got_rows, got_weights = as_rows(steps, num_clients)
        np.testing.assert_array_equal(got_rows, want_rows)
        np.testing.assert_allclose(got_times, want_times, rtol=1e-12)
        if policy == "weight" or (policy == "identical" and authors_name.startswith(("Async", "FedBuff"))):
            seen = (want_rows >= 0).any(axis=0)
            np.testing.assert_allclose(
                got_weights[seen], authors_weights(authors_name, policy, tau, importance, want_rows)[seen],
                rtol=1e-12)
        for step in steps:
            k = len(step.contributions)
            for c in step.contributions:
                staleness = step.index - c.sent_version
                assert staleness >= 0
                if policy == "staleness":
                    assert c.weight == pytest.approx(1 / math.sqrt(1 + staleness) / k, rel=1e-15)
                elif policy == "identical" and not authors_name.startswith(("Async", "FedBuff")):
                    assert c.weight == pytest.approx(1 / k, rel=1e-15)


def test_fedbuff_keeps_stale_updates_in_the_buffer_and_frees_clients_at_once():
    rule = rules.build_rule("fedbuff-keep-training", rules.Weighting("staleness"), buffer_size=2)
    for client in (0, 1):
        rule.started(client)
    first = rule.arrived(0, 0, 1.0)
    assert first.steps == () and first.freed == (0,)
    rule.started(0)  # client 0 works again from version 0
    second = rule.arrived(0, 0, 2.0)  # its second update fills the buffer
    assert [c.client for c in second.steps[0].contributions] == [0, 0]
    rule.started(0)  # from version 1
    third = rule.arrived(1, 0, 2.5)  # one step stale
    assert third.steps == ()
    fourth = rule.arrived(0, 1, 3.0)
    assert [c.weight for c in fourth.steps[0].contributions] == pytest.approx(
        [1 / math.sqrt(2) / 2, 1 / 2])


def test_fedfix_ticks_late_on_a_wall_clock_and_resumes_at_a_version():
    rule = rules.build_rule("fedfix", rules.Weighting("identical"), delta_t=2.0, version=7)
    rule.origin = 100.0
    assert rule.deadline() == 102.0
    rule.started(3)
    assert rule.arrived(3, 7, 101.0).steps == ()
    decision = rule.tick(102.4)  # the server noticed the deadline late
    assert decision.freed == (3,) and decision.steps[0].index == 7 and rule.version == 8
    assert rule.deadline() == 104.0
    empty = rule.tick(104.1)
    assert empty.steps[0].contributions == () and empty.freed == ()


def test_an_arrival_the_rule_did_not_send_is_refused():
    rule = rules.build_rule("async", rules.Weighting("identical"))
    rule.started(0)
    with pytest.raises(ValueError, match="not working from version 3"):
        rule.arrived(0, 3, 1.0)
    with pytest.raises(ValueError, match="unknown algorithm"):
        rules.build_rule("fedprox", rules.Weighting("identical"))


def test_a_failed_client_leaves_the_synchronous_round_which_steps_with_the_returns():
    # as Flower's FedAvg accepting failures: the round aggregates the replies that came, and the
    # failed client is sent the model again with the next round
    rule = rules.build_rule("fedavg", rules.Weighting("identical"), version=4)
    for client in (2, 0, 1):
        rule.started(client)
    assert rule.arrived(2, 4, 1.0) == rules.NOTHING
    assert rule.failed(1, 4, 1.5) == rules.NOTHING
    decision = rule.arrived(0, 4, 2.0)
    (step,) = decision.steps
    assert (step.index, step.time, rule.version) == (4, 2.0, 5)
    assert [(c.client, c.sent_version, c.weight) for c in step.contributions] == [(0, 4, 0.5), (2, 4, 0.5)]
    assert decision.freed == (0, 1, 2)
    for client in (0, 1):
        rule.started(client)
    rule.failed(0, 5, 3.0)
    everyone_failed = rule.failed(1, 5, 3.5)
    assert everyone_failed.steps == () and everyone_failed.freed == (0, 1) and rule.version == 5


@pytest.mark.parametrize("algorithm,kwargs,min_clients", [
    ("async", {}, 1), ("fedfix", dict(delta_t=1.0), 1), ("fedbuff", dict(buffer_size=2), 2),
    ("fedbuff-keep-training", dict(buffer_size=2), 1)])
def test_a_failed_client_is_freed_at_once_and_never_counted_in_the_asynchronous_rules(algorithm, kwargs,
                                                                                      min_clients):
    rule = rules.build_rule(algorithm, rules.Weighting("identical"), **kwargs)
    assert rule.min_clients == min_clients
    for client in (0, 1, 2):
        rule.started(client)
    first = rule.arrived(0, 0, 0.5)
    failed = rule.failed(1, 0, 0.6)
    assert failed.steps == () and failed.freed == (1,)
    rule.started(1)  # the failed client works again from the same version
    steps = first.steps + rule.arrived(2, 0, 0.7).steps + rule.tick(1.0).steps
    assert [c.client for s in steps for c in s.contributions] == [0, 2]
    with pytest.raises(ValueError, match="not working from version 0"):
        rule.failed(2, 0, 1.1)
