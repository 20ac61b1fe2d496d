"""Keras builders, their TFF wrapper, and held-out evaluation against NumPy."""
import functools

import numpy as np
import pytest

tff = pytest.importorskip("tensorflow_federated")
import tensorflow as tf  # noqa: E402

from tff_experiments import models  # noqa: E402
from tff_experiments.data import shakespeare  # noqa: E402

DIGITS_SPEC = {"x": tf.TensorSpec((8, 8, 1), tf.float32), "y": tf.TensorSpec((), tf.int32)}
SMALL_RNN = functools.partial(models.char_rnn, units=8)


def numpy_cross_entropy(logits, labels):
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_softmax, labels[..., None].astype(np.int64), axis=-1)[..., 0]
    return -picked.mean(), (logits.argmax(axis=-1) == labels).mean()


@pytest.mark.parametrize(
    "builder, x_shape, out_shape",
    [
        (models.digits_cnn, (3, 8, 8, 1), (3, 10)),
        (models.digits_logistic, (3, 8, 8, 1), (3, 10)),
        (SMALL_RNN, (3, 12), (3, 12, shakespeare.VOCAB_SIZE)),
    ],
)
def test_builders_are_seeded_and_output_logits(builder, x_shape, out_shape):
    a, b, c = builder(seed=1), builder(seed=1), builder(seed=2)
    for wa, wb in zip(models.model_weights(a), models.model_weights(b)):
        np.testing.assert_array_equal(wa, wb)
    assert any(not np.array_equal(wa, wc) for wa, wc in zip(models.model_weights(a), models.model_weights(c)))
    x = np.zeros(x_shape, np.int32 if len(x_shape) == 2 else np.float32)
    assert a(x).shape == out_shape


def test_tff_model_fn_wraps_the_keras_model_with_cross_entropy():
    model_fn = models.tff_model_fn(models.digits_logistic, DIGITS_SPEC, seed=3)
    model = model_fn()
    assert isinstance(model, tff.learning.models.VariableModel)
    assert model.input_spec["x"].shape.as_list() == [None, 8, 8, 1]
    assert model.input_spec["y"].shape.as_list() == [None]
    rng = np.random.default_rng(0)
    batch = {"x": rng.random((5, 8, 8, 1)).astype(np.float32), "y": rng.integers(0, 10, 5).astype(np.int32)}
    output = model.forward_pass(batch, training=False)
    # Independent of Keras: logistic regression is x W + b.
    kernel, bias = models.initial_weights(models.digits_logistic, seed=3)
    want_loss, _ = numpy_cross_entropy(batch["x"].reshape(5, 64) @ kernel + bias, batch["y"])
    np.testing.assert_allclose(float(output.loss), want_loss, rtol=1e-5)
    # A batched spec is taken as it is.
    batched = {"x": tf.TensorSpec((None, 8, 8, 1), tf.float32), "y": tf.TensorSpec((None,), tf.int32)}
    assert models.tff_model_fn(models.digits_logistic, batched)().input_spec["x"].shape.as_list() == [None, 8, 8, 1]
    with pytest.raises(ValueError, match="'x' and 'y'"):
        models.tff_model_fn(models.digits_logistic, {"pixels": DIGITS_SPEC["x"]})


def test_tff_initial_weights_equal_the_keras_builders():
    # A TFF process initializes in graph mode: the seeded weights must be the eager ones.
    model_fn = models.tff_model_fn(models.digits_cnn, DIGITS_SPEC, seed=5)
    process = tff.learning.algorithms.build_weighted_fed_avg(
        model_fn, client_optimizer_fn=tff.learning.optimizers.build_sgdm(0.1)
    )
    weights = process.get_model_weights(process.initialize())
    want = models.initial_weights(models.digits_cnn, seed=5)
    got = list(weights.trainable) + list(weights.non_trainable)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_evaluate_weights_matches_numpy_cross_entropy_and_accuracy():
    rng = np.random.default_rng(1)
    x = rng.random((2500, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 2500).astype(np.int32)
    kernel = rng.normal(size=(64, 10)).astype(np.float32)
    bias = rng.normal(size=10).astype(np.float32)
    want_loss, want_acc = numpy_cross_entropy(x.reshape(-1, 64) @ kernel + bias, y)
    got = models.evaluate_weights(models.digits_logistic, [kernel, bias], x, y, batch_size=1000)
    np.testing.assert_allclose(got["loss"], want_loss, rtol=1e-5)
    assert got["accuracy"] == pytest.approx(want_acc, abs=1e-12)
    # The ModelWeights form gives the same.
    weights = tff.learning.models.ModelWeights(trainable=[kernel, bias], non_trainable=[])
    assert models.evaluate_weights(models.digits_logistic, weights, x, y)["accuracy"] == got["accuracy"]
    with pytest.raises(ValueError, match="2 weight tensors"):
        models.evaluate_weights(models.digits_logistic, [kernel], x, y)
    with pytest.raises(ValueError, match="shape"):
        models.evaluate_weights(models.digits_logistic, [kernel.T, bias], x, y)


def test_evaluate_weights_on_character_sequences():
    rng = np.random.default_rng(2)
    x = rng.integers(0, shakespeare.VOCAB_SIZE, (7, 12)).astype(np.int32)
    y = rng.integers(0, shakespeare.VOCAB_SIZE, (7, 12)).astype(np.int32)
    weights = models.initial_weights(SMALL_RNN, seed=4)
    model = SMALL_RNN(seed=4)
    want_loss, want_acc = numpy_cross_entropy(model(x).numpy(), y)
    got = models.evaluate_weights(SMALL_RNN, weights, x, y, batch_size=3)
    np.testing.assert_allclose(got["loss"], want_loss, rtol=1e-5)
    assert got["accuracy"] == pytest.approx(want_acc, abs=1e-12)
