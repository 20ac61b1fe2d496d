"""keras_optim under Keras 3's ``ModelParallel`` on JAX (two CPU devices, in a fresh process:
tests/backends/model_parallel_check.py), float32 and bfloat16 variables: every optimizer
statistic is sharded as its variable, as Keras' own Adam shards its moments, and training
equals the same run without a distribution (the coordinate-clipping threshold stays one order
statistic over all coordinates, whichever device holds them)."""
import json
import os

import pytest

from keras_optim.backend import KERAS3, keras
from tests.processes import run_python

if not (KERAS3 and keras.backend.backend() == "jax"):
    pytest.skip("Keras 3 on JAX only", allow_module_level=True)

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "model_parallel_check.py")


@pytest.fixture(scope="module")
def report():
    [(code, out, err)] = run_python(CHECK, [[]], timeout=540)
    assert code == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def cases(report):
    return {name: case for name, case in report.items() if name != "devices"}


def test_the_model_is_sharded_over_two_devices(report):
    assert report["devices"] == 2
    for name, case in cases(report).items():
        assert case["sharded"] == ["P(None, 'model')"] * 2, name


def test_every_statistic_is_sharded_as_its_variable(report):
    for name, case in cases(report).items():
        assert case["slots"], name
        wrong = [(path, got, expected) for path, got, expected, same in case["slots"] if not same]
        assert not wrong, f"{name}: statistics sharded unlike their variables: {wrong}"


def test_training_equals_the_run_without_distribution(report):
    for name, case in cases(report).items():
        assert case["weights"] <= 1e-6, name
        sharded, unsharded = case["thresholds"]
        for epoch, (a, b) in enumerate(zip(sharded, unsharded), start=1):
            assert (a is None) == (b is None), name
            if a is not None:
                assert abs(a - b) <= 1e-6 * abs(b), f"{name}: threshold of epoch {epoch}"
    clipped = [n for n, c in cases(report).items() if c["thresholds"][0][0] is not None]
    assert len(clipped) == 4  # the Adam and AdaBelief options, float32 and bfloat16
