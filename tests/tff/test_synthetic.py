"""Synthetic(alpha, beta) (Li et al., FedProx, MLSys 2020) against the authors' recipe.

The reference is an independent port of the authors' generator (litian96/FedProx,
``data/synthetic_1_1/generate_synthetic.py``): one global NumPy stream over all clients, draws
from the full covariance matrix (through its Cholesky factor, computed once, rather than the
authors' ``multivariate_normal``, which factors it again for every client) and an explicit
softmax. Ours draws every client
from its own stream, so the two agree in distribution, not draw for draw: they are compared
with two-sample tests, and every test also checks that it would reject a wrong recipe.
"""
import tracemalloc

import numpy as np
import pytest
from scipy import stats

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import models  # noqa: E402
from tff_experiments.asynchronous import LocalBatches  # noqa: E402
from tff_experiments.data import synthetic, synthetic_federated  # noqa: E402

P_MIN = 1e-3  # a correct recipe fails a test with probability < 1e-3 (fixed seeds: never)


def reference_synthetic(num_users, alpha, beta, iid=False, seed=0, shared_model=None):
    """The authors' ``generate_synthetic`` (one global stream), returning per-client (x, y).
    IID: ``shared_model``, if given, is the ``(W, b)`` of all clients."""
    rs = np.random.RandomState(seed)
    dimension, num_class = 60, 10
    samples_per_user = rs.lognormal(4, 2, num_users).astype(int) + 50
    cov_x = np.diag([np.power(j + 1, -1.2) for j in range(dimension)])
    factor = np.linalg.cholesky(cov_x)
    if iid:
        mean_x = np.zeros((num_users, dimension))
        W_global, b_global = rs.normal(0, 1, (dimension, num_class)), rs.normal(0, 1, num_class)
        if shared_model is not None:
            W_global, b_global = shared_model
    else:
        mean_W = rs.normal(0, alpha, num_users)
        mean_b = mean_W
        B = rs.normal(0, beta, num_users)
        mean_x = np.array([rs.normal(B[i], 1, dimension) for i in range(num_users)])
    clients = []
    for i in range(num_users):
        if iid:
            W, b = W_global, b_global
        else:
            W = rs.normal(mean_W[i], 1, (dimension, num_class))
            b = rs.normal(mean_b[i], 1, num_class)
        xx = mean_x[i] + rs.standard_normal((samples_per_user[i], dimension)) @ factor.T
        logits = xx @ W + b
        with np.errstate(over="ignore", invalid="ignore"):
            soft = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        clients.append((xx, np.argmax(soft, axis=1)))
    return clients


def ours(num_users, alpha, beta, iid=False, seed=0):
    generator = synthetic.SyntheticGenerator(alpha, beta, iid=iid, seed=seed)
    return [generator.client_examples(k) for k in range(num_users)]


def majority_fraction(clients):
    """Per client, the share of its examples in its most frequent class."""
    return np.array([np.bincount(y, minlength=10).max() / len(y) for _, y in clients])


def feature_mean(clients):
    """Per client, the mean of all its feature values (about B_k: its spread is beta's)."""
    return np.array([x.mean() for x, _ in clients])


def sizes(clients):
    return np.array([len(y) for _, y in clients])


# ---------------------------------------------------------------------------------------------
# Format, determinism, laziness


def test_client_data_shapes_dtypes_ids_and_split():
    train, test = synthetic_federated.synthetic_federated_data(5, alpha=1, beta=1, seed=3)
    assert train.client_ids == ["f_00000", "f_00001", "f_00002", "f_00003", "f_00004"]
    assert train.element_type_structure == {"x": tf.TensorSpec((60,), tf.float32),
                                            "y": tf.TensorSpec((), tf.int32)}
    for cid in train.client_ids:
        ds = train.create_tf_dataset_for_client(cid)
        assert ds.element_spec == train.element_type_structure
        rows = list(ds.as_numpy_iterator())
        n = train.generator.num_examples(train.index(cid))
        assert n >= 50 and len(rows) == int(0.9 * n) == train.client_sizes[cid]
        assert test.client_sizes[cid] == n - int(0.9 * n)
        y = np.array([r["y"] for r in rows])
        assert y.min() >= 0 and y.max() < 10
        # train then test are the client's n examples in order
        x_all, y_all = train.generator.client_examples(train.index(cid))
        np.testing.assert_array_equal(np.concatenate([train.client_arrays(cid)["y"],
                                                      test.client_arrays(cid)["y"]]), y_all)
    # the serializable form (used inside TFF computations) gives the same examples
    fn = train.serializable_dataset_fn
    got = list(fn(tf.constant("f_00002")).as_numpy_iterator())
    np.testing.assert_array_equal(np.stack([r["x"] for r in got]), train.client_arrays("f_00002")["x"])
    with pytest.raises(ValueError, match="unknown client id"):
        train.client_arrays("f_00005")


def test_a_client_does_not_depend_on_the_number_of_clients_nor_on_the_order():
    small, _ = synthetic_federated.synthetic_federated_data(10, seed=7)
    large, _ = synthetic_federated.synthetic_federated_data(100_000, seed=7)
    backwards = [large.client_arrays(cid) for cid in reversed(small.client_ids)][::-1]
    for cid, b in zip(small.client_ids, backwards):
        a = small.client_arrays(cid)
        np.testing.assert_array_equal(a["x"], b["x"])
        np.testing.assert_array_equal(a["y"], b["y"])
    other, _ = synthetic_federated.synthetic_federated_data(10, seed=8)
    assert not np.array_equal(other.client_arrays("f_00000")["x"][:5], small.client_arrays("f_00000")["x"][:5])


def test_clients_are_generated_when_needed_and_memory_stays_bounded():
    tracemalloc.start()
    data, _ = synthetic_federated.synthetic_federated_data(1_000_000, seed=0)
    data.client_arrays("f_999999")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20e6, f"a million-client ClientData took {peak / 1e6:.0f} MB"
    # LocalBatches over a generated data set keeps only the data set's bounded cache
    data, _ = synthetic_federated.synthetic_federated_data(100, seed=0, cache_clients=10)
    local = LocalBatches(data, local_steps=1, batch_size=8, client_ids=data.client_ids)
    for i in range(100):
        local.dataset(i, 0)
    assert len(data._cache) <= 10 and not local._arrays


# ---------------------------------------------------------------------------------------------
# The recipe


@pytest.mark.parametrize("alpha,beta,iid", [(1.0, 1.0, False), (0.5, 2.0, False), (0.0, 0.0, True)])
def test_matches_the_authors_generator_in_distribution(alpha, beta, iid):
    num = 150
    mine = ours(num, alpha, beta, iid)
    # IID: one model for all clients, so compare given the same one
    shared = synthetic.SyntheticGenerator(iid=True)._shared_model if iid else None
    ref = reference_synthetic(num, alpha, beta, iid, seed=1, shared_model=shared)
    for statistic in (sizes, majority_fraction, feature_mean):
        p = stats.ks_2samp(statistic(mine), statistic(ref)).pvalue
        assert p > P_MIN, f"{statistic.__name__}: p = {p:.2g}"
    # Power: the same statistics tell the recipe from a wrong one (alpha and beta swapped, or
    # the IID variant for the non-IID one).
    wrong = reference_synthetic(num, beta, alpha, seed=2) if not iid else reference_synthetic(num, 1.0, 1.0, seed=2)
    if alpha != beta or iid:
        worst = min(stats.ks_2samp(s(mine), s(wrong)).pvalue for s in (majority_fraction, feature_mean))
        assert worst < 1e-6


def test_feature_covariance_is_diagonal_j_to_the_minus_1_2():
    clients = ours(200, 1.0, 1.0)
    centered = np.concatenate([x - x.mean(axis=0) for x, _ in clients if len(x) > 1]).astype(np.float64)
    n = len(centered)
    assert n > 50_000
    variances = (centered**2).sum(axis=0) / (n - len(clients))
    want = np.arange(1, 61) ** -1.2
    # sampling error of a variance: sqrt(2/n) ~ 0.6% here
    np.testing.assert_allclose(variances, want, rtol=0.03)
    correlation = np.corrcoef(centered[:20_000].T)
    assert np.abs(correlation - np.eye(60)).max() < 0.05


def test_alpha_sets_the_spread_of_the_client_models_beta_that_of_their_feature_means():
    num = 3000
    for alpha, beta in ((0.5, 2.0), (2.0, 0.5)):
        generator = synthetic.SyntheticGenerator(alpha, beta, seed=4)
        params = [generator.parameters(k)[0] for k in range(num)]
        u = np.array([p.u for p in params])
        model_mean = np.array([np.concatenate([p.W.ravel(), p.b]).mean() for p in params])
        B = np.array([p.B for p in params])
        v_mean = np.array([p.v.mean() for p in params])
        tolerance = 4 / np.sqrt(2 * num)  # 4 standard errors of a standard deviation
        assert abs(u.std() / alpha - 1) < tolerance
        assert abs(model_mean.std() / np.sqrt(alpha**2 + 1 / 610) - 1) < tolerance
        assert abs(B.std() / beta - 1) < tolerance
        assert abs(v_mean.std() / np.sqrt(beta**2 + 1 / 60) - 1) < tolerance
        # every entry of W_k around u_k with variance 1
        residual = np.concatenate([p.W.ravel() - p.u for p in params[:200]])
        assert abs(residual.std() - 1) < 0.01
    # In the data, beta is the spread of the clients' feature means.
    for beta in (0.5, 2.0):
        spread = feature_mean(ours(400, 1.0, beta)).std()
        assert abs(spread / np.sqrt(beta**2 + 1 / 60) - 1) < 0.15


def test_alpha_shifts_every_logit_of_a_client_alike_so_labels_do_not_depend_on_it():
    # W_k, b_k ~ N(u_k, 1) adds u_k (1 + sum_j x_j) to every class's logit: the argmax, hence
    # the data, does not change with alpha (a property of the authors' recipe).
    for k in range(20):
        x0, y0 = synthetic.SyntheticGenerator(0.0, 1.0, seed=5).client_examples(k)
        x5, y5 = synthetic.SyntheticGenerator(5.0, 1.0, seed=5).client_examples(k)
        np.testing.assert_array_equal(x0, x5)
        assert np.mean(y0 == y5) > 0.999  # float ties aside


def test_class_balance_per_client_iid_is_homogeneous_non_iid_is_not():
    def homogeneity_p(clients):
        table = np.array([np.bincount(y, minlength=10) for _, y in clients])
        table = table[:, table.sum(axis=0) > 0]
        return stats.chi2_contingency(table)[1]

    assert homogeneity_p(ours(40, 0, 0, iid=True)) > P_MIN
    assert homogeneity_p(ours(40, 1.0, 1.0)) < 1e-12
    # non-IID: most clients are dominated by a few classes, as in the authors' data
    assert np.median(majority_fraction(ours(200, 1.0, 1.0))) > 0.4
    assert np.median(majority_fraction(ours(200, 0, 0, iid=True))) < 0.4


def test_project_interface_pools_test_splits():
    data, (x_test, y_test) = synthetic_federated.synthetic_client_data(30, 1.0, 1.0, seed=0)
    want = np.concatenate([data.generator.client_split(k, "test")["y"] for k in range(30)])
    np.testing.assert_array_equal(y_test, want)
    assert x_test.shape == (len(y_test), 60) and x_test.dtype == np.float32
    _, (x_big, _) = synthetic_federated.synthetic_client_data(50, 1.0, 1.0, seed=0, test_clients=10)
    assert 0 < len(x_big) < sum(data.generator.num_examples(k) for k in range(50))


# ---------------------------------------------------------------------------------------------
# Learnable by FedAvg


def test_tff_fedavg_learns_synthetic_with_the_logistic_model():
    train, (x_test, y_test) = synthetic_federated.synthetic_client_data(10, 1.0, 1.0, seed=0, max_examples=400)
    model_fn = models.tff_model_fn(models.synthetic_logistic, train.element_type_structure)
    fedavg = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn, tff.learning.optimizers.build_sgdm(0.05))
    state = fedavg.initialize()
    before = models.evaluate_weights(models.synthetic_logistic, fedavg.get_model_weights(state), x_test, y_test)
    data = [train.create_tf_dataset_for_client(cid).batch(20) for cid in train.client_ids]
    for _ in range(8):
        state = fedavg.next(state, data).state
    after = models.evaluate_weights(models.synthetic_logistic, fedavg.get_model_weights(state), x_test, y_test)
    majority = np.bincount(y_test, minlength=10).max() / len(y_test)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > max(0.5, majority + 0.15), (before, after, majority)


def test_command_line_takes_the_synthetic_dataset_and_its_options(tmp_path):
    from tff_experiments.asynchronous.cli import settings_from
    from tff_experiments.command_line.errors import UsageError

    base = ["--algorithm", "fedfix", "--delta-t", "0.5", "--dataset", "synthetic", "--clients", "10000",
            "--out", str(tmp_path / "run")]
    settings = settings_from(base + ["--synthetic-alpha", "0.5", "--synthetic-beta", "2", "--synthetic-iid"])
    assert settings.model == "logistic"
    assert (settings.synthetic_alpha, settings.synthetic_beta, settings.synthetic_iid) == (0.5, 2.0, True)
    assert settings_from(base).synthetic_alpha == settings_from(base).synthetic_beta == 1.0
    with pytest.raises(UsageError, match="--synthetic-beta"):
        settings_from(base + ["--synthetic-beta", "-1"])


def test_a_local_work_generates_only_its_examples_and_they_are_the_clients_own():
    data, test = synthetic_federated.synthetic_federated_data(50, seed=3, cache_clients=1)
    sizes = [data.num_examples(cid) for cid in data.client_ids]
    big = data.client_ids[int(np.argmax(sizes))]
    whole = data.client_arrays(big)
    rows = np.array([[5, 0, 17], [len(whole["y"]) - 1, 3, 2]])
    got = data.client_rows(big, rows)
    assert got["x"].shape == (2, 3, synthetic.NUM_FEATURES) and got["y"].shape == (2, 3)
    np.testing.assert_array_equal(got["x"], whole["x"][rows])
    np.testing.assert_array_equal(got["y"], whole["y"][rows])
    held_out = test.client_rows(big, [0, 1])  # the test split continues the client's examples
    np.testing.assert_array_equal(held_out["x"], test.client_arrays(big)["x"][:2])
    with pytest.raises(ValueError, match="examples, asked for index"):
        data.client_rows(big, [len(whole["y"])])
    # LocalBatches draws its batches through client_rows: the same batches, no client generated
    local = LocalBatches(data, local_steps=2, batch_size=8, seed=1)
    data._cache.clear()
    i = data.client_ids.index(big)
    batches = local.batch_arrays(i, 4)
    assert not data._cache
    indices = local.batch_indices(i, 4)
    np.testing.assert_array_equal(batches["x"], whole["x"][indices])
