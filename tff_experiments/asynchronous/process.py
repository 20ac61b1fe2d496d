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

(one member per aggregated local work) and returns the state with the new global model. With
``clients_per_group=G`` a member of ``CLIENTS`` is instead a group of up to G local works, run
by one TensorFlow call (``tff_experiments.asynchronous.group_work``). ``client_inputs`` builds
either form.

A grouped process also runs a server step in several calls, so that memory holds one part of a
step's works at a time (``AsynchronousDriver`` does this for steps of many works):
``step_sums(state, clients)`` returns the part's sums (:math:`\sum_i d_i u_i` over its works, the
counted updates, the unfinalized metrics) and ``apply_sums(state, sums, counted, unfinalized)``,
given the sums over all the parts, finishes the step as ``next`` would (the same result up to
the order of float additions).

A step in which no update counts (no client, or only zero weights and non-finite updates)
leaves the whole state as it was, server optimizer state included: a momentum or Adam server
optimizer would otherwise move the model on a zero update.
"""
import collections

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.asynchronous import group_values, group_work

CLIENT_INPUT_FIELDS = ("model_weights", "data", "weight")


def client_input(model_weights, data, weight):
    """The value of one participating client, for ``process.next``: its stale model, its
    local batches, its aggregation weight :math:`d_i`."""
    return collections.OrderedDict(
        model_weights=model_weights, data=data, weight=np.float32(weight))


def takes_arrays(process):
    """Whether ``process`` takes each local work's batches as arrays ``(K, b, ...)`` (built with
    ``clients_per_group``) rather than as a ``tf.data.Dataset``."""
    return bool(getattr(process, "clients_per_group", None))


def work_data(process, local_batches):
    """``(client, work_index) -> data`` of a local work, in the form ``process`` takes."""
    return local_batches.batch_arrays if takes_arrays(process) else local_batches.dataset


def client_inputs(process, local_batches, works):
    """The ``CLIENTS`` value of ``process.next`` for the local works ``works``, a list of
    ``(model_weights, client, work_index, weight)``, their batches from ``local_batches``."""
    batches = work_data(process, local_batches)
    return pack_client_values(process, [(w, batches(client, k), d) for w, client, k, d in works])


def pack_client_values(process, items):
    """The ``CLIENTS`` value of ``process.next`` from ``(model_weights, data, weight)`` items: one
    ``client_input`` each (data: a ``tf.data.Dataset`` of the K batches), or, for a process built
    with ``clients_per_group``, groups of items of equal batch shape (data: arrays
    ``(K, b, ...)``, as ``LocalBatches.batch_arrays``; ``group_values.pack_groups``)."""
    if not takes_arrays(process):
        return [client_input(w, data, d) for w, data, d in items]
    return group_values.pack_groups(items, process.clients_per_group)


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


class StaleModelProcess(tff.learning.templates.LearningProcess):
    """A ``LearningProcess`` whose ``next`` takes the clients' stale models with their data.

    Args:
      *args: ``LearningProcess``'s.
      clients_per_group: None, or the most local works in one ``CLIENTS`` member.
      step_sums: None, or (grouped processes) the computation ``(state, clients) -> (sum_i d_i
        u_i, counted updates, unfinalized metrics)`` of a part of a step's works.
      apply_sums: None, or (grouped processes) the computation ``(state, sums, counted,
        unfinalized) -> LearningProcessOutput`` that ends a step from its parts' summed sums.
      **kwargs: ``LearningProcess``'s.
    """

    def __init__(self, *args, clients_per_group=None, step_sums=None, apply_sums=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.clients_per_group = clients_per_group
        self.step_sums = step_sums
        self.apply_sums = apply_sums


def build_stale_model_process(model_fn, client_optimizer_fn, server_optimizer_fn=None, *,
                              clients_per_group=None, batched_groups=True):
    """Builds the server step shared by all schemes.

    Args:
      model_fn: no-arg callable returning a ``tff.learning.models.VariableModel``
        (e.g. ``tff_experiments.models.tff_model_fn(...)``).
      client_optimizer_fn: a ``tff.learning.optimizers.Optimizer`` for the local work
        (the authors: ``tff.learning.optimizers.build_sgdm(lr, momentum=0.9)``).
      server_optimizer_fn: a ``tff.learning.optimizers.Optimizer`` applied to
        :math:`-\\sum_i d_i(\\theta_i^{local} - \\theta^{\\rho_i(n)})`; defaults to SGD with
        :math:`\\eta_g = 1` (the authors' setting).
      clients_per_group: None (one ``CLIENTS`` member per local work, TFF's own client work),
        or G >= 1: up to G local works per member (see the module docstring); the same
        result, far fewer TFF calls.
      batched_groups: with ``clients_per_group``, run a group's local works as batched
        computations where the model allows it (``group_work`` says which models do); False:
        one after the other.

    Returns:
      A ``tff.learning.templates.LearningProcess``; its ``next`` takes the server state and
      ``client_inputs(process, ...)``. ``get_hparams``/``set_hparams`` expose
      ``{'client_work': client optimizer hparams, 'finalizer': server optimizer hparams}``,
      as TFF's ``build_weighted_fed_avg``.
    """
    if clients_per_group is not None and (int(clients_per_group) != clients_per_group or clients_per_group < 1):
        raise ValueError(f"clients_per_group must be None or an integer >= 1, got {clients_per_group!r}")
    if server_optimizer_fn is None:
        server_optimizer_fn = tff.learning.optimizers.build_sgdm(learning_rate=1.0)

    @tff.tensorflow.computation()
    def initial_model_weights_fn():
        return tff.learning.models.ModelWeights.from_model(model_fn())

    model_weights_type = initial_model_weights_fn.type_signature.result
    # TFF's client work: the local work of one client, and the client optimizer's hyperparameters
    # (its state), which the grouped work uses too.
    client_work = tff.learning.templates.build_model_delta_client_work(
        model_fn, client_optimizer_fn, client_weighting=tff.learning.ClientWeighting.UNIFORM)
    aggregator = WeightedSumFactory().create(model_weights_type.trainable, tff.TensorType(np.float32))
    finalizer = tff.learning.templates.build_apply_optimizer_finalizer(server_optimizer_fn, model_weights_type)
    init_fn = _build_init(initial_model_weights_fn, client_work, aggregator, finalizer)
    server_update = _build_server_update(init_fn, finalizer)
    parts = {}
    if clients_per_group is None:
        client_input_type, local_works = _per_client_works(client_work, aggregator, model_weights_type)
    else:
        client_input_type, local_sums, finalize = group_work.grouped_sums(
            model_fn, client_optimizer_fn, client_work, model_weights_type, batched=batched_groups)

        def local_works(state, clients):
            return _summed_works_output(state, *local_sums(state, clients), finalize)

        parts = _build_step_parts(init_fn, client_input_type, local_sums, finalize, server_update)
    next_fn = _build_next(init_fn, client_input_type, local_works, server_update)
    accessors = _build_accessors(init_fn.type_signature.result.member, client_work, finalizer)
    return StaleModelProcess(init_fn, next_fn, **accessors, clients_per_group=clients_per_group, **parts)


def _per_client_works(client_work, aggregator, model_weights_type):
    """``(CLIENTS type, local_works)`` with one ``CLIENTS`` member per local work, TFF's client
    work; ``local_works(state, clients)`` gives ``(aggregator output: sum_i d_i u_i @SERVER,
    number of counted updates @SERVER, client-work metrics)``."""
    data_type = client_work.next.type_signature.parameter[2].member
    client_input_type = tff.FederatedType(
        tff.StructWithPythonType(
            [("model_weights", model_weights_type), ("data", data_type), ("weight", tff.TensorType(np.float32))],
            collections.OrderedDict),
        tff.CLIENTS)

    @tff.tensorflow.computation(tff.TensorType(np.float32), tff.TensorType(np.float32))
    def effective_weight(weight, update_weight):
        # TFF's client work zeroes a non-finite update and gives it weight 0: keep it out.
        weight = tf.where(update_weight > 0, weight, tf.zeros_like(weight))
        return weight, tf.cast(tf.not_equal(weight, 0.0), tf.int32)

    def local_works(state, clients):
        client_output = client_work.next(state.client_work, clients.model_weights, clients.data)
        weights, counted = tff.federated_map(effective_weight, (clients.weight, client_output.result.update_weight))
        aggregated = aggregator.next(state.aggregator, client_output.result.update, weights)
        return aggregated, tff.federated_sum(counted), client_output.measurements

    return client_input_type, local_works


def _build_init(initial_model_weights_fn, client_work, aggregator, finalizer):
    @tff.federated_computation()
    def init_fn():
        return tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
            global_model_weights=tff.federated_eval(initial_model_weights_fn, tff.SERVER),
            distributor=tff.federated_value((), tff.SERVER),
            client_work=client_work.initialize(),
            aggregator=aggregator.initialize(),
            finalizer=finalizer.initialize(),
        ))

    return init_fn


def _summed_works_output(state, sums, counted, unfinalized, finalize):
    """A grouped process' local works output (as ``_per_client_works``'s ``local_works``) from
    their sums @SERVER."""
    aggregated = tff.templates.MeasuredProcessOutput(  # the groups' sums are already weighted
        state=state.aggregator, result=sums, measurements=tff.federated_value((), tff.SERVER))
    measurements = tff.federated_zip(collections.OrderedDict(train=tff.federated_map(finalize, unfinalized)))
    return aggregated, counted, measurements


def _build_next(init_fn, client_input_type, local_works, server_update):
    """``next(state, clients)``: the local works, their weighted sum, the server update."""

    @tff.federated_computation(init_fn.type_signature.result, client_input_type)
    def next_fn(state, clients):
        return server_update(state, *local_works(state, clients))

    return next_fn


def _build_step_parts(init_fn, client_input_type, local_sums, finalize, server_update):
    """``step_sums`` and ``apply_sums`` of a grouped process (see the module docstring)."""

    @tff.federated_computation(init_fn.type_signature.result, client_input_type)
    def step_sums(state, clients):
        return local_sums(state, clients)

    sums_type, counted_type, unfinalized_type = step_sums.type_signature.result

    @tff.federated_computation(init_fn.type_signature.result, sums_type, counted_type, unfinalized_type)
    def apply_sums(state, sums, counted, unfinalized):
        return server_update(state, *_summed_works_output(state, sums, counted, unfinalized, finalize))

    return dict(step_sums=step_sums, apply_sums=apply_sums)


def _build_server_update(init_fn, finalizer):
    """``server_update(state, aggregator output, counted, client measurements)``, inside a federated
    computation: the server optimizer on the local works' weighted sum; the state stays as it
    was when no update counted."""
    state_type = init_fn.type_signature.result.member

    @tff.tensorflow.computation(tff.TensorType(np.int32), state_type, state_type)
    def keep_unless_counted(counted, updated, previous):
        # No update counted: the step is not a step (the server optimizer's state stays too).
        return tf.nest.map_structure(lambda a, b: tf.where(counted > 0, a, b), updated, previous)

    def server_update(state, aggregator_output, counted, client_measurements):
        finalizer_output = finalizer.next(state.finalizer, state.global_model_weights, aggregator_output.result)
        updated = tff.federated_zip(tff.learning.templates.LearningAlgorithmState(
            global_model_weights=finalizer_output.result,
            distributor=state.distributor,
            client_work=state.client_work,
            aggregator=aggregator_output.state,
            finalizer=finalizer_output.state,
        ))
        new_state = tff.federated_map(keep_unless_counted, (counted, updated, state))
        metrics = tff.federated_zip(collections.OrderedDict(
            distributor=tff.federated_value((), tff.SERVER),
            client_work=client_measurements,
            aggregator=aggregator_output.measurements,
            finalizer=finalizer_output.measurements,
        ))
        return tff.learning.templates.LearningProcessOutput(new_state, metrics)

    return server_update


def _build_accessors(state_type, client_work, finalizer):
    """The model-weight and hyperparameter functions of ``LearningProcess`` (keyword arguments);
    the hyperparameters, as ``tff.learning.templates.compose_learning_process``: the client
    work's (client optimizer) and the finalizer's (server optimizer)."""

    def with_parts(state, **parts):
        fields = dict(global_model_weights=state.global_model_weights, distributor=state.distributor,
                      client_work=state.client_work, aggregator=state.aggregator, finalizer=state.finalizer)
        fields.update(parts)
        return tff.learning.templates.LearningAlgorithmState(**fields)

    @tff.tensorflow.computation(state_type)
    def get_model_weights(state):
        return state.global_model_weights

    @tff.tensorflow.computation(state_type, state_type.global_model_weights)
    def set_model_weights(state, model_weights):
        return with_parts(state, global_model_weights=model_weights)

    @tff.tensorflow.computation(state_type)
    def get_hparams(state):
        return collections.OrderedDict(client_work=client_work.get_hparams(state.client_work),
                                       finalizer=finalizer.get_hparams(state.finalizer))

    @tff.tensorflow.computation(state_type, get_hparams.type_signature.result)
    def set_hparams(state, hparams):
        return with_parts(state, client_work=client_work.set_hparams(state.client_work, hparams["client_work"]),
                          finalizer=finalizer.set_hparams(state.finalizer, hparams["finalizer"]))

    return dict(get_model_weights=get_model_weights, set_model_weights=set_model_weights,
                get_hparams_fn=get_hparams, set_hparams_fn=set_hparams)
