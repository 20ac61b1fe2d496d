"""Sparse gradients on Keras 3's JAX backend (``jax.experimental.sparse.BCOO``), the logic of
Keras 3.15.1's ``keras/src/optimizers/optimizer_sparse_test.py::test_sparse_correctness``
(Apache-2.0, the Keras authors) over keras_optim's classes: a sparse gradient gives the same
variables as the same gradient made dense, through ``stateless_apply`` (the JAX trainer's
path, compiled by ``jax.jit``) and, for a few of them, through eager ``apply``. Skipped on
other backends."""
import numpy as np
import pytest

from keras_optim.backend import KERAS3, keras

if not (KERAS3 and keras.backend.backend() == "jax"):
    pytest.skip("Keras 3 on the JAX backend only", allow_module_level=True)

import jax  # noqa: E402
import jax.experimental.sparse as jax_sparse  # noqa: E402

import keras_optim  # noqa: E402

OPTIMIZERS = {
    "adabelief": lambda: keras_optim.AdaBelief(),
    "adabelief_amsgrad": lambda: keras_optim.AdaBelief(amsgrad=True),
    "adabelief_no_rectify": lambda: keras_optim.AdaBelief(rectify=False),
    "adabelief_clip": lambda: keras_optim.AdaBelief(coordinate_clip=0.1),
    "diffgrad": lambda: keras_optim.DiffGrad(),
    "diffgrad_clip": lambda: keras_optim.DiffGrad(coordinate_clip=0.1),
    "adam": lambda: keras_optim.Adam(),
    "adam_clip": lambda: keras_optim.Adam(coordinate_clip=0.1),
    "adam_clip_fast": lambda: keras_optim.Adam(coordinate_clip=0.1, clip_mode="fast"),
    "sgd": lambda: keras_optim.SGD(),
    "sgd_momentum": lambda: keras_optim.SGD(momentum=0.05),
    "sgd_clip": lambda: keras_optim.SGD(coordinate_clip=0.1),
    "wrapper_adam": lambda: keras_optim.CoordinateClipping(keras.optimizers.Adam(), 0.1),
    "wrapper_sgd": lambda: keras_optim.CoordinateClipping(keras.optimizers.SGD(), 0.1),
}


def _gradients(i):
    sparse = jax_sparse.BCOO(
        (keras.ops.ones((3, 3, 2)) * (10.0 - i), ((0,), (2,), (4,))), shape=(5, 3, 2)
    )
    return sparse, keras.ops.convert_to_tensor(sparse, sparse=False)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_sparse_equals_dense_stateless_apply_jit(name):
    optimizers = {kind: OPTIMIZERS[name]() for kind in ("sparse", "dense")}
    values, states, steps = {}, {}, {}
    for kind, optimizer in optimizers.items():
        variable = keras.Variable(np.ones((5, 3, 2), "float32"))
        optimizer.build([variable])
        values[kind], states[kind] = [variable.value], [v.value for v in optimizer.variables]
        steps[kind] = jax.jit(optimizer.stateless_apply)
    for i in range(5):
        sparse, dense = _gradients(i)
        for kind, grad in (("sparse", sparse), ("dense", dense)):
            values[kind], states[kind] = steps[kind](states[kind], [grad], values[kind])
        np.testing.assert_allclose(values["sparse"][0], values["dense"][0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(values["dense"][0], 1.0)  # the optimizer did move the variable


@pytest.mark.parametrize("name", ["adabelief", "sgd_momentum", "wrapper_sgd"])
def test_sparse_equals_dense_apply(name):
    variables = {kind: keras.Variable(np.ones((5, 3, 2), "float32")) for kind in ("sparse", "dense")}
    optimizers = {kind: OPTIMIZERS[name]() for kind in variables}
    for i in range(2):
        sparse, dense = _gradients(i)
        optimizers["sparse"].apply([sparse], [variables["sparse"]])
        optimizers["dense"].apply([dense], [variables["dense"]])
        np.testing.assert_allclose(
            variables["sparse"].numpy(), variables["dense"].numpy(), rtol=1e-6, atol=1e-6
        )
