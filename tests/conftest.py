"""Shared test set-up. The same tests run under Keras 3 (.venv), tf.keras 2.14 (.venv-tff) and
Keras 3 on JAX (.venv-jax)."""
import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_fixture(name):
    with open(os.path.join(HERE, "fixtures", name)) as f:
        return json.load(f)


def threshold_search_case(case):
    """Float32 gradients of more than ``SORTED_SIZE`` coordinates in three tensors (whose sizes
    are no multiple of the counting rows), for the exact threshold's counting search, and
    their magnitudes in descending order: ``"heavy tails"`` (Student's t, 2 degrees of freedom)
    or ``"ties and zeros"`` (the same rounded to 0.1, 30% set to 0)."""
    import numpy as np

    rng = np.random.default_rng(3)
    grads = [rng.standard_t(2, size=s) for s in [(60, 100), (3001,), (7, 11, 13)]]
    if case == "ties and zeros":
        grads = [np.round(g, 1) * (rng.random(g.shape) < 0.7) for g in grads]
    grads = [g.astype("float32") for g in grads]
    return grads, np.sort(np.abs(np.concatenate([g.ravel() for g in grads])))[::-1]


def load_fixture_script(name):
    """A script of tests/fixtures (NumPy ports, the makers of the fixtures) as a module: they are
    scripts, not a package, since they also run alone in a scratch venv."""
    path = os.path.join(HERE, "fixtures", name + ".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def reap_tff_workers():
    """TFF's worker_binary outlives Python and holds our stdout: stop those this run started."""
    yield
    try:
        from tff_experiments.runtime import reap_worker_binaries
    except ImportError:
        return
    reap_worker_binaries()


@pytest.fixture
def keras_module():
    import keras_optim.backend as backend

    return backend.keras


# Keras 3 on JAX (.venv-jax) has no TensorFlow: a test module that imports it is skipped there,
# with that reason, rather than reported as a collection error.
_NO_TENSORFLOW = importlib.util.find_spec("tensorflow") is None


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if (
        _NO_TENSORFLOW
        and report.failed
        and isinstance(collector, pytest.Module)
        and "No module named 'tensorflow'" in str(report.longrepr)
    ):
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), None, "Skipped: needs TensorFlow (not installed)")
    return report
