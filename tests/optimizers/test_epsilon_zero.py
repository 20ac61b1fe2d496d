"""``epsilon=0`` in the Keras classes: a coordinate whose gradient stays 0 divides 0 by 0 exactly
where the authors' code does (ported in numpy_ports.py), no sooner: AdaBelief's rectified
default stays finite through its SGD warm-up; without rectification, and in diffGrad, the first
step is already 0/0 in the authors' code too. (The TFF optimizers share the math:
tests/tff/test_tff_optimizer_suite.py.)"""
import numpy as np
import pytest
import tensorflow as tf

import keras_optim
from tests.optimizers.numpy_ports import NumpyAdaBelief, NumpyDiffGrad


@pytest.mark.parametrize("make,port", [
    (lambda: keras_optim.AdaBelief(0.125, epsilon=0.0), lambda: NumpyAdaBelief(0.125, eps=0.0)),
    (lambda: keras_optim.AdaBelief(0.125, epsilon=0.0, rectify=False),
     lambda: NumpyAdaBelief(0.125, eps=0.0, rectify=False)),
    (lambda: keras_optim.DiffGrad(0.125, epsilon=0.0), lambda: NumpyDiffGrad(0.125, eps=0.0)),
], ids=["adabelief", "adabelief_no_rectify", "diffgrad"])
def test_epsilon_zero_with_a_zero_gradient_coordinate(make, port):
    optimizer, reference = make(), port()
    variable, params = tf.Variable(np.ones(2, np.float32)), [np.ones(2)]
    for t in range(8):
        grads = np.array([0.5 * (-1) ** t, 0.0])
        optimizer.apply_gradients([(tf.constant(grads, tf.float32), variable)])
        params = reference.step(params, [grads])
        np.testing.assert_allclose(variable.numpy(), params[0], rtol=2e-5, equal_nan=True,
                                   err_msg=f"step {t + 1}")
    assert np.isnan(params[0][1])  # the reference reaches 0/0: the case is exercised
