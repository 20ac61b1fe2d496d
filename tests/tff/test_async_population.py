"""A population of P clients of which at most C train at once (FedBuff's concurrency), in every
scheme's schedule, against an independent port of the rule (a plain Python event loop over the
clients in flight, with the idle clients listed afresh at every draw) and of its weights (the
conditional Poisson inclusion probabilities by enumerating every set of C clients); with C = P,
against the NumPy ports of the authors' code (tests/tff/async_reference.py)."""
import itertools
import math
import time

import numpy as np
import pytest

from tests.tff.async_reference import authors_schedule, authors_weights, tau_f_scenario
from tff_experiments.asynchronous import ClientTimes, build_schedule, client_importance, expected_server_steps
from tff_experiments.asynchronous import population

STREAM = 0x706F70  # the documented entropy word: draws come from default_rng((STREAM, seed))


def brute_force_inclusion(odds, size):
    """Pr[i in B] under Pr[B] proportional to prod_{j in B} odds_j, over every B of ``size``."""
    total, inside = 0.0, np.zeros(len(odds))
    for chosen in itertools.combinations(range(len(odds)), size):
        mass = float(np.prod([odds[j] for j in chosen]))
        total += mass
        inside[list(chosen)] += mass
    return inside / total


def port(scheme, tau, horizon, clients, concurrency, seed, *, c=None, delta_t=None, duration=None):
    """The rule, plainly: ``flight`` maps each client in flight to (return time, sent version);
    every new client is the k-th idle client (increasing index), k = rng.integers(#idle); with
    C = P the freed clients restart (no draw). Returns [(time, [(client, sent, work)])] and the
    mean wait of FedBuff's returned clients; asserts the invariants on the way."""
    rng = np.random.default_rng((STREAM, seed))
    duration = duration or (lambda i, w: tau[i])
    works = [0] * clients
    flight = {}

    def draw():
        idle = [j for j in range(clients) if j not in flight]
        assert len(idle) == clients - len(flight)
        return idle[int(rng.integers(len(idle)))]

    def start(i, now, version):
        assert i not in flight, "a client drawn while training"
        flight[i] = (now + duration(i, works[i]), version)
        assert len(flight) <= concurrency

    def next_return():
        return min(flight, key=lambda j: (flight[j][0], j))

    steps, waited = [], 0.0
    if scheme == "fedavg":
        now = 0.0
        while True:
            if concurrency == clients:
                chosen = list(range(clients))
            else:
                chosen = []
                for _ in range(concurrency):  # all idle between rounds; one draw at a time
                    idle = [j for j in range(clients) if j not in chosen]
                    chosen.append(idle[int(rng.integers(len(idle)))])
                chosen.sort()
            end = now + max(duration(i, works[i]) for i in chosen)
            if end > horizon:
                return steps, waited
            steps.append((end, [(i, len(steps), works[i]) for i in chosen]))
            for i in chosen:
                works[i] += 1
            now = end
    for _ in range(concurrency):
        start(draw() if concurrency < clients else len(flight), 0.0, 0)
    if scheme in ("async", "fedbuff-keep-training"):
        per_step = 1 if scheme == "async" else c
        buffer, version = [], 0
        while True:
            i = next_return()
            now, sent = flight.pop(i)
            if now > horizon:
                return steps, waited
            buffer.append((i, sent, works[i]))
            if len(buffer) == per_step:
                steps.append((now, buffer))
                buffer, version = [], version + 1
            works[i] += 1
            start(i if concurrency == clients else draw(), now, version)
    if scheme == "fedbuff":
        while True:
            batch = sorted(flight, key=lambda j: (flight[j][0], j))[:c]
            now = flight[batch[-1]][0]
            if now > horizon:
                return steps, waited
            waited += sum(now - flight[i][0] for i in batch)
            steps.append((now, [(i, flight[i][1], works[i]) for i in batch]))
            for i in batch:
                del flight[i]
                works[i] += 1
            for i in batch:  # each drawn client starts before the next draw
                start(i if concurrency == clients else draw(), now, len(steps))
    if scheme == "fedfix":
        for n in range(int(horizon / delta_t)):
            now = (n + 1) * delta_t
            back = sorted(j for j in flight if flight[j][0] <= now)
            steps.append((now, [(i, flight[i][1], works[i]) for i in back]))
            for i in back:
                del flight[i]
                works[i] += 1
            for i in back:
                start(i if concurrency == clients else draw(), now, n + 1)
        return steps, waited
    raise ValueError(scheme)


def port_weights(scheme, policy, steps, waited, tau, p, concurrency, *, c=None, delta_t=None):
    """[[d per contribution] per step] of the documented policies, computed independently."""
    clients = len(tau)
    if policy != "weight":
        return [[(1 / math.sqrt(1 + n - sent) if policy == "staleness" else 1.0) / len(works)
                 for _, sent, _ in works] for n, (_, works) in enumerate(steps)]
    sampled = concurrency < clients
    if scheme == "fedavg":
        d = p * clients / concurrency
    elif scheme == "fedfix":
        k = np.ceil(tau / delta_t)
        d = k * p / (brute_force_inclusion(k * delta_t, concurrency) if sampled else 1.0)
    elif not sampled and scheme == "async":
        d = np.sum(1 / tau) * tau * p
    elif not sampled:  # FedBuff without concurrency: the authors' observed fractions
        counts = np.zeros(clients)
        for _, works in steps:
            for i, _, _ in works:
                counts[i] += 1
        d = np.where(counts > 0, p * len(steps) / np.maximum(counts, 1), 0.0)
    else:
        hold = tau + (waited / (len(steps) * c) if scheme == "fedbuff" and steps else 0.0)
        rates = brute_force_inclusion(hold, concurrency) / hold
        d = p * rates.sum() / ((1 if scheme == "async" else c) * rates)
    return [[d[i] for i, _, _ in works] for _, works in steps]


SCHEMES = [("fedavg", {}), ("async", {}), ("fedfix", dict(delta_t=0.3)), ("fedfix", dict(delta_t=0.7)),
           ("fedbuff", dict(buffer_size=2)), ("fedbuff", dict(buffer_size=3)),
           ("fedbuff-keep-training", dict(buffer_size=2)), ("fedbuff-keep-training", dict(buffer_size=4))]
IDS = [f"{a}-{'-'.join(str(v) for v in kw.values())}".rstrip("-") for a, kw in SCHEMES]


def as_port_format(schedule):
    return [(s.time, [(c.client, c.sent_version, c.work_index) for c in s.contributions]) for s in schedule.steps]


@pytest.mark.parametrize("algorithm,kwargs", SCHEMES, ids=IDS)
@pytest.mark.parametrize("clients,concurrency", [(7, 3), (6, 5), (7, 1), (5, 5)])
@pytest.mark.parametrize("distribution", ["fixed", "exponential"])
def test_matches_the_port_of_the_rule(algorithm, kwargs, clients, concurrency, distribution):
    if algorithm == "fedbuff" and kwargs["buffer_size"] > concurrency:
        pytest.skip("FedBuff-c needs c <= C")
    tau = tau_f_scenario(clients, 80)
    times = ClientTimes(tau, distribution, seed=5)
    p = np.random.default_rng(clients).dirichlet(np.ones(clients))
    scheme = algorithm.split("-")[0] if algorithm != "fedbuff-keep-training" else algorithm
    c, delta_t = kwargs.get("buffer_size"), kwargs.get("delta_t")
    for seed in (0, 1, 2, 7):
        want, waited = port(scheme, tau, 20.0, clients, concurrency, seed, c=c, delta_t=delta_t,
                            duration=times.duration)
        assert len(want) >= 3
        for policy in ("weight", "identical", "staleness"):
            schedule = build_schedule(algorithm, times, 20.0, p, policy, concurrency=concurrency, seed=seed,
                                      **kwargs)
            assert as_port_format(schedule) == want  # same times (exactly), clients, versions, works
            assert [s.index for s in schedule.steps] == list(range(len(want)))
            got = [[c.weight for c in s.contributions] for s in schedule.steps]
            expect = port_weights(scheme, policy, want, waited, tau, p, concurrency, c=c, delta_t=delta_t)
            for g, e in zip(got, expect):
                np.testing.assert_allclose(g, e, rtol=1e-9)


@pytest.mark.parametrize("algorithm,kwargs", SCHEMES, ids=IDS)
def test_schedule_level_invariants(algorithm, kwargs):
    """From the schedule alone: each client's works are aggregated in order, and where a work's
    start is known (the time of the step that made its model: every scheme but keep-training),
    a client's works never overlap and at most C are in flight at any step."""
    clients, concurrency = 9, 4
    times = ClientTimes.from_scenario(clients, "F-80", "lognormal", seed=2)
    schedule = build_schedule(algorithm, times, 20.0, client_importance("uniform", [1] * clients),
                              concurrency=concurrency, seed=3, **kwargs)
    assert schedule.scheme.endswith(f"-concurrency-{concurrency}")
    next_work = [0] * clients
    intervals = []
    for step in schedule.steps:
        for c in step.contributions:
            assert c.work_index == next_work[c.client]
            next_work[c.client] += 1
            start = 0.0 if c.sent_version == 0 else schedule.steps[c.sent_version - 1].time
            intervals.append((c.client, start, step.time))
    if algorithm == "fedbuff-keep-training":
        return
    for client in range(clients):
        mine = sorted((s, e) for i, s, e in intervals if i == client)
        assert all(mine[k][1] <= mine[k + 1][0] for k in range(len(mine) - 1)), client
    for step in schedule.steps:
        assert sum(s < step.time <= e for _, s, e in intervals) <= concurrency


AUTHORS = [("FL", "fedavg", {}), ("Async", "async", {}), ("FedFix-0.5", "fedfix", dict(delta_t=0.5)),
           ("FedBuff-2", "fedbuff", dict(buffer_size=2)), ("FedBuff-3", "fedbuff", dict(buffer_size=3))]


@pytest.mark.parametrize("authors_name,algorithm,kwargs", AUTHORS, ids=[a[0] for a in AUTHORS])
@pytest.mark.parametrize("seed", [0, 4])
def test_concurrency_equal_to_the_population_is_todays_schedule(authors_name, algorithm, kwargs, seed):
    tau = tau_f_scenario(6, 80)
    p = np.random.default_rng(1).dirichlet(np.ones(6))
    want_times, want_rows = authors_schedule(authors_name, tau, 12.0)
    for policy in ("weight", "identical"):
        today = build_schedule(algorithm, ClientTimes(tau), 12.0, p, policy, **kwargs)
        full = build_schedule(algorithm, ClientTimes(tau), 12.0, p, policy, concurrency=6, seed=seed, **kwargs)
        assert full.steps == today.steps and full.scheme == today.scheme  # weights included
        rows = -np.ones((len(full), 6), dtype=int)
        for n, step in enumerate(full.steps):
            for c in step.contributions:
                rows[n, c.client] = c.sent_version
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_allclose([s.time for s in full.steps], want_times, rtol=1e-12)
        if policy == "weight":
            weights = np.zeros(6)
            for step in full.steps:
                for c in step.contributions:
                    weights[c.client] = c.weight
            np.testing.assert_allclose(weights, authors_weights(authors_name, policy, tau, p, want_rows),
                                       rtol=1e-12)


def test_keep_training_with_concurrency_equal_to_the_population_is_todays_schedule():
    times = ClientTimes.from_scenario(5, "F-80", "exponential", seed=2)
    p = client_importance("uniform", [1] * 5)
    today = build_schedule("fedbuff-keep-training", times, 12.0, p, buffer_size=3)
    assert build_schedule("fedbuff-keep-training", times, 12.0, p, buffer_size=3, concurrency=5, seed=9).steps \
        == today.steps


def test_the_draws_are_seeded_and_uniform_among_the_idle_clients():
    times = ClientTimes.from_scenario(12, "F-50")
    p = client_importance("uniform", [1] * 12)
    one = build_schedule("async", times, 30.0, p, concurrency=4, seed=1)
    assert build_schedule("async", times, 30.0, p, concurrency=4, seed=1).steps == one.steps
    assert build_schedule("async", times, 30.0, p, concurrency=4, seed=2).steps != one.steps
    # FedAvg's rounds: C of P uniformly, so each client in a fraction C/P of the rounds
    rounds = build_schedule("fedavg", ClientTimes.from_scenario(12, "F-0"), 3000.0, p, concurrency=4, seed=3)
    counts = rounds.participation_counts()
    assert len(rounds) == 3000 and counts.sum() == 4 * 3000
    np.testing.assert_allclose(counts / len(rounds), 4 / 12, atol=0.03)


@pytest.mark.parametrize("algorithm,kwargs,tolerance", [
    ("async", {}, 0.05), ("fedbuff-keep-training", dict(buffer_size=3), 0.05), ("fedfix", dict(delta_t=0.3), 0.05),
    ("fedavg", {}, 0.05), ("fedbuff", dict(buffer_size=2), 0.08)])
def test_weight_policy_keeps_the_expected_shares_under_sampling(algorithm, kwargs, tolerance):
    """Clockwork F-80 clients, P = 6, C = 3: the `weight` shares stay p_i (exact in the stationary
    regime but for FedBuff-c, an approximation); `identical` leans toward the fast clients."""
    tau = tau_f_scenario(6, 80)
    p = np.random.default_rng(0).dirichlet(np.ones(6))
    horizon = 15000.0 if algorithm == "fedavg" else 3000.0
    weighted = build_schedule(algorithm, ClientTimes(tau), horizon, p, "weight", concurrency=3, seed=1, **kwargs)
    np.testing.assert_allclose(weighted.effective_importance() / p, 1.0, atol=tolerance)
    if algorithm != "fedavg":
        counts = build_schedule(algorithm, ClientTimes(tau), horizon, p, "identical", concurrency=3, seed=1,
                                **kwargs).participation_counts()
        assert counts[-1] > 1.3 * counts[0]  # fast clients come back more: the weights must undo it


@pytest.mark.parametrize("odds,size", [
    (tau_f_scenario(9, 80), 1), (tau_f_scenario(9, 80), 4), (tau_f_scenario(9, 99), 5), (tau_f_scenario(9, 99), 8),
    (np.exp(np.random.default_rng(1).normal(0, 3, 11)), 5), (np.exp(np.random.default_rng(2).normal(0, 3, 11)), 9),
    (np.ones(7), 3)])
def test_inclusion_probabilities_against_enumeration(odds, size):
    got = population.inclusion_probabilities(odds, size)
    np.testing.assert_allclose(got, brute_force_inclusion(odds, size), rtol=1e-10)
    assert got.sum() == pytest.approx(size)
    np.testing.assert_array_equal(population.inclusion_probabilities(odds, len(odds)), 1.0)


def test_expected_server_steps_with_concurrency():
    tau = tau_f_scenario(10, 80)
    for algorithm, kwargs in [("async", {}), ("fedbuff-keep-training", dict(buffer_size=3)), ("fedavg", {}),
                              ("fedfix", dict(delta_t=0.5))]:
        made = len(build_schedule(algorithm, ClientTimes(tau), 2000.0, client_importance("uniform", [1] * 10),
                                  "identical", concurrency=4, seed=0, **kwargs))
        assert made == pytest.approx(
            expected_server_steps(algorithm, tau, 2000.0, concurrency=4, **kwargs), rel=0.03), algorithm
    # FedAvg: E[longest of C drawn without replacement], against enumeration
    rounds = [max(tau[list(chosen)]) for chosen in itertools.combinations(range(10), 4)]
    assert expected_server_steps("fedavg", tau, 100.0, concurrency=4) == pytest.approx(100.0 / np.mean(rounds))
    assert expected_server_steps("async", tau, 100.0, concurrency=10) == expected_server_steps("async", tau, 100.0)


def test_bad_concurrency():
    times, p = ClientTimes.from_scenario(4, "F-50"), client_importance("uniform", [1] * 4)
    for bad in (0, 5, 2.0, True, "3"):
        with pytest.raises(ValueError, match="concurrency"):
            build_schedule("async", times, 10.0, p, concurrency=bad)
    with pytest.raises(ValueError, match="larger than the number of clients training at once"):
        build_schedule("fedbuff", times, 10.0, p, buffer_size=3, concurrency=2)
    build_schedule("fedbuff-keep-training", times, 10.0, p, buffer_size=3, concurrency=2)  # fine
    idle = population.IdleClients(4, population.sampling_rng(0))
    with pytest.raises(ValueError, match="not training"):
        idle.release(2)


def test_fedbuff_population_of_stack_overflow_builds():
    """Nguyen et al.'s Stack Overflow setting: P = 342,477 clients, C = 1,000 training at once,
    FedBuff with a buffer of 10 (keep training), about 10^5 updates. Sizes only (the time is
    printed: 1-2 s on one core; random durations add about 25 us a work)."""
    clients, concurrency = 342_477, 1_000
    times = ClientTimes.from_scenario(clients, "F-80")
    p = client_importance("uniform", np.ones(clients))
    expected = expected_server_steps("fedbuff-keep-training", times.mean_times, 60.0, buffer_size=10,
                                     concurrency=concurrency)
    begin = time.perf_counter()
    schedule = build_schedule("fedbuff-keep-training", times, 60.0, p, "weight", buffer_size=10,
                              concurrency=concurrency, seed=0)
    print(f"P={clients} C={concurrency}: {len(schedule)} steps, "
          f"{schedule.participation_counts().sum()} updates in {time.perf_counter() - begin:.1f} s")
    assert len(schedule) == pytest.approx(expected, rel=0.05) and 9_000 < len(schedule) < 11_000
    assert len(schedule.importance) == clients and schedule.scheme == "fedbuff-10-keep-training-concurrency-1000"
    weights = np.array([c.weight for s in schedule.steps for c in s.contributions])
    # uniform importance, C << P: d_i ~ P p_i / c = 1/10, each step's weights summing to ~1
    assert np.all(np.abs(weights - 0.1) < 0.01)
    assert abs(schedule.effective_importance().sum() - 1.0) < 1e-9
