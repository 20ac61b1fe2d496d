"""keras_optim under Keras 3 on JAX in two processes on 127.0.0.1 (``keras.distribution.
initialize`` and ``DataParallel``, each process feeding its half of every global batch:
tests/backends/multi_process_check.py) trains as one process does on the whole batch:
AdaBelief, DiffGrad, Adam with coordinate clipping, the clipping wrapper."""
import json
import os

import pytest

from keras_optim.backend import KERAS3, keras
from tests import distributed_cases
from tests.processes import free_ports, run_python

if not (KERAS3 and keras.backend.backend() == "jax"):
    pytest.skip("Keras 3 on JAX only", allow_module_level=True)

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "multi_process_check.py")
OPTIMIZERS = distributed_cases.NAMES


def test_two_processes_equal_one():
    port = free_ports(1)[0]
    results = run_python(CHECK, [[index, port] for index in range(2)], timeout=300)
    for index, (code, out, err) in enumerate(results):
        assert code == 0, f"process {index}: {err[-3000:]}"
        report = json.loads(out.strip().splitlines()[-1])
        assert sorted(report) == sorted(OPTIMIZERS)
        for name, difference in report.items():
            assert difference <= 1e-6, f"process {index}, {name}: {difference}"
