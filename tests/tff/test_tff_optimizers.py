"""keras_optim's algorithms as TFF optimizers: one TFF step equals one Keras step (same math
source) and the independent NumPy ports of the papers; they train inside TFF's own FedAvg."""
import collections
import inspect

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

import keras_optim  # noqa: E402
from keras_optim.math import adabelief as adabelief_math  # noqa: E402
from keras_optim.math import coordinate_clip as clip_math  # noqa: E402
from keras_optim.math import diffgrad as diffgrad_math  # noqa: E402
from tests.optimizers.numpy_ports import CASES  # noqa: E402
from tff_experiments import tff_optimizers  # noqa: E402

SHAPES = [(4, 3), (7,)]
BUILDERS = {"AdaBelief": tff_optimizers.build_adabelief, "DiffGrad": tff_optimizers.build_diffgrad}


@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0]}{i}" for i, c in enumerate(CASES)])
def test_tff_step_equals_keras_step_and_numpy_port(case):
    name, args, port_cls, port_args = CASES[case]
    rng = np.random.default_rng(case)
    params = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    keras_variables = [tf.Variable(p) for p in params]
    keras_optimizer = getattr(keras_optim, name)(**args)
    tff_optimizer = BUILDERS[name](**args)
    tff_weights = tuple(tf.constant(p) for p in params)
    state = tff_optimizer.initialize(tuple(tf.TensorSpec(s, tf.float32) for s in SHAPES))
    tff_next = tf.function(tff_optimizer.next)  # as TFF runs it: traced into a graph
    port, port_params = port_cls(**port_args), [p.astype(np.float64) for p in params]
    for t in range(12):
        grads = [rng.normal(scale=10.0 ** rng.uniform(-2, 1), size=s).astype(np.float32)
                 for s in SHAPES]
        keras_optimizer.apply_gradients(
            [(tf.constant(g), v) for g, v in zip(grads, keras_variables)])
        state, tff_weights = tff_next(state, tff_weights, tuple(tf.constant(g) for g in grads))
        port_params = port.step(port_params, [g.astype(np.float64) for g in grads])
        for v, w, p in zip(keras_variables, tff_weights, port_params):
            # Same math, same float32 operations: equal up to graph-vs-eager op fusion.
            np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-6, atol=1e-6,
                                       err_msg=f"TFF vs Keras, step {t + 1}")
            np.testing.assert_allclose(w.numpy(), p, rtol=2e-4, atol=1e-5,
                                       err_msg=f"TFF vs NumPy port, step {t + 1}")
    assert int(state["step"]) == 12


CLIP_SHAPES = [(80, 60), (33,)]  # 4833 coordinates: more than the fast mode's 4096-sample


@pytest.mark.parametrize("mode", ["exact", "fast"])
@pytest.mark.parametrize("name,args", [
    ("AdaBelief", dict(learning_rate=0.05, coordinate_clip=0.3, clip_threshold_scale=1.5)),
    ("DiffGrad", dict(learning_rate=0.05, coordinate_clip=0.1)),
])
def test_coordinate_clipping_step_equals_keras(name, args, mode):
    """Pan & Li's clipping of the first moment's gradient: keras_optim.math.coordinate_clip in
    both (its Keras classes are held against the authors' code in tests/optimizers)."""
    rng = np.random.default_rng(7)
    params = [rng.normal(size=s).astype(np.float32) for s in CLIP_SHAPES]
    keras_variables = [tf.Variable(p) for p in params]
    keras_optimizer = getattr(keras_optim, name)(clip_mode=mode, **args)
    tff_optimizer = BUILDERS[name](clip_mode=mode, **args)
    state = tff_optimizer.initialize(tuple(tf.TensorSpec(s, tf.float32) for s in CLIP_SHAPES))
    unclipped = BUILDERS[name](**{k: v for k, v in args.items() if "clip" not in k})
    unclipped_state = unclipped.initialize(tuple(tf.TensorSpec(s, tf.float32) for s in CLIP_SHAPES))
    tff_next = tf.function(tff_optimizer.next)
    weights = tuple(tf.constant(p) for p in params)
    for t in range(4):
        grads = tuple(tf.constant(rng.standard_cauchy(size=s).astype(np.float32)) for s in CLIP_SHAPES)
        keras_optimizer.apply_gradients(zip(grads, keras_variables))
        before = weights
        state, weights = tff_next(state, weights, grads)
        for v, w in zip(keras_variables, weights):
            np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"step {t + 1}")
    unclipped_state, plain = unclipped.next(unclipped_state, before, grads)
    assert not np.allclose(plain[0].numpy(), weights[0].numpy(), atol=1e-6)  # clipping acted


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_coordinate_clipping_wrapper_equals_keras_wrapper(mode):
    rng = np.random.default_rng(8)
    params = [rng.normal(size=s).astype(np.float32) for s in CLIP_SHAPES]
    keras_variables = [tf.Variable(p) for p in params]
    keras_optimizer = keras_optim.CoordinateClipping(
        keras_optim.DiffGrad(learning_rate=0.05), fraction=0.2, mode=mode)
    tff_optimizer = tff_optimizers.build_coordinate_clipping(
        tff_optimizers.build_diffgrad(learning_rate=0.05), fraction=0.2, mode=mode)
    state = tff_optimizer.initialize(tuple(tf.TensorSpec(s, tf.float32) for s in CLIP_SHAPES))
    tff_next = tf.function(tff_optimizer.next)
    weights = tuple(tf.constant(p) for p in params)
    for t in range(4):
        grads = tuple(tf.constant(rng.standard_cauchy(size=s).astype(np.float32)) for s in CLIP_SHAPES)
        keras_optimizer.apply_gradients(zip(grads, keras_variables))
        state, weights = tff_next(state, weights, grads)
        for v, w in zip(keras_variables, weights):
            np.testing.assert_allclose(w.numpy(), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=f"step {t + 1}")
    hparams = tff_optimizer.get_hparams(state)
    assert tff.learning.optimizers.LEARNING_RATE_KEY in hparams


def test_hparams_roundtrip_and_bad_arguments():
    optimizer = tff_optimizers.build_adabelief(learning_rate=0.5)
    state = optimizer.initialize(tf.TensorSpec((2,), tf.float32))
    hparams = optimizer.get_hparams(state)
    assert list(hparams) == [tff.learning.optimizers.LEARNING_RATE_KEY, "weight_decay"]
    hparams[tff.learning.optimizers.LEARNING_RATE_KEY] = 0.0
    state = optimizer.set_hparams(state, hparams)
    _, w = optimizer.next(state, tf.ones(2), tf.ones(2))
    np.testing.assert_array_equal(w.numpy(), np.ones(2))  # learning rate 0: no move
    with pytest.raises(ValueError, match="learning_rate"):
        tff_optimizers.build_diffgrad(learning_rate=-1.0)
    with pytest.raises(ValueError, match="beta_2"):
        tff_optimizers.build_adabelief(beta_2=1.0)
    with pytest.raises(ValueError, match="coordinate_clip"):
        tff_optimizers.build_diffgrad(coordinate_clip=1.5)
    with pytest.raises(ValueError, match="mode"):
        tff_optimizers.build_coordinate_clipping(tff_optimizers.build_diffgrad(), 0.1, mode="approx")


def _linear_model_fn():
    keras_model = tf.keras.Sequential(
        [tf.keras.layers.Dense(3, input_shape=(5,), kernel_initializer="zeros")])
    return tff.learning.models.from_keras_model(
        keras_model,
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        input_spec=collections.OrderedDict(
            x=tf.TensorSpec([None, 5], tf.float32), y=tf.TensorSpec([None], tf.int32)),
    )


def test_client_and_server_optimizer_in_tff_weighted_fed_avg():
    """One FedAvg round, one client: the client trains with AdaBelief, the server applies
    DiffGrad to the averaged update (w_global - w_client) as a gradient. The Keras classes
    on a plain Keras model give the reference."""
    rng = np.random.default_rng(0)
    batches = [(rng.normal(size=(4, 5)).astype(np.float32), rng.integers(0, 3, 4).astype(np.int32))
               for _ in range(6)]
    dataset = tf.data.Dataset.from_tensor_slices(
        collections.OrderedDict(x=np.concatenate([b[0] for b in batches]),
                                y=np.concatenate([b[1] for b in batches]))).batch(4)
    process = tff.learning.algorithms.build_weighted_fed_avg(
        _linear_model_fn,
        client_optimizer_fn=tff_optimizers.build_adabelief(learning_rate=0.05),
        server_optimizer_fn=tff_optimizers.build_diffgrad(learning_rate=0.3),
    )
    state = process.initialize()
    state = process.next(state, [dataset]).state
    got = process.get_model_weights(state).trainable

    model = tf.keras.Sequential([tf.keras.layers.Dense(3, input_shape=(5,), kernel_initializer="zeros")])
    start = [w.numpy() for w in model.trainable_weights]
    client = keras_optim.AdaBelief(learning_rate=0.05)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for x, y in batches:
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x))
        client.apply_gradients(zip(tape.gradient(loss, model.trainable_weights),
                                   model.trainable_weights))
    update = [s - w.numpy() for s, w in zip(start, model.trainable_weights)]
    server_weights = [tf.Variable(s) for s in start]
    keras_optim.DiffGrad(learning_rate=0.3).apply_gradients(
        [(tf.constant(u), v) for u, v in zip(update, server_weights)])
    assert not np.allclose(server_weights[0].numpy(), 0.0)
    for g, w in zip(got, server_weights):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("builder,keras_class,math_module", [
    (tff_optimizers.build_adabelief, keras_optim.AdaBelief, adabelief_math),
    (tff_optimizers.build_diffgrad, keras_optim.DiffGrad, diffgrad_math),
], ids=["AdaBelief", "DiffGrad"])
def test_builders_and_keras_classes_share_defaults_and_checks(builder, keras_class, math_module):
    """Both adapters take their defaults from keras_optim.math (one declaration per algorithm)
    and check through it: the same defaults, the same error for the same bad value."""
    defaults = dict(math_module.DEFAULTS, learning_rate=math_module.LEARNING_RATE, **clip_math.CLIP_DEFAULTS)
    for adapter in (builder, keras_class):
        parameters = inspect.signature(adapter).parameters
        assert {k: parameters[k].default for k in defaults} == defaults
    for key, bad in [("beta_1", 1.0), ("beta_2", -0.5), ("epsilon", -1.0), ("epsilon", "1e-8"),
                     ("coordinate_clip", 2.0), ("clip_threshold_scale", 0.0), ("clip_mode", "approx")]:
        with pytest.raises(ValueError) as keras_error:
            keras_class(**{key: bad})
        with pytest.raises(ValueError) as tff_error:
            builder(**{key: bad})
        assert str(tff_error.value) == str(keras_error.value)
