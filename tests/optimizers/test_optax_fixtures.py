"""AdaBelief and Adam against optax, the optimizers a JAX user would pick instead, on fixed
gradients, every step, float64 (TensorFlow: Keras 3 and tf.keras 2.14).

Fixture: tests/fixtures/optax_reference.json, made by make_optax_fixtures.py with optax 0.2.8
(float64). Only the settings both libraries compute alike are cases there (AdaBelief without
rectification or AMSGrad, optax's ``eps`` and ``eps_root`` both equal to keras_optim's
``epsilon``; Adam with epsilon 0); make_optax_fixtures.py says why the others cannot match.
tests/backends/test_jax_optax.py runs the same cases on the JAX backend, and against optax
itself when it is installed.
"""
import pytest

from tests.conftest import load_fixture
from tests.optimizers.training import apply_eagerly, check_fixture_trajectory, xla_applier

FIXTURE = load_fixture("optax_reference.json")
CASES = {f"{c['optimizer']}-{c['name']}": c for c in FIXTURE["cases"]}


def _run(case, apply_step):
    check_fixture_trajectory(case, apply_step, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_every_step(name):
    _run(CASES[name], apply_eagerly)


@pytest.mark.parametrize("name", ["AdaBelief-weight_decay", "Adam-epsilon_0"])
def test_matches_optax_inside_xla(name):
    _run(CASES[name], xla_applier())
