r"""The local works of a group of clients in one TensorFlow call (``clients_per_group``).

TFF 0.87's runtime costs tens of milliseconds per ``CLIENTS`` member, whatever the work, which
dominates for small models and thousands of clients a step. A member of ``CLIENTS`` is here a
group of up to G local works (``group_values``: their distinct models, batches and weights
stacked), each run as TFF's ``build_model_delta_client_work`` runs one: K steps of the client
optimizer from the client's model, its optimizer state started fresh, update = start - end, a
non-finite update counting as zero with weight 0 and its metrics dropped. The group returns
:math:`\sum_i d_i u_i` over its works, so the server adds up the groups' sums: the same result
as one member per work, far fewer TFF calls.

Two ways to run a group, chosen once when the process is built:

* batched (``batched_group_work``): each of the K steps runs all the group's clients at once,
  the forward pass and every client's gradient as batched computations, the client optimizer
  over the clients' stacked weights and states. It takes the models that
  ``batched_model.batched_model`` can write in that form: Keras ``Sequential`` models of
  ``Dense``, ``Conv2D`` and weightless per-example layers (pooling, ``Flatten``, ...), all
  weights trainable, with a mean loss and TFF's and Keras' mean metrics; of
  ``tff_experiments.models``, the logistic models and the CNNs. Every client optimizer.
* one after the other (this module's loop, below): any ``VariableModel``, e.g. the Shakespeare
  ``char_rnn`` (embedding, GRU), models with dropout, batch normalization or other non-trainable
  state, and every model when ``batched=False``.

The client step mirrors TFF 0.87's ``build_model_delta_update_with_tff_optimizer``
(tensorflow_federated/python/learning/templates/model_delta_client_work.py, Apache 2.0).
"""
import collections

import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.asynchronous.batched_group_work import build_batched_group_computation
from tff_experiments.asynchronous.batched_model import batched_model
from tff_experiments.asynchronous.group_values import group_value_type


def grouped_sums(model_fn, client_optimizer, client_work, model_weights_type, batched=True):
    """``(CLIENTS type, local_sums, finalize)`` with a group of local works per ``CLIENTS`` member:
    ``local_sums(state, clients)`` gives the groups' results summed, ``(sum_i d_i u_i, number of
    counted updates, unfinalized metrics)``, each @SERVER; ``finalize``: the model's metric
    finalizers (a computation of the summed unfinalized metrics). Sums of disjoint sets of works
    add up to the sums of their union (``process``: a server step in several calls).

    Args:
      model_fn: the process' ``model_fn``.
      client_optimizer: the client's ``tff.learning.optimizers.Optimizer``.
      client_work: TFF's client work of the same model and optimizer (its state holds the
        optimizer's hyperparameters, which the groups use).
      model_weights_type: the type of the model's ``ModelWeights``.
      batched: run a group's local works as batched computations where the model allows it
        (see the module docstring); False: one after the other.
    """
    hparams_type = client_work.initialize.type_signature.result.member
    probe = _probe_model(model_fn)
    group_type = group_value_type(model_weights_type, probe.input_spec)
    model = batched_model(model_fn) if batched else None
    if model is not None:
        run_group = build_batched_group_computation(model, client_optimizer, hparams_type, group_type)
    else:
        run_group = _build_group_computation(model_fn, client_optimizer, hparams_type, group_type)

    def local_sums(state, clients):
        hparams = tff.federated_broadcast(state.client_work)
        # one sum of the groups' results (TFF costs per reduction and member): sum_i d_i u_i, the
        # counted updates, the unfinalized metrics (finalized once summed: TFF's sum_then_finalize)
        sums, counted, unfinalized = tff.federated_sum(tff.federated_map(run_group, (hparams, clients)))
        return sums, counted, unfinalized

    return tff.FederatedType(group_type, tff.CLIENTS), local_sums, _finalizer(probe)


_Probe = collections.namedtuple("_Probe", "input_spec unfinalized_type finalizers")


def _probe_model(model_fn):
    """The model's input spec and metrics (types and finalizers), from a model built aside."""
    with tf.Graph().as_default():
        model = model_fn()
        unfinalized_type = tff.types.tensorflow_to_type(
            tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), model.report_local_unfinalized_metrics()))
        return _Probe(model.input_spec, unfinalized_type, model.metric_finalizers())


def _finalizer(probe):
    """The model's metric finalizers as one computation of the summed unfinalized metrics."""

    @tff.tensorflow.computation(probe.unfinalized_type)
    def finalize(unfinalized):
        return collections.OrderedDict((name, f(unfinalized[name])) for name, f in probe.finalizers.items())

    return finalize


def _build_group_computation(model_fn, client_optimizer, hparams_type, group_type):
    """``(hparams, group) -> (sum_i d_i u_i, counted updates, unfinalized metrics)``."""

    @tff.tensorflow.computation(hparams_type, group_type)
    def run_group(hparams, group):
        model = model_fn()
        weights = tff.learning.models.ModelWeights.from_model(model)
        specs = tuple(tf.TensorSpec(v.shape, v.dtype) for v in weights.trainable)

        @tf.function
        def run(hparams, group):
            total = [tf.zeros_like(v) for v in weights.trainable]
            counted = tf.constant(0, tf.int32)
            for i in tf.range(tf.shape(group["weight"])[0]):
                metrics_before = [tf.identity(v) for v in model.local_variables]
                update = _local_work(model, weights, client_optimizer, specs, hparams, group, i)
                finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(u)) for u in update])
                if finite:
                    d = group["weight"][i]
                    total = [t + tf.cast(d, t.dtype) * u for t, u in zip(total, update)]
                    counted += tf.cast(tf.not_equal(d, 0.0), tf.int32)
                else:  # as TFF: the update counts as zero, and its metrics are dropped
                    for v, b in zip(model.local_variables, metrics_before):
                        v.assign(b)
            return total, counted, model.report_local_unfinalized_metrics()

        return run(hparams, group)

    return run_group


def _local_work(model, weights, client_optimizer, specs, hparams, group, i):
    """Work ``i`` of the group: K client-optimizer steps from its model; returns its update
    (start - end)."""
    start = tf.nest.map_structure(lambda w: w[group["version"][i]], group["model_weights"])
    tf.nest.map_structure(lambda v, w: v.assign(w), weights, start)
    state = client_optimizer.set_hparams(client_optimizer.initialize(specs), hparams)
    for k in tf.range(tf.shape(tf.nest.flatten(group["data"])[0])[1]):
        batch = tf.nest.map_structure(lambda d: d[i, k], group["data"])
        with tf.GradientTape() as tape:
            output = model.forward_pass(batch, training=True)
        gradients = tape.gradient(output.loss, weights.trainable)
        state, updated = client_optimizer.next(state, tuple(weights.trainable), tuple(gradients))
        for v, u in zip(weights.trainable, updated):
            v.assign(u)
    return [a - b for a, b in zip(start.trainable, weights.trainable)]
