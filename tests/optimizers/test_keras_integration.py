"""What Keras users expect of an optimizer: serialization, saving and resuming, export, XLA,
sparse gradients, mixed precision, distribution, argument checks and non-finite gradients.
Runs under Keras 3 and tf.keras 2.14."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import keras_optim
from keras_optim.backend import KERAS3, keras
from tests.optimizers.numpy_ports import NumpyAdaBelief
from tests.optimizers.training import (
    compile_model, embedding_gradients, fit_mixed_float16, small_model, toy_data)

OPTIMIZERS = {
    "AdaBelief": dict(learning_rate=0.01, epsilon=1e-12, amsgrad=True),
    "DiffGrad": dict(learning_rate=0.01),
}
HERE = os.path.dirname(os.path.abspath(__file__))


def make_optimizer(name, **extra):
    return getattr(keras_optim, name)(**{**OPTIMIZERS[name], **extra})


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_config_round_trip_and_registration(name):
    optimizer = make_optimizer(name, weight_decay=0.004, clipnorm=1.0)
    config = optimizer.get_config()
    assert config["learning_rate"] == pytest.approx(OPTIMIZERS[name]["learning_rate"])
    clone = type(optimizer).from_config(config)
    assert clone.get_config() == config
    # Registered: Keras' own deserializer finds the class with no custom_objects.
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is type(optimizer)
    assert restored.get_config() == config


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_save_load_and_resume_equals_uninterrupted_training(name, tmp_path):
    x, y = toy_data()
    fit = dict(batch_size=16, shuffle=False, verbose=0)

    uninterrupted = compile_model(small_model(), make_optimizer(name))
    uninterrupted.fit(x, y, epochs=4, **fit)

    first = compile_model(small_model(), make_optimizer(name))
    first.fit(x, y, epochs=2, **fit)
    path = str(tmp_path / "m.keras")
    first.save(path)
    resumed = keras.models.load_model(path)  # no custom_objects: the class is registered
    assert type(resumed.optimizer) is type(first.optimizer)
    assert int(resumed.optimizer.iterations.numpy()) == 8
    saved_slots = sorted(v.numpy().tobytes() for v in first.optimizer.variables)
    loaded_slots = sorted(v.numpy().tobytes() for v in resumed.optimizer.variables)
    assert saved_slots == loaded_slots, "optimizer statistics were not restored"
    resumed.fit(x, y, epochs=2, **fit)

    for a, b in zip(uninterrupted.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_trained_model_exports_and_serves(name, tmp_path):
    x, y = toy_data()
    model = compile_model(small_model(), make_optimizer(name))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    expected = model.predict(x, verbose=0)
    path = str(tmp_path / "exported")
    if KERAS3:
        model.export(path)
        loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
        served = loaded.serve(tf.constant(x))
    else:
        model.save(path, save_format="tf")
        loaded = tf.saved_model.load(path)
        served = loaded.signatures["serving_default"](tf.constant(x))
        served = next(iter(served.values()))
        reloaded = keras.models.load_model(path)
        assert type(reloaded.optimizer) is type(model.optimizer)
    np.testing.assert_allclose(np.asarray(served), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not KERAS3, reason="Keras 3 model.compile(jit_compile=True)")
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_jit_compiled_training_matches_eager_training(name):
    x, y = toy_data()
    weights = {}
    for jit in (True, False):
        model = compile_model(small_model(), make_optimizer(name), jit_compile=jit)
        history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0)
        assert history.history["loss"][-1] < history.history["loss"][0]
        weights[jit] = model.get_weights()
    for a, b in zip(weights[True], weights[False]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_sparse_embedding_gradient_gives_the_dense_update(name):
    model, grads, run = embedding_gradients()
    assert isinstance(grads[0], tf.IndexedSlices)
    sparse = run(grads, lambda: make_optimizer(name))
    dense = run([tf.convert_to_tensor(g) for g in grads], lambda: make_optimizer(name))
    for a, b in zip(sparse, dense):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    start = model.trainable_variables[0].numpy()
    assert not np.allclose(sparse[0][:10], start[:10])  # looked-up rows moved


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mixed_float16_with_loss_scaling_trains(name):
    fit_mixed_float16(lambda: make_optimizer(name))


def test_float16_variables_keep_float32_statistics():
    """The statistics of a float16 variable live in float32; the update is computed in float32
    and rounded once into the variable."""
    rng = np.random.default_rng(3)
    start = rng.normal(size=(6,)).astype("float16")
    grads = [rng.normal(scale=1e-3, size=(6,)).astype("float16") for _ in range(5)]
    variable = tf.Variable(start)
    optimizer = keras_optim.AdaBelief(learning_rate=0.0625, rectify=False, epsilon=1e-8)
    port = NumpyAdaBelief(lr=0.0625, rectify=False, eps=1e-8)
    params = [start.astype(np.float64)]
    for g in grads:
        optimizer.apply_gradients([(tf.constant(g), variable)])
        params = [np.float16(port.step(params, [g.astype(np.float64)])[0]).astype(np.float64)]
        np.testing.assert_array_equal(variable.numpy(), params[0].astype(np.float16))
    statistics = [v for v in optimizer.variables if tuple(v.shape) == (6,)]
    assert statistics and all(v.dtype == tf.float32 for v in statistics)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mirrored_strategy_on_two_devices_equals_one_device(name):
    """Logical devices must be configured before TensorFlow starts: run in a fresh process."""
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "mirrored_check.py"), name],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    replicas, max_diff = result.stdout.split()[-2:]
    assert int(replicas) == 2
    assert float(max_diff) < 1e-5


BAD_ARGUMENTS = [
    ("learning_rate", -0.1), ("learning_rate", "fast"), ("beta_1", 1.0), ("beta_1", -0.5),
    ("beta_2", 1.5), ("beta_2", "0.999"), ("epsilon", -1e-8), ("epsilon", None),
    ("weight_decay", -0.01),
]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("argument,value", BAD_ARGUMENTS)
def test_bad_arguments_raise_value_error_naming_them(name, argument, value):
    with pytest.raises(ValueError) as error:
        getattr(keras_optim, name)(**{argument: value})
    assert argument in str(error.value) and str(value) in str(error.value)


@pytest.mark.parametrize("argument", ["amsgrad", "rectify", "degenerated_to_sgd"])
def test_adabelief_flags_must_be_booleans(argument):
    with pytest.raises(ValueError, match=argument):
        keras_optim.AdaBelief(**{argument: "yes"})


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_non_finite_gradient_behaves_like_keras_adam(name):
    """As with Keras' Adam, a NaN gradient reaches the variable (so the loss shows it and
    TerminateOnNaN stops training); under LossScaleOptimizer the step is skipped instead."""
    for optimizer in (make_optimizer(name), keras.optimizers.Adam()):
        variable = tf.Variable([1.0, 2.0])
        optimizer.apply_gradients([(tf.constant([np.nan, 0.5]), variable)])
        assert np.isnan(variable.numpy()[0])

    variable = tf.Variable([1.0, 2.0])
    optimizer = keras.mixed_precision.LossScaleOptimizer(make_optimizer(name))
    optimizer.apply_gradients([(tf.constant([0.1, 0.5]), variable)])
    before = [v.numpy().copy() for v in optimizer.variables] + [variable.numpy().copy()]
    optimizer.apply_gradients([(tf.constant([np.inf, 0.5]), variable)])
    after = [v.numpy() for v in optimizer.variables] + [variable.numpy()]
    assert np.all(np.isfinite(variable.numpy()))
    np.testing.assert_array_equal(before[-1], after[-1])
