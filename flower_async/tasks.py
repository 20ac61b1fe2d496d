"""The models and data sets of the app: each node's partition, local training, evaluation.

The data are the TFF command line's (``tff_experiments.data``, their TF-free parts): digits
split by Dirichlet(alpha) across the nodes with the same partition as the simulations, and
Synthetic(alpha, beta), node k holding client k's data. The Keras models are
``tff_experiments.models``' (they build on Keras 3 as they do on tf.keras 2.14). ``numpy-logistic``
is the logistic model written in NumPy: its ClientApp process starts without TensorFlow.

Weights travel as a list of NumPy arrays (the Keras model's ``get_weights()`` order); a node
returns its update, local weights minus the weights it was sent.
"""
import functools

import numpy as np

from tff_experiments.data import digits as digits_lib
from tff_experiments.data.synthetic import SyntheticGenerator


@functools.lru_cache(maxsize=4)
def _digits(seed):
    return digits_lib.load_digits_split(seed=seed)


def partition(settings, partition_id, num_partitions):
    """Node ``partition_id``'s training data ``(x, y)``, of ``num_partitions`` nodes.

    Args:
      settings: the run's ``Settings``.
      partition_id: the node's partition, in [0, num_partitions).
      num_partitions: the number of partitions (nodes).
    """
    if not 0 <= partition_id < num_partitions:
        raise ValueError(f"partition-id must be in [0, {num_partitions}), got {partition_id}")
    if settings.dataset == "digits":
        x, y, _, _ = _digits(settings.seed)
        parts = digits_lib.dirichlet_partition(y, num_partitions, settings.alpha, settings.seed)
        return x[parts[partition_id]], y[parts[partition_id]]
    split = _synthetic(settings).client_split(partition_id, "train")
    return split["x"], split["y"]


def test_data(settings, num_partitions):
    """The server's held-out data ``(x, y)``: digits' test split, or the nodes' Synthetic test
    splits together.

    Args:
      settings: the run's ``Settings``.
      num_partitions: the number of partitions (nodes).
    """
    if settings.dataset == "digits":
        _, _, x, y = _digits(settings.seed)
        return x, y
    splits = [_synthetic(settings).client_split(k, "test") for k in range(num_partitions)]
    return np.concatenate([s["x"] for s in splits]), np.concatenate([s["y"] for s in splits])


def _synthetic(settings):
    return SyntheticGenerator(alpha=settings.alpha, beta=settings.beta, seed=settings.seed)


def local_batches(x, y, settings, seed_words):
    """The ``local_steps`` batches of one local work: examples drawn with a generator seeded by
    ``seed_words`` (the node's partition and its work), without replacement within an epoch.

    Args:
      x: the node's features.
      y: its labels.
      settings: the run's ``Settings``.
      seed_words: entropy words of the draw.
    """
    rng = np.random.default_rng([settings.seed, *seed_words])
    need = settings.local_steps * settings.batch_size
    order = np.concatenate([rng.permutation(len(x)) for _ in range(-(-need // len(x)))])[:need]
    return x[order], y[order]


def build_task(settings):
    """The ``NumPyLogistic`` or ``KerasTask`` of ``settings.model``.

    Args:
      settings: the run's ``Settings``.
    """
    if settings.model == "numpy-logistic":
        return NumPyLogistic(settings)
    return KerasTask(settings)


def _input_size(settings):
    return 64 if settings.dataset == "digits" else 60


class NumPyLogistic:
    """Multinomial logistic regression in NumPy, trained by plain SGD (``client-optimizer``
    must be ``sgd``): weights ``[kernel (features, 10), bias (10,)]``, a Keras ``Dense`` layer's.

    Args:
      settings: the run's ``Settings``.
    """

    def __init__(self, settings):
        if settings.client_optimizer != "sgd" or settings.coordinate_clip:
            raise ValueError("the numpy-logistic model trains with plain sgd only")
        self.settings = settings
        self.features = _input_size(settings)

    def initial_weights(self):
        """Glorot-uniform kernel, zero bias."""
        limit = np.sqrt(6.0 / (self.features + 10))
        kernel = np.random.default_rng(self.settings.seed).uniform(-limit, limit, (self.features, 10))
        return [kernel.astype(np.float32), np.zeros(10, np.float32)]

    def _loss_and_grads(self, weights, x, y):
        x = x.reshape(len(x), -1)
        logits = x @ weights[0] + weights[1]
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = -np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12))
        probs[np.arange(len(y)), y] -= 1.0
        probs /= len(y)
        return loss, [x.T @ probs, probs.sum(axis=0)], logits

    def train(self, weights, x, y):
        """``(local weights, mean training loss)`` after ``local_steps`` SGD steps on the rows
        of ``x, y`` (``local_steps * batch_size`` of them, from ``local_batches``).

        Args:
          weights: the weights to start from.
          x: the work's examples, batch after batch.
          y: their labels.
        """
        weights = [w.astype(np.float32).copy() for w in weights]
        size, losses = self.settings.batch_size, []
        for step in range(self.settings.local_steps):
            loss, grads, _ = self._loss_and_grads(weights, x[step * size:(step + 1) * size],
                                                  y[step * size:(step + 1) * size])
            losses.append(loss)
            weights = [w - np.float32(self.settings.client_lr) * g.astype(np.float32) for w, g in zip(weights, grads)]
        return weights, float(np.mean(losses))

    def evaluate(self, weights, x, y):
        """``(mean loss, accuracy)`` of ``weights`` on ``x, y``.

        Args:
          weights: the model's weights.
          x: features.
          y: labels.
        """
        loss, _, logits = self._loss_and_grads(weights, x, y)
        return float(loss), float(np.mean(np.argmax(logits, axis=1) == y))

    def keras_model(self, weights):
        """The same model as a Keras ``Dense`` layer holding ``weights`` (for the export)."""
        import keras

        model = keras.Sequential([keras.Input((self.features,) if self.settings.dataset != "digits"
                                              else digits_lib.IMAGE_SHAPE),
                                  keras.layers.Flatten(), keras.layers.Dense(10)])
        model.set_weights(weights)
        return model


class KerasTask:
    """A Keras 3 model of ``tff_experiments.models``, trained by a keras-optim optimizer.

    Args:
      settings: the run's ``Settings``.
    """

    def __init__(self, settings):
        self.settings = settings
        self._model = None

    @property
    def model(self):
        """The compiled Keras model (built on first use: it imports TensorFlow)."""
        if self._model is None:
            import keras

            from tff_experiments import models

            s = self.settings
            if s.dataset == "synthetic":
                model = models.synthetic_logistic(s.seed)
            else:
                model = models.digits_cnn(s.seed) if s.model == "cnn" else models.digits_logistic(s.seed)
            model.compile(optimizer=client_optimizer(s),
                          loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                          metrics=["accuracy"])
            self._model = model
        return self._model

    def initial_weights(self):
        """The model's seeded initial weights."""
        return [np.asarray(w) for w in self.model.get_weights()]

    def train(self, weights, x, y):
        """``(local weights, mean training loss)`` after one pass over ``x, y`` in
        ``local_steps`` batches, from a fresh optimizer.

        Args:
          weights: the weights to start from.
          x: the work's examples, batch after batch.
          y: their labels.
        """
        model = self.model
        model.set_weights(weights)
        model.optimizer = None
        model.compile(optimizer=client_optimizer(self.settings), loss=model.loss, metrics=["accuracy"])
        history = model.fit(x, y, batch_size=self.settings.batch_size, epochs=1, shuffle=False, verbose=0)
        return [np.asarray(w) for w in model.get_weights()], float(history.history["loss"][-1])

    def evaluate(self, weights, x, y):
        """``(mean loss, accuracy)`` of ``weights`` on ``x, y``.

        Args:
          weights: the model's weights.
          x: features.
          y: labels.
        """
        self.model.set_weights(weights)
        loss, accuracy = self.model.evaluate(x, y, batch_size=1024, verbose=0)
        return float(loss), float(accuracy)

    def keras_model(self, weights):
        """The Keras model holding ``weights`` (for the export)."""
        self.model.set_weights(weights)
        return self.model


def client_optimizer(settings):
    """A fresh keras-optim optimizer of ``settings.client_optimizer``.

    Args:
      settings: the run's ``Settings``.
    """
    import keras_optim

    lr, clip = settings.client_lr, settings.coordinate_clip
    if settings.client_optimizer in ("sgd", "sgdm"):
        return keras_optim.SGD(lr, momentum=0.9 if settings.client_optimizer == "sgdm" else 0.0,
                               coordinate_clip=clip)
    if settings.client_optimizer == "adam":
        return keras_optim.Adam(lr, coordinate_clip=clip)
    if settings.client_optimizer == "adabelief":
        return keras_optim.AdaBelief(lr, coordinate_clip=clip)
    return keras_optim.DiffGrad(lr, coordinate_clip=clip)
