"""AdaBelief and Adam against optax, the optimizers a JAX user would pick instead, on fixed
gradients, every step, float64 (TensorFlow: Keras 3 and tf.keras 2.14).

Fixture: tests/fixtures/optax_reference.json, made by make_optax_fixtures.py with optax 0.2.8
(float64). Only the settings both libraries compute alike are cases there (AdaBelief without
rectification or AMSGrad, optax's ``eps`` and ``eps_root`` both equal to keras_optim's
``epsilon``; Adam with epsilon 0); make_optax_fixtures.py says why the others cannot match.
tests/backends/test_jax_optax.py runs the same cases on the JAX backend, and against optax
itself when it is installed.
"""
import numpy as np
import pytest
import tensorflow as tf

import keras_optim
from tests.conftest import load_fixture
from tests.optimizers.training import apply_eagerly, xla_applier

FIXTURE = load_fixture("optax_reference.json")
CASES = {f"{c['optimizer']}-{c['name']}": c for c in FIXTURE["cases"]}
RTOL = 1e-9


def _run(case, apply_step):
    variables = [tf.Variable(np.array(x, dtype=np.float64)) for x in case["initial"]]
    optimizer = getattr(keras_optim, case["optimizer"])(**case["keras_args"])
    optimizer.build(variables)
    for t, (grads, expected) in enumerate(zip(case["gradients"], case["expected"]), start=1):
        apply_step(optimizer, [tf.constant(np.array(g, dtype=np.float64)) for g in grads], variables)
        for v, e in zip(variables, expected):
            np.testing.assert_allclose(
                v.numpy(), np.array(e), rtol=RTOL, atol=1e-15,
                err_msg=f"{case['optimizer']} {case['name']}: step {t} differs from {case['reference']}",
            )


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_every_step(name):
    _run(CASES[name], apply_eagerly)


@pytest.mark.parametrize("name", ["AdaBelief-weight_decay", "Adam-epsilon_0"])
def test_matches_optax_inside_xla(name):
    _run(CASES[name], xla_applier())
