"""training_step_time.py's --quick mode on Keras 3's JAX backend (tests/benchmarks/
test_quick_benchmarks.py runs the quick modes on TensorFlow): the candidates are measured and
printed, with the device the step ran on named in the header (nothing pins a device, so on a GPU
machine the same script runs there) and the JAX train-step target of issue 12 with its figure.
No timing is asserted. Skipped on other backends."""
import importlib
import re

import pytest

from keras_optim.backend import KERAS3, keras

if not (KERAS3 and keras.backend.backend() == "jax"):
    pytest.skip("Keras 3 on the JAX backend only", allow_module_level=True)

import jax  # noqa: E402

ROW = re.compile(r"^(?P<name>\S.*?)\s+(?P<ms>\d+\.\d\d)\s+(?P<wall>\d+\.\d\d)\s+(?P<cpu>\d+\.\d\d)$")


def run(module, argv, capsys):
    importlib.import_module(f"benchmarks.{module}").main(argv)
    out = capsys.readouterr().out
    return out, {m["name"]: m for m in map(ROW.match, out.splitlines()) if m}


def assert_names_device(out):
    device = jax.devices()[0]
    assert f"device: {device.device_kind} ({jax.default_backend()})" in out.splitlines()[0]


def test_training_step_time(capsys):
    out, rows = run("training_step_time", ["--quick", "--models", "MLP", "--optimizers", "DiffGrad"],
                    capsys)
    assert_names_device(out)
    assert {"Adam (Keras)", "DiffGrad"} <= set(rows)
    assert re.search(r"^target DiffGrad <= 1\.35x: step \d+\.\d\d by (CPU|wall) time \((met|NOT met)\); "
                     r"update alone implies \d+\.\d{3} \((met|NOT met)\)$",
                     out, re.M)
