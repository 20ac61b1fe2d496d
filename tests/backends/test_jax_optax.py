"""AdaBelief and Adam on Keras 3's JAX backend against optax (float32, fixed gradients, every
step): against the float64 fixture tests/fixtures/optax_reference.json always, and against
optax itself, run in the same process, when it is installed (it is not a dependency:
``pip install -r benchmarks/requirements-peers-jax.txt``). The cases and why only these
settings match: tests/fixtures/make_optax_fixtures.py. Skipped on other backends
(tests/optimizers/test_optax_fixtures.py runs the fixture on TensorFlow in float64)."""
import numpy as np
import pytest

from keras_optim.backend import KERAS3, keras
from tests.conftest import load_fixture, load_fixture_script

if not (KERAS3 and keras.backend.backend() == "jax"):
    pytest.skip("Keras 3 on the JAX backend only", allow_module_level=True)

import keras_optim  # noqa: E402

FIXTURE = load_fixture("optax_reference.json")
CASES = {f"{c['optimizer']}-{c['name']}": c for c in FIXTURE["cases"]}
# float32 against float64, or against float32 rounded in another order (optax's weight decay
# is lr * (d + wd * x), Keras' x - lr * wd * x then - lr * d), over 25 steps of parameters ~1
RTOL, ATOL = 2e-5, 5e-6


def _keras_trajectory(case):
    variables = [keras.Variable(np.array(x, dtype="float32")) for x in case["initial"]]
    optimizer = getattr(keras_optim, case["optimizer"])(**case["keras_args"])
    optimizer.build(variables)
    trajectory = []
    for grads in case["gradients"]:
        optimizer.apply([np.array(g, dtype="float32") for g in grads], variables)
        trajectory.append([np.asarray(v.value) for v in variables])
    return trajectory


def _assert_same(case, trajectory, expected, reference):
    for t, (got, want) in enumerate(zip(trajectory, expected), start=1):
        for v, e in zip(got, want):
            np.testing.assert_allclose(
                v, np.array(e), rtol=RTOL, atol=ATOL,
                err_msg=f"{case['optimizer']} {case['name']}: step {t} differs from {reference}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_fixture(name):
    case = CASES[name]
    _assert_same(case, _keras_trajectory(case), case["expected"], case["reference"])


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_optax_itself(name):
    pytest.importorskip("optax", reason="optax is not installed (benchmarks/requirements-peers-jax.txt)")
    module = load_fixture_script("make_optax_fixtures")
    transformation = {f"{o}-{n}": t for o, n, _, _, t in module.cases()}[name]
    case = CASES[name]
    expected = module.run_optax(transformation, case["initial"], case["gradients"], "float32")
    _assert_same(case, _keras_trajectory(case), expected, "optax in float32")
