"""Each benchmark's --quick mode runs on CPU (so that the scripts cannot rot); no timing is
asserted, only that every candidate was measured and printed."""
import importlib
import re

import pytest

from keras_optim.backend import KERAS3, keras

tf = pytest.importorskip("tensorflow", reason="the TensorFlow benchmarks need TensorFlow")
pytestmark = pytest.mark.skipif(KERAS3 and keras.backend.backend() != "tensorflow",
                                reason="run on Keras 3's TensorFlow backend and tf.keras 2.14")

ROW = re.compile(r"^(?P<name>\S.*?)\s+(?P<ms>\d+\.\d\d)\s+(?P<wall>\d+\.\d\d)\s+(?P<cpu>\d+\.\d\d)$")


def run(module, argv, capsys):
    main = importlib.import_module(f"benchmarks.{module}").main
    main(argv)
    out = capsys.readouterr().out
    return out, {m["name"]: m for m in map(ROW.match, out.splitlines()) if m}


def assert_names_device(out):
    """Nothing pins a device: the header names the one TensorFlow placed the step on."""
    gpus = tf.config.list_physical_devices("GPU")
    named = r"device: \S.*$" if gpus else r"device: CPU \(\d+ threads\)$"
    assert re.search(named, out.splitlines()[0])


def test_optimizer_step_time(capsys):
    out, rows = run("optimizer_step_time", ["--quick"], capsys)
    assert_names_device(out)
    assert {"Adam (Keras)", "keras_optim.Adam", "AdaBelief", "DiffGrad"} <= set(rows)
    assert rows["Adam (Keras)"]["wall"] == "1.00"
    memory = dict(re.findall(r"^(\S.*?)\s+(\d+\.\d\d)$", out, re.M))
    assert memory["Adam (Keras)"] == memory["AdaBelief"] == "8.00"
    assert memory["DiffGrad"] == memory["AdaBelief, amsgrad"] == "12.00"


def test_coordinate_clip_step_time(capsys):
    out, rows = run("coordinate_clip_step_time", ["--quick"], capsys)
    assert {"clip 0.1, fast", "clip 0.1, exact"} <= set(rows)
    assert "fast mode: |k_hat - k| / k" in out


def test_training_step_time(capsys):
    out, rows = run("training_step_time", ["--quick", "--models", "MLP"], capsys)
    assert_names_device(out)
    assert {"Adam (Keras)", "DiffGrad", "Adam + clip 0.5, fast"} <= set(rows)
    assert "MLP 8 x 64" in out
    # The update alone on the model's 18 variables, each with the step ratio it implies.
    table = out[out.index("update alone on the model's 18 variables"):].splitlines()[1:4]
    assert [line.split()[0] for line in table] == ["Adam", "DiffGrad", "Adam"]
    assert table[0].split()[-1] == "1.000"


def test_implied_step_ratio():
    """1 + (update - Adam's update) / Adam's step, from best times."""
    implied = importlib.import_module("benchmarks.training_step_time").implied_step_ratios(
        {"Adam (Keras)": (0.010, 1.0, 1.0), "DiffGrad": (0.012, 1.2, 1.2)},
        {"Adam (Keras)": (0.001, 1.0, 1.0), "DiffGrad": (0.0015, 1.5, 1.5)},
    )
    assert implied == pytest.approx({"Adam (Keras)": 1.0, "DiffGrad": 1.05})


@pytest.mark.skipif(KERAS3, reason="tf.keras 2.14's ignore_class does not compile under XLA")
def test_training_step_time_transformer(capsys):
    """The character transformer's masked loss compiles under XLA on tf.keras 2.14 too."""
    # the baseline alone: one XLA compilation of the step (CI time)
    out, rows = run("training_step_time",
                    ["--quick", "--models", "char", "--optimizers", "Adam (Keras)"], capsys)
    assert "Adam (Keras)" in rows
    assert "char transformer d32 x1" in out


def test_jax_vs_optax_refuses_other_backends():
    with pytest.raises(SystemExit, match="KERAS_BACKEND=jax"):
        importlib.import_module("benchmarks.jax_vs_optax").main(["--quick"])
