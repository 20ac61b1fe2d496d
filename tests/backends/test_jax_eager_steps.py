"""Coordinate clipping in steps run eagerly on Keras 3's JAX backend (a custom training loop,
``run_eagerly=True``, Keras' own optimizer tests): once warm, a step compiles nothing. The
threshold search is a ``while_loop``, which JAX would otherwise trace and compile anew at every
eager step. Compilations are counted through ``jax.monitoring``. Skipped on other backends."""
import numpy as np
import pytest

from keras_optim.backend import KERAS3, keras

if not (KERAS3 and keras.backend.backend() == "jax"):
    pytest.skip("Keras 3 on the JAX backend only", allow_module_level=True)

from jax import monitoring  # noqa: E402

import keras_optim  # noqa: E402

COMPILES = []
monitoring.register_event_duration_secs_listener(
    lambda event, seconds, **kwargs: COMPILES.append(event) if "backend_compile" in event else None
)

OPTIMIZERS = {
    "adam_clip_exact": lambda: keras_optim.Adam(coordinate_clip=0.1),
    "sgd_clip_fast": lambda: keras_optim.SGD(momentum=0.9, coordinate_clip=0.1, clip_mode="fast"),
    "wrapper_exact": lambda: keras_optim.CoordinateClipping(keras.optimizers.SGD(), 0.1),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_warm_eager_steps_compile_nothing(name):
    optimizer = OPTIMIZERS[name]()
    variables = [keras.Variable(np.ones((40, 10), "float32")), keras.Variable(np.ones(7, "float32"))]
    rng = np.random.default_rng(0)
    for _ in range(2):  # the first steps compile Keras' and the threshold's functions
        optimizer.apply([rng.normal(size=v.shape).astype("float32") for v in variables], variables)
    before = len(COMPILES)
    for _ in range(3):
        optimizer.apply([rng.normal(size=v.shape).astype("float32") for v in variables], variables)
    assert len(COMPILES) == before
    assert int(optimizer.iterations.numpy()) == 5
