"""Coordinate clipping on batches padded to a per-batch length, on every backend (Keras 3 on
TensorFlow and on JAX, tf.keras 2.14).

On TensorFlow, ``fit`` traces its step once for all batches: a ``Dense`` kernel applied to
inputs of shape ``(batch, None, features)`` then gets a gradient of static shape
``(None, units)``, although its size is the kernel's. ``fit`` of a two-layer linear model,
with every coordinate-clipping optimizer (the option on the four optimizers, exact and fast,
and the wrapper), is held against the NumPy port of the authors' code fed with gradients that
NumPy computes.
"""
import numpy as np
import pytest

import keras_optim
from keras_optim.backend import KERAS3, keras
from tests.conftest import load_fixture_script

PORTS = load_fixture_script("make_coordinate_clip_fixtures")
TENSORFLOW = not KERAS3 or keras.backend.backend() == "tensorflow"
FEATURES, UNITS = 8, 6
# Examples' lengths, two to a batch: every batch is padded to its own length.
LENGTHS = [3, 5, 4, 4, 6, 2, 5, 3]
BATCH = 2

# name: (keras_optim optimizer, its port's class and arguments). With 61 coordinates the fast
# mode's sample holds them all: its threshold is the exact one.
CASES = {
    "SGD exact": (lambda: keras_optim.SGD(learning_rate=0.05, momentum=0.9, coordinate_clip=0.25),
                  lambda: PORTS.SGDClipPort(0.05, momentum=0.9, coordinate_clip=0.25)),
    "Adam exact": (lambda: keras_optim.Adam(learning_rate=0.01, coordinate_clip=0.1),
                   lambda: PORTS.AdamClipPort(0.01, coordinate_clip=0.1)),
    "AdaBelief fast": (lambda: keras_optim.AdaBelief(learning_rate=0.01, coordinate_clip=0.5,
                                                     clip_mode="fast"),
                       lambda: PORTS.AdaBeliefClipPort(0.01, coordinate_clip=0.5)),
    "DiffGrad fast": (lambda: keras_optim.DiffGrad(learning_rate=0.01, coordinate_clip=0.2,
                                                   clip_mode="fast"),
                      lambda: PORTS.DiffGradClipPort(0.01, coordinate_clip=0.2)),
    "wrapper exact": (lambda: keras_optim.CoordinateClipping(
                          keras.optimizers.SGD(learning_rate=0.0625, momentum=0.5), 0.1),
                      lambda: PORTS.SGDClipPort(0.0625, momentum=0.5, coordinate_clip=0.1)),
    "wrapper fast": (lambda: keras_optim.CoordinateClipping(
                         keras.optimizers.SGD(learning_rate=0.0625, momentum=0.5), 0.3,
                         mode="fast"),
                     lambda: PORTS.SGDClipPort(0.0625, momentum=0.5, coordinate_clip=0.3)),
}


def examples():
    """``(x, y)`` float32 sequences of the ``LENGTHS``."""
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(n, FEATURES)).astype("float32"),
             rng.normal(size=(n, 1)).astype("float32")) for n in LENGTHS]


def padded_batches():
    """``(x, y)`` per batch, zero-padded to the batch's longest example (as ``padded_batch``)."""
    sequences = examples()
    batches = []
    for start in range(0, len(sequences), BATCH):
        chunk = sequences[start:start + BATCH]
        length = max(len(x) for x, _ in chunk)
        pad = [(0, length - len(x)) for x, _ in chunk]
        x = np.stack([np.pad(x, (p, (0, 0))) for (x, _), p in zip(chunk, pad)])
        y = np.stack([np.pad(y, (p, (0, 0))) for (_, y), p in zip(chunk, pad)])
        batches.append((x.astype("float32"), y.astype("float32")))
    return batches


def padded_dataset():
    """The batches as a backend feeds them: on TensorFlow ``tf.data``'s ``padded_batch`` (one
    traced step for every length), elsewhere a ``PyDataset`` of the padded arrays."""
    if TENSORFLOW:
        import tensorflow as tf

        sequences = examples()
        spec = (tf.TensorSpec((None, FEATURES), tf.float32), tf.TensorSpec((None, 1), tf.float32))
        dataset = tf.data.Dataset.from_generator(lambda: iter(sequences), output_signature=spec)
        batches = len(LENGTHS) // BATCH
        return dataset.apply(tf.data.experimental.assert_cardinality(len(LENGTHS))
                             ).padded_batch(BATCH).apply(
                                 tf.data.experimental.assert_cardinality(batches))

    class Padded(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.batches = padded_batches()

        def __len__(self):
            return len(self.batches)

        def __getitem__(self, index):
            return self.batches[index]

    return Padded()


def numpy_gradients(weights, x, y):
    """The mean squared error's gradients of ``Dense(UNITS)`` then ``Dense(1)``; the mean runs
    over every (example, position), padding included, as Keras' ``"mse"`` on padded batches."""
    w1, b1, w2, b2 = weights
    hidden = x @ w1 + b1
    residual = 2.0 * (hidden @ w2 + b2 - y) / y.size
    back = residual @ w2.T
    return [np.einsum("btf,btu->fu", x, back), back.sum(axis=(0, 1)),
            np.einsum("btu,bto->uo", hidden, residual), residual.sum(axis=(0, 1))]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_on_padded_batches_matches_port(name):
    make_optimizer, make_port = CASES[name]
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((None, FEATURES)), keras.layers.Dense(UNITS),
                              keras.layers.Dense(1)])
    weights = [w.astype(np.float64) for w in model.get_weights()]
    model.compile(optimizer=make_optimizer(), loss="mse")
    model.fit(padded_dataset(), epochs=1, shuffle=False, verbose=0)

    port = make_port()
    for x, y in padded_batches():
        weights, _ = port.step(weights, numpy_gradients(weights, x.astype(np.float64),
                                                        y.astype(np.float64)))
    for got, expected in zip(model.get_weights(), weights):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=name)
