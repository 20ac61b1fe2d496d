"""AdaBelief and DiffGrad against fixtures made by the authors' own code (float64, every step).

Fixtures: tests/fixtures/optimizer_reference.json, made by make_reference_fixtures.py from
adabelief-pytorch==0.2.1 and torch-optimizer==0.3.0 (diffGrad's official v2).
"""
import pytest

import keras_optim
from tests.conftest import load_fixture
from tests.optimizers.training import apply_eagerly, check_fixture_trajectory, xla_applier

FIXTURE = load_fixture("optimizer_reference.json")
CASES = {f"{c['optimizer']}-{c['name']}": c for c in FIXTURE["cases"]}


def _run(case, apply_step):
    check_fixture_trajectory(case, apply_step, rtol=1e-9, atol=0.0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_authors_code_every_step(name):
    _run(CASES[name], apply_eagerly)


@pytest.mark.parametrize("name", ["AdaBelief-defaults", "AdaBelief-amsgrad_rectify", "DiffGrad-defaults"])
def test_matches_authors_code_inside_xla(name):
    """The whole update compiled by XLA gives the same trajectory."""
    _run(CASES[name], xla_applier())


@pytest.mark.skipif(keras_optim.KERAS3, reason="tf.keras 2.x optimizers only")
def test_tf_keras_own_xla_update_path_matches():
    """tf.keras 2.14 compiles each variable's update_step with XLA (`_update_step_xla`) when
    `jit_compile` is on; it switches it off on machines without a GPU, so force it here."""
    case = CASES["AdaBelief-amsgrad_rectify"]

    def forced_xla(optimizer, grads, variables):
        optimizer.jit_compile = True
        optimizer.apply_gradients(zip(grads, variables))
        concrete = optimizer._update_step_xla.experimental_get_tracing_count()
        assert concrete >= 1, "the XLA update path did not run"

    _run(case, forced_xla)
