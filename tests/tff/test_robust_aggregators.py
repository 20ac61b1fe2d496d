"""The robust tff.aggregators factories: against the NumPy ports, and inside TFF's FedAvg."""
import collections

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tests.tff import robust_numpy_ports as ports  # noqa: E402
from tff_experiments.robust import aggregators  # noqa: E402

VALUE_TYPE = collections.OrderedDict(
    kernel=tff.TensorType(np.float32, [3, 2]), bias=tff.TensorType(np.float32, [4])
)


def client_values(k, seed):
    rng = np.random.default_rng(seed)
    values = []
    for i in range(k):
        scale = 30.0 if i == 0 else 1.0  # one outlier
        values.append(
            collections.OrderedDict(
                kernel=(rng.normal(size=(3, 2)) * scale).astype(np.float32),
                bias=(rng.normal(size=4) * scale).astype(np.float32),
            )
        )
    return values


def flat(value):
    return np.concatenate([np.asarray(value["kernel"]).ravel(), np.asarray(value["bias"]).ravel()])


NNM_THEN = {
    "mean": lambda x, f: x.mean(axis=0),
    "trimmed_mean": lambda x, f: ports.trimmed_mean(x, f),
    "median": lambda x, f: ports.median(x),
    "geometric_median": lambda x, f: ports.geometric_median(x),
    "krum": lambda x, f: ports.krum(x, f),
}
CASES = {
    "median": (lambda: aggregators.coordinate_median_factory(), lambda x: ports.median(x)),
    "trimmed_mean": (lambda: aggregators.trimmed_mean_factory(2), lambda x: ports.trimmed_mean(x, 2)),
    "krum": (lambda: aggregators.krum_factory(2), lambda x: ports.krum(x, 2)),
    "geometric_median": (lambda: aggregators.geometric_median_factory(0.1, 4), lambda x: ports.geometric_median(x, 0.1, 4)),
}
for _then, _port in NNM_THEN.items():
    CASES[f"nnm_{_then}"] = (
        lambda then=_then: aggregators.nearest_neighbor_mixing_factory(2, then=then),
        lambda x, port=_port: port(ports.nnm(x, 2), 2),
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_factory_equals_numpy_port(name):
    make, port = CASES[name]
    process = make().create(tff.types.to_type(VALUE_TYPE))
    values = client_values(7, seed=len(name))
    output = process.next(process.initialize(), values)
    expected = port(np.stack([flat(v) for v in values]))
    np.testing.assert_allclose(flat(output.result), expected, rtol=2e-5, atol=2e-5)
    assert int(output.measurements["num_clients"]) == 7
    assert output.result["kernel"].shape == (3, 2)


def test_centered_clipping_factory_keeps_its_center():
    process = aggregators.centered_clipping_factory(clip_threshold=1.5, iterations=2).create(tff.types.to_type(VALUE_TYPE))
    state = process.initialize()
    center = np.zeros(10)
    for seed in range(3):
        values = client_values(6, seed)
        output = process.next(state, values)
        center = ports.centered_clipping(np.stack([flat(v) for v in values]), center, 1.5, 2)
        np.testing.assert_allclose(flat(output.result), center, rtol=2e-5, atol=2e-5)
        state = output.state


def test_too_few_clients_fail_with_the_rule_name():
    process = aggregators.trimmed_mean_factory(2).create(tff.types.to_type(VALUE_TYPE))
    with pytest.raises(Exception, match="trimmed mean needs at least 5 clients"):
        process.next(process.initialize(), client_values(4, 0))


def test_bad_arguments():
    with pytest.raises(ValueError):
        aggregators.trimmed_mean_factory(-1)
    with pytest.raises(ValueError, match="unknown rule after NNM"):
        aggregators.nearest_neighbor_mixing_factory(1, then="bulyan")
    with pytest.raises(TypeError):
        aggregators.coordinate_median_factory().create(tff.TensorType(np.int32, [3]))


def test_trimmed_mean_inside_build_weighted_fed_avg():
    """End to end: FedAvg's server update is old - TM_f(old - local_i), with local_i each client's
    own local training (found by running the same FedAvg on that client alone)."""
    from tff_experiments.data.digits import digits_client_data
    from tff_experiments.models import digits_logistic, tff_model_fn

    client_data, _ = digits_client_data(5, alpha=1.0, seed=0)
    datasets = [client_data.create_tf_dataset_for_client(str(i)).batch(16).take(2) for i in range(5)]
    rng = np.random.default_rng(0)
    # one Byzantine-looking client: its labels are shuffled
    arrays = client_data.client_arrays("0")
    datasets[0] = tf.data.Dataset.from_tensor_slices(
        collections.OrderedDict(x=arrays["x"], y=rng.permutation(arrays["y"]))
    ).batch(16).take(2)
    model_fn = tff_model_fn(digits_logistic, client_data.element_type_structure)

    def build(aggregator):
        return tff.learning.algorithms.build_weighted_fed_avg(
            model_fn,
            client_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=0.5),
            server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
            model_aggregator=aggregator,
        )

    robust = build(tff.aggregators.as_weighted_aggregator(aggregators.trimmed_mean_factory(1)))
    state = robust.initialize()
    start = robust.get_model_weights(state)
    output = robust.next(state, datasets)
    new = robust.get_model_weights(output.state)

    alone = build(tff.aggregators.MeanFactory())
    alone_state = alone.set_model_weights(alone.initialize(), start)
    locals_ = [alone.get_model_weights(alone.next(alone_state, [ds]).state) for ds in datasets]

    def vec(weights):
        return np.concatenate([np.asarray(w).ravel() for w in weights.trainable])

    updates = np.stack([vec(start) - vec(local) for local in locals_])
    expected = vec(start) - ports.trimmed_mean(updates, 1)
    np.testing.assert_allclose(vec(new), expected, rtol=1e-5, atol=1e-6)
    assert not np.allclose(vec(new), vec(start) - updates.mean(axis=0), atol=1e-4)  # not the mean
