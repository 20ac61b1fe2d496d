"""The TFF peer-to-peer process against a NumPy port of the authors' step (peerToPeer.py).

Tiny configurations: n = 7 machines, f = 2 Byzantine, multinomial logistic regression on
digits (650 weights), batch 5, a few steps. The port computes the softmax cross-entropy
gradient by hand (plus the authors' l2 term lambda ||theta||), the momentum, the half step, the
attack and the mixing, in float64.
"""
import numpy as np
import pytest

pytest.importorskip("tensorflow_federated")

from tests.tff import robust_numpy_ports as ports  # noqa: E402
from tff_experiments.models import digits_logistic  # noqa: E402
from tff_experiments.robust.experiment import HonestData, RobustExperiment, digits_setup  # noqa: E402
from tff_experiments.robust.settings import RobustSettings  # noqa: E402
from tff_experiments.robust.process import learning_rate_at, reception_indices  # noqa: E402

N, F, BATCH, STEPS = 7, 2, 5, 3


def softmax_gradient(theta, x, y, l2):
    """Gradient of mean CE(softmax(x W + b), y) + l2 ||theta|| for theta = [W.ravel(), b]."""
    x = x.reshape(len(x), -1).astype(np.float64)
    w, b = theta[:640].reshape(64, 10), theta[640:]
    logits = x @ w + b
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    p /= len(y)
    grad = np.concatenate([(x.T @ p).ravel(), p.sum(axis=0)])
    return grad + l2 * theta / np.linalg.norm(theta)


def port_run(settings, data, steps, indices_of):
    """The authors' loop in NumPy; indices_of(step) gives each machine's received indices."""
    config = settings
    h = config.num_honest
    theta0 = np.concatenate([w.numpy().ravel() for w in digits_logistic(seed=settings.seed).trainable_weights])
    thetas = [theta0.astype(np.float64)] * h
    momenta = [np.zeros_like(theta0, np.float64)] * h
    for step in range(steps):
        lr = ports.learning_rate(step, settings.learning_rate, settings.decay, settings.decay_delta)
        batches = data.batches(step)
        grads = [softmax_gradient(t, b["x"], b["y"], settings.l2_regularization) for t, b in zip(thetas, batches)]
        beta = settings.momentum
        new_momenta = [beta * m + (1 - beta) * g for m, g in zip(momenta, grads)]
        half = np.stack([t - lr * m for t, m in zip(thetas, new_momenta)])
        if config.attack == "alie":
            byzantine = ports.alie(half, settings.attack_factor)
        elif config.attack == "label_flipping":
            flipped = [softmax_gradient(t, b["x"], 9 - b["y"], settings.l2_regularization) for t, b in zip(thetas, batches)]
            byzantine = half.mean(axis=0) - lr * np.mean(flipped, axis=0)
        elif config.attack == "sign_flipping":
            byzantine = -half.mean(axis=0)
        elif config.attack == "mimic":
            byzantine = half[settings.mimic_target]
        else:
            byzantine = np.zeros((0, half.shape[1]))
        rule = {
            "nna": lambda r: ports.nna(r, 0, len(r) - config.num_byzantine),
            "trimmed_mean": lambda r: ports.trimmed_mean(r, config.num_byzantine),
            "average": lambda r: r.mean(axis=0),
            "centered_clipping": lambda r: ports.centered_clipping(r, r[0], settings.clip_threshold, settings.clip_iterations),
        }[config.rule]
        byz = np.repeat(np.reshape(byzantine, (1, -1)), config.num_byzantine, axis=0)
        mixed, momenta, _ = ports.monna_step(thetas, momenta, grads, lr, beta, indices_of(step), byz, rule)
        thetas = mixed
    return thetas, momenta


@pytest.fixture(scope="module")
def digits_small():
    settings = RobustSettings(num_machines=N, num_byzantine=F, batch_size=BATCH, alpha=1.0)
    return digits_setup(settings)


CASES = {
    # name: settings overrides
    "monna_alie_all": dict(rule="nna", attack="alie", attack_factor=1.5, reception="all"),
    "cwtm_label_flipping_authors": dict(rule="trimmed_mean", attack="label_flipping", momentum=0.9, decay=2.0, decay_delta=2),
    "scc_mimic_authors": dict(rule="centered_clipping", attack="mimic", mimic_target=1, clip_threshold=0.05),
    "dsgd_f0": dict(num_byzantine=0, rule="average", attack="none", momentum=0.0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_process_equals_numpy_port_of_the_authors_step(name, digits_small):
    overrides = dict(CASES[name])
    f = overrides.pop("num_byzantine", F)
    settings = RobustSettings(num_machines=N, num_byzantine=f, batch_size=BATCH, alpha=1.0, **overrides)
    if f != F:
        data, test = digits_setup(settings)
    else:
        data, test = digits_small
    run = RobustExperiment(settings, data=data, test=test)
    state = run.initial_state()
    for _ in range(STEPS):
        state, metrics = run.step(state)
    config = run.settings

    def indices_of(step):
        return reception_indices(config, step, settings.seed).numpy().tolist()

    thetas, momenta = port_run(settings, data, STEPS, indices_of)
    for j, client in enumerate(state["clients"]):
        np.testing.assert_allclose(client["theta"], thetas[j], rtol=2e-4, atol=2e-5, err_msg=f"{name} machine {j}")
        np.testing.assert_allclose(client["momentum"], momenta[j], rtol=2e-4, atol=2e-6, err_msg=f"{name} machine {j}")
    assert int(state["server"]["step"]) == STEPS
    assert metrics["honest_gradients"] == 1.0
    assert metrics["attack_gradients"] == (1.0 if settings.attack == "label_flipping" else 0.0)
    expected_spread = ports.max_pairwise_distance(thetas)
    assert metrics["honest_spread"] == pytest.approx(expected_spread, rel=1e-3, abs=1e-6)


def test_authors_reception_draws():
    """Own first, n-2f-1 distinct other honest machines, then all f Byzantine; fresh per step."""
    n, f = 26, 5
    config = RobustSettings(num_machines=n, num_byzantine=f, rule="nna", attack="sign_flipping")
    h = n - f
    seen = np.zeros((h, h))
    draws = [reception_indices(config, step, 3).numpy() for step in range(40)]
    for rows in draws:
        assert rows.shape == (h, n - f)
        for j, row in enumerate(rows):
            others = row[1 : n - 2 * f]
            assert row[0] == j
            assert len(set(others)) == n - 2 * f - 1 and j not in others and all(0 <= o < h for o in others)
            assert list(row[n - 2 * f :]) == list(range(h, n))
            seen[j, others] += 1
    off_diagonal = seen[~np.eye(h, dtype=bool)]
    assert off_diagonal.min() > 0  # every pair is drawn at some step
    # uniform: each other machine with probability (n-2f-1)/(h-1) per step
    assert off_diagonal.mean() == pytest.approx(40 * (n - 2 * f - 1) / (h - 1))
    assert not np.array_equal(draws[0], draws[1])
    np.testing.assert_array_equal(draws[7], reception_indices(config, 7, 3).numpy())  # stateless
    all_config = RobustSettings(num_machines=n, num_byzantine=f, rule="nna", attack="sign_flipping", reception="all")
    rows = reception_indices(all_config, 0, 0).numpy()
    assert rows.shape == (h, n) and all(sorted(r) == list(range(n)) and r[0] == j for j, r in enumerate(rows))


def test_learning_rate_schedule_equals_authors():
    for decay, delta in ((50.0, 50), (50.0, 1), (7.0, 3), (0.0, 1)):
        for step in (0, 1, 2, 3, 49, 50, 51, 99, 100, 599):
            expected = ports.learning_rate(step, 0.75, decay, delta)
            assert float(learning_rate_at(step, 0.75, decay, delta)) == pytest.approx(expected, rel=1e-12)


def test_config_rejects_bad_input():
    with pytest.raises(ValueError, match="0 <= f < n/2"):
        RobustSettings(num_machines=10, num_byzantine=5, rule="nna", attack="alie")
    with pytest.raises(ValueError, match="--attack must be one of"):
        RobustSettings(num_machines=10, num_byzantine=2, rule="nna", attack="gaussian")
    with pytest.raises(ValueError, match="need an --attack"):
        RobustSettings(num_machines=10, num_byzantine=2, rule="nna", attack="none")
    with pytest.raises(ValueError, match="needs Byzantine"):
        RobustSettings(num_machines=10, num_byzantine=0, rule="nna", attack="alie")
    with pytest.raises(ValueError, match="reception"):
        RobustSettings(num_machines=10, num_byzantine=2, rule="nna", attack="alie", reception="gossip")
    # the authors' reception gives krum n - f = 5 vectors: it needs more than f + 1 = 3
    RobustSettings(num_machines=7, num_byzantine=2, rule="krum", attack="alie")
    with pytest.raises(ValueError, match="krum"):
        RobustSettings(num_machines=5, num_byzantine=2, rule="krum", attack="alie")


def test_batches_are_a_function_of_seed_step_and_machine():
    rng = np.random.default_rng(0)
    arrays = [dict(x=rng.random((n, 8, 8, 1), dtype=np.float32), y=np.arange(n, dtype=np.int32)) for n in (3, 40)]
    data = HonestData(arrays, batch_size=6, seed=4)
    a, b = data.batches(5), data.batches(5)
    for one, two in zip(a, b):
        np.testing.assert_array_equal(one["y"], two["y"])
    assert len(set(a[1]["y"])) == 6  # without replacement when the machine has enough
    assert not np.array_equal(data.batches(6)[1]["y"], a[1]["y"])
