r"""A model's forward pass, loss and metrics for a group of clients at once, each with its own
weights: the functional, client-batched form of a Keras model that
``tff.learning.models.from_keras_model`` wraps.

Every tensor carries the group's clients as its first dimension: weights ``[c, ...]``, inputs
``[c, b, ...]``. A ``Dense`` layer is one batched matmul, :math:`z_i = x_i W_i + b_i` for every
client i at once; a ``Conv2D`` layer the same matmul over the image patches
(:math:`\mathrm{conv}(x_i, W_i) = \mathrm{patches}(x_i)\, \mathrm{vec}(W_i)`); a layer without
weights (``Flatten``, pooling, ...) acts on each example, so it runs on the clients' examples
merged, ``[c b, ...]``. The loss of client i is its batch's mean,
:math:`\ell_i = \frac{1}{b} \sum_j \ell(y_{ij}, z_{ij})`, and since no operation mixes clients,
:math:`\nabla_{W_i} \sum_k \ell_k = \nabla_{W_i} \ell_i`: one gradient of the summed losses gives
every client's own gradient.

``batched_model(model_fn)`` returns ``None`` for a model it cannot write so; the group work then
runs its clients one after the other (``group_work``). It takes: ``tf.keras.Sequential`` models
of ``Dense``, ``Conv2D`` (channels last, no groups nor dilation) and the weightless per-example
layers of the per-example kinds (``_keras_types``), every weight trainable, no regularization loss; one
``LossFunctionWrapper`` loss with a mean over the batch (``SparseCategoricalCrossentropy``, ...);
TFF's ``loss``, ``num_examples`` and ``num_batches`` metrics and Keras ``MeanMetricWrapper``
metrics (``SparseCategoricalAccuracy``, ...). Of ``tff_experiments.models``: the logistic models
and the CNNs (``digits_cnn``, ``image_cnn``, ``lenet_cnn``); not ``char_rnn`` (embedding and
GRU), nor models with dropout, batch normalization or other non-trainable state.
"""
import collections
import functools
from collections.abc import Mapping

import tensorflow as tf

@functools.lru_cache(maxsize=None)
def _keras_types():
    """``(per-example layer types, mean reductions, LossFunctionWrapper)`` of tf.keras 2.14, the
    Keras of TFF's models; looked up when first needed (Keras 3's tf.keras has none of them)."""
    keras = tf.keras
    per_example = (
        keras.layers.Flatten, keras.layers.Reshape, keras.layers.Activation, keras.layers.ReLU,
        keras.layers.MaxPooling1D, keras.layers.MaxPooling2D, keras.layers.AveragePooling1D,
        keras.layers.AveragePooling2D, keras.layers.GlobalMaxPooling1D, keras.layers.GlobalMaxPooling2D,
        keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)
    mean_reductions = (keras.losses.Reduction.AUTO, keras.losses.Reduction.SUM_OVER_BATCH_SIZE)
    return per_example, mean_reductions, keras.__internal__.losses.LossFunctionWrapper


class BatchedModel:
    """The client-batched form of one Keras model (see the module docstring).

    Args:
      layers: the forward pass, one ``(kind, settings)`` per layer (``_layer_plan``).
      loss: the model's ``LossFunctionWrapper``.
      metrics: ``(name, kind, variable names, dtype, settings)`` per metric, in the model's order.
    """

    def __init__(self, layers, loss, metrics):
        self.layers, self.loss, self.metrics = layers, loss, metrics

    def forward(self, weights, x):
        """The predictions ``[c, b, ...]`` of every client's weights (a list of ``[c, ...]``, the
        model's trainable weights) on its inputs ``x`` ``[c, b, ...]``."""
        for kind, settings in self.layers:
            if x.dtype.is_floating:  # as Keras casts a layer's floating inputs
                x = tf.cast(x, settings["dtype"])
            if kind == "dense":
                x = _dense(x, weights, settings)
            elif kind == "conv2d":
                x = _conv2d(x, weights, settings)
            else:
                x = _per_example(x, settings)
        return x

    def losses(self, y, predictions):
        """Each client's loss ``[c]``: the mean over its batch of the loss of its ``predictions``
        ``[c, b, ...]`` against its labels ``y`` ``[c, b, ...]``."""
        values = self.loss.call(_merge(y), _merge(predictions))
        values = tf.reshape(values, [tf.shape(predictions)[0], -1])
        return tf.math.divide_no_nan(tf.reduce_sum(values, axis=1), tf.cast(tf.shape(values)[1], values.dtype))

    def metric_zeros(self, clients):
        """Each client's metric sums, zero: ``{name: [c] per variable}`` for ``clients`` clients."""
        return collections.OrderedDict(
            (name, [tf.zeros([clients], dtype) for _ in variables]) for name, _, variables, dtype, _ in self.metrics)

    def metric_increments(self, y, predictions, losses):
        """What one step adds to each client's metric variables, ``{name: [c] per variable}``, as
        TFF's ``forward_pass`` updates the model's metrics on the client's batch: from its labels
        ``y``, its ``predictions`` and its batch loss (``losses``, ``[c]``)."""
        clients, batch = tf.shape(predictions)[0], tf.shape(predictions)[1]
        increments = collections.OrderedDict()
        for name, kind, variables, dtype, settings in self.metrics:
            if kind == "loss":  # TFF's loss metric: the mean over examples of the batch losses
                size = tf.cast(tf.fill([clients], batch), dtype)
                values = {"total": tf.cast(losses, dtype) * size, "count": size}
            elif kind == "examples":
                values = {"total": tf.cast(tf.fill([clients], batch), dtype)}
            elif kind == "batches":
                values = {"total": tf.ones([clients], dtype)}
            else:  # a MeanMetricWrapper: its function of each example, cast as Keras does
                function = _keras_types()[2](settings["fn"], reduction="none", **settings["kwargs"])
                matches = function.call(tf.cast(_merge(y), dtype), tf.cast(_merge(predictions), dtype))
                matches = tf.reshape(tf.cast(matches, dtype), [clients, -1])
                values = {"total": tf.reduce_sum(matches, axis=1),
                          "count": tf.cast(tf.fill([clients], tf.shape(matches)[1]), dtype)}
            increments[name] = [values[v] for v in variables]
        return increments


def _merge(x):
    """``[c, b, ...]`` as ``[c b, ...]``."""
    return tf.reshape(x, tf.concat([[-1], tf.shape(x)[2:]], axis=0))


def _split(x, like):
    """``[c b, ...]`` back to ``[c, b, ...]`` as ``like``'s first two dimensions."""
    return tf.reshape(x, tf.concat([tf.shape(like)[:2], tf.shape(x)[1:]], axis=0))


def _dense(x, weights, settings):
    """Keras ``Dense`` for every client: ``activation(x_i W_i + b_i)``."""
    kernel = weights[settings["kernel"]]
    units = kernel.shape[-1]
    z = tf.matmul(tf.reshape(x, [tf.shape(x)[0], -1, kernel.shape[1]]), kernel)
    z = tf.reshape(z, tf.concat([tf.shape(x)[:-1], [units]], axis=0))
    if settings["bias"] is not None:
        bias = weights[settings["bias"]]
        z = z + tf.reshape(bias, [-1] + [1] * (x.shape.rank - 2) + [units])
    return settings["activation"](z)


def _conv2d(x, weights, settings):
    """Keras ``Conv2D`` (channels last) for every client: its image patches times its kernel."""
    kernel = weights[settings["kernel"]]
    rows, cols, channels, filters = kernel.shape[1:]
    patches = _patches(_merge(x), rows, cols, settings["strides"], settings["padding"])
    z = tf.matmul(tf.reshape(patches, [tf.shape(x)[0], -1, rows * cols * channels]),
                  tf.reshape(kernel, [-1, rows * cols * channels, filters]))
    z = _split(tf.reshape(z, tf.concat([tf.shape(patches)[:3], [filters]], axis=0)), x)
    if settings["bias"] is not None:
        z = z + tf.reshape(weights[settings["bias"]], [-1, 1, 1, 1, filters])
    return settings["activation"](z)


def _patches(x, rows, cols, strides, padding):
    """``[n, H', W', rows cols channels]``: each output position's input patch, in the order of
    a Keras kernel's ``(row, col, channel)``, with ``tf.nn.conv2d``'s padding (its gradient is
    a few times cheaper than that of the patches cut as strided slices)."""
    return tf.image.extract_patches(x, [1, rows, cols, 1], [1, *strides, 1], [1, 1, 1, 1], padding.upper())


def _per_example(x, settings):
    """A weightless layer acting on each example: run on the clients' examples merged."""
    layer = settings["class"].from_config(settings["config"])
    return _split(layer(_merge(x), training=True), x)


def batched_model(model_fn):
    """The ``BatchedModel`` of ``model_fn``'s model, or ``None`` if it is not one the module
    docstring names.

    Args:
      model_fn: a no-argument callable returning a ``tff.learning.models.VariableModel``.
    """
    with tf.Graph().as_default():
        model = model_fn()
        keras_model = getattr(model, "_keras_model", None)
        if type(model).__name__ != "_KerasModel" or not isinstance(keras_model, tf.keras.Sequential):
            return None
        if not _plain_inputs(model.input_spec) or keras_model.non_trainable_weights or keras_model.losses:
            return None
        positions = {v.ref(): i for i, v in enumerate(keras_model.trainable_weights)}
        layers = [_layer_plan(layer, positions) for layer in keras_model.layers]
        loss = _loss_plan(getattr(model, "_loss_fns", []))
        metrics = [_metric_plan(metric) for metric in model.get_metrics()]
        if any(p is None for p in layers + metrics) or loss is None:
            return None
        return BatchedModel(layers, loss, metrics)


def _plain_inputs(input_spec):
    """Whether the batches are ``{'x': tensor, 'y': tensor}`` or ``(x, y)``."""
    parts = [input_spec.get("x"), input_spec.get("y")] if isinstance(input_spec, Mapping) else list(input_spec)
    return len(parts) == 2 and all(isinstance(p, tf.TensorSpec) for p in parts)


def _layer_plan(layer, positions):
    """``(kind, settings)`` of one Keras layer, or ``None`` if it has no batched form here."""
    config, dtype = layer.get_config(), layer.compute_dtype
    if type(layer) is tf.keras.layers.Dense:
        kind = "dense"
    elif type(layer) is tf.keras.layers.Conv2D and config["data_format"] == "channels_last" \
            and config["groups"] == 1 and tuple(config["dilation_rate"]) == (1, 1):
        kind = "conv2d"
    elif type(layer) in _keras_types()[0] and not layer.weights:
        return "per-example", dict(dtype=dtype, config=config, **{"class": type(layer)})
    else:
        return None
    if not layer.trainable or layer.losses:
        return None
    bias = positions[layer.bias.ref()] if config["use_bias"] else None
    settings = dict(dtype=dtype, kernel=positions[layer.kernel.ref()], bias=bias, activation=layer.activation)
    if kind == "conv2d":
        settings.update(strides=tuple(config["strides"]), padding=config["padding"])
    return kind, settings


def _loss_plan(loss_fns):
    """The model's one loss, if it is a ``LossFunctionWrapper`` with a mean over the batch."""
    if len(loss_fns) != 1:
        return None
    loss = loss_fns[0]
    _, mean_reductions, wrapper = _keras_types()
    if not isinstance(loss, wrapper) or type(loss).call is not wrapper.call \
            or type(loss).__call__ is not tf.keras.losses.Loss.__call__:
        return None
    return loss if loss.reduction in mean_reductions else None


def _metric_plan(metric):
    """``(name, kind, variable names, dtype, settings)`` of one metric, or ``None``."""
    from tensorflow_federated.python.learning.metrics import counters

    # a Keras mean or sum: its variables are ``total`` (and ``count``), in ``metric.variables`` order
    roles = {id(getattr(metric, role, None)): role for role in ("total", "count")}
    variables = [roles.get(id(v)) for v in metric.variables]
    kinds = {counters.NumExamplesCounter: "examples", counters.NumBatchesCounter: "batches"}
    if type(metric).__name__ == "_WeightedMeanLossMetric":
        kind, settings = "loss", {}
    elif type(metric) in kinds:
        kind, settings = kinds[type(metric)], {}
    elif isinstance(metric, tf.keras.metrics.MeanMetricWrapper) \
            and type(metric).update_state is tf.keras.metrics.MeanMetricWrapper.update_state:
        kind, settings = "mean", dict(fn=metric._fn, kwargs=dict(metric._fn_kwargs))
    else:
        return None
    expected = {"total"} if kind in ("examples", "batches") else {"total", "count"}
    if len(variables) != len(expected) or set(variables) != expected:
        return None
    return metric.name, kind, variables, metric.dtype, settings
