r"""tf.keras 2.14 models for the federated experiments, their TFF wrappers, and evaluation.

A *Keras builder* is any callable ``builder(seed=...)`` returning a fresh, uncompiled, built
``tf.keras.Model`` whose initial weights depend only on ``seed``; every model here outputs
logits. Use ``functools.partial`` to fix other arguments (``partial(char_rnn, units=32)``).

Weights travel as TFF's ``ModelWeights`` order: the trainable weights, then the non-trainable
ones, each in ``model.trainable_weights`` / ``model.non_trainable_weights`` order. Functions
taking ``weights`` accept a ``tff.learning.models.ModelWeights`` (anything with ``trainable`` and
``non_trainable``), a dict with those keys, or a flat list in that order.

The loss everywhere is the mean sparse categorical cross-entropy of the logits,
:math:`\ell = \frac{1}{n}\sum_{j} -\log \mathrm{softmax}(z_j)_{y_j}`, over examples (and over
positions, for next-character prediction); accuracy is the share of
:math:`\arg\max_k z_{jk} = y_j`.
"""
import collections
import functools
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from tff_experiments.data.digits import IMAGE_SHAPE, NUM_CLASSES
from tff_experiments.data.shakespeare import VOCAB_SIZE


def _layer_seeds(seed, count):
    """``count`` distinct 31-bit seeds derived from ``seed`` (one per initializer)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count) % (2**31 - 1)]


def digits_cnn(seed=0):
    """A small CNN for 8x8x1 digits: two 3x3 conv (16, 32) + max-pool blocks, dense 64, 10 logits.

    Args:
      seed: the initial weights' seed.
    """
    s = _layer_seeds(seed, 4)
    glorot = tf.keras.initializers.GlorotUniform
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=IMAGE_SHAPE),
            tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu", kernel_initializer=glorot(s[0])),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer=glorot(s[1])),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(64, activation="relu", kernel_initializer=glorot(s[2])),
            tf.keras.layers.Dense(NUM_CLASSES, kernel_initializer=glorot(s[3])),
        ],
        name="digits_cnn",
    )


def digits_logistic(seed=0):
    """Multinomial logistic regression on the 64 pixels (650 weights): the fast model for tests.

    Args:
      seed: the initial weights' seed.
    """
    (s,) = _layer_seeds(seed, 1)
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=IMAGE_SHAPE),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(NUM_CLASSES, kernel_initializer=tf.keras.initializers.GlorotUniform(s)),
        ],
        name="digits_logistic",
    )


def synthetic_logistic(seed=0, num_features=60, num_classes=10):
    """Multinomial logistic regression, 60 features to 10 logits: the model of Synthetic(alpha, beta)
    (Li et al., FedProx, MLSys 2020; ``tff_experiments.data.synthetic``).

    Args:
      seed: the initial weights' seed.
      num_features: the input's length (Synthetic's 60).
      num_classes: the number of logits (Synthetic's 10).
    """
    (s,) = _layer_seeds(seed, 1)
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(num_features,)),
            tf.keras.layers.Dense(num_classes, kernel_initializer=tf.keras.initializers.GlorotUniform(s)),
        ],
        name="synthetic_logistic",
    )


def image_cnn(input_shape, num_classes, seed=0):
    """A small CNN for EMNIST/CIFAR images: two 3x3 conv (32, 64) + max-pool blocks, dense 128, logits.

    Args:
      input_shape: one image's shape, e.g. ``(28, 28, 1)`` (EMNIST) or ``(32, 32, 3)`` (CIFAR).
      num_classes: the number of logits.
      seed: the initial weights' seed.
    """
    return _conv_pool_cnn(input_shape, num_classes, filters=(32, 64), kernel_size=3, units=128, seed=seed,
                          name="image_cnn")


def image_logistic(input_shape, num_classes, seed=0):
    """Multinomial logistic regression on an image's pixels: FedFix's MNIST model.

    Fraboni et al. (JMLR 2023) train ``LogisticRegression(784, 10)`` on MNIST (one linear layer
    on the flattened image, ``FL/create_model.py``, ``load_model``); on 28x28x1 images this has
    7,850 weights.

    Args:
      input_shape: one image's shape, e.g. ``(28, 28, 1)``.
      num_classes: the number of logits.
      seed: the initial weights' seed.
    """
    (s,) = _layer_seeds(seed, 1)
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=input_shape),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(num_classes, kernel_initializer=tf.keras.initializers.GlorotUniform(s)),
        ],
        name="image_logistic",
    )


def lenet_cnn(input_shape=(28, 28, 1), num_classes=10, seed=0):
    """MoNNA's MNIST network: 5x5 conv (20) + max-pool, 5x5 conv (50) + max-pool, dense 500, logits.

    The convolutional model of Farhadkhani et al.'s MNIST experiments (``simples-conv``:
    ``experiments/models/simples.py``, ``conv``, of LPD-EPFL/robust-collaborative-learning;
    valid convolutions, ReLU, 2x2 pooling; 431,080 weights on 28x28x1 images). Their network
    ends in ``log_softmax`` under an NLL loss, which is the cross-entropy of these logits.

    Args:
      input_shape: one image's shape (MNIST's ``(28, 28, 1)``).
      num_classes: the number of logits.
      seed: the initial weights' seed.
    """
    return _conv_pool_cnn(input_shape, num_classes, filters=(20, 50), kernel_size=5, units=500, seed=seed,
                          name="lenet_cnn")


def _conv_pool_cnn(input_shape, num_classes, *, filters, kernel_size, units, seed, name):
    """Two (valid conv + ReLU, 2x2 max-pool) blocks, a ReLU dense layer, logits; Glorot-uniform
    kernels seeded per layer."""
    s = _layer_seeds(seed, 4)
    glorot = tf.keras.initializers.GlorotUniform
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=input_shape),
            tf.keras.layers.Conv2D(filters[0], kernel_size, activation="relu", kernel_initializer=glorot(s[0])),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.Conv2D(filters[1], kernel_size, activation="relu", kernel_initializer=glorot(s[1])),
            tf.keras.layers.MaxPooling2D(2),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(units, activation="relu", kernel_initializer=glorot(s[2])),
            tf.keras.layers.Dense(num_classes, kernel_initializer=glorot(s[3])),
        ],
        name=name,
    )


def char_rnn(vocab_size=VOCAB_SIZE, seed=0, embedding_dim=8, units=64, seq_len=None):
    """Next-character model: embedding, one GRU returning every step, dense logits over the vocabulary.

    A smaller version of TFF's Shakespeare baseline (which has two LSTM layers of 256 units),
    sized for CPUs. Input: int ids ``(batch, seq_len)``; output logits ``(batch, seq_len, vocab_size)``.

    Args:
      vocab_size: the number of character ids (TFF's Shakespeare vocabulary by default).
      seed: the initial weights' seed.
      embedding_dim: the size of a character's embedding.
      units: the GRU's units.
      seq_len: the input's length, or None for any length.
    """
    s = _layer_seeds(seed, 4)
    return tf.keras.Sequential(
        [
            tf.keras.Input(shape=(seq_len,), dtype=tf.int32),
            tf.keras.layers.Embedding(
                vocab_size, embedding_dim, embeddings_initializer=tf.keras.initializers.RandomUniform(-0.05, 0.05, s[0])
            ),
            tf.keras.layers.GRU(
                units,
                return_sequences=True,
                kernel_initializer=tf.keras.initializers.GlorotUniform(s[1]),
                recurrent_initializer=tf.keras.initializers.Orthogonal(seed=s[2]),
            ),
            tf.keras.layers.Dense(vocab_size, kernel_initializer=tf.keras.initializers.GlorotUniform(s[3])),
        ],
        name="char_rnn",
    )


def _batched_input_spec(element_spec):
    """``{'x': spec, 'y': spec}`` with a leading ``None`` batch dimension."""
    if not isinstance(element_spec, Mapping) or set(element_spec) != {"x", "y"}:
        raise ValueError(f"the element spec must be a dict with keys 'x' and 'y', got {element_spec!r}")
    specs = [element_spec["x"], element_spec["y"]]
    if all(s.shape.rank and s.shape[0] is None for s in tf.nest.flatten(specs)):
        batched = specs  # already a batched spec
    else:
        batched = [tf.nest.map_structure(lambda s: tf.TensorSpec([None] + s.shape.as_list(), s.dtype), s) for s in specs]
    return collections.OrderedDict(x=batched[0], y=batched[1])


def tff_model_fn(keras_builder, element_spec, seed=0):
    """A no-argument ``model_fn`` building a ``tff.learning.models.VariableModel``.

    It wraps ``keras_builder(seed=seed)`` with ``tff.learning.models.from_keras_model``, the
    mean ``SparseCategoricalCrossentropy(from_logits=True)`` loss and a
    ``SparseCategoricalAccuracy`` metric (TFF adds ``loss``, ``num_examples``, ``num_batches``).

    Args:
      keras_builder: ``builder(seed=...) -> tf.keras.Model`` (logits).
      element_spec: ``{'x': TensorSpec, 'y': TensorSpec}`` of one example, as
        ``client_data.element_type_structure`` gives it, or of one batch (leading ``None``).
      seed: the initial weights' seed.
    """
    import tensorflow_federated as tff

    input_spec = _batched_input_spec(element_spec)

    def model_fn():
        return tff.learning.models.from_keras_model(
            keras_builder(seed=seed),
            loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            input_spec=input_spec,
            metrics=[tf.keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )

    return model_fn


def _flat_weights(weights):
    if hasattr(weights, "trainable") and hasattr(weights, "non_trainable"):
        return list(weights.trainable) + list(weights.non_trainable)
    if isinstance(weights, Mapping) and "trainable" in weights:
        return list(weights["trainable"]) + list(weights.get("non_trainable", []))
    return list(weights)


def model_weights(model):
    """The weights of a Keras ``model`` as NumPy arrays, trainable then non-trainable (TFF's
    order)."""
    return [np.asarray(v.numpy()) for v in model.trainable_weights + model.non_trainable_weights]


def assign_weights(model, weights):
    """Sets the weights of the Keras ``model`` from ``weights`` (see the module docstring for the
    forms) and returns the model."""
    flat = _flat_weights(weights)
    variables = model.trainable_weights + model.non_trainable_weights
    if len(flat) != len(variables):
        raise ValueError(f"{model.name} has {len(variables)} weight tensors, got {len(flat)}")
    for variable, value in zip(variables, flat):
        if tuple(variable.shape) != tuple(np.shape(value)):
            raise ValueError(f"weight {variable.name} has shape {tuple(variable.shape)}, got {np.shape(value)}")
        variable.assign(value)
    return model


def initial_weights(keras_builder, seed=0):
    """The initial weights of ``keras_builder(seed=seed)``, in TFF's order, as NumPy arrays.

    Args:
      keras_builder: ``builder(seed=...) -> tf.keras.Model``.
      seed: the initial weights' seed.
    """
    return model_weights(keras_builder(seed=seed))


@functools.lru_cache(maxsize=8)
def _per_example(keras_builder):
    """One model per builder and a compiled per-example (loss, hit) function, in float64."""
    model = keras_builder(seed=0)

    @tf.function(reduce_retracing=True)
    def losses_and_hits(x, y):
        logits = model(x, training=False)
        y = tf.cast(y, tf.int64)
        losses = tf.cast(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits), tf.float64)
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1), y), tf.float64)
        if losses.shape.rank > 1:  # sequence labels: the mean over positions
            axes = list(range(1, losses.shape.rank))
            losses, hits = tf.reduce_mean(losses, axis=axes), tf.reduce_mean(hits, axis=axes)
        return losses, hits

    return model, losses_and_hits


def per_example_loss_and_accuracy(keras_builder, weights, x, y, batch_size=1024):
    """``(losses, hits)`` of the model ``keras_builder`` with ``weights``: float64 arrays, one
    entry per example (for sequence labels, the mean over its positions).

    Args:
      keras_builder: ``builder(seed=...) -> tf.keras.Model`` (logits).
      weights: the weights to evaluate (see the module docstring for the forms).
      x: the inputs, one row per example.
      y: the integer labels, one row per example.
      batch_size: the examples evaluated per call of the compiled model.
    """
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"evaluation needs as many labels as inputs, at least one; got {len(x)} and {len(y)}")
    model, fn = _per_example(keras_builder)
    assign_weights(model, weights)
    losses, hits = [], []
    for start in range(0, len(x), batch_size):
        loss, hit = fn(x[start:start + batch_size], y[start:start + batch_size])
        losses.append(loss.numpy())
        hits.append(hit.numpy())
    return np.concatenate(losses), np.concatenate(hits)


def evaluate_weights(keras_builder, weights, x, y, batch_size=1024):
    """Loss and accuracy of the model ``keras_builder`` with ``weights`` on held-out ``(x, y)``.

    Args:
      keras_builder: ``builder(seed=...) -> tf.keras.Model`` (logits).
      weights: the weights to evaluate (see the module docstring for the forms).
      x: the inputs, one row per example.
      y: the integer labels, one row per example.
      batch_size: the examples evaluated per call of the compiled model.

    Returns:
      ``{'loss': float, 'accuracy': float}``: the mean cross-entropy and the accuracy over all
      examples (and positions, for sequence labels), in float64.
    """
    losses, hits = per_example_loss_and_accuracy(keras_builder, weights, x, y, batch_size)
    return {"loss": float(losses.mean()), "accuracy": float(hits.mean())}
