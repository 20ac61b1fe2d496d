"""The group work as batched computations (``batched_group_work``) equals TFF's own client work
(``build_model_delta_client_work``, one ``CLIENTS`` member per local work) in float64: the
logistic model and the digits CNN, every client optimizer of the command line, K = 3 steps,
clients from different stale models, one non-finite update in a group, uneven groups; the
client-batched forward pass equals the Keras model client by client; the models that cannot be
batched take the loop."""
import functools

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import models, tff_optimizers  # noqa: E402
from tff_experiments.asynchronous import LocalBatches, build_stale_model_process  # noqa: E402
from tff_experiments.asynchronous.batched_model import batched_model  # noqa: E402
from tff_experiments.asynchronous.process import pack_client_values  # noqa: E402
from tff_experiments.data.digits import digits_client_data  # noqa: E402

LOCAL_STEPS, BATCH, GROUP = 3, 16, 3
DIGITS_SPEC = {"x": tf.TensorSpec((8, 8, 1), tf.float32), "y": tf.TensorSpec((), tf.int32)}
OPTIMIZERS = {  # float64 hyperparameters where TFF's optimizer does not cast them (SGD momentum)
    "sgd": lambda: tff.learning.optimizers.build_sgdm(0.1),
    "sgdm": lambda: tff.learning.optimizers.build_sgdm(np.float64(0.05), momentum=np.float64(0.9)),
    "adam": lambda: tff.learning.optimizers.build_adam(0.01),
    "adabelief": lambda: tff_optimizers.build_adabelief(0.01),
    "diffgrad": lambda: tff_optimizers.build_diffgrad(0.01),
}


def float64(builder):
    """``builder`` whose layers compute and keep their weights in float64."""

    def build(seed=0):
        previous = tf.keras.mixed_precision.global_policy()
        tf.keras.mixed_precision.set_global_policy("float64")
        try:
            return builder(seed=seed)
        finally:
            tf.keras.mixed_precision.set_global_policy(previous)

    return build


MODELS = {"logistic": float64(models.digits_logistic), "cnn": float64(models.digits_cnn)}


@pytest.fixture(scope="module")
def local():
    data, _ = digits_client_data(4, alpha=0.5, seed=0)
    return LocalBatches(data, LOCAL_STEPS, BATCH, seed=2)


def stale_models(process, local, count=3):
    """``count`` successive global models (distinct stale versions) of ``process``."""
    state = process.initialize()
    versions = [state.global_model_weights]
    for n in range(count - 1):
        works = [(state.global_model_weights, i, n, 0.5) for i in range(2)]
        state = process.next(state, pack_client_values(process, as_datasets(_items(local, works)))).state
        versions.append(state.global_model_weights)
    return state, versions


def _items(local, works, broken=None):
    """``(model_weights, batches (K, b, ...), weight)`` of ``(weights, client, work_index, d)``;
    work ``broken`` gets a NaN pixel in its second batch (a non-finite update)."""
    items = []
    for j, (weights, client, k, d) in enumerate(works):
        arrays = {name: np.array(a) for name, a in local.batch_arrays(client, k).items()}
        if j == broken:
            arrays["x"][1, 0, 3, 3, 0] = np.nan
        items.append((weights, arrays, d))
    return items


def as_datasets(items):
    """The items as TFF's client work takes them: a dataset of the K batches."""
    return [(w, tf.data.Dataset.from_tensor_slices(
        {k: a.reshape((-1,) + a.shape[2:]) for k, a in arrays.items()}).batch(BATCH), d) for w, arrays, d in items]


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("model", list(MODELS))
def test_batched_group_work_equals_tff_client_work(local, model, optimizer):
    model_fn = models.tff_model_fn(MODELS[model], DIGITS_SPEC, seed=1)
    assert batched_model(model_fn) is not None, "the model takes the loop"
    per_client = build_stale_model_process(model_fn, OPTIMIZERS[optimizer]())
    grouped = build_stale_model_process(model_fn, OPTIMIZERS[optimizer](), clients_per_group=GROUP)
    state, (v0, v1, v2) = stale_models(per_client, local)
    assert state.global_model_weights.trainable[0].dtype == np.float64
    # 7 works from three stale models over 4 clients; groups of 3, 3, 1; work 4 is not finite
    works = [(v0, 0, 3, 0.5), (v1, 1, 3, 0.25), (v2, 2, 3, 0.125), (v0, 3, 3, 1.0), (v2, 0, 4, 0.75),
             (v2, 1, 4, 0.375), (v1, 3, 4, 0.0)]
    items = _items(local, works, broken=4)
    inputs = pack_client_values(grouped, items)
    assert [len(g["weight"]) for g in inputs] == [3, 3, 1]
    assert [len(g["model_weights"].trainable[0]) for g in inputs] == [3, 2, 1]  # each version once
    want = per_client.next(state, pack_client_values(per_client, as_datasets(items)))
    got = grouped.next(state, inputs)
    start = state.global_model_weights.trainable
    for s, g, w in zip(start, got.state.global_model_weights.trainable, want.state.global_model_weights.trainable):
        assert np.abs(w - s).max() > 1e-4  # the updates moved the model
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    got_metrics, want_metrics = got.metrics["client_work"]["train"], want.metrics["client_work"]["train"]
    assert got_metrics["num_examples"] == want_metrics["num_examples"] == 6 * LOCAL_STEPS * BATCH
    assert got_metrics["num_batches"] == want_metrics["num_batches"] == 6 * LOCAL_STEPS
    for name in ("loss", "accuracy"):  # Keras metrics sum in float32, in another order
        np.testing.assert_allclose(got_metrics[name], want_metrics[name], rtol=1e-6)


def test_the_loop_still_equals_tff_client_work_on_groups_with_shared_models(local):
    model_fn = models.tff_model_fn(MODELS["logistic"], DIGITS_SPEC, seed=1)
    per_client = build_stale_model_process(model_fn, OPTIMIZERS["adam"]())
    loop = build_stale_model_process(model_fn, OPTIMIZERS["adam"](), clients_per_group=GROUP, batched_groups=False)
    state, (v0, v1) = stale_models(per_client, local, count=2)
    items = _items(local, [(v0, 0, 3, 0.5), (v1, 1, 3, 0.25), (v0, 2, 3, 0.125), (v1, 3, 3, 1.0)], broken=2)
    want = per_client.next(state, pack_client_values(per_client, as_datasets(items)))
    got = loop.next(state, pack_client_values(loop, items))
    for g, w in zip(got.state.global_model_weights.trainable, want.state.global_model_weights.trainable):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert got.metrics["client_work"]["train"]["num_batches"] == 3 * LOCAL_STEPS


@pytest.mark.parametrize("builder, x_shape", [
    (float64(functools.partial(models.image_cnn, (10, 10, 2), 3)), (10, 10, 2)),  # valid padding
    (MODELS["cnn"], (8, 8, 1)),  # same padding
])
def test_batched_forward_pass_equals_the_keras_model_client_by_client(builder, x_shape):
    spec = {"x": tf.TensorSpec(x_shape, tf.float32), "y": tf.TensorSpec((), tf.int32)}
    batched = batched_model(models.tff_model_fn(builder, spec))
    keras_models = [builder(seed=s) for s in range(3)]
    weights = [tf.constant(np.stack(ws)) for ws in zip(*[models.model_weights(m) for m in keras_models])]
    x = np.random.default_rng(0).normal(size=(3, 5) + x_shape).astype(np.float32)
    got = batched.forward(weights, tf.constant(x)).numpy()
    for i, keras_model in enumerate(keras_models):
        np.testing.assert_allclose(got[i], keras_model(x[i]).numpy(), rtol=1e-12, atol=1e-12)


def _with_layer(layer_class, *args):
    def build(seed=0):
        return tf.keras.Sequential([tf.keras.Input((8, 8, 1)), tf.keras.layers.Flatten(), layer_class(*args),
                                    tf.keras.layers.Dense(10)])
    return build


@pytest.mark.parametrize("builder, spec, batched", [
    (models.digits_logistic, DIGITS_SPEC, True),
    (models.digits_cnn, DIGITS_SPEC, True),
    (functools.partial(models.image_cnn, (28, 28, 1), 10), {**DIGITS_SPEC, "x": tf.TensorSpec((28, 28, 1))}, True),
    (models.synthetic_logistic, {"x": tf.TensorSpec((60,)), "y": tf.TensorSpec((), tf.int32)}, True),
    (models.lenet_cnn, {**DIGITS_SPEC, "x": tf.TensorSpec((28, 28, 1))}, True),
    (functools.partial(models.image_logistic, (28, 28, 1), 10), {**DIGITS_SPEC, "x": tf.TensorSpec((28, 28, 1))}, True),
    (functools.partial(models.char_rnn, units=8), {"x": tf.TensorSpec((12,), tf.int32),
                                                   "y": tf.TensorSpec((12,), tf.int32)}, False),
    (_with_layer(tf.keras.layers.Dropout, 0.5), DIGITS_SPEC, False),
    (_with_layer(tf.keras.layers.BatchNormalization), DIGITS_SPEC, False),
])
def test_which_models_take_the_batched_path(builder, spec, batched):
    assert (batched_model(models.tff_model_fn(builder, spec)) is not None) == batched


def test_a_model_with_another_metric_takes_the_loop():
    def model_fn():
        return tff.learning.models.from_keras_model(
            models.digits_logistic(), loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            input_spec={"x": tf.TensorSpec([None, 8, 8, 1]), "y": tf.TensorSpec([None], tf.int32)},
            metrics=[tf.keras.metrics.AUC()])
    assert batched_model(model_fn) is None

