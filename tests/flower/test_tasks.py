"""The ClientApp's local work: the Keras logistic model trained by keras-optim's SGD and the
NumPy logistic model (written independently) end at the same weights from the same start and
batches; the CNN and the adaptive optimizers lower the loss on a node's partition; the nodes'
partitions are the TFF command line's Dirichlet split of digits."""
import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="the Keras client needs TensorFlow")

from flower_async import tasks  # noqa: E402
from flower_async.settings import Settings  # noqa: E402
from tff_experiments.data import digits  # noqa: E402


def test_keras_and_numpy_logistic_models_take_the_same_sgd_steps():
    keras_settings = Settings(model="logistic", client_optimizer="sgd", client_lr=0.3, local_steps=5, batch_size=16)
    numpy_settings = Settings(model="numpy-logistic", client_lr=0.3, local_steps=5, batch_size=16)
    keras_task, numpy_task = tasks.build_task(keras_settings), tasks.build_task(numpy_settings)
    start = keras_task.initial_weights()
    x, y = tasks.partition(keras_settings, 1, 3)
    bx, by = tasks.local_batches(x, y, keras_settings, [1, 0])
    keras_weights, keras_loss = keras_task.train(start, bx, by)
    numpy_weights, _ = numpy_task.train(start, bx, by)
    assert not np.allclose(keras_weights[0], start[0])
    for a, b in zip(keras_weights, numpy_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert keras_task.evaluate(keras_weights, bx, by)[0] == pytest.approx(
        numpy_task.evaluate(numpy_weights, bx, by)[0], rel=1e-4)


@pytest.mark.parametrize("model, optimizer, lr", [("cnn", "adabelief", 0.01), ("logistic", "diffgrad", 0.05),
                                                  ("logistic", "adam", 0.05)])
def test_a_local_work_lowers_the_loss_on_the_partition(model, optimizer, lr):
    settings = Settings(model=model, client_optimizer=optimizer, client_lr=lr, local_steps=20, batch_size=16,
                        coordinate_clip=0.1 if optimizer == "adam" else 0.0)
    task = tasks.build_task(settings)
    start = task.initial_weights()
    x, y = tasks.partition(settings, 0, 3)
    trained, _ = task.train(start, *tasks.local_batches(x, y, settings, [0, 0]))
    assert task.evaluate(trained, x, y)[0] < task.evaluate(start, x, y)[0]


def test_partitions_are_the_command_lines_dirichlet_split():
    settings = Settings(alpha=0.5, seed=3)
    x_train, y_train, _, _ = digits.load_digits_split(seed=3)
    parts = digits.dirichlet_partition(y_train, 4, 0.5, 3)
    for k in range(4):
        x, y = tasks.partition(settings, k, 4)
        np.testing.assert_array_equal(y, y_train[parts[k]])
        np.testing.assert_array_equal(x, x_train[parts[k]])
    with pytest.raises(ValueError, match="partition-id must be in"):
        tasks.partition(settings, 4, 4)
