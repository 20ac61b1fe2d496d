"""Coordinate clipping in Keras training: the CoordinateClipping wrapper, MirroredStrategy (the
threshold of the all-reduced gradient), jit_compile=True training, saving and resuming, mixed
precision. Runs under Keras 3 and tf.keras 2.14."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_optim
from keras_optim.backend import keras
from tests.optimizers.test_coordinate_clip import CASES, PORTS
from tests.optimizers.training import (
    check_accumulated_updates, compile_model, embedding_gradients, fit_mixed_float16, small_model,
    toy_data)

HERE = os.path.dirname(os.path.abspath(__file__))


OPTIMIZERS = {
    "Adam exact": lambda: keras_optim.Adam(learning_rate=0.01, coordinate_clip=0.1),
    "AdaBelief fast": lambda: keras_optim.AdaBelief(learning_rate=0.01, coordinate_clip=0.5,
                                                    clip_mode="fast"),
    "CoordinateClipping(Lion)": lambda: keras_optim.CoordinateClipping(
        keras.optimizers.Lion(learning_rate=1e-3), 0.2),
}


# --- the wrapper -----------------------------------------------------------------------------

@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "xla"])
def test_wrapper_around_keras_sgd_matches_port_of_authors_sgd_clip(compiled):
    """SGD has one statistic, so clipping before it is exactly the authors' SGDClip."""
    case = CASES["SGD-momentum_clip_tenth"]
    args = case["keras_args"]
    variables = [tf.Variable(np.array(x, dtype=np.float64)) for x in case["initial"]]
    optimizer = keras_optim.CoordinateClipping(
        keras.optimizers.SGD(learning_rate=args["learning_rate"], momentum=0.875),
        args["coordinate_clip"],
    )
    port = PORTS.SGDClipPort(lr=args["learning_rate"], momentum=0.875,
                             coordinate_clip=args["coordinate_clip"])
    optimizer.build(variables)

    def apply(grads):
        optimizer.apply_gradients(zip(grads, variables))

    step = tf.function(apply, jit_compile=True) if compiled else apply
    params = [np.array(x) for x in case["initial"]]
    for grads in case["gradients"]:
        grads = [np.array(g) for g in grads]
        step([tf.constant(g) for g in grads])
        params, _ = port.step(params, grads)
        for v, p in zip(variables, params):
            np.testing.assert_allclose(v.numpy(), p, rtol=1e-9)
    assert int(optimizer.iterations.numpy()) == len(case["gradients"])


def test_wrapper_around_lion_equals_lion_on_numpy_clipped_gradients():
    case = CASES["Adam-clip_half"]
    wrapped = [tf.Variable(np.array(x, dtype=np.float64)) for x in case["initial"]]
    plain = [tf.Variable(np.array(x, dtype=np.float64)) for x in case["initial"]]
    clipping = keras_optim.CoordinateClipping(keras.optimizers.Lion(learning_rate=2**-8), 0.3,
                                              threshold_scale=0.5)
    reference = keras.optimizers.Lion(learning_rate=2**-8)
    for grads in case["gradients"]:
        grads = [np.array(g) for g in grads]
        clipping.apply_gradients(zip([tf.constant(g) for g in grads], wrapped))
        clipped, _ = PORTS.clip_top_coordinates(grads, 0.3, 0.5)
        reference.apply_gradients(zip([tf.constant(g) for g in clipped], plain))
        for a, b in zip(wrapped, plain):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)


def test_wrapper_config_round_trip_and_registration():
    optimizer = keras_optim.CoordinateClipping(
        keras.optimizers.Lion(learning_rate=3e-4, weight_decay=0.01), 0.25, threshold_scale=2.0,
        mode="fast",
    )
    config = optimizer.get_config()
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is keras_optim.CoordinateClipping
    assert type(restored.inner_optimizer) is type(optimizer.inner_optimizer)
    assert restored.get_config() == config
    assert (restored.fraction, restored.threshold_scale, restored.mode) == (0.25, 2.0, "fast")
    assert float(restored.learning_rate.numpy()) == pytest.approx(3e-4)


@pytest.mark.parametrize(
    "kwargs,named",
    [(dict(optimizer="adam", fraction=0.1), "optimizer"),
     (dict(fraction=1.5), "fraction"),
     (dict(fraction=0.1, threshold_scale=0.0), "threshold_scale"),
     (dict(fraction=0.1, mode="approximate"), "mode"),
     (dict(fraction=0.1, clipnorm=1.0), "clipnorm")],
)
def test_wrapper_bad_arguments_raise_value_error_naming_them(kwargs, named):
    kwargs.setdefault("optimizer", keras.optimizers.SGD())
    with pytest.raises(ValueError, match=named):
        keras_optim.CoordinateClipping(**kwargs)


def test_wrapper_refuses_an_optimizer_that_already_clips():
    with pytest.raises(ValueError, match="coordinate_clip"):
        keras_optim.CoordinateClipping(keras_optim.Adam(coordinate_clip=0.1), 0.1)


# --- distribution, XLA, saving, mixed precision -----------------------------------------------

def test_mirrored_strategy_threshold_is_over_the_all_reduced_gradient():
    """Two logical CPUs with different gradients per replica: every replica's variables equal
    the NumPy port applied to the summed gradient; fit() on two replicas equals one device."""
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "coordinate_clip_mirrored_check.py")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert set(report["per_replica"]) == {"Adam", "SGD fast", "CoordinateClipping(keras SGD)"}
    for name, error in report["per_replica"].items():
        assert error < 1e-9, name
    assert report["fit"] < 1e-5


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jit_compiled_training_matches_eager_training(name):
    x, y = toy_data()
    weights = {}
    for jit in (True, False):
        model = compile_model(small_model(), OPTIMIZERS[name](), jit_compile=jit)
        history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0]
        weights[jit] = model.get_weights()
    for a, b in zip(weights[True], weights[False]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", ["Adam exact", "CoordinateClipping(Lion)"])
def test_save_load_and_resume_equals_uninterrupted_training(name, tmp_path):
    x, y = toy_data()
    fit = dict(batch_size=16, shuffle=False, verbose=0)
    uninterrupted = compile_model(small_model(), OPTIMIZERS[name]())
    uninterrupted.fit(x, y, epochs=2, **fit)
    first = compile_model(small_model(), OPTIMIZERS[name]())
    first.fit(x, y, epochs=1, **fit)
    path = str(tmp_path / "m.keras")
    first.save(path)
    resumed = keras.models.load_model(path)  # registered: no custom_objects
    assert type(resumed.optimizer) is type(first.optimizer)
    assert int(resumed.optimizer.iterations.numpy()) == 4
    resumed.fit(x, y, epochs=1, **fit)
    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["Adam exact", "AdaBelief fast"])
def test_mixed_float16_with_loss_scaling_trains(name):
    fit_mixed_float16(OPTIMIZERS[name])


def test_sparse_embedding_gradient_gives_the_dense_result():
    """Embedding gradients (tf.IndexedSlices) count as their dense form in the threshold."""
    _, grads, run = embedding_gradients()
    assert isinstance(grads[0], tf.IndexedSlices)
    dense_grads = [tf.convert_to_tensor(g) for g in grads]
    for make in (lambda: keras_optim.Adam(0.01, coordinate_clip=0.2),
                 lambda: keras_optim.CoordinateClipping(keras.optimizers.SGD(0.1), 0.2)):
        for a, b in zip(run(grads, make), run(dense_grads, make)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.skipif(not hasattr(keras.optimizers.Optimizer, "_backend_update_step"),
                    reason="Keras 3 gradient accumulation")
def test_gradient_accumulation_clips_the_accumulated_gradient():
    """Keras 3's gradient_accumulation_steps: the threshold is taken on the averaged gradient
    of the update step, as the port on the averaged gradients."""
    case = CASES["Adam-clip_half"]
    optimizer = keras_optim.Adam(learning_rate=2**-7, coordinate_clip=0.5,
                                 gradient_accumulation_steps=2)
    port = PORTS.AdamClipPort(lr=2**-7, coordinate_clip=0.5)
    check_accumulated_updates(optimizer, port, case)
