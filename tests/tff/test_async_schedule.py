"""The virtual-clock schedules and weights against NumPy ports of the authors' code
(tests/tff/async_reference.py), for the authors' clockwork clients and for random times."""
import numpy as np
import pytest

from tests.tff.async_reference import authors_schedule, authors_weights, tau_f_scenario
from tff_experiments.asynchronous import ClientTimes, build_schedule, client_importance, scenario_mean_times

HORIZON = 12.0


def as_authors_format(schedule, num_clients):
    rows = -np.ones((len(schedule), num_clients), dtype=int)
    for n, step in enumerate(schedule.steps):
        assert step.index == n
        for c in step.contributions:
            assert rows[n, c.client] == -1, "a client twice in one authors' step"
            rows[n, c.client] = c.sent_version
    return np.array([s.time for s in schedule.steps]), rows


def per_client_weights(schedule, num_clients):
    weights = np.full(num_clients, np.nan)
    for step in schedule.steps:
        for c in step.contributions:
            assert np.isnan(weights[c.client]) or weights[c.client] == c.weight
            weights[c.client] = c.weight
    return weights


SCHEMES = [("FL", "fedavg", {}), ("Async", "async", {}),
           ("FedFix-0.2", "fedfix", dict(delta_t=0.2)), ("FedFix-0.5", "fedfix", dict(delta_t=0.5)),
           ("FedFix-0.8", "fedfix", dict(delta_t=0.8)),
           ("FedBuff-2", "fedbuff", dict(buffer_size=2)), ("FedBuff-3", "fedbuff", dict(buffer_size=3))]


@pytest.mark.parametrize("num_clients", [5, 8])
@pytest.mark.parametrize("scenario", [0, 50, 80])
@pytest.mark.parametrize("authors_name,algorithm,kwargs", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_matches_authors_schedule_and_weights(authors_name, algorithm, kwargs, scenario, num_clients):
    tau = tau_f_scenario(num_clients, scenario)
    np.testing.assert_array_equal(scenario_mean_times(num_clients, f"F-{scenario}"), tau)
    importance = np.random.default_rng(scenario).dirichlet(np.ones(num_clients))
    want_times, want_rows = authors_schedule(authors_name, tau, HORIZON)
    assert len(want_rows) > 3
    for policy in ("weight", "identical"):
        schedule = build_schedule(algorithm, ClientTimes(tau), HORIZON, importance, policy, **kwargs)
        got_times, got_rows = as_authors_format(schedule, num_clients)
        np.testing.assert_array_equal(got_rows, want_rows)
        np.testing.assert_allclose(got_times, want_times, rtol=1e-12)
        if policy == "weight" or authors_name.startswith(("Async", "FedBuff")):
            np.testing.assert_allclose(
                np.nan_to_num(per_client_weights(schedule, num_clients)),
                np.where((want_rows >= 0).any(axis=0),
                         authors_weights(authors_name, policy, tau, importance, want_rows), 0.0),
                rtol=1e-12)
        else:  # identical: the mean of the updates received (FedFix: not in the authors' code)
            for step in schedule.steps:
                assert all(c.weight == pytest.approx(1 / len(step.contributions))
                           for c in step.contributions)
        for step in schedule.steps:  # staleness = steps since the model was sent
            assert step.staleness() == [step.index - c.sent_version for c in step.contributions]
            assert min(step.staleness(), default=0) >= 0


@pytest.mark.parametrize("distribution", ["exponential", "lognormal"])
@pytest.mark.parametrize("authors_name,algorithm,kwargs", SCHEMES, ids=[s[0] for s in SCHEMES])
def test_random_client_times_follow_the_same_rules(authors_name, algorithm, kwargs, distribution):
    tau = tau_f_scenario(6, 80)
    times = ClientTimes(tau, distribution, sigma=0.7, seed=3)
    schedule = build_schedule(algorithm, times, HORIZON, client_importance("uniform", [1] * 6),
                              "weight", **kwargs)
    want_times, want_rows = authors_schedule(authors_name, tau, HORIZON, duration=times.duration)
    got_times, got_rows = as_authors_format(schedule, 6)
    np.testing.assert_array_equal(got_rows, want_rows)
    np.testing.assert_allclose(got_times, want_times, rtol=1e-12)
    again = build_schedule(algorithm, ClientTimes(tau, distribution, sigma=0.7, seed=3), HORIZON,
                           client_importance("uniform", [1] * 6), "weight", **kwargs)
    assert again.steps == schedule.steps  # seeded: the same schedule every time
    other = build_schedule(algorithm, ClientTimes(tau, distribution, sigma=0.7, seed=4), HORIZON,
                           client_importance("uniform", [1] * 6), "weight", **kwargs)
    assert other.steps != schedule.steps


def test_random_durations_have_the_client_mean():
    times = ClientTimes([0.5, 2.0], "lognormal", sigma=0.5, seed=1)
    draws = np.array([[times.duration(i, w) for w in range(20000)] for i in range(2)])
    np.testing.assert_allclose(draws.mean(axis=1), [0.5, 2.0], rtol=0.02)
    np.testing.assert_allclose(np.log(draws).std(axis=1), [0.5, 0.5], rtol=0.03)
    times = ClientTimes([0.5, 2.0], "exponential", seed=1)
    draws = np.array([[times.duration(i, w) for w in range(20000)] for i in range(2)])
    np.testing.assert_allclose(draws.mean(axis=1), [0.5, 2.0], rtol=0.03)
    np.testing.assert_allclose(draws.std(axis=1), [0.5, 2.0], rtol=0.05)


def keep_training_reference(tau, horizon, c):
    """Nguyen et al.'s FedBuff, independently: a client hands in its update and restarts at once
    from the current model; every c updates the server aggregates."""
    m = len(tau)
    returns, sent, works = np.array(tau, dtype=float), np.zeros(m, dtype=int), np.zeros(m, dtype=int)
    version, buffer, steps = 0, [], []
    while True:
        i = int(np.lexsort((np.arange(m), returns))[0])
        now = returns[i]
        if now > horizon:
            return steps
        buffer.append((i, sent[i], works[i]))
        if len(buffer) == c:
            steps.append((now, tuple(buffer)))
            buffer, version = [], version + 1
        sent[i], works[i], returns[i] = version, works[i] + 1, now + tau[i]


def test_fedbuff_keep_training_against_reference():
    tau = tau_f_scenario(5, 80)
    schedule = build_schedule("fedbuff-keep-training", ClientTimes(tau), HORIZON,
                              client_importance("uniform", [1] * 5), "identical", buffer_size=3)
    want = keep_training_reference(tau, HORIZON, 3)
    got = [(s.time, tuple((c.client, c.sent_version, c.work_index) for c in s.contributions))
           for s in schedule.steps]
    assert got == want
    assert any(len({c.client for c in s.contributions}) < 3 for s in schedule.steps), \
        "F-80: the fastest client should fill the buffer twice sometimes"
    assert all(c.weight == pytest.approx(1 / 3) for s in schedule.steps for c in s.contributions)


def test_weight_policy_targets_the_federated_objective():
    """The paper's point: with `weight`, each client's share of the total aggregation weight is
    its importance p_i; with `identical` it grows with the client's speed 1/tau_i."""
    tau = tau_f_scenario(6, 80)
    p = client_importance("uniform", [1] * 6)
    for algorithm, kwargs in [("async", {}), ("fedfix", dict(delta_t=0.3)), ("fedbuff", dict(buffer_size=2))]:
        weighted = build_schedule(algorithm, ClientTimes(tau), 300.0, p, "weight", **kwargs)
        np.testing.assert_allclose(weighted.effective_importance(), p, atol=0.01)
        identical = build_schedule(algorithm, ClientTimes(tau), 300.0, p, "identical", **kwargs)
        r = identical.effective_importance()
        assert r[-1] > 1.5 * r[0], (algorithm, r)  # the fastest client counts much more


def test_bad_arguments():
    with pytest.raises(ValueError, match="F-X"):
        scenario_mean_times(4, "G-10")
    with pytest.raises(ValueError, match=r"\[0, 100\)"):
        scenario_mean_times(4, "F-100")
    times, p = ClientTimes.from_scenario(4, "F-50"), client_importance("uniform", [1] * 4)
    with pytest.raises(ValueError, match="delta_t > 0"):
        build_schedule("fedfix", times, 10.0, p, delta_t=0.0)
    with pytest.raises(ValueError, match="larger than the number of clients"):
        build_schedule("fedbuff", times, 10.0, p, buffer_size=5)
    with pytest.raises(ValueError, match="unknown algorithm"):
        build_schedule("fedsgd", times, 10.0, p)
    with pytest.raises(ValueError, match="weight policy"):
        build_schedule("async", times, 10.0, p, "uniform")
    with pytest.raises(ValueError, match="distribution"):
        ClientTimes([1.0], "gamma")
