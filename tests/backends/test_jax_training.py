"""Training with keras_optim on Keras 3's JAX backend, as on TensorFlow in
tests/optimizers/test_keras_integration.py: ``.keras`` save, load and resume equals
uninterrupted training; mixed precision with loss scaling; data parallelism
(``keras.distribution.DataParallel`` on two CPU devices) equals one device. ``fit`` on JAX is
compiled by XLA (``jit_compile="auto"``). Skipped on other backends."""
import os
import subprocess
import sys

import numpy as np
import pytest

from keras_optim.backend import KERAS3, keras

if not (KERAS3 and keras.backend.backend() == "jax"):
    pytest.skip("Keras 3 on the JAX backend only", allow_module_level=True)

import keras_optim  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

OPTIMIZERS = {
    "adabelief": lambda: keras_optim.AdaBelief(learning_rate=0.01),
    "diffgrad": lambda: keras_optim.DiffGrad(learning_rate=0.01),
    "adam_clip": lambda: keras_optim.Adam(learning_rate=0.01, coordinate_clip=0.25),
    "sgd_momentum_clip": lambda: keras_optim.SGD(0.05, momentum=0.9, coordinate_clip=0.25),
    "wrapper_adam": lambda: keras_optim.CoordinateClipping(keras.optimizers.Adam(0.01), 0.25),
}


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0).astype("int32")


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)]
    )


def _compile(model, optimizer):
    model.compile(optimizer=optimizer,
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


# One of keras_optim's own optimizers, one with the clipping threshold variable, the wrapper.
@pytest.mark.parametrize("name", ["adabelief", "sgd_momentum_clip", "wrapper_adam"])
def test_save_load_and_resume_equals_uninterrupted_training(name, tmp_path):
    x, y = _data()
    model = _compile(_model(), OPTIMIZERS[name]())
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)  # no custom_objects: the classes are registered
    assert type(restored.optimizer) is type(model.optimizer)
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    restored.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["adabelief", "wrapper_adam"])
def test_mixed_float16_with_loss_scaling_trains(name):
    x, y = _data(128)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = _compile(_model(), keras.mixed_precision.LossScaleOptimizer(OPTIMIZERS[name]()))
        losses = model.fit(x, y, batch_size=32, epochs=4, verbose=0).history["loss"]
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


DATA_PARALLEL = """
import numpy as np, jax, keras, keras_optim
from tests.backends.test_jax_training import OPTIMIZERS, _compile, _data, _model
assert len(jax.devices()) == 2
x, y = _data()
for name in ("adabelief", "wrapper_adam"):
    keras.distribution.set_distribution(None)
    one = _compile(_model(), OPTIMIZERS[name]())
    one.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
    two = _compile(_model(), OPTIMIZERS[name]())
    two.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=name)
    print("same", name)
"""


def test_data_parallel_on_two_devices_equals_one_device():
    env = dict(os.environ, KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=2", PYTHONPATH=ROOT)
    run = subprocess.run([sys.executable, "-c", DATA_PARALLEL], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split().count("same") == 2, run.stdout
