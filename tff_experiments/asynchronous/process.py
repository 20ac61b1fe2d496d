r"""The server step of every scheme as a ``tff.learning.templates.LearningProcess``.

Fraboni et al. (JMLR 2023, arXiv 2206.10189), Section 3: one server update for synchronous
FedAvg, asynchronous FedAvg, FedBuff and FedFix,

.. math::

    \theta^{n+1} = \theta^n + \eta_g \sum_{i \in S_n} d_i \,
        \big(\theta_i^{\text{local}} - \theta^{\rho_i(n)}\big),

where client i ran its local work from the (possibly stale) global model
:math:`\theta^{\rho_i(n)}` it was last sent. The process is composed from TFF's own parts:

* client work: ``tff.learning.templates.build_model_delta_client_work`` (K local steps of the
  client optimizer over the client's batches, update :math:`\theta^{\rho_i(n)} -
  \theta_i^{\text{local}}`), run by ``tff.federated_map`` over the participating clients,
  each from its own stale model;
* aggregator: :class:`WeightedSumFactory`, :math:`\sum_i d_i \, u_i` (a
  ``tff.aggregators.WeightedAggregationFactory``);
* finalizer: ``tff.learning.templates.build_apply_optimizer_finalizer`` with the server
  optimizer, which for SGD of learning rate :math:`\eta_g` gives the update above (the
  aggregated update is its "gradient"; any TFF optimizer fits, e.g.
  ``tff_experiments.tff_optimizers.build_adabelief``).

What differs between the schemes (who is in :math:`S_n`, from which model, with what
:math:`d_i`, when) is plain Python: ``tff_experiments.asynchronous.schedule`` and the driver.
Since there is no broadcast, the stale models arrive with the client data: ``next`` takes

    ``state@SERVER, <model_weights=W, data=B*, weight=float32>@CLIENTS``

(one member per aggregated local work) and returns the state with the new global model.
"""
import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

CLIENT_INPUT_FIELDS = ("model_weights", "data", "weight")


def client_input(model_weights, data, weight):
    """The value of one participating client, for ``process.next``: its stale model, its
    local batches, its aggregation weight :math:`d_i`."""
    return collections.OrderedDict(
        model_weights=model_weights, data=data, weight=np.float32(weight))


class WeightedSumFactory(tff.aggregators.WeightedAggregationFactory):
    r"""Aggregates :math:`\sum_i w_i \, u_i` (not divided by :math:`\sum_i w_i`)."""

    def create(self, value_type, weight_type):
        @tff.federated_computation()
        def init_fn():
            return tff.federated_value((), tff.SERVER)

        @tff.tensorflow.computation(value_type, weight_type)
        def scale(value, weight):
            return tf.nest.map_structure(lambda v: v * tf.cast(weight, v.dtype), value)

        @tff.federated_computation(
            init_fn.type_signature.result,
            tff.FederatedType(value_type, tff.CLIENTS),
            tff.FederatedType(weight_type, tff.CLIENTS),
        )
        def next_fn(state, value, weight):
            total = tff.federated_sum(tff.federated_map(scale, (value, weight)))
            return tff.templates.MeasuredProcessOutput(
                state=state, result=total, measurements=tff.federated_value((), tff.SERVER))

        return tff.templates.AggregationProcess(init_fn, next_fn)


def build_stale_model_process(model_fn, client_optimizer_fn, server_optimizer_fn=None):
    """Builds the server step shared by all schemes.

    Args:
      model_fn: no-arg callable returning a ``tff.learning.models.VariableModel``
        (e.g. ``tff_experiments.models.tff_model_fn(...)``).
      client_optimizer_fn: a ``tff.learning.optimizers.Optimizer`` for the local work
        (the authors: ``tff.learning.optimizers.build_sgdm(lr, momentum=0.9)``).
      server_optimizer_fn: a ``tff.learning.optimizers.Optimizer`` applied to
        :math:`-\\sum_i d_i(\\theta_i^{local} - \\theta^{\\rho_i(n)})`; defaults to SGD with
        :math:`\\eta_g = 1` (the authors' setting).

    Returns:
      A ``tff.learning.templates.LearningProcess``; its ``next`` takes the server state and
      a list of ``client_input(...)`` values, one per aggregated local work.
    """
    if server_optimizer_fn is None:
        server_optimizer_fn = tff.learning.optimizers.build_sgdm(learning_rate=1.0)

    @tff.tensorflow.computation()
    def initial_model_weights_fn():
        return tff.learning.models.ModelWeights.from_model(model_fn())

    model_weights_type = initial_model_weights_fn.type_signature.result
    client_work = tff.learning.templates.build_model_delta_client_work(
        model_fn, client_optimizer_fn, client_weighting=tff.learning.ClientWeighting.UNIFORM)
    aggregator = WeightedSumFactory().create(
        model_weights_type.trainable, tff.TensorType(np.float32))
    finalizer = tff.learning.templates.build_apply_optimizer_finalizer(
        server_optimizer_fn, model_weights_type)
    data_type = client_work.next.type_signature.parameter[2].member
    client_input_type = tff.FederatedType(
        tff.StructWithPythonType(
            [("model_weights", model_weights_type), ("data", data_type),
             ("weight", tff.TensorType(np.float32))],
            collections.OrderedDict),
        tff.CLIENTS)

    @tff.federated_computation()
    def init_fn():
        return tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
            global_model_weights=tff.federated_eval(initial_model_weights_fn, tff.SERVER),
            distributor=tff.federated_value((), tff.SERVER),
            client_work=client_work.initialize(),
            aggregator=aggregator.initialize(),
            finalizer=finalizer.initialize(),
        ))

    @tff.tensorflow.computation(tff.TensorType(np.float32), tff.TensorType(np.float32))
    def effective_weight(weight, update_weight):
        # TFF's client work zeroes a non-finite update and gives it weight 0: keep it out.
        return tf.where(update_weight > 0, weight, tf.zeros_like(weight))

    @tff.federated_computation(init_fn.type_signature.result, client_input_type)
    def next_fn(state, clients):
        client_output = client_work.next(state.client_work, clients.model_weights, clients.data)
        weights = tff.federated_map(
            effective_weight, (clients.weight, client_output.result.update_weight))
        aggregator_output = aggregator.next(
            state.aggregator, client_output.result.update, weights)
        finalizer_output = finalizer.next(
            state.finalizer, state.global_model_weights, aggregator_output.result)
        new_state = tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
            global_model_weights=finalizer_output.result,
            distributor=state.distributor,
            client_work=client_output.state,
            aggregator=aggregator_output.state,
            finalizer=finalizer_output.state,
        ))
        metrics = tff.federated_zip(collections.OrderedDict(
            distributor=tff.federated_value((), tff.SERVER),
            client_work=client_output.measurements,
            aggregator=aggregator_output.measurements,
            finalizer=finalizer_output.measurements,
        ))
        return tff.learning.templates.LearningProcessOutput(new_state, metrics)

    state_type = next_fn.type_signature.parameter[0].member

    @tff.tensorflow.computation(state_type)
    def get_model_weights(state):
        return state.global_model_weights

    @tff.tensorflow.computation(state_type, state_type.global_model_weights)
    def set_model_weights(state, model_weights):
        return tff.learning.templates.LearningAlgorithmState(
            global_model_weights=model_weights,
            distributor=state.distributor,
            client_work=state.client_work,
            aggregator=state.aggregator,
            finalizer=state.finalizer,
        )

    return tff.learning.templates.LearningProcess(
        init_fn, next_fn, get_model_weights, set_model_weights)
