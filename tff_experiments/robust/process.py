r"""MoNNA and its baselines as TFF computations: one peer-to-peer training step.

Farhadkhani et al., ICML 2023 (arXiv:2209.10931), Algorithm 1, run as the authors'
``peerToPeer.py`` runs it. There are :math:`n` machines, :math:`f` of them Byzantine; the
:math:`h = n - f` honest ones are TFF clients that keep their own state (TFF's stateful-clients
pattern: the state goes into and comes out of every call), the model
:math:`\theta_j` and the momentum :math:`m_j`. Step :math:`t`:

1. *local work* (``tff.federated_map`` over the honest clients): the stochastic gradient
   :math:`g_j` of :math:`\ell(\theta_j; \text{batch}_j) + \lambda \lVert\theta_j\rVert_2`
   (the authors' ``l2`` loss, the norm itself, not its square), the Polyak momentum as a moving
   average and the local half step

   .. math::

       m_j \leftarrow \beta m_j + (1 - \beta) g_j, \qquad
       \theta_j^{t+1/2} = \theta_j - \gamma_t m_j,
       \qquad \gamma_t = \frac{\gamma_0}{t'/\tau + 1},

   with :math:`t'` the last multiple of ``decay_delta`` not above :math:`t` (the learning rate is
   updated every ``decay_delta`` steps);
2. *exchange*: the half-step models are gathered at the server (``tff.federated_aggregate``,
   which stands for the all-to-all exchange of a real deployment); the :math:`f` Byzantine
   machines, omniscient, build the vector they send from them (``attacks.py``);
3. *mixing*, per honest machine :math:`j`, at the server: with the authors' reception
   (``reception="authors"``) machine :math:`j` receives :math:`n - f` vectors, its own, those of
   :math:`n - 2f - 1` other honest machines drawn at random, and the :math:`f` Byzantine ones;
   with byzfl's (``reception="all"``) it receives all :math:`n`. It then sets
   :math:`\theta_j^{t+1} = R(\text{received})` (``rules.py``; NNA keeps the ``k - f`` nearest of
   the ``k`` received vectors: :math:`n - 2f` with the authors' reception, :math:`n - f` with
   byzfl's);
4. every client gets its own :math:`\theta_j^{t+1}` back (``tff.federated_select`` keyed by the
   client's index) and stores it with its momentum.

The random draws (receptions) are stateless functions of ``(seed, t)``, so a run resumed from
``(server_state, client_states)`` repeats the same steps exactly.
"""
import collections
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_federated as tff

from tff_experiments.robust import attacks as attacks_lib
from tff_experiments.robust.gather import gather_at_server
from tff_experiments.robust.nna import pairwise_squared_distances
from tff_experiments.robust.rules import MixingRule


def mixing_rule(settings):
    """The ``MixingRule`` of the honest machines of a run's ``RobustSettings`` (its ``f``: the
    Byzantine machines)."""
    return MixingRule(settings.rule, f=settings.num_byzantine, clip_threshold=settings.clip_threshold,
                      clip_iterations=settings.clip_iterations, krum_squared=settings.krum_squared)


def learning_rate_at(step, initial, decay, decay_delta):
    r""":math:`\gamma_t = \gamma_0 / (t'/\tau + 1)`, :math:`t' = \delta \lfloor t/\delta \rfloor` (float64)."""
    step = tf.cast(step, tf.int64)
    if decay <= 0:
        return tf.constant(initial, tf.float64)
    last_update = (step // decay_delta) * decay_delta
    return initial / (tf.cast(last_update, tf.float64) / decay + 1.0)


def reception_indices(settings, step, seed):
    """``[h, k]`` int32 indices into ``concat(honest [h], byzantine [f])``: what each machine receives.

    Row ``j`` starts with ``j`` (the machine's own vector), then the other honest machines it
    hears from, then the ``f`` Byzantine ones (``h .. n-1``). With the authors' reception the
    ``n - 2f - 1`` other honest machines are a uniform draw without replacement, a stateless
    function of ``(seed, step)``.
    """
    h, f, n = settings.num_honest, settings.num_byzantine, settings.num_machines
    own = tf.range(h, dtype=tf.int32)[:, tf.newaxis]
    byzantine = tf.tile(tf.range(h, n, dtype=tf.int32)[tf.newaxis, :], [h, 1])
    # Others of row j, in a random (authors) or increasing (all) order: j itself sorts last.
    if settings.reception == "authors":
        keys = tf.random.stateless_uniform(
            [h, h], seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)]), dtype=tf.float32
        )
        count = n - 2 * f - 1
    else:
        keys = tf.tile(tf.cast(tf.range(h), tf.float32)[tf.newaxis, :], [h, 1])
        count = h - 1
    keys = tf.where(tf.eye(h, dtype=tf.bool), tf.fill([h, h], np.float32(np.inf)), keys)
    others = tf.argsort(keys, axis=1, stable=True)[:, :count]
    return tf.concat([own, tf.cast(others, tf.int32), byzantine], axis=1)


def full_view_indices(num_honest, num_machines):
    """``[h, n]``: every machine receives all ``n`` vectors, its own first (the line search's view)."""
    rows = [[j] + [i for i in range(num_machines) if i != j] for j in range(num_honest)]
    return tf.constant(rows, tf.int32)


def mix_received(rule, everything, indices):
    """Each honest machine's mixing result ``[h, d]`` from all vectors and its reception indices."""
    return rule.mix_each(tf.gather(everything, indices))


def byzantine_vectors(settings, honest, learning_rate, flipped_gradients=None):
    """``([f, d] Byzantine vectors, factor z)`` for this step (z = 0 where it does not apply)."""
    f, h, n = settings.num_byzantine, settings.num_honest, settings.num_machines
    d = honest.shape[1]
    if f == 0:
        return tf.zeros([0, d], honest.dtype), tf.constant(0.0, tf.float64)
    if settings.attack in attacks_lib.SCALED_ATTACKS:
        base, direction = attacks_lib.attack_base_and_direction(settings.attack, honest)
        if settings.attack_factor is None:
            rule, view = mixing_rule(settings), full_view_indices(h, n)
            if rule.depends_on_own:
                mix_all = lambda everything: mix_received(rule, everything, view)  # noqa: E731
            else:  # the same result for every machine: compute it once
                mix_all = lambda everything: rule(everything)[tf.newaxis, :]  # noqa: E731
            sent = attacks_lib.byzantine_vector(
                settings.attack,
                honest,
                mix_all=mix_all,
                evaluations=settings.attack_evaluations,
                num_byzantine=f,
            )
        else:
            sent = base + tf.cast(settings.attack_factor, honest.dtype) * direction
        # The factor, recovered for the metrics: sent = base + z direction.
        norm = tf.reduce_sum(tf.square(direction))
        factor = tf.math.divide_no_nan(tf.reduce_sum((sent - base) * direction), norm)
        factor = tf.cast(factor, tf.float64)
    else:
        sent = attacks_lib.byzantine_vector(
            settings.attack,
            honest,
            flipped_gradients=flipped_gradients,
            learning_rate=learning_rate,
            mimic_target=settings.mimic_target,
        )
        factor = tf.constant(0.0, tf.float64)
    return tf.repeat(sent[tf.newaxis, :], f, axis=0), factor


class FlatModel:
    """A Keras model seen as a function of one flat float32 vector :math:`\\theta \\in R^d`.

    Wraps ``tff.learning.models.functional_model_from_keras`` (variable-free, usable inside
    ``tff.tensorflow.computation``); ``theta`` is the trainable weights concatenated in
    ``model.trainable_weights`` order (the models here have no non-trainable weights).
    """

    def __init__(self, keras_builder, input_spec, seed=0):
        model = keras_builder(seed=seed)
        if model.non_trainable_weights:
            raise ValueError(f"{model.name} has non-trainable weights, which the flat model does not carry")
        self.shapes = [tuple(int(s) for s in w.shape) for w in model.trainable_weights]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.dimension = int(sum(self.sizes))
        self.initial = np.concatenate([np.asarray(w.numpy(), np.float32).reshape(-1) for w in model.trainable_weights])
        self._functional = tff.learning.models.functional_model_from_keras(
            model,
            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            input_spec,
        )

    def unflatten(self, theta):
        parts = tf.split(theta, self.sizes)
        return tuple(tf.reshape(p, s) for p, s in zip(parts, self.shapes))

    def unflatten_numpy(self, theta):
        """The Keras weights list (TFF's order) from a NumPy ``theta``."""
        out, start = [], 0
        for size, shape in zip(self.sizes, self.shapes):
            out.append(np.asarray(theta[start : start + size], np.float32).reshape(shape))
            start += size
        return out

    def logits(self, theta, x):
        return self._functional.predict_on_batch((self.unflatten(theta), ()), x, training=True)


def _regularized_loss(flat_model, theta, x, y, l2):
    logits = flat_model.logits(theta, x)
    losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=logits)
    return tf.reduce_mean(losses) + tf.cast(l2, theta.dtype) * tf.norm(theta)


def _gradient(flat_model, theta, x, y, l2):
    with tf.GradientTape() as tape:
        tape.watch(theta)
        loss = _regularized_loss(flat_model, theta, x, y, l2)
    return loss, tape.gradient(loss, theta)


def state_types(dimension, batch_spec):
    """``(server_state_type, client_state_type, batch_type)`` of a process on a ``dimension``-d model."""
    server = tff.StructType([("step", tff.TensorType(np.int64)), ("seed", tff.TensorType(np.int64))])
    client = tff.StructType(
        [
            ("index", tff.TensorType(np.int32)),
            ("theta", tff.TensorType(np.float32, [dimension])),
            ("momentum", tff.TensorType(np.float32, [dimension])),
        ]
    )
    batch = tff.StructType(
        [(name, tff.TensorType(batch_spec[name].dtype.as_numpy_dtype, batch_spec[name].shape)) for name in ("x", "y")]
    )
    return server, client, batch


def _local_step(flat_model, settings, client_state_type, batch_type):
    """The honest machine's work: gradient, momentum, half step; its message for the exchange."""
    flip = settings.needs_flipped_gradients
    beta, l2, num_classes = float(settings.momentum), float(settings.l2_regularization), int(settings.num_classes)

    @tff.tensorflow.computation(client_state_type, batch_type, np.float32)
    def local_step(state, batch, rate):
        theta, momentum = state["theta"], state["momentum"]
        loss, gradient = _gradient(flat_model, theta, batch["x"], batch["y"], l2)
        momentum = beta * momentum + (1.0 - beta) * gradient
        half = theta - rate * momentum
        message = collections.OrderedDict(index=state["index"], theta=half)
        attack_gradients = 0.0
        if flip:  # the authors' honest workers compute it for the attack (peerToPeer --flip)
            _, flipped = _gradient(flat_model, theta, batch["x"], num_classes - 1 - batch["y"], l2)
            message["flipped"] = flipped
            attack_gradients = 1.0
        return collections.OrderedDict(
            state=collections.OrderedDict(index=state["index"], theta=half, momentum=momentum),
            message=message,
            loss=loss,
            honest_gradients=tf.constant(1.0, tf.float32),
            attack_gradients=tf.constant(attack_gradients, tf.float32),
        )

    return local_step


def _mix(settings, server_state_type, gathered_type):
    """The server's part: the Byzantine vectors, each machine's reception and mixing."""
    h, rule = settings.num_honest, mixing_rule(settings)
    fields = {name: t.shape[1] for name, t in tff.structure.iter_elements(gathered_type) if name != "index"}

    @tff.tensorflow.computation(server_state_type, gathered_type, np.float32)
    def mix(server_state, gathered, rate):
        order = tf.argsort(gathered["index"])  # clients arrive in any order: sort by index
        rows = {name: tf.ensure_shape(tf.gather(gathered[name], order), [h, d]) for name, d in fields.items()}
        honest, flipped = rows["theta"], rows.get("flipped")
        byzantine, factor = byzantine_vectors(settings, honest, rate, flipped)
        everything = tf.concat([honest, byzantine], axis=0)
        indices = reception_indices(settings, server_state["step"], server_state["seed"])
        mixed = mix_received(rule, everything, indices)
        spread = tf.sqrt(tf.reduce_max(pairwise_squared_distances(mixed)))
        if settings.num_byzantine:
            byzantine_distance = tf.norm(byzantine[0] - tf.reduce_mean(honest, axis=0))
        else:
            byzantine_distance = tf.constant(0.0, tf.float32)
        return collections.OrderedDict(
            mixed=mixed,
            server_state=collections.OrderedDict(step=server_state["step"] + 1, seed=server_state["seed"]),
            honest_spread=spread,
            byzantine_distance=byzantine_distance,
            attack_factor=factor,
        )

    return mix


def _adoption(client_state_type, mixed_type, dimension):
    """Every client takes its own row of the mixed models (``tff.federated_select``)."""

    @tff.tensorflow.computation(mixed_type, np.int32)
    def select_row(mixed, key):
        return tf.gather(mixed, key)

    @tff.tensorflow.computation(client_state_type)
    def selection_key(state):
        return tf.reshape(state["index"], [1])

    @tff.tensorflow.computation(client_state_type, tff.SequenceType(tff.TensorType(np.float32, [dimension])))
    def adopt(state, own_rows):
        # federated_select delivers a dataset of the rows keyed by this client: one row.
        theta = own_rows.reduce(tf.zeros([dimension], tf.float32), lambda _, row: row)
        return collections.OrderedDict(index=state["index"], theta=theta, momentum=state["momentum"])

    return select_row, selection_key, adopt


class MonnaComputations(NamedTuple):
    """The TFF computations of one configuration (``build_monna_process`` puts them together)."""

    initialize: Any
    next: Any
    local_step: Any
    mix: Any


def monna_computations(flat_model, settings, batch_spec):
    """``MonnaComputations`` of ``settings`` on ``flat_model`` (``FlatModel``) and batches ``batch_spec``."""
    d, h = flat_model.dimension, settings.num_honest
    server_state_type, client_state_type, batch_type = state_types(d, batch_spec)

    @tff.tensorflow.computation(server_state_type)
    def learning_rate(server_state):
        rate = learning_rate_at(server_state["step"], settings.learning_rate, settings.decay, settings.decay_delta)
        return tf.cast(rate, tf.float32)

    local_step = _local_step(flat_model, settings, client_state_type, batch_type)
    message_type = local_step.type_signature.result["message"]
    gathered_type = tff.StructType(
        [(name, tff.TensorType(t.dtype, [None, *t.shape])) for name, t in tff.structure.iter_elements(message_type)]
    )
    mix = _mix(settings, server_state_type, gathered_type)
    select_row, selection_key, adopt = _adoption(client_state_type, mix.type_signature.result["mixed"], d)

    @tff.federated_computation
    def initialize():
        return tff.federated_value(
            collections.OrderedDict(step=np.int64(0), seed=np.int64(settings.seed)), tff.SERVER
        )

    @tff.federated_computation(
        tff.FederatedType(server_state_type, tff.SERVER),
        tff.FederatedType(client_state_type, tff.CLIENTS),
        tff.FederatedType(batch_type, tff.CLIENTS),
    )
    def next_fn(server_state, client_states, batches):
        rate = tff.federated_map(learning_rate, server_state)
        work = tff.federated_map(local_step, (client_states, batches, tff.federated_broadcast(rate)))
        mixed = tff.federated_map(mix, (server_state, gather_at_server(work.message), rate))
        own = tff.federated_select(
            tff.federated_map(selection_key, client_states),
            tff.federated_value(np.int32(h), tff.SERVER),
            mixed.mixed,
            select_row,
        )
        new_client_states = tff.federated_map(adopt, (work.state, own))
        metrics = tff.federated_zip(
            collections.OrderedDict(
                learning_rate=rate,
                train_loss=tff.federated_mean(work.loss),
                honest_spread=mixed.honest_spread,
                byzantine_distance=mixed.byzantine_distance,
                attack_factor=mixed.attack_factor,
                honest_gradients=tff.federated_mean(work.honest_gradients),
                attack_gradients=tff.federated_mean(work.attack_gradients),
            )
        )
        return mixed.server_state, new_client_states, metrics

    return MonnaComputations(initialize, next_fn, local_step, mix)


def build_monna_process(flat_model, settings, batch_spec):
    """One peer-to-peer step of every machine as a ``tff.templates.IterativeProcess``.

    ``initialize() -> server_state@SERVER``; ``next(server_state@SERVER, client_states@CLIENTS,
    batches@CLIENTS) -> <server_state@SERVER, client_states@CLIENTS, metrics@SERVER>`` with

    - server state ``<step=int64, seed=int64>``;
    - client state ``<index=int32, theta=float32[d], momentum=float32[d]>`` (the honest machines,
      in index order ``0 .. h-1``; ``initial_client_states`` gives the first ones: TFF's
      stateful-clients pattern, the state goes into and comes out of every call);
    - batches ``<x=..., y=int32[B]>``, one batch per honest machine;
    - metrics ``<learning_rate, train_loss, honest_spread, byzantine_distance, attack_factor,
      honest_gradients, attack_gradients>`` (the last two: gradients computed per honest machine
      this step, for the algorithm and for simulating the label-flipping attack).
    """
    computations = monna_computations(flat_model, settings, batch_spec)
    return tff.templates.IterativeProcess(computations.initialize, computations.next)


def initial_client_states(flat_model, num_honest, theta=None):
    """Every honest machine starts from the same model (the authors' ``theta_zero``), zero momentum."""
    theta = flat_model.initial if theta is None else np.asarray(theta, np.float32)
    return [
        collections.OrderedDict(index=np.int32(j), theta=theta.copy(), momentum=np.zeros_like(theta))
        for j in range(num_honest)
    ]
