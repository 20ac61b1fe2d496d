"""The image-classification examples (digits CNN, CIFAR-10 ResNet) in their tiny configurations,
and the papers' recipe they share (examples.common)."""
import json
import os

import numpy as np
import pytest

from keras_optim.backend import KERAS3

pytestmark = pytest.mark.skipif(not KERAS3, reason="the examples' results are Keras 3 runs")


def test_recipe_is_the_papers():
    import keras
    import keras_optim
    from examples import common

    sgd = common.image_classification_optimizer("SGD-momentum", 0.1)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9
    adam = common.image_classification_optimizer("Adam", 1e-3)
    assert isinstance(adam, keras.optimizers.Adam) and adam.epsilon == 1e-8
    belief = common.image_classification_optimizer("AdaBelief", 1e-3)
    assert isinstance(belief, keras_optim.AdaBelief)
    assert (belief.epsilon, belief.rectify, belief.beta_1, belief.beta_2) == (1e-8, False, 0.9, 0.999)
    diff = common.image_classification_optimizer("diffGrad", 1e-3)
    assert isinstance(diff, keras_optim.DiffGrad) and diff.epsilon == 1e-8
    assert common.PAPER_LEARNING_RATES == {"SGD-momentum": 0.1, "Adam": 1e-3, "AdaBelief": 1e-3,
                                           "diffGrad": 1e-3}
    with pytest.raises(ValueError, match="unknown optimizer"):
        common.image_classification_optimizer("Lion", 1e-3)


def test_clipped_optimizers_are_pan_and_lis_on_the_papers_recipe():
    import keras_optim
    from examples import common

    sgd = common.image_classification_optimizer("SGD-momentum + clip", 0.1)
    assert isinstance(sgd, keras_optim.SGD) and sgd.momentum == 0.9
    assert (sgd.coordinate_clip, sgd.clip_mode) == (0.1, "exact")
    adam = common.image_classification_optimizer("Adam + clip", 1e-3)
    assert isinstance(adam, keras_optim.Adam) and adam.epsilon == 1e-8
    assert (adam.coordinate_clip, adam.clip_mode) == (0.5, "exact")
    assert common.paper_learning_rate("SGD-momentum + clip") == 0.1
    assert common.paper_learning_rate("Adam + clip") == common.paper_learning_rate("Adam") == 1e-3


def test_mnist_cnn_and_split():
    """On 28x28 images the digits CNN pools twice: 7x7x64 into Dense128 (3x3 convolutions:
    320 + 18,496 weights, then 3,136 * 128 + 128 and 128 * 10 + 10)."""
    from examples import digits_comparison
    from tff_experiments.data import mnist

    model = digits_comparison.small_cnn(5e-4, (28, 28, 1))
    assert model.count_params() == 320 + 18_496 + 3_136 * 128 + 128 + 1_290
    assert model.output_shape == (None, 10)
    assert digits_comparison.small_cnn(5e-4).count_params() == 320 + 18_496 + 1_024 * 128 + 128 + 1_290
    if not mnist.mnist_path().is_file():
        pytest.skip("no MNIST file: run bash scripts/fetch_data.sh")
    x_train, x_test, y_train, y_test = digits_comparison.DATASETS["mnist"]()
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert np.bincount(y_test).tolist() == [100] * 10


def test_l2_penalty_is_pytorchs_coupled_weight_decay():
    """PyTorch's weight_decay=wd adds wd * w to the gradient."""
    import tensorflow as tf
    from examples import common

    w = tf.Variable(np.random.default_rng(0).normal(size=(5, 3)).astype("float32"))
    with tf.GradientTape() as tape:
        penalty = common.l2_penalty(5e-4)(w)
    np.testing.assert_allclose(tape.gradient(penalty, w).numpy(), 5e-4 * w.numpy(), rtol=1e-6)
    assert common.l2_penalty(0.0) is None


def test_step_decay_multiplies_by_a_tenth_after_the_decay_epoch():
    from examples import common

    schedule = common.step_decay(0.1, steps_per_epoch=391, decay_epochs=[150])
    step_values = {s: float(schedule(s)) for s in (0, 150 * 391 - 1, 150 * 391, 150 * 391 + 1)}
    # Keras counts steps from 0: the optimizer's step k is the (k+1)-th update.
    assert step_values[0] == pytest.approx(0.1) and step_values[150 * 391 - 1] == pytest.approx(0.1)
    assert step_values[150 * 391 + 1] == pytest.approx(0.01)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    from examples import digits_comparison

    out = tmp_path_factory.mktemp("digits")
    return digits_comparison.main(["--quick", "--out", str(out)]), out


def test_digits_split_is_fixed_and_stratified():
    from examples import digits_comparison

    a, b = digits_comparison.load_digits_split(), digits_comparison.load_digits_split()
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    _, _, y_train, y_test = a
    assert len(y_test) / (len(y_train) + len(y_test)) == pytest.approx(0.25, abs=0.01)
    train_share = np.bincount(y_train) / len(y_train)
    test_share = np.bincount(y_test) / len(y_test)
    np.testing.assert_allclose(train_share, test_share, atol=0.01)


def test_digits_every_optimizer_learns(digits_run):
    results, _ = digits_run
    assert set(results) == {"SGD-momentum", "Adam", "AdaBelief", "diffGrad"}
    for name, runs in results.items():
        assert len(runs) == 2  # two seeds
        for run in runs:
            assert run["train_loss"][-1] < run["train_loss"][0], name
            assert run["test_accuracy"][-1] > 0.1, name  # better than chance (10 classes)
        # the seeds change the initialisation: the runs are not copies of each other
        assert runs[0]["train_loss"] != runs[1]["train_loss"], name


def test_digits_table_summarises_the_runs(digits_run):
    results, out = digits_run
    table = (out / "digits_comparison.md").read_text()
    for name, runs in results.items():
        final = np.array([r["test_accuracy"][-1] for r in runs])
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} "))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) == pytest.approx(100 * final.mean(), abs=0.006)
        assert float(cells[2]) == pytest.approx(100 * final.std(ddof=1), abs=0.006)
    assert os.path.getsize(out / "digits_comparison.png") > 0
    with open(out / "digits_comparison.json") as f:
        assert len(json.load(f)["runs"]["Adam"]) == 2


def test_cifar10_synthetic_quick(tmp_path):
    from examples import cifar10_resnet

    results = cifar10_resnet.main(["--synthetic", "--quick", "--optimizers", "SGD-momentum",
                                   "AdaBelief", "--out", str(tmp_path)])
    for name, history in results.items():
        assert len(history["loss"]) == 3
        assert history["loss"][-1] < history["loss"][0], name
    assert os.path.getsize(tmp_path / "cifar10_resnet.png") > 0
    assert "AdaBelief" in (tmp_path / "cifar10_resnet.md").read_text()


def test_cifar10_resnet34_is_the_papers_network():
    """kuangliu's ResNet-34 for CIFAR-10 has 21,282,122 parameters (its PyTorch count; Keras
    also counts BatchNorm's moving statistics: 2 per BN channel)."""
    from examples import cifar10_resnet

    model = cifar10_resnet.resnet(cifar10_resnet.ARCHITECTURES["resnet34"], 64)
    moving = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert model.count_params() - moving == 21_282_122
    assert model.output_shape == (None, 10)


def test_cifar10_missing_data_is_a_one_line_error(tmp_path, capsys):
    from examples import cifar10_resnet

    with pytest.raises(SystemExit) as exit_info:
        cifar10_resnet.main(["--data-dir", str(tmp_path / "none"), "--out", str(tmp_path)])
    message = str(exit_info.value.code)
    assert message.startswith("error: CIFAR-10 is not available") and "\n" not in message
    assert "--synthetic" in message and "--download" in message
