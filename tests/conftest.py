"""Shared test set-up. The same tests run under Keras 3 (.venv) and tf.keras 2.14 (.venv-tff)."""
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_fixture(name):
    with open(os.path.join(HERE, "fixtures", name)) as f:
        return json.load(f)


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
