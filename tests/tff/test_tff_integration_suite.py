# Adapted from TensorFlow Federated 0.87.0,
# tensorflow_federated/python/learning/optimizers/integration_test.py
# (Copyright 2021 The TensorFlow Federated Authors, Apache License 2.0): every optimizer runs
# identically eagerly, inside tff.tensorflow.computation (TF's legacy graph mode) and inside a
# federated computation; here over keras_optim's TFF optimizers, with gradients of distinct
# magnitudes (TFF's are ones, under which clipping would change nothing) and a mixed-dtype spec.
"""TFF's optimizer integration test and FedAvg rounds with keras_optim's TFF optimizers."""
import collections

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

import keras_optim  # noqa: E402
from tests.tff import tff_suite_cases as cases  # noqa: E402
from tff_experiments import tff_optimizers  # noqa: E402

STEPS = 3


def _gradients(spec, t, numpy=False):
    values = cases.gradient_values(spec, t)
    if numpy:
        return tf.nest.map_structure(lambda v, s: v.astype(s.dtype.as_numpy_dtype), values, spec)
    return cases.as_tensors(values, spec)


def _run_in_eager_mode(optimizer, spec):
    weights = cases.ones(spec)
    state = optimizer.initialize(spec)
    state_history, weights_history = [state], [weights]
    for t in range(STEPS):
        state, weights = optimizer.next(state, weights, _gradients(spec, t))
        state_history.append(state)
        weights_history.append(weights)
    return state_history, weights_history


def _run_in_tf_computation(optimizer, spec):
    weights = cases.ones(spec)
    init_fn = tff.tensorflow.computation(lambda: optimizer.initialize(spec))
    next_fn = tff.tensorflow.computation(optimizer.next)
    state = init_fn()
    state_history, weights_history = [state], [weights]
    for t in range(STEPS):
        state, weights = next_fn(state, weights, _gradients(spec, t))
        state_history.append(state)
        weights_history.append(weights)
    return state_history, weights_history


def _run_in_federated_computation(optimizer, spec):
    weights = tf.nest.map_structure(lambda s: np.ones(s.shape, s.dtype.as_numpy_dtype), spec)

    @tff.federated_computation()
    def init_fn():
        return tff.federated_eval(
            tff.tensorflow.computation(lambda: optimizer.initialize(spec)), tff.SERVER)

    server_type = tff.FederatedType(tff.types.tensorflow_to_type(spec), tff.SERVER)

    @tff.federated_computation(init_fn.type_signature.result, server_type, server_type)
    def next_fn(state, weights, gradients):
        return tff.federated_map(tff.tensorflow.computation(optimizer.next), (state, weights, gradients))

    state = init_fn()
    state_history, weights_history = [state], [weights]
    for t in range(STEPS):
        state, weights = next_fn(state, weights, _gradients(spec, t, numpy=True))
        state_history.append(state)
        weights_history.append(weights)
    return state_history, weights_history


def _assert_histories_close(expected, actual, spec, what):
    """Same states and weights, leaf by leaf, each compared in float64 in its own dtype's
    tolerance (bit-identical is not promised: graph and eager may fuse differently)."""
    rtol = {np.dtype("float16"): 1e-3, tf.bfloat16.as_numpy_dtype: 8e-3}
    exp_flat, act_flat = tf.nest.flatten(expected), tf.nest.flatten(actual)
    assert len(exp_flat) == len(act_flat), what
    for i, (e, a) in enumerate(zip(exp_flat, act_flat)):
        e, a = np.asarray(e), np.asarray(a)
        tol = rtol.get(a.dtype, 1e-5)
        np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=tol, atol=tol,
                                   err_msg=f"{what}, leaf {i}")


@tf.function
def _example_schedule_fn(round_num):
    if round_num < 2:
        return 0.1
    return 0.01


BUILDERS = {name: build for name, (build, _) in cases.CASES.items()}
# integration_test.py's scheduled_sgd: TFF's schedule_learning_rate around the wrapper.
BUILDERS["scheduled_clipping_fast"] = lambda: tff.learning.optimizers.schedule_learning_rate(
    cases.CASES["clipping_fast"][0](), _example_schedule_fn)

# TFF parametrizes every optimizer over scalar/struct/nested specs; the nested one here holds
# float16, bfloat16, float32 and float64 weights, the struct and scalar ones run for one
# plain and one clipping case (the structure is handled by the same code for every case).
PARAMS = [(name, "mixed_dtypes") for name in sorted(BUILDERS)] + [
    ("adabelief", "scalar"), ("adabelief", "struct"), ("clipping_exact", "scalar"), ("clipping_exact", "struct"),
]


@pytest.mark.parametrize("name,spec_name", PARAMS, ids=[f"{n}-{s}" for n, s in PARAMS])
def test_integration_produces_identical_results(name, spec_name):
    spec = cases.SPECS[spec_name]
    eager_history = _run_in_eager_mode(BUILDERS[name](), spec)
    tf_comp_history = _run_in_tf_computation(BUILDERS[name](), spec)
    federated_comp_history = _run_in_federated_computation(BUILDERS[name](), spec)
    _assert_histories_close(eager_history, tf_comp_history, spec, "tff.tensorflow.computation")
    _assert_histories_close(eager_history, federated_comp_history, spec, "federated computation")
    # The weights come back in their own dtypes from every context.
    for weights in (eager_history[1][-1], tf_comp_history[1][-1], federated_comp_history[1][-1]):
        got = [np.asarray(w).dtype for w in tf.nest.flatten(weights)]
        assert got == [s.dtype.as_numpy_dtype for s in tf.nest.flatten(spec)]


def _linear_model_fn():
    keras_model = tf.keras.Sequential(
        [tf.keras.layers.Dense(3, input_shape=(4,), kernel_initializer="zeros")])
    return tff.learning.models.from_keras_model(
        keras_model,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=collections.OrderedDict(
            x=tf.TensorSpec([None, 4], tf.float32), y=tf.TensorSpec([None], tf.int32)),
    )


def _client_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype(np.float32)
    y = rng.integers(0, 3, 12).astype(np.int32)
    return x, y, tf.data.Dataset.from_tensor_slices(collections.OrderedDict(x=x, y=y)).batch(4)


def _keras_client_round(keras_optimizer, x, y):
    """The client's local training on a plain Keras model: the round's reference (one client
    and a server SGD of learning rate 1 make the new global model the client's)."""
    model = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(4,), kernel_initializer="zeros")])
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for start in range(0, len(x), 4):
        with tf.GradientTape() as tape:
            loss = loss_fn(y[start:start + 4], model(x[start:start + 4]))
        keras_optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_weights),
                                            model.trainable_weights))
    return [w.numpy() for w in model.trainable_weights]


def test_scheduled_tensor_learning_rate_with_clipping_in_weighted_fed_avg():
    """The issue's cases: a client optimizer built from the scheduled learning rate (a tensor
    inside TFF's computation), with Pan & Li's clipping of the first moment (exact search)."""
    x, y, dataset = _client_data()
    process = tff.learning.algorithms.build_weighted_fed_avg_with_optimizer_schedule(
        _linear_model_fn,
        client_learning_rate_fn=lambda round_num: tf.where(round_num < 5, 0.125, 0.0625),
        client_optimizer_fn=lambda lr: tff_optimizers.build_adabelief(learning_rate=lr, coordinate_clip=0.25),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
    )
    state = process.next(process.initialize(), [dataset]).state
    got = process.get_model_weights(state).trainable
    expected = _keras_client_round(keras_optim.AdaBelief(learning_rate=0.125, coordinate_clip=0.25), x, y)
    assert not np.allclose(expected[0], 0.0)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_coordinate_clipping_wrapper_as_client_optimizer_of_weighted_fed_avg():
    x, y, dataset = _client_data()
    process = tff.learning.algorithms.build_weighted_fed_avg(
        _linear_model_fn,
        client_optimizer_fn=tff_optimizers.build_coordinate_clipping(
            tff_optimizers.build_diffgrad(learning_rate=0.125), fraction=0.25, mode="fast"),
        server_optimizer_fn=tff.learning.optimizers.build_sgdm(learning_rate=1.0),
    )
    state = process.next(process.initialize(), [dataset]).state
    got = process.get_model_weights(state).trainable
    expected = _keras_client_round(
        keras_optim.CoordinateClipping(keras_optim.DiffGrad(learning_rate=0.125), fraction=0.25, mode="fast"), x, y)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
